"""lockdep: lock order across threads, recursion, the chain cache.

An AB-BA inversion is reported the first time the second order is *attempted*, on a
real second thread, even though the two threads never overlap (so the run itself never
deadlocks). Validated chains cost O(1): the graph is walked once per new chain.
"""

from __future__ import annotations

import threading

import pytest

from ownership import lockdep
from ownership.context import ctx, in_atomic
from ownership.errors import LockError
from ownership.site import Site, here
from ownership.sync import Mutex, SpinLock
from ownership.task import spawn
from tests.expect import assert_splat, line


def test_ab_ba_across_two_real_threads_is_flagged_without_deadlock() -> None:
    a = SpinLock(0, name="abba A")
    b = SpinLock(0, name="abba B")
    at: dict[str, int] = {}

    def first() -> None:
        with a.lock():
            at["t1 a"] = line() - 1
            with b.lock():
                at["t1 b"] = line() - 1

    def second() -> None:
        with b.lock():
            at["t2 b"] = line() - 1
            at["t2 a"] = line() + 1
            a.lock().drop()

    spawn(first).join()
    h = spawn(second)
    with pytest.raises(LockError) as ei:
        h.join()
    err = assert_splat(
        ei, "lock-order", cls=LockError, lines=[at["t2 a"], at["t2 b"], at["t1 a"], at["t1 b"]]
    )
    text = str(err)
    assert "possible circular locking dependency detected" in text
    assert "'abba B' taken while holding 'abba A'" in text
    assert "kthread-" in text  # The thread that attempted the inversion.
    # The inverted acquisition never happened: both locks are free.
    ga, gb = a.try_lock(), b.try_lock()
    assert ga is not None and gb is not None
    gb.drop()
    ga.drop()


def test_same_order_on_concurrent_threads_runs_clean() -> None:
    a = Mutex(0, name="same order A")
    b = SpinLock(0, name="same order B")
    barrier = threading.Barrier(3)

    def worker() -> int:
        barrier.wait()
        for _ in range(200):
            with a.lock() as ga, b.lock() as gb:
                ga.data += 1
                gb.data += 1
        return 0

    hs = [spawn(worker) for _ in range(3)]
    assert [h.join() for h in hs] == [0, 0, 0]
    with a.lock() as ga, b.lock() as gb:
        assert ga.data == gb.data == 600


def test_three_lock_cycle() -> None:
    a, b, c = (Mutex(0, name=f"cycle {n}") for n in "ABC")
    with a.lock(), b.lock():
        pass
    with b.lock(), c.lock():
        pass
    with c.lock():
        held = line() - 1
        with pytest.raises(LockError) as ei:
            a.lock()
        attempt = line() - 1
    err = assert_splat(ei, "lock-order", cls=LockError, lines=[attempt, held])
    text = str(err)
    assert "'cycle B' taken while holding 'cycle A'" in text
    assert "'cycle C' taken while holding 'cycle B'" in text


def test_declared_order_is_enforced() -> None:
    outer = lockdep.lock_class("declared outer (test)", "Mutex")
    inner = lockdep.lock_class("declared inner (test)", "Mutex")
    lockdep.declare_order(outer, inner, "inner nests inside outer (test)")
    o = Mutex(0, name="declared outer (test)")
    i = Mutex(0, name="declared inner (test)")
    with o.lock(), i.lock():
        pass  # The documented order.
    with i.lock():
        taken = line() - 1
        with pytest.raises(LockError) as ei:
            o.lock()
        attempt = line() - 1
    assert_splat(
        ei,
        "lock-order",
        cls=LockError,
        lines=[attempt, taken],
        mentions=["declared: inner nests inside outer (test)"],
    )


def test_recursive_lock_of_the_same_lock() -> None:
    lock = SpinLock(0, name="recursive")
    with lock.lock() as g:
        first = line() - 1
        with pytest.raises(LockError) as ei:
            lock.lock()
        again = line() - 1
        assert g.is_held() and in_atomic()
    assert_splat(ei, "recursive-lock", cls=LockError, lines=[again, first])
    assert not ctx.held and not in_atomic()


def test_two_locks_of_one_class_need_a_nesting_level() -> None:
    parent = Mutex(0, name="node lock")
    child = Mutex(0, name="node lock")
    with parent.lock():
        first = line() - 1
        with pytest.raises(LockError) as ei:
            child.lock()
        second = line() - 1
    assert_splat(
        ei, "recursive-lock", cls=LockError, lines=[second, first], mentions=["pass nested=1"]
    )
    # With the subclass annotation (`mutex_lock_nested`) it is fine.
    with parent.lock(), child.lock(nested=1) as g:
        g.data = 1


def test_trylock_adds_no_dependency() -> None:
    a = SpinLock(0, name="try A")
    b = SpinLock(0, name="try B")
    with b.lock():
        g = a.try_lock()  # Cannot block, so B -> A is not an ordering.
        assert g is not None
        g.drop()
    with a.lock(), b.lock():
        pass  # A -> B is not an inversion of anything.


def test_trylock_of_a_held_lock_fails_without_report() -> None:
    lock = Mutex(0, name="try held")
    with lock.lock():
        assert lock.try_lock() is None
    other_thread_saw: list[bool] = []
    with lock.lock():
        t = threading.Thread(target=lambda: other_thread_saw.append(lock.try_lock() is None))
        t.start()
        t.join()
    assert other_thread_saw == [True]


def test_validated_chain_is_not_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    a = SpinLock(0, name="cache A")
    b = SpinLock(0, name="cache B")
    walks: list[str] = []
    real = lockdep._validate

    def counting(
        held: list[lockdep.HeldLock],
        cls: lockdep.LockClass,
        site: Site,
        nested: int,
        key: int,
        prev: int | None,
    ) -> None:
        walks.append(cls.name)
        real(held, cls, site, nested, key, prev)

    monkeypatch.setattr(lockdep, "_validate", counting)
    for _ in range(100):
        with a.lock(), b.lock():
            pass
    assert walks == ["cache A", "cache B"]


def test_chain_key_matches_lockdep_after_out_of_order_release() -> None:
    a, b, c = (Mutex(0, name=f"ooo {n}") for n in "ABC")
    ga = a.lock()
    gb = b.lock()
    ga.drop()  # Released out of order: the keys above it are recomputed.
    gc = c.lock()
    expect = 0
    for h in ctx.held:
        expect = lockdep.chain_key(expect, h.cls.id, h.trylock, h.nested)
        assert h.key == expect
    assert ctx.chain_key == expect
    gc.drop()
    gb.drop()
    assert ctx.chain_key == 0 and not ctx.held


def test_releasing_an_entry_this_thread_does_not_hold() -> None:
    cls = lockdep.lock_class("foreign entry", "Mutex")
    token = object()
    entry = lockdep.acquire(cls, token, here())
    taken = line() - 1
    errors: list[BaseException] = []
    at: list[int] = []

    def other() -> None:
        try:
            at.append(line() + 1)
            lockdep.release(entry)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert_splat(errors[0], "unlock-not-held", cls=LockError, lines=[at[0], taken])
    lockdep.release(entry)
    assert not ctx.held


def test_recursive_lock_with_a_nesting_level_is_still_recursion() -> None:
    lock = Mutex(0, name="nested recursion")
    with lock.lock():
        first = line() - 1
        with pytest.raises(LockError) as ei:
            lock.lock(nested=1)
        again = line() - 1
    assert_splat(ei, "recursive-lock", cls=LockError, lines=[again, first])


def test_nesting_level_must_be_a_small_int() -> None:
    lock = SpinLock(0, name="nested type")
    with pytest.raises(TypeError):
        lock.lock(nested=-1)
    with pytest.raises(TypeError):
        lock.lock(nested="1")  # type: ignore[arg-type]
    assert not ctx.held and not in_atomic()


def test_declaring_an_order_the_run_already_inverted() -> None:
    a = Mutex(0, name="declare-late outer")
    b = Mutex(0, name="declare-late inner")
    with b.lock():
        held = line() - 1
        with a.lock():
            pass
    with pytest.raises(LockError) as ei:
        lockdep.declare_order(a._cls, b._cls, "outer before inner (test)")
    declared = line() - 1
    assert_splat(ei, "lock-order", cls=LockError, lines=[declared, held])


def test_contended_locks_keep_every_thread_consistent() -> None:
    outer = Mutex(0, name="contended outer")
    inner = SpinLock(0, name="contended inner")
    solo = SpinLock(0, name="contended solo")
    barrier = threading.Barrier(4)

    def worker() -> tuple[int, int, int]:
        barrier.wait()
        for i in range(300):
            with outer.lock() as o:
                o.data += 1
                with inner.lock() as g:
                    g.data += 1
                    r = g.ref()
                    assert r.get() == g.data
            if i % 3 == 0:
                g2 = solo.try_lock()
                if g2 is not None:
                    g2.data += 1
                    g2.drop()
            else:
                with solo.lock() as s:
                    s.data += 1
        # Each thread's own context is clean when it is done.
        return len(ctx.held), len(ctx.sections), ctx.chain_key

    hs = [spawn(worker) for _ in range(4)]
    assert [h.join() for h in hs] == [(0, 0, 0)] * 4
    with outer.lock() as o, inner.lock() as g:
        assert o.data == g.data == 1200
