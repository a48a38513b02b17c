"""Work left on a released thread's list is dropped with the thread (thread.rs `Drop`).

`Thread::release` cancels only the work `get_work_local` can see; deferred work
(`push_work_deferred`: a node's refcount work, a `BR_TRANSACTION_COMPLETE`) behind the
last real item stays on the thread's `work_list` and goes when the thread is dropped,
as upstream's `List` drops its elements. The context manager's node is such an item:
`BINDER_SET_CONTEXT_MGR` pushes its strong zero-to-one to the calling thread deferred,
and a manager that serves from another (looper) thread never reads it. These tests run
that with plain threads and check that no `Node`, `Thread` or `NodeDeath` outlives the
processes (the harness's `check_no_leaks`).
"""

from __future__ import annotations

import threading
from typing import cast

from binder.client import BinderClient, Parcel, Transaction
from binder.process import Process
from ownership.bindings.fs import File as CFile

from ..binder_harness import DRIVER_ARCS, JOIN_TIMEOUT, Machine, driver_arcs, process_of

SEND = 1
PTR = 0xB0B0_1000


def _queued_on_threads(proc: Process) -> list[str]:
    """The type names of the work items on every thread's list of `proc`."""
    with proc.inner.lock() as g:
        threads = list(g.data.threads.values())
    names: list[str] = []
    for t in threads:
        with t.inner.lock() as tg:
            names.extend(type(item).__name__ for item in tg.data.work_list)
    return names


def test_two_senders_of_one_binder_leave_no_driver_object() -> None:
    m = Machine()
    before = driver_arcs()
    mgr_task = m.spawn_task("manager")
    app_task = m.spawn_task("app")
    with mgr_task.as_current():
        mgr = BinderClient(mgr_task)
        # This (main) thread becomes the manager and never reads: its node's refcount
        # work waits, deferred, on this thread's list until the process goes.
        mgr.become_context_manager()
    assert "Node" in _queued_on_threads(process_of(cast(CFile, mgr.file)))
    handles: list[int] = []
    errors: list[BaseException] = []

    def handle(client: BinderClient, t: Transaction) -> Parcel:
        t.parcel.rewind()
        obj = t.parcel.read_object()
        handles.append(getattr(obj, "handle", -1))
        return Parcel().write_i32(0)

    mgr.add_object(0, handle)
    with app_task.as_current():
        app = BinderClient(app_task)
    app.add_object(PTR, lambda c, t: Parcel())

    def looper() -> None:
        try:
            with mgr_task.as_current():
                mgr.loop(until=lambda: len(handles) == 2)
        except BaseException as e:
            errors.append(e)

    def sender() -> None:
        try:
            with app_task.as_current():
                reply = app.transact(0, SEND, Parcel().write_strong_binder(PTR))
                assert reply.ok, f"reply {reply.code:#x}"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=f, daemon=True) for f in (looper, sender, sender)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(JOIN_TIMEOUT)
    assert not [th for th in threads if th.is_alive()], "a userspace thread did not finish"
    if errors:
        raise errors[0]
    assert len(handles) == 2 and handles[0] == handles[1], handles
    m.exit_all()
    m.check_no_leaks()
    assert driver_arcs() == before, {k: driver_arcs()[k] - before[k] for k in DRIVER_ARCS}


def test_thread_exit_drops_the_deferred_work_of_the_thread() -> None:
    m = Machine()
    before = driver_arcs()
    task = m.spawn_task("manager")
    with task.as_current():
        mgr = BinderClient(task)
        mgr.become_context_manager()
        proc = process_of(cast(CFile, mgr.file))
        with proc.inner.lock() as g:
            node = g.data.nodes.get(0)
        assert node is not None
        # The node's refcount work is deferred on this thread's list, invisible to reads.
        assert node.links.is_linked()
        # BINDER_THREAD_EXIT releases the thread; the thread's drop takes the node off.
        mgr.thread_exit()
        assert not node.links.is_linked(), "the deferred node stayed on the exited thread"
        with proc.inner.lock() as g:
            assert len(g.data.threads) == 0
    m.exit_all()
    m.check_no_leaks()
    assert driver_arcs() == before
