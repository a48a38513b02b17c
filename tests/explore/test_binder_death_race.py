"""CVE-2025-68260 found from scratch by the explorer, and replayed from its schedule.

`Binder618Node` is 6.18's `Node::release`: the death list is moved out with `mem::take`
under the owner's lock and walked after the lock is dropped, while a client's
`BC_CLEAR_DEATH_NOTIFICATION` may run `NodeDeath::set_cleared` and its unsafe
`List::remove` on the node's (now empty) list. No pause, no event: the explorer has to
find the interleaving itself (the release runs on the system workqueue's worker, a model
thread of every run). The stock driver, which pops one death at a time under the lock,
is clean under the same search (seeded, so the same schedules every time).

Longer searches of this scenario find two gaps of the model that are not this bug (see
the closing note of the session that wrote this test): `task.exit()` of a process while
one of its threads is still inside an ioctl frees the file under that ioctl (the kernel's
`fdget` keeps it; `file-use-after-fput`), and with spurious wakeups one `Thread` Arc can
outlive the process.
"""

from __future__ import annotations

from binder.client import Parcel
from binder.node import Node
from binder.process import Process
from binder.servicemanager import add_service
from ownership.context import may_sleep
from ownership.errors import UnsafeError
from ownership.explore import explore
from ownership.workqueue import flush
from tests.binder_harness import task_of, world

COOKIE = 0xDEAD


class Binder618Node(Node):
    """6.18's `Node::release` (the oneway part as the driver has it)."""

    __slots__ = ()

    @may_sleep
    def release(self) -> None:
        guard = self.owner.inner.lock()
        while (work := self.inner.access(guard).oneway_todo.pop_front()) is not None:
            guard.drop()
            work.into_arc().drop()
            guard = self.owner.inner.lock()
        # let death_list = core::mem::take(&mut self.inner.access_mut(&mut guard).death_list);
        death_list = self.inner.access(guard).death_list.take("Node::release local death_list")
        guard.drop()
        # for death in death_list { death.into_arc().set_dead(); }
        while (death := death_list.pop_front()) is not None:
            arc = death.into_arc()
            arc.get().set_dead()
            arc.drop()


class Binder618Process(Process):
    node_type = Binder618Node


def _kill_while_clearing(process_type: type[Process]) -> None:
    with world(process_type) as w:
        srv = w.spawn("victim")
        srv.add_object(0x100, lambda c, t: Parcel())
        assert add_service(srv, "victim", 0x100) == 0
        app = w.spawn("client")
        h = w.lookup(app, "victim")
        app.link_to_death(h, COOKIE, lambda cookie: None)
        clear = w.run(lambda: app.unlink_to_death(h, COOKIE), "clear")
        task_of(srv).exit()  # the node's release runs on the workqueue's worker
        clear.join(10)
        flush()
        app.release(h)


def racy() -> None:
    _kill_while_clearing(Binder618Process)


def fixed() -> None:
    _kill_while_clearing(Process)


def test_cve_2025_68260_is_found_from_scratch_and_replayed() -> None:
    ex = explore(racy, strategy="portfolio", runs=300)
    assert ex.failure is not None, ex.summary()
    assert isinstance(ex.failure, UnsafeError), ex.summary() + "\n" + str(ex.failure)
    assert ex.failure.rule == "list-remove-wrong-list"
    assert "Node::release local death_list" in str(ex.failure)
    assert ex.schedule is not None
    again = explore(racy, replay=ex.schedule)
    assert isinstance(again.failure, UnsafeError)
    assert again.failure.rule == "list-remove-wrong-list"


def test_the_fixed_release_is_clean_under_the_same_search() -> None:
    ex = explore(fixed, strategy="portfolio", runs=150)
    assert ex.failure is None, ex.summary() + "\n" + str(ex.failure)
