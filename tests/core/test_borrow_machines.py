"""Borrows and lifetimes under random operation sequences (hypothesis state machines).

`BorrowTracker` against a model of live ranges (shared-xor-exclusive, per byte range),
and guards with the references derived from them against a model of which guards are
live: every refused operation is exactly one the model calls a bug, the runtime's
per-thread state always matches the live guards, and nothing is ever corrupted.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ownership.borrow import Borrow, BorrowTracker, Lifetime, Ref
from ownership.context import ctx, in_atomic, preempt_count
from ownership.errors import AtomicSleepError, BorrowError, LifetimeError, LockError
from ownership.sync import Guard, Mutex, SpinLock
from tests.expect import assert_splat


def test_shared_borrows_coexist_exclusive_does_not() -> None:
    t = BorrowTracker("page 0")
    a = t.shared()
    b = t.shared()
    with pytest.raises(BorrowError) as ei:
        t.exclusive()
    assert_splat(ei, "borrow", cls=BorrowError, mentions=["while a shared borrow is live"])
    a.release()
    b.release()
    with t.exclusive():
        with pytest.raises(BorrowError):
            t.shared()


def test_disjoint_byte_ranges_do_not_conflict() -> None:
    t = BorrowTracker("page 1")
    with t.acquire(True, 0, 100), t.acquire(True, 100, 200):
        with pytest.raises(BorrowError) as ei:
            t.acquire(False, 99, 101)
        assert_splat(ei, "borrow", cls=BorrowError, mentions=["of bytes [99, 101)"])


def test_bad_ranges_are_refused() -> None:
    t = BorrowTracker("page 2")
    with pytest.raises(ValueError):
        t.acquire(False, 5, 5)
    with pytest.raises(ValueError):
        t.acquire(False, -1, 3)
    with pytest.raises(TypeError):
        t.acquire(False, 0.5, 3)  # type: ignore[arg-type]


class BorrowMachine(RuleBasedStateMachine):
    """Random shared/exclusive borrows of byte ranges of one 64-byte object."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = BorrowTracker("buffer")
        self.live: list[tuple[Borrow, bool, int, int]] = []

    def conflicts(self, exclusive: bool, start: int, end: int) -> bool:
        return any(s < end and start < e and (exclusive or ex) for _b, ex, s, e in self.live)

    @rule(exclusive=st.booleans(), start=st.integers(0, 63), length=st.integers(1, 16))
    def borrow(self, exclusive: bool, start: int, length: int) -> None:
        end = min(64, start + length)
        if self.conflicts(exclusive, start, end):
            with pytest.raises(BorrowError):
                self.tracker.acquire(exclusive, start, end)
        else:
            b = self.tracker.acquire(exclusive, start, end)
            self.live.append((b, exclusive, start, end))

    @rule(i=st.integers(0, 100))
    def release(self, i: int) -> None:
        if self.live:
            b, *_ = self.live.pop(i % len(self.live))
            b.release()

    @invariant()
    def tracker_matches_model(self) -> None:
        assert sorted(map(id, self.tracker.live)) == sorted(id(b) for b, *_ in self.live)

    def teardown(self) -> None:
        for b, *_ in self.live:
            b.release()


class GuardMachine(RuleBasedStateMachine):
    """A mutex and two spinlocks taken in any order, their guards and the Refs from them.

    The machine keeps its own model of lockdep's graph (the edges recorded so far) and
    expects `AtomicSleepError` for a mutex taken under a spinlock, `LockError` for a
    recursive acquisition or one that closes a cycle, success otherwise.
    """

    instances = 0

    def __init__(self) -> None:
        super().__init__()
        GuardMachine.instances += 1
        n = GuardMachine.instances  # Fresh lock classes: lockdep's graph starts empty.
        self.locks: list[SpinLock[int] | Mutex[int]] = [
            Mutex(0, name=f"machine {n} mutex"),
            SpinLock(0, name=f"machine {n} spin a"),
            SpinLock(0, name=f"machine {n} spin b"),
        ]
        self.guards: dict[int, Guard[int]] = {}
        self.order: list[int] = []
        self.edges: set[tuple[int, int]] = set()
        self.dead_guards: list[Guard[int]] = []
        self.refs: list[tuple[Ref[int], Guard[int], int]] = []

    def reaches(self, src: int, dst: int) -> bool:
        seen, todo = {src}, [src]
        while todo:
            n = todo.pop()
            if n == dst:
                return True
            for a, b in self.edges:
                if a == n and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return False

    @rule(i=st.integers(0, 2))
    def lock(self, i: int) -> None:
        if i == 0 and any(j > 0 for j in self.guards):
            with pytest.raises(AtomicSleepError):
                self.locks[i].lock()
        elif i in self.guards:
            with pytest.raises(LockError) as ei:
                self.locks[i].lock()
            assert_splat(ei, "recursive-lock", cls=LockError)
        elif any(self.reaches(i, h) for h in self.guards):
            with pytest.raises(LockError) as ei:
                self.locks[i].lock()
            assert_splat(ei, "lock-order", cls=LockError)
        else:
            self.guards[i] = self.locks[i].lock()
            self.edges.update((h, i) for h in self.order)
            self.order.append(i)

    @rule(i=st.integers(0, 2))
    def unlock(self, i: int) -> None:
        g = self.guards.pop(i, None)
        if g is not None:
            g.drop()
            self.order.remove(i)
            self.dead_guards.append(g)

    @rule(i=st.integers(0, 2))
    def take_ref(self, i: int) -> None:
        g = self.guards.get(i)
        if g is not None:
            self.refs.append((g.ref(), g, g.data))

    @rule(i=st.integers(0, 100))
    def deref(self, i: int) -> None:
        if not self.refs:
            return
        r, g, value = self.refs[i % len(self.refs)]
        if g.is_held():
            assert r.get() == value
        else:
            with pytest.raises(LifetimeError):
                r.get()

    @rule(i=st.integers(0, 100))
    def release_again(self, i: int) -> None:
        if self.dead_guards:
            with pytest.raises(LockError):
                self.dead_guards[i % len(self.dead_guards)].drop()

    @rule(i=st.integers(0, 2), v=st.integers(0, 9))
    def write(self, i: int, v: int) -> None:
        g = self.guards.get(i)
        if g is not None:
            g.data = v
            nested = Ref(g.data, Lifetime("sub", parent=g.lifetime))
            assert nested.get() == v

    @invariant()
    def runtime_matches_live_guards(self) -> None:
        held = [h.instance for h in ctx.held]
        assert sorted(map(id, held)) == sorted(id(self.locks[i]) for i in self.guards)
        spins = sum(1 for i in self.guards if i > 0)
        assert preempt_count() == spins and in_atomic() == (spins > 0)

    def teardown(self) -> None:
        for i in reversed(self.order):
            self.guards[i].drop()


TestBorrowMachine = BorrowMachine.TestCase
TestBorrowMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestGuardMachine = GuardMachine.TestCase
TestGuardMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
