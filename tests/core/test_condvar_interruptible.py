"""`CondVar.wait_interruptible` and signals on the simulated task.

Upstream's doc example waits in a loop on a `Mutex`; the interruptible form returns
whether a signal is pending, and the caller gives up with `EINTR`. The signal is sent
from outside (`task.send_signal`, the simulated `kill`), wakes the sleeper through the
scheduling seam, and the explorer orders that wake-up against the wait.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ownership.bindings import Kernel
from ownership.bindings.task import SIGINT, SIGUSR1
from ownership.errors import EINTR, EINVAL, AtomicSleepError, KernelError
from ownership.explore import explore
from ownership.marker import impl_sync
from ownership.sync.condvar import CondVar
from ownership.sync.lock import Mutex, SpinLock
from ownership.task import current, spawn


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel(pages_per_node=64)
    yield k
    for t in list(k.tasks.values()):
        if not t.exited:
            t.exit()


@impl_sync("a test's shared value, read and written under its Mutex")
class _Example:
    """`struct Example { value: Mutex<u32>, value_changed: CondVar }`."""

    def __init__(self) -> None:
        self.value: Mutex[int] = Mutex(0, name="example value")
        self.value_changed = CondVar("example value_changed")


def _wait_for_value(e: _Example, v: int) -> int:
    """Wait for `e.value` to become `v`; `-EINTR` if a signal interrupts the wait."""
    with e.value.lock() as guard:
        while guard.data != v:
            if e.value_changed.wait_interruptible(guard):
                return -EINTR
    return 0


def test_a_signal_ends_the_wait(kernel: Kernel) -> None:
    proc = kernel.spawn_process("waiter")
    e = _Example()

    def waiter() -> int:
        with proc.as_current():
            return _wait_for_value(e, 5)

    h = spawn(waiter, name="waiter")
    # The waiter sleeps with the lock released: the signal finds it asleep, or pending.
    proc.send_signal(SIGINT)
    assert h.join() == -EINTR
    assert proc.signal_pending() and proc.pending_signals() == {SIGINT}
    proc.flush_signals()
    assert not proc.signal_pending()


def test_a_notification_without_a_signal(kernel: Kernel) -> None:
    proc = kernel.spawn_process("waiter")
    e = _Example()

    def waiter() -> int:
        with proc.as_current():
            return _wait_for_value(e, 1)

    h = spawn(waiter, name="waiter")
    with e.value.lock() as g:
        g.data += 1
    e.value_changed.notify_all()
    assert h.join() == 0 and not proc.signal_pending()


def test_a_pending_signal_ends_the_wait_at_once(kernel: Kernel) -> None:
    proc = kernel.spawn_process("waiter")
    proc.send_signal(SIGUSR1)
    e = _Example()
    with proc.as_current():
        assert current().signal_pending()
        assert _wait_for_value(e, 7) == -EINTR
        # The guard's lock was released and re-taken: it is free again.
        with e.value.lock() as g:
            assert g.data == 0


def test_a_thread_that_runs_as_no_task_has_no_signals() -> None:
    """A kernel thread is never signalled: the interruptible wait returns False."""
    e = _Example()
    h = spawn(lambda: _wait_for_value(e, 1), name="no task")
    with e.value.lock() as g:
        g.data = 1
    e.value_changed.notify_all()
    assert h.join() == 0


def test_bad_signals_are_refused(kernel: Kernel) -> None:
    proc = kernel.spawn_process("p")
    with pytest.raises(KernelError) as ei:
        proc.send_signal(0)
    assert ei.value.errno == EINVAL
    with pytest.raises(TypeError):
        proc.send_signal("SIGINT")  # type: ignore[arg-type]


def test_waiting_interruptibly_under_another_spinlock_is_a_sleep_in_atomic(
    kernel: Kernel,
) -> None:
    proc = kernel.spawn_process("p")
    proc.send_signal(SIGINT)
    inner: SpinLock[int] = SpinLock(0, name="condvar's own spinlock")
    cv = CondVar("interruptible under a spinlock")
    other: SpinLock[None] = SpinLock(None, name="other spinlock")
    with proc.as_current(), inner.lock() as g:
        # The wait releases its own spinlock: with no other atomic section, it is allowed.
        assert cv.wait_interruptible(g)
        with other.lock(), pytest.raises(AtomicSleepError):
            cv.wait_interruptible(g)


def _signal_scenario(kernel: Kernel) -> None:
    proc = kernel.spawn_process("waiter")
    e = _Example()

    def waiter() -> None:
        with proc.as_current():
            assert _wait_for_value(e, 1) == -EINTR

    w = spawn(waiter, name="waiter")
    k = spawn(lambda: proc.send_signal(SIGINT), name="kill")
    k.join()
    w.join()


def test_the_explorer_orders_the_signal_against_the_wait(kernel: Kernel) -> None:
    """Every order of `kill` against the waiter's check, registration and sleep ends the
    wait: no schedule loses the signal's wake-up (which would be a deadlock)."""
    ex = explore(lambda: _signal_scenario(kernel), strategy="dfs", max_preemptions=2)
    assert ex.failure is None, ex.failure
    assert ex.runs > 1
