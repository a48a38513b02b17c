"""CVE-2025-68260, the first CVE of the Rust kernel: `Node::release` and `List::remove`.

Rust Binder up to the fix ("rust_binder: fix race condition on death_list", 3e0ae02ba831)
released a node by moving its whole death list out with `mem::take` under the owner's
lock, dropping the lock, and then walking the local list. Meanwhile
`BC_CLEAR_DEATH_NOTIFICATION` runs `NodeDeath::set_cleared`, which calls the unsafe
`List::remove` on the node's (now empty) death list, with the SAFETY comment "it is
either in this death list or in no death list". The item is in a third list, the local
one, so both lists' prev/next pointers are written at once without a common lock: list
corruption, and the kworker oopsed.

`Binder618Node` puts the unfixed `release` back; the interleaving is forced on real
threads with events (the workqueue's worker releases the dead server's node and stops
after the `mem::take`; the client clears its death notification meanwhile). The model
reports the broken Safety contract as an `UnsafeError` naming both lists and where the
death was inserted. The same interleaving against the fixed loop (pop under the lock,
one item at a time) runs clean, and so does the stock driver with the race left free.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest

from binder import uapi as u
from binder.client import BinderClient, Parcel
from binder.node import Node, NodeDeath
from binder.process import Process
from binder.servicemanager import add_service
from binder.work import cancel_work
from ownership.context import may_sleep
from ownership.errors import RefcountError, UnsafeError
from ownership.workqueue import flush
from tests.expect import assert_splat

from ..binder_harness import World, task_of, world

COOKIE = 0xDEAD


class PausingNode(Node):
    """A node whose `release` stops once, after taking a death off its list."""

    __slots__ = ()

    # Set by the test: the worker signals `taken` and waits for `go` (once).
    taken: ClassVar[threading.Event] = threading.Event()
    go: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def pause(cls) -> None:
        """Between dropping the lock and handling the deaths: let the client run."""
        if not cls.taken.is_set():
            cls.taken.set()
            cls.go.wait(10)

    def release_oneway(self) -> None:
        guard = self.owner.inner.lock()
        while (work := self.inner.access(guard).oneway_todo.pop_front()) is not None:
            guard.drop()
            cancel_work(work)
            guard = self.owner.inner.lock()
        guard.drop()


class Binder618Node(PausingNode):
    """6.18's `Node::release`: the death list is `mem::take`n, then walked unlocked."""

    __slots__ = ()

    @may_sleep
    def release(self) -> None:
        self.release_oneway()
        guard = self.owner.inner.lock()
        # let death_list = core::mem::take(&mut self.inner.access_mut(&mut guard).death_list);
        death_list = self.inner.access(guard).death_list.take("Node::release local death_list")
        # drop(guard);
        guard.drop()
        if not death_list.is_empty():
            self.pause()
        # for death in death_list { death.into_arc().set_dead(); }
        while (death := death_list.pop_front()) is not None:
            arc = death.into_arc()
            arc.get().set_dead()
            arc.drop()


class FixedPausingNode(PausingNode):
    """Upstream's fixed `Node::release`, stopping at the same point (a death is taken)."""

    __slots__ = ()

    @may_sleep
    def release(self) -> None:
        self.release_oneway()
        guard = self.owner.inner.lock()
        # while let Some(death) = self.inner.access_mut(&mut guard).death_list.pop_front() {
        while (death := self.inner.access(guard).death_list.pop_front()) is not None:
            guard.drop()
            self.pause()
            arc = death.into_arc()
            arc.get().set_dead()
            arc.drop()
            guard = self.owner.inner.lock()
        guard.drop()


class Binder618Process(Process):
    node_type = Binder618Node


class FixedPausingProcess(Process):
    node_type = FixedPausingNode


def _linked_client(w: World) -> tuple[BinderClient, BinderClient, int]:
    """A server (no looper: it is killed, never serves) and a client linked to its death."""
    srv = w.spawn("victim")
    srv.add_object(0x100, lambda c, t: Parcel())
    assert add_service(srv, "victim", 0x100) == 0
    app = w.spawn("client")
    h = w.lookup(app, "victim")
    app.link_to_death(h, COOKIE, lambda cookie: None)
    return srv, app, h


def _race(w: World, srv: BinderClient, app: BinderClient, h: int) -> list[BaseException]:
    """Kill the server; while its node's release is stopped, clear the registration."""
    PausingNode.taken = threading.Event()
    PausingNode.go = threading.Event()
    caught: list[BaseException] = []
    task_of(srv).exit()  # the release runs on the workqueue's worker
    assert PausingNode.taken.wait(10), "the node release never reached the death list"
    try:
        app.unlink_to_death(h, COOKIE)
    except UnsafeError as e:
        caught.append(e)
    finally:
        PausingNode.go.set()
    flush()
    return caught


def test_cve_2025_68260_mem_take_then_remove_is_caught() -> None:
    with world(Binder618Process) as w:
        srv, app, h = _linked_client(w)
        caught = _race(w, srv, app, h)
        assert len(caught) == 1
        err = assert_splat(
            caught[0],
            "list-remove-wrong-list",
            cls=UnsafeError,
            mentions=[
                "Node::death_list",
                "Node::release local death_list",
                "the item was inserted into Node::death_list",
                "mem::take",
                "NodeDeath",
            ],
        )
        # Both ends are driver code: the remove in set_cleared, the push in add_death.
        assert err.site is not None and "set_cleared" in err.site.function
        assert err.origin is not None and "add_death" in err.origin.function
        app.release(h)


def test_fixed_release_with_the_same_interleaving_is_clean() -> None:
    with world(FixedPausingProcess) as w:
        srv, app, h = _linked_client(w)
        # The death was taken off the node's list first: the clear found it in no list.
        assert _race(w, srv, app, h) == []
        app.release(h)


def _free_race() -> None:
    with world() as w:
        srv, app, h = _linked_client(w)
        task_of(srv).exit()
        clear = w.run(lambda: app.unlink_to_death(h, COOKIE), "clear")
        clear.join(10)
        flush()
        app.release(h)


def test_stock_driver_kill_and_clear_racing_freely() -> None:
    for _ in range(3):
        _free_race()


# --- NodeDeath ownership: the last DArc frees it ---------------------------------------------


def _registration(w: World, app: BinderClient, h: int) -> NodeDeath:
    """The driver's `NodeDeath` behind `app`'s registration on handle `h` (a plain ref)."""
    with w.process(app).node_refs.lock() as g:
        info = g.data.by_handle.get(h)
        assert info is not None and info.death is not None
        return info.death.get()


def test_node_death_used_after_its_last_count_is_a_use_after_free() -> None:
    with world() as w:
        srv, app, h = _linked_client(w)
        stale = _registration(w, app, h)
        # Clearing drops the handle's count and takes it off the node's death list; the
        # BR_CLEAR_DEATH_NOTIFICATION_DONE work item holds the last one until delivered.
        app.unlink_to_death(h, COOKIE)
        app.poll_once()
        assert any(code == u.BR_CLEAR_DEATH_NOTIFICATION_DONE for code, _ in app.events)
        with pytest.raises(RefcountError) as ei:
            stale.set_cleared(False)
        assert_splat(
            ei,
            "binder-death-use-after-free",
            site="stale.set_cleared(False)",
            mentions=["the last DArc<NodeDeath> was dropped"],
        )
        app.release(h)
        _ = srv


def test_node_death_registration_lives_while_counted() -> None:
    with world() as w:
        srv, app, h = _linked_client(w)
        live = _registration(w, app, h)
        w.kill(srv)
        dead = threading.Event()
        app.deaths[COOKIE] = lambda cookie: dead.set()
        while not dead.is_set():
            app.poll_once()
        # Delivered (and acknowledged): the handle's info still counts the registration,
        # so clearing it goes through the same object without a use-after-free.
        assert _registration(w, app, h) is live
        assert live.cookie == COOKIE
        app.unlink_to_death(h, COOKIE)
        app.release(h)
