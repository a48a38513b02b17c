"""A Binder race found from scratch: `get_node` without its re-check under the lock.

The driver's `Process::get_node` looks the node up under `inner`, drops the lock to
allocate, and looks again before inserting (another thread of the process may have
created the node meanwhile). `RacyProcess` leaves the second look out, as a driver
before the fix would: two threads of one process that send the same local binder for
the first time then both insert a node for it, and the first one is lost from the
tree while references to it live on. The explorer finds the interleaving and replays
it from its schedule string; the unmodified driver is clean under the same search.
"""

from __future__ import annotations

from binder.client import BinderClient, Parcel, Transaction
from binder.node import CritIncrWrapper, NodeRef
from binder.process import Process
from binder.rust_binder_main import register
from binder.thread import Thread
from ownership import sched
from ownership.alloc import GFP_KERNEL
from ownership.bindings import Kernel
from ownership.explore import explore
from ownership.rbtree import RBTreeNodeReservation
from ownership.sync import live_arcs
from ownership.workqueue import flush

SEND = 1
PTR = 0xB0B0_1000


class RacyProcess(Process):
    """The driver with the re-check of `_get_node_inner` removed (the reintroduced bug)."""

    def _get_node_inner(
        self,
        ptr: int,
        cookie: int,
        flags: int,
        strong: bool,
        thread: Thread,
        wrapper: CritIncrWrapper | None,
    ) -> NodeRef:
        with self.inner.lock() as g:
            node = g.data.get_existing_node(ptr, cookie)
            if node is not None:
                return g.data.new_node_ref_with_thread(g, node, strong, thread, wrapper)
        new = self.node_type.new(ptr, cookie, flags, self)
        reservation = RBTreeNodeReservation.new(GFP_KERNEL)
        with self.inner.lock() as g:
            # BUG: no second look; a node another thread inserted meanwhile is replaced.
            g.data.nodes.insert(reservation.into_node(ptr, new))
            return g.data.new_node_ref_with_thread(g, new, strong, thread, wrapper)


def _two_senders(process_type: type[Process]) -> None:
    kernel = Kernel()
    reg = register(kernel, process_type=process_type)
    nodes_before = live_arcs().get("Node", 0)
    mgr_task = kernel.spawn_process("manager")
    app_task = kernel.spawn_process("app")
    mgr = BinderClient(mgr_task)
    mgr.become_context_manager()
    handles: list[int] = []

    def handle(client: BinderClient, t: Transaction) -> Parcel:
        t.parcel.rewind()
        obj = t.parcel.read_object()
        handle = getattr(obj, "handle", -1)
        # Hold the handle (as a service manager does), so that its number is not reused
        # for another node once this transaction's buffer is freed.
        if handle >= 0:
            client.acquire(handle)
        handles.append(handle)
        return Parcel().write_i32(0)

    mgr.add_object(0, handle)

    def looper() -> None:
        with mgr_task.as_current():
            mgr.loop(until=lambda: len(handles) == 2)

    app = BinderClient(app_task)
    app.add_object(PTR, lambda c, t: Parcel())

    def sender() -> None:
        with app_task.as_current():
            reply = app.transact(0, SEND, Parcel().write_strong_binder(PTR))
            assert reply.ok, f"reply {reply.code:#x}: {app.extended_error()}"

    s = sched.active()
    lt = s.spawn(looper, "manager-looper")
    a = s.spawn(sender, "sender-a")
    b = s.spawn(sender, "sender-b")
    a.join()
    b.join()
    lt.join()
    # One node, one handle for it in the manager: both sends named the same object.
    assert handles[0] == handles[1], f"one binder got two handles: {handles}"
    app_task.exit()
    mgr_task.exit()
    flush()
    reg.unregister()
    assert not kernel.check_consistency()
    assert live_arcs().get("Node", 0) == nodes_before, "a Node was leaked"


def racy_senders() -> None:
    _two_senders(RacyProcess)


def correct_senders() -> None:
    _two_senders(Process)


def test_reintroduced_get_node_race_is_found_and_replayed() -> None:
    ex = explore(racy_senders, strategy="random", runs=100)
    assert ex.failure is not None, ex.summary()
    assert ex.schedule is not None and ex.preemptions is not None and ex.preemptions >= 1
    assert "one binder got two handles" in str(ex.failure)
    again = explore(racy_senders, replay=ex.schedule)
    assert type(again.failure) is type(ex.failure)
    assert str(again.failure).splitlines()[0] == str(ex.failure).splitlines()[0]


def test_the_driver_itself_is_clean_under_the_same_search() -> None:
    ex = explore(correct_senders, strategy="random", runs=50)
    assert ex.failure is None, ex.summary() + "\n" + str(ex.failure)
