"""CondVar: wait releases and re-takes the lock; waiting is a sleep.

Wait/notify across real threads (a bounded queue of work, as Binder's thread wait
queue), the guard staying valid across the wait, timeouts; and the violations: waiting
while another spinlock is held or under RCU, waiting on a guard that was released.
"""

from __future__ import annotations

import threading
from collections import deque

import pytest

from ownership.context import ctx, in_atomic, preempt_count, rcu_read_lock
from ownership.errors import AtomicSleepError, LifetimeError
from ownership.sync import Arc, CondVar, Mutex, SpinLock
from ownership.task import spawn
from tests.expect import assert_splat, line


class WorkQueue:
    """A bounded producer/consumer queue: `Mutex<Inner>` plus two condvars."""

    def __init__(self, cap: int) -> None:
        self.inner: Mutex[deque[int | None]] = Mutex(deque(), name="WorkQueue::inner")
        self.not_empty = CondVar("WorkQueue::not_empty")
        self.not_full = CondVar("WorkQueue::not_full")
        self.cap = cap

    def push(self, item: int | None) -> None:
        with self.inner.lock() as g:
            while len(g.data) >= self.cap:
                self.not_full.wait(g)
            g.data.append(item)
            self.not_empty.notify_one()

    def pop(self) -> int | None:
        with self.inner.lock() as g:
            while not g.data:
                self.not_empty.wait(g)
            item = g.data.popleft()
            self.not_full.notify_one()
            return item


def test_wait_and_notify_across_threads() -> None:
    q = Arc.new(WorkQueue(cap=2))

    def consumer(me: Arc[WorkQueue]) -> int:
        total = 0
        while (item := me.get().pop()) is not None:
            total += item
        me.drop()
        return total

    handles = [spawn(consumer, q.clone()) for _ in range(3)]
    for i in range(1, 101):
        q.get().push(i)
    for _ in handles:
        q.get().push(None)
    assert sum(h.join() for h in handles) == 5050
    q.drop()


def test_guard_is_valid_and_recorded_after_wait() -> None:
    lock = SpinLock(0, name="cv relock")
    cv = CondVar("cv relock")

    def bump() -> None:
        with lock.lock() as g:
            g.data += 1
            cv.notify_all()

    with lock.lock() as g:
        t = threading.Thread(target=bump)
        t.start()
        while g.data == 0:
            cv.wait(g)
        # Re-taken: in atomic context again, on the held stack once, data reachable.
        assert in_atomic() and preempt_count() == 1
        assert [h.instance for h in ctx.held] == [lock]
        assert g.data == 1
    t.join()
    assert not ctx.held and preempt_count() == 0


def test_wait_timeout_expires_with_the_lock_held() -> None:
    lock = Mutex("unchanged", name="cv timeout")
    cv = CondVar("cv timeout")
    with lock.lock() as g:
        assert cv.wait_timeout(g, 0.01) is False
        assert g.is_held() and g.data == "unchanged"
    assert not ctx.held


def test_notify_without_waiters_is_not_remembered() -> None:
    cv = CondVar("lonely")
    lock = Mutex(0, name="lonely lock")
    cv.notify_one()
    cv.notify_all()
    with lock.lock() as g:
        # A condvar is not a semaphore: the earlier notifications woke nobody.
        assert cv.wait_timeout(g, 0.01) is False


def test_wait_while_holding_another_spinlock() -> None:
    other = SpinLock(0, name="cv other spinlock")
    lock = Mutex(0, name="cv waiting mutex")
    cv = CondVar("cv atomic")
    with lock.lock() as g, other.lock():
        held = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            cv.wait(g)
        waited = line() - 1
        assert g.is_held()
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[waited, held],
        mentions=["SpinLock 'cv other spinlock'"],
    )


def test_wait_on_own_spinlock_inside_another_spinlock() -> None:
    outer = SpinLock(0, name="cv outer spin")
    inner = SpinLock(0, name="cv inner spin")
    cv = CondVar("cv nested spin")
    with outer.lock():
        held = line() - 1
        with inner.lock() as g:
            with pytest.raises(AtomicSleepError) as ei:
                cv.wait(g)
            waited = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[waited, held])


def test_wait_under_rcu() -> None:
    lock = Mutex(0, name="cv rcu mutex")
    cv = CondVar("cv rcu")
    with lock.lock() as g, rcu_read_lock():
        began = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            cv.wait(g)
        waited = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[waited, began])


def test_wait_on_a_released_guard() -> None:
    lock = Mutex(0, name="cv released")
    cv = CondVar("cv released")
    g = lock.lock()
    taken = line() - 1
    g.drop()
    with pytest.raises(LifetimeError) as ei:
        cv.wait(g)
    waited = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[waited, taken])


def test_wait_needs_a_guard() -> None:
    with pytest.raises(TypeError):
        CondVar("typed").wait(Mutex(0, name="not a guard"))  # type: ignore[arg-type]


def test_wait_under_a_spinlock_taken_after_the_guard() -> None:
    lock = SpinLock(0, name="cv first spin")
    later = SpinLock(0, name="cv later spin")
    cv = CondVar("cv order")
    with lock.lock() as g, later.lock():
        held = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            cv.wait(g)
        waited = line() - 1
    # The report blames the other spinlock, not the one the wait would release.
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[waited, held],
        mentions=[
            "atomic context began (spinlock: SpinLock 'cv later spin')",
            "preempt_count: 1, expected: 0",
        ],
    )
