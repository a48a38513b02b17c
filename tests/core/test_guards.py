"""Guards: the only evidence a lock is held, `!Send`, and the lifetime of the data.

Double unlock, release on another thread, data or a derived `Ref` used after the guard
ended, `LockedBy` with the wrong lock; and the consistency promise: a violation raised
inside `with guard:` leaves the runtime clean (the lock released, preempt count 0).
"""

from __future__ import annotations

import threading

import pytest

from ownership.alloc import GFP_KERNEL, KBox
from ownership.borrow import Lifetime, Ref
from ownership.context import ctx, in_atomic, preempt_count
from ownership.errors import AtomicSleepError, LifetimeError, LockError, SendError
from ownership.marker import is_send, is_sync
from ownership.sync import LockedBy, Mutex, MutexGuard, SpinLock, SpinLockGuard
from tests.expect import assert_splat, line


def test_guard_released_twice() -> None:
    lock = SpinLock(0, name="double unlock")
    g = lock.lock()
    taken = line() - 1
    g.drop()
    first = line() - 1
    with pytest.raises(LockError) as ei:
        g.drop()
    second = line() - 1
    assert_splat(ei, "double-unlock", cls=LockError, lines=[second, first, taken])
    assert preempt_count() == 0 and not ctx.held


def test_guard_released_on_another_thread() -> None:
    lock = Mutex([1], name="send guard")
    g = lock.lock()
    taken = line() - 1
    errors: list[BaseException] = []
    at: list[int] = []

    def thief() -> None:
        # Smuggled past the hand-off checks (a raw thread), as unsafe code could.
        try:
            at.append(line() + 1)
            g.drop()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=thief)
    t.start()
    t.join()
    assert_splat(errors[0], "send", cls=SendError, lines=[at[0], taken])
    # The refused release had no effect: the owner still holds it and can release it.
    assert g.is_held() and g.data == [1]
    g.drop()
    g2 = lock.try_lock()
    assert g2 is not None
    g2.drop()


def test_spinlock_guard_released_on_another_thread_keeps_owner_atomic() -> None:
    lock = SpinLock(0, name="send spin guard")
    g = lock.lock()
    taken = line() - 1
    errors: list[BaseException] = []
    at: list[int] = []

    def thief() -> None:
        try:
            at.append(line() + 1)
            g.drop()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=thief)
    t.start()
    t.join()
    assert_splat(errors[0], "send", cls=SendError, lines=[at[0], taken])
    assert in_atomic()
    g.drop()
    assert not in_atomic()


def test_guards_are_not_send_or_sync() -> None:
    g = Mutex(0, name="marker guard").lock()
    assert not is_send(g) and not is_sync(g)
    g.drop()
    assert is_send(Mutex(0, name="marker lock")) and is_sync(SpinLock([], name="marker spin"))


def test_data_read_after_release() -> None:
    lock = Mutex({"k": 1}, name="data after release")
    g = lock.lock()
    taken = line() - 1
    g.drop()
    released = line() - 1
    with pytest.raises(LifetimeError) as ei:
        _ = g.data
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, released, taken])


def test_data_written_after_release() -> None:
    lock = SpinLock(0, name="write after release")
    with lock.lock() as g:
        released = line() - 1  # A `with` releases on its own line.
        g.data = 1
    with pytest.raises(LifetimeError) as ei:
        g.data = 2
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, released])
    with lock.lock() as g2:
        assert g2.data == 1  # The refused write did not happen.


def test_ref_used_after_its_guard_ended() -> None:
    lock = SpinLock([1, 2], name="ref after guard")
    with lock.lock() as g:
        released = line() - 1
        r = g.ref()
        made = line() - 1
        assert r.get() == [1, 2]
    with pytest.raises(LifetimeError) as ei:
        r.get()
    used = line() - 1
    assert_splat(
        ei,
        "lifetime",
        cls=LifetimeError,
        lines=[used, released, made],
        mentions=["the reference was made"],
    )


def test_ref_of_a_ref_dies_with_the_outer_owner() -> None:
    lock = Mutex("x", name="nested lifetime")
    g = lock.lock()
    inner = Lifetime("a borrow of the data", parent=g.lifetime)
    r = Ref(g.data, inner)
    made = line() - 1
    g.drop()
    released = line() - 1
    with pytest.raises(LifetimeError) as ei:
        r.get()
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, released, made])


def test_refs_and_data_are_fine_while_the_guard_lives() -> None:
    lock = Mutex([0], name="ref while held")
    with lock.lock() as g:
        r = g.ref()
        inner = Ref(r.get(), Lifetime("sub-borrow", parent=g.lifetime))
        r.get().append(1)
        assert inner.get() == [0, 1] and g.replace([5]) == [0, 1]
        assert g.data == [5]


def test_violation_inside_with_guard_leaves_runtime_consistent() -> None:
    lock = SpinLock(0, name="consistency")
    with pytest.raises(AtomicSleepError), lock.lock() as g:
        g.data = 1
        KBox.new("sleeps", GFP_KERNEL)
    assert not in_atomic() and preempt_count() == 0
    assert not ctx.held and not ctx.sections and ctx.chain_key == 0
    assert not g.is_held()
    with lock.lock() as g2:
        assert g2.data == 1


def test_violation_inside_nested_guards_unwinds_both() -> None:
    outer = Mutex(0, name="consistency outer")
    inner = SpinLock(0, name="consistency inner")
    with pytest.raises(AtomicSleepError), outer.lock(), inner.lock():
        Mutex(0, name="consistency sleeper").lock()
    assert not ctx.held and preempt_count() == 0
    with outer.lock(), inner.lock():
        pass


def test_early_drop_then_with_exit_is_fine() -> None:
    lock = SpinLock(0, name="early drop")
    with lock.lock() as g:
        assert isinstance(g, SpinLockGuard)
        g.drop()
        assert not in_atomic()
    assert not ctx.held


def test_try_lock_when_held_by_another_thread() -> None:
    lock = Mutex(0, name="contended")
    holding = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with lock.lock():
            holding.set()
            done.wait()

    t = threading.Thread(target=holder)
    t.start()
    holding.wait()
    assert lock.try_lock() is None
    done.set()
    t.join()
    g = lock.try_lock()
    assert isinstance(g, MutexGuard)
    g.drop()


# --- LockedBy ----------------------------------------------------------------------------


class Node:
    def __init__(self, owner: Mutex[list[int]]) -> None:
        self.refs = LockedBy(owner, 0)


def test_locked_by_with_the_wrong_lock() -> None:
    proc_a = Mutex([1], name="ProcessInner")
    proc_b = Mutex([2], name="ProcessInner")
    node = Node(proc_a)
    made_at = Node.__init__.__code__.co_firstlineno + 1
    with proc_b.lock() as g:
        wrong = line() - 1
        with pytest.raises(LockError) as ei:
            node.refs.access(g)
        used = line() - 1
    assert_splat(
        ei,
        "locked-by-owner",
        cls=LockError,
        lines=[used, made_at, wrong],
        mentions=["not of its owner"],
    )


def test_locked_by_through_a_released_guard() -> None:
    owner = SpinLock(0, name="locked-by owner")
    node = LockedBy(owner, "state")
    g = owner.lock()
    g.drop()
    released = line() - 1
    with pytest.raises(LifetimeError) as ei:
        node.access(g)
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, released])


def test_locked_by_with_its_owner() -> None:
    owner = Mutex([1], name="locked-by ok")
    node = Node(owner)
    with owner.lock() as g:
        node.refs.set(g, node.refs.access(g) + 1)
        assert node.refs.access_mut(g) == 1
