"""The slides' `get_thread` pattern ("You can't always sleep", Binder's process.rs).

Looking a thread up under the process's SpinLock and allocating it there is a sleep in
atomic context. The fix allocates outside the lock (the `Thread` and its rbtree node),
re-takes the lock and re-checks, because another thread may have inserted it meanwhile.
"""

from __future__ import annotations

import threading

import pytest

from ownership.alloc import GFP_KERNEL, allocation_count, fail_nth
from ownership.context import ctx, in_atomic
from ownership.errors import ENOMEM, AtomicSleepError, KernelError
from ownership.rbtree import RBTree, RBTreeNodeReservation
from ownership.sync import Arc, ArcBorrow, SpinLock, live_arcs
from ownership.task import spawn
from tests.expect import assert_splat, raises_errno


class Thread:
    """A binder thread of a process."""

    def __init__(self, tid: int, pid: int) -> None:
        self.id = tid
        self.pid = pid


class ProcessInner:
    def __init__(self) -> None:
        self.threads: RBTree[int, Arc[Thread]] = RBTree()


class Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.inner = SpinLock(ProcessInner(), name="Process::inner")


def get_thread_buggy(this: ArcBorrow[Process], tid: int) -> Arc[Thread]:
    """The first attempt: get or insert, all under the lock."""
    with this.get().inner.lock() as inner:
        found = inner.data.threads.get(tid)
        if found is not None:
            return found.clone()
        # BUG: allocates with GFP_KERNEL while holding a spinlock.
        ta = Arc.new(Thread(tid, this.get().pid), GFP_KERNEL)
        inner.data.threads.try_create_and_insert(tid, ta.clone(), GFP_KERNEL)
        return ta


def get_thread(this: ArcBorrow[Process], tid: int) -> Arc[Thread]:
    """`Process::get_thread`, as on the slides."""
    with this.get().inner.lock() as inner:
        found = inner.data.threads.get(tid)
        if found is not None:
            return found.clone()

    # Allocate a new `Thread` without holding any locks.
    ta = Arc.new(Thread(tid, this.get().pid), GFP_KERNEL)
    try:
        node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(tid, ta.clone())
    except KernelError:
        ta.drop()
        raise

    with this.get().inner.lock() as inner:
        # Recheck. It's possible the thread was created while we were not holding the lock.
        found = inner.data.threads.get(tid)
        if found is None:
            inner.data.threads.insert(node)
            return ta
        result = found.clone()
    # Lost the race: ours is freed outside the lock.
    node.value.drop()
    ta.drop()
    return result


def new_process(pid: int = 100) -> Arc[Process]:
    return Arc.new(Process(pid), GFP_KERNEL)


def release_process(p: Arc[Process]) -> None:
    with p.get().inner.lock() as inner:
        threads = list(inner.data.threads.values())
        inner.data.threads.clear()
    for t in threads:
        t.drop()
    p.drop()


def test_allocating_under_the_spinlock_is_caught() -> None:
    p = new_process()
    with pytest.raises(AtomicSleepError) as ei:
        get_thread_buggy(p.as_arc_borrow(), 7)
    # The splat names the allocation inside get_thread_buggy and the lock it holds.
    src = get_thread_buggy.__code__
    lock_line = src.co_firstlineno + 2
    alloc_line = src.co_firstlineno + 7
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[alloc_line, lock_line],
        mentions=["Process::inner"],
    )
    # The runtime is consistent afterwards: the lock was released by the `with`.
    assert not in_atomic() and not ctx.held
    g = p.get().inner.try_lock()
    assert g is not None
    g.drop()
    release_process(p)


def test_allocate_outside_relock_recheck_runs_clean() -> None:
    p = new_process()
    before = allocation_count()
    t1 = get_thread(p.as_arc_borrow(), 7)
    assert allocation_count() - before == 2  # The Thread's Arc and its tree node.
    t2 = get_thread(p.as_arc_borrow(), 7)
    assert Arc.ptr_eq(t1, t2)
    assert allocation_count() - before == 2  # Found: no allocation at all.
    assert t1.get().id == 7
    t1.drop()
    t2.drop()
    release_process(p)


def test_racing_get_thread_on_real_threads_agrees() -> None:
    p = new_process()
    results: list[Arc[Thread]] = []
    res_lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(proc: Arc[Process]) -> None:
        barrier.wait()
        for tid in range(5):
            t = get_thread(proc.as_arc_borrow(), tid)
            with res_lock:
                results.append(t)
        proc.drop()

    handles = [spawn(worker, p.clone()) for _ in range(4)]
    for h in handles:
        h.join()
    assert len(results) == 20
    for tid in range(5):
        mine = [t for t in results if t.get().id == tid]
        assert all(Arc.ptr_eq(mine[0], t) for t in mine)
    for t in results:
        t.drop()
    with p.get().inner.lock() as inner:
        assert inner.data.threads.keys() == [0, 1, 2, 3, 4]
    release_process(p)
    assert "Thread" not in live_arcs() and "Process" not in live_arcs()


@pytest.mark.parametrize("nth", [1, 2])
def test_allocation_failure_at_each_point_leaves_nothing_behind(nth: int) -> None:
    p = new_process()
    with fail_nth(nth), raises_errno(ENOMEM):
        get_thread(p.as_arc_borrow(), 3)
    with p.get().inner.lock() as inner:
        assert inner.data.threads.is_empty()
    assert not ctx.held
    t = get_thread(p.as_arc_borrow(), 3)  # And the retry works.
    t.drop()
    release_process(p)
