"""Refcounts: `ARef`, `Arc`, `refcount_t`.

Double drop and use after drop of a handle, underflow and increment-from-zero of a
`refcount_t`, saturation (a warning, and the object leaks instead of being freed), a
destructor that may sleep making the last drop a sleeping call; then hypothesis state
machines that drive each against a plain model of the count.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ownership import warn
from ownership.aref import ARef
from ownership.context import may_sleep
from ownership.errors import AtomicSleepError, LifetimeError, RefcountError
from ownership.sync import REFCOUNT_MAX, REFCOUNT_SATURATED, Arc, Refcount, SpinLock, live_arcs
from ownership.warn import KernelWarning
from tests.expect import assert_splat, line


class Device:
    """An `AlwaysRefCounted` C object (its count lives in the object)."""

    def __init__(self) -> None:
        self.count = 1
        self.freed = False
        self.name = "dev0"

    def inc_ref(self) -> None:
        assert not self.freed
        self.count += 1

    def dec_ref(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.freed = True


class SleepyDevice(Device):
    """A device whose last put may sleep (`mmput`)."""

    @may_sleep
    def dec_ref(self) -> None:
        super().dec_ref()


class Buffer:
    """Contents of an `Arc`, with a destructor."""

    freed = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def drop_arc(self) -> None:
        Buffer.freed += 1


class SleepyBuffer(Buffer):
    @may_sleep
    def drop_arc(self) -> None:
        super().drop_arc()


# --- ARef ------------------------------------------------------------------------------


def test_aref_double_drop() -> None:
    dev = Device()
    a = ARef.from_ref(dev)
    taken = line() - 1
    a.drop()
    dropped = line() - 1
    with pytest.raises(RefcountError) as ei:
        a.drop()
    again = line() - 1
    assert_splat(ei, "double-drop", cls=RefcountError, lines=[again, dropped, taken])
    assert dev.count == 1  # The second drop had no effect.


@pytest.mark.parametrize("use", ["get", "clone", "into_raw"])
def test_aref_use_after_drop(use: str) -> None:
    dev = Device()
    a = ARef.from_ref(dev)
    taken = line() - 1
    a.drop()
    dropped = line() - 1
    with pytest.raises(RefcountError) as ei:
        getattr(a, use)()
    used = line() - 1
    assert_splat(
        ei,
        "aref-use-after-drop",
        cls=RefcountError,
        lines=[used, dropped, taken],
        mentions=["ARef<Device>"],
    )
    assert dev.count == 1


def test_aref_deref_attribute_after_drop() -> None:
    a = ARef.from_ref(Device())
    a.drop()
    dropped = line() - 1
    with pytest.raises(RefcountError) as ei:
        _ = a.name  # type: ignore[attr-defined]  # Deref through ARef's __getattr__.
    used = line() - 1
    assert_splat(ei, "aref-use-after-drop", cls=RefcountError, lines=[used, dropped])


def test_aref_clone_drop_balance() -> None:
    dev = Device()
    a = ARef.from_ref(dev)
    clones = [a.clone() for _ in range(5)]
    assert dev.count == 7 and a.name == "dev0"  # type: ignore[attr-defined]
    for c in clones:
        c.drop()
    a.drop()
    assert dev.count == 1 and not dev.freed


def test_aref_drop_that_may_sleep_under_a_spinlock() -> None:
    dev = SleepyDevice()
    a = ARef.from_ref(dev)
    lock = SpinLock(0, name="aref drop lock")
    with lock.lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            a.drop()
        dropped = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[dropped, taken])
    assert not a.is_dropped() and dev.count == 2  # Refused before any effect.
    a.drop()
    assert dev.count == 1


def test_aref_needs_an_always_refcounted_type() -> None:
    with pytest.raises(TypeError):
        ARef.from_ref(object())  # type: ignore[type-var]


# --- Arc -----------------------------------------------------------------------------------


def test_arc_double_drop() -> None:
    arc = Arc.new(Buffer(1))
    other = arc.clone()
    other.drop()
    dropped = line() - 1
    with pytest.raises(RefcountError) as ei:
        other.drop()
    again = line() - 1
    assert_splat(ei, "double-drop", cls=RefcountError, lines=[again, dropped])
    assert arc.refcount() == 1
    arc.drop()


def test_arc_use_after_drop() -> None:
    arc = Arc.new(Buffer(2))
    made = line() - 1
    arc.drop()
    dropped = line() - 1
    with pytest.raises(RefcountError) as ei:
        arc.get()
    used = line() - 1
    assert_splat(ei, "arc-use-after-drop", cls=RefcountError, lines=[used, dropped, made])
    with pytest.raises(RefcountError):
        arc.clone()


def test_arc_borrow_dies_with_its_handle() -> None:
    arc = Arc.new(Buffer(3))
    keep = arc.clone()
    b = arc.as_arc_borrow()
    assert b.get().n == 3 and b.n == 3  # type: ignore[attr-defined]
    arc.drop()
    dropped = line() - 1
    with pytest.raises(LifetimeError) as ei:
        b.get()
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, dropped])
    keep.drop()


def test_arc_last_drop_runs_the_destructor_once() -> None:
    before = Buffer.freed
    arc = Arc.new(Buffer(4))
    clones = [arc.clone() for _ in range(3)]
    for c in clones:
        c.drop()
    assert Buffer.freed == before
    arc.drop()
    assert Buffer.freed == before + 1
    assert "Buffer" not in live_arcs()


def test_arc_last_drop_with_sleeping_destructor_under_spinlock() -> None:
    arc = Arc.new(SleepyBuffer(5))
    extra = arc.clone()
    lock = SpinLock(0, name="arc drop lock")
    with lock.lock():
        taken = line() - 1
        extra.drop()  # Not the last count: the destructor does not run here.
        with pytest.raises(AtomicSleepError) as ei:
            arc.drop()
        dropped = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[dropped, taken])
    assert arc.refcount() == 1 and not arc._inner.freed  # Not dropped.
    arc.drop()
    assert arc._inner.freed


def test_arc_saturation_leaks_instead_of_freeing() -> None:
    before = Buffer.freed
    arc = Arc.new(Buffer(6))
    arc._inner.refcount.set_for_test(REFCOUNT_MAX)
    with pytest.warns(KernelWarning, match="saturated"):
        more = arc.clone()
    assert arc.refcount() == REFCOUNT_SATURATED
    more.drop()
    arc.drop()
    assert Buffer.freed == before  # Leaked, never freed.
    assert [w.rule for w in warn.log()] == ["refcount-saturated"]


# --- refcount_t ----------------------------------------------------------------------------


def test_refcount_underflow() -> None:
    rc = Refcount("struct foo", 1)
    assert rc.dec_and_test()
    zero = line() - 1
    with pytest.raises(RefcountError) as ei:
        rc.dec_and_test()
    under = line() - 1
    assert_splat(ei, "refcount-underflow", cls=RefcountError, lines=[under, zero])
    assert rc.read() == 0


def test_refcount_increment_on_zero() -> None:
    rc = Refcount("struct bar", 2)
    rc.dec_and_test()
    assert rc.dec_and_test()
    zero = line() - 1
    with pytest.raises(RefcountError) as ei:
        rc.inc()
    inc = line() - 1
    assert_splat(
        ei, "refcount-inc-zero", cls=RefcountError, lines=[inc, zero], mentions=["use-after-free"]
    )
    assert rc.read() == 0 and not rc.inc_not_zero()


def test_refcount_saturation_warns_and_sticks() -> None:
    rc = Refcount("struct baz", REFCOUNT_MAX)
    with pytest.warns(KernelWarning, match="refcount_t: saturated"):
        rc.inc()
    assert rc.saturated and rc.read() == REFCOUNT_SATURATED
    for _ in range(3):
        assert not rc.dec_and_test()  # Never reaches zero again: leaked.
    rc.inc()
    assert rc.read() == REFCOUNT_SATURATED


def test_refcount_bad_initial_value() -> None:
    with pytest.raises(TypeError):
        Refcount("x", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Refcount("x", -1)


# --- state machines ----------------------------------------------------------------------


class RefcountMachine(RuleBasedStateMachine):
    """refcount_t against an integer: violations exactly when the model says so."""

    def __init__(self) -> None:
        super().__init__()
        self.rc = Refcount("machine", 1)
        self.model = 1
        self.saturated = False

    @rule()
    def inc(self) -> None:
        if self.model == 0 and not self.saturated:
            with pytest.raises(RefcountError):
                self.rc.inc()
        else:
            self.rc.inc()
            self.model += 1

    @rule()
    def inc_not_zero(self) -> None:
        ok = self.rc.inc_not_zero()
        assert ok == (self.model > 0 or self.saturated)
        if ok:
            self.model += 1

    @rule()
    def dec(self) -> None:
        if self.saturated:
            assert not self.rc.dec_and_test()
        elif self.model == 0:
            with pytest.raises(RefcountError):
                self.rc.dec_and_test()
        else:
            self.model -= 1
            assert self.rc.dec_and_test() == (self.model == 0)

    @precondition(lambda self: not self.saturated and self.model > 0)
    @rule()
    def near_max(self) -> None:
        self.rc.set_for_test(REFCOUNT_MAX)
        self.model = REFCOUNT_MAX
        with pytest.warns(KernelWarning):
            self.rc.inc()
        self.saturated = True

    @invariant()
    def agrees(self) -> None:
        if self.saturated:
            assert self.rc.read() == REFCOUNT_SATURATED
        else:
            assert self.rc.read() == self.model


class ARefMachine(RuleBasedStateMachine):
    """Handles of one device: live ones own a count, dropped ones are refused."""

    def __init__(self) -> None:
        super().__init__()
        self.dev = Device()
        self.live: list[ARef[Device]] = []
        self.dead: list[ARef[Device]] = []

    @rule()
    def take(self) -> None:
        self.live.append(ARef.from_ref(self.dev))

    @rule(i=st.integers(min_value=0, max_value=50))
    def clone(self, i: int) -> None:
        if self.live:
            self.live.append(self.live[i % len(self.live)].clone())

    @rule(i=st.integers(min_value=0, max_value=50))
    def drop(self, i: int) -> None:
        if self.live:
            a = self.live.pop(i % len(self.live))
            a.drop()
            self.dead.append(a)

    @rule(i=st.integers(min_value=0, max_value=50), op=st.sampled_from(["drop", "get", "clone"]))
    def misuse(self, i: int, op: str) -> None:
        if self.dead:
            before = self.dev.count
            with pytest.raises(RefcountError):
                getattr(self.dead[i % len(self.dead)], op)()
            assert self.dev.count == before

    @rule(i=st.integers(min_value=0, max_value=50))
    def deref(self, i: int) -> None:
        if self.live:
            assert self.live[i % len(self.live)].get() is self.dev

    @invariant()
    def count_is_live_handles(self) -> None:
        # The device starts with its own reference.
        assert self.dev.count == 1 + len(self.live)
        assert not self.dev.freed

    def teardown(self) -> None:
        for a in self.live:
            a.drop()


class ArcMachine(RuleBasedStateMachine):
    """Arc handles: the destructor runs exactly once, when the last live handle drops."""

    def __init__(self) -> None:
        super().__init__()
        self.frees_before = Buffer.freed
        self.first = Arc.new(Buffer(0))
        self.handles: list[Arc[Buffer]] = [self.first]
        self.dropped: list[Arc[Buffer]] = []

    @rule()
    def clone(self) -> None:
        if self.handles:
            self.handles.append(self.handles[-1].clone())

    @rule(i=st.integers(min_value=0, max_value=50))
    def drop(self, i: int) -> None:
        if self.handles:
            h = self.handles.pop(i % len(self.handles))
            h.drop()
            self.dropped.append(h)

    @rule(i=st.integers(min_value=0, max_value=50))
    def use_dropped(self, i: int) -> None:
        if self.dropped:
            with pytest.raises(RefcountError):
                self.dropped[i % len(self.dropped)].clone()

    @rule(i=st.integers(min_value=0, max_value=50))
    def borrow(self, i: int) -> None:
        if self.handles:
            h = self.handles[i % len(self.handles)]
            assert h.as_arc_borrow().get().n == 0

    @invariant()
    def freed_iff_no_handles(self) -> None:
        freed = Buffer.freed - self.frees_before
        assert freed == (0 if self.handles else 1)
        if self.handles:
            assert self.handles[0].refcount() == len(self.handles)

    def teardown(self) -> None:
        for h in self.handles:
            h.drop()


TestRefcountMachine = RefcountMachine.TestCase
TestRefcountMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestARefMachine = ARefMachine.TestCase
TestARefMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestArcMachine = ArcMachine.TestCase
TestArcMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
