"""atomic-sleep: nothing that may sleep runs in atomic context (`__might_resched`).

Every atomic context the model knows (a held SpinLock, `preempt_disabled()`,
`rcu_read_lock()`, `local_irq_disable()`) against every kind of sleeper (a Mutex
acquisition, a `GFP_KERNEL` allocation, a CondVar wait, a driver's own `@may_sleep`
function), each way round: caught with both sites named, and clean.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, GFP_ZERO, Flags, KBox
from ownership.context import (
    ctx,
    in_atomic,
    irqs_disabled,
    local_irq_disable,
    may_sleep,
    might_sleep,
    preempt_count,
    preempt_disable,
    preempt_disabled,
    preempt_enable,
    rcu_read_lock,
)
from ownership.errors import AtomicSleepError, LockError, SendError
from ownership.sync import CondVar, Mutex, SpinLock
from ownership.task import spawn
from tests.expect import assert_splat, line

# --- the atomic contexts ------------------------------------------------------------
#
# Reports name the driver's line, so the atomic context must be *entered* on the test's
# own line: `opener(kind)` returns the function to call there (`with opener(kind)():`).


def opener(kind: str) -> Callable[[], AbstractContextManager[object]]:
    if kind == "spinlock":
        return SpinLock(0, name=f"atomic-test {kind}").lock
    if kind == "preempt":
        return preempt_disabled
    if kind == "rcu":
        return rcu_read_lock
    return local_irq_disable


KINDS = ["spinlock", "preempt", "rcu", "irq"]


# --- sleepers -----------------------------------------------------------------------


class Counter:
    """A driver object whose update may sleep."""

    def __init__(self) -> None:
        self.n = 0

    @may_sleep
    def slow_update(self) -> None:
        self.n += 1


# --- triggering -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_mutex_lock_in_atomic_context(kind: str) -> None:
    m = Mutex(0, name="atomic-test mutex")
    with opener(kind)():
        begun = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            m.lock()
        slept = line() - 1
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[slept, begun],
        mentions=["Mutex.lock() may sleep", "expected: 0"],
    )
    # The refused lock() had no effect: the mutex is free and the context clean.
    assert not in_atomic()
    g = m.try_lock()
    assert g is not None
    g.drop()


@pytest.mark.parametrize("kind", KINDS)
def test_gfp_kernel_allocation_in_atomic_context(kind: str) -> None:
    with opener(kind)():
        begun = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            KBox.new(42, GFP_KERNEL)
        slept = line() - 1
    assert_splat(
        ei, "atomic-sleep", cls=AtomicSleepError, lines=[slept, begun], mentions=["GFP_KERNEL"]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_condvar_wait_in_atomic_context(kind: str) -> None:
    m = Mutex(0, name="atomic-test cv mutex")
    cv = CondVar("atomic-test cv")
    with m.lock() as g:
        with opener(kind)():
            begun = line() - 1
            with pytest.raises(AtomicSleepError) as ei:
                cv.wait(g)
            slept = line() - 1
        # The refused wait did not release the mutex: the guard is still live.
        assert g.is_held()
        assert g.data == 0
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[slept, begun])


@pytest.mark.parametrize("kind", KINDS)
def test_may_sleep_driver_function_in_atomic_context(kind: str) -> None:
    c = Counter()
    with opener(kind)():
        begun = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            c.slow_update()
        slept = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[slept, begun])
    assert c.n == 0  # Refused before it ran.


def test_report_lists_every_open_section() -> None:
    outer = SpinLock(0, name="outer report lock")
    with rcu_read_lock():
        rcu_line = line() - 1
        with outer.lock():
            lock_line = line() - 1
            with pytest.raises(AtomicSleepError) as ei:
                might_sleep()
            sleep_line = line() - 1
    err = assert_splat(
        ei, "atomic-sleep", cls=AtomicSleepError, lines=[sleep_line, rcu_line, lock_line]
    )
    text = str(err)
    assert "atomic context began (rcu: rcu_read_lock())" in text
    assert "atomic section #1: spinlock SpinLock 'outer report lock' began" in text
    assert "preempt_count: 1, expected: 0" in text
    assert "rcu_read_lock depth: 1" in text
    assert "SpinLock 'outer report lock' (lock) taken at" in text


def test_gfp_kernel_with_zero_is_still_sleeping() -> None:
    lock = SpinLock(0, name="zeroed alloc lock")
    with lock.lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            KBox.new(b"", GFP_KERNEL | GFP_ZERO)
        slept = line() - 1
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[slept, taken],
        mentions=["GFP_KERNEL|__GFP_ZERO"],
    )


def test_driver_gfp_declaration_sleeps_only_with_reclaim() -> None:
    @may_sleep(gfp="gfp")
    def make_buffer(n: int, gfp: Flags) -> KBox[bytes]:
        return KBox.new(bytes(n), gfp)

    lock = SpinLock(0, name="driver gfp lock")
    with lock.lock():
        taken = line() - 1
        assert make_buffer(4, GFP_ATOMIC).get() == bytes(4)
        with pytest.raises(AtomicSleepError) as ei:
            make_buffer(4, gfp=GFP_KERNEL)
        slept = line() - 1
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[slept, taken],
        mentions=["make_buffer() with GFP_KERNEL"],
    )


def test_unbalanced_preempt_enable() -> None:
    sec = preempt_disable()
    opened = line() - 1
    preempt_enable(sec)
    with pytest.raises(LockError) as ei:
        preempt_enable(sec)
    closed = line() - 1
    assert_splat(ei, "unbalanced-atomic", cls=LockError, lines=[closed, opened])
    assert preempt_count() == 0


def test_rcu_guard_released_twice() -> None:
    g = rcu_read_lock()
    taken = line() - 1
    g.drop()
    with pytest.raises(LockError) as ei:
        g.drop()
    again = line() - 1
    assert_splat(ei, "double-unlock", cls=LockError, lines=[again, taken])
    assert not in_atomic()


def test_rcu_guard_released_on_another_thread() -> None:
    g = rcu_read_lock()
    taken = line() - 1
    errors: list[BaseException] = []
    at: list[int] = []

    def other() -> None:
        try:
            at.append(line() + 1)
            g.drop()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1
    assert_splat(errors[0], "send", cls=SendError, lines=[at[0], taken])
    # The refused release had no effect: this thread is still in the read section.
    assert in_atomic()
    g.drop()
    assert not in_atomic()


# --- clean ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gfp", [GFP_ATOMIC, GFP_NOWAIT, GFP_ATOMIC | GFP_ZERO])
def test_non_sleeping_allocation_in_atomic_context(kind: str, gfp: Flags) -> None:
    with opener(kind)():
        b = KBox.new([1, 2, 3], gfp)
        assert b.get() == [1, 2, 3]
        b.drop()
    assert not in_atomic()


@pytest.mark.parametrize("kind", KINDS)
def test_mutex_trylock_in_atomic_context(kind: str) -> None:
    m: Mutex[list[int]] = Mutex([], name="trylock in atomic")
    with opener(kind)():
        g = m.try_lock()
        assert g is not None
        g.data.append(1)
        g.drop()
    with m.lock() as g2:
        assert g2.data == [1]


def test_sleeping_outside_atomic_context() -> None:
    m = Mutex(0, name="plain mutex")
    c = Counter()
    with m.lock() as g:
        # A mutex holder may sleep: allocate, call sleeping functions, take more mutexes.
        g.data = KBox.new(5, GFP_KERNEL).into_inner()
        c.slow_update()
        might_sleep()
    assert c.n == 1
    assert preempt_count() == 0 and not irqs_disabled()


def test_sleeping_after_the_atomic_section_ends() -> None:
    lock = SpinLock(0, name="ended section lock")
    for kind in KINDS:
        with opener(kind)():
            assert in_atomic()
        KBox.new(kind, GFP_KERNEL).drop()
    with lock.lock():
        pass
    Mutex(0, name="after").lock().drop()
    assert not ctx.sections


def test_condvar_wait_on_its_own_spinlock_is_allowed() -> None:
    lock = SpinLock(False, name="cv own spinlock")
    cv = CondVar("cv own")
    started = threading.Event()

    def waker() -> None:
        started.wait()
        with lock.lock() as g:
            g.data = True
            cv.notify_all()

    t = threading.Thread(target=waker)
    t.start()
    with lock.lock() as g:
        started.set()
        while not g.data:
            # Waiting releases the spinlock, so this is not a sleep in atomic context.
            cv.wait(g)
        assert in_atomic()  # The spinlock is held again after the wait.
    t.join()
    assert not in_atomic()


def test_nested_atomic_sections_count() -> None:
    a = SpinLock(0, name="nest a")
    b = SpinLock(0, name="nest b")
    with a.lock(), preempt_disabled(), b.lock():
        assert preempt_count() == 3
        with rcu_read_lock(), local_irq_disable():
            assert in_atomic() and irqs_disabled()
    assert preempt_count() == 0 and not ctx.sections


def test_joining_a_thread_under_a_spinlock() -> None:
    lock = SpinLock(0, name="join lock")
    h = spawn(lambda: 7)
    with lock.lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            h.join()
        joined = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[joined, taken])
    assert h.join() == 7  # Outside the lock it is fine.
