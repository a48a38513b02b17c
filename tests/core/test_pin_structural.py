"""Pinning is structural, and moving a pointer does not move its pointee.

`!Unpin` propagates through every level of inline nesting (a struct holding a struct
holding a lock, a tuple field): `move`, `mem.replace`/`swap`/`take`, `copy.copy` and
`copy.deepcopy` of such a value are a `PinError` naming the pinned field path and where
the value was pinned, and the refused move leaves everything in place. A `KBox`, a
`Pin`, an `Arc` or a guard holds its pointee behind a pointer: moving one (or a struct
holding one) is legal Rust and runs clean; only cloning the pinned pointee is refused.
"""

from __future__ import annotations

import copy

import pytest

from ownership.alloc import GFP_KERNEL, KBox
from ownership.config import checking
from ownership.errors import PinError
from ownership.pin import Pin, mem, move
from ownership.sync import Arc, Mutex, MutexGuard, SpinLock
from tests.expect import assert_splat, line


class Inner:
    def __init__(self, v: int) -> None:
        self.lock = SpinLock(v, name="Inner::lock")


INNER_LOCK = Inner.__init__.__code__.co_firstlineno + 1


class Mid:
    def __init__(self, v: int) -> None:
        self.tag = "mid"
        self.inner = Inner(v)


class Outer:
    def __init__(self, v: int) -> None:
        self.count = 0
        self.mid = Mid(v)


class Owner:
    def __init__(self) -> None:
        self.outer = Outer(1)


def _value(o: Outer) -> int:
    with o.mid.inner.lock.lock() as g:
        return g.data


@pytest.mark.parametrize("how", ["move", "copy", "deepcopy"])
def test_a_lock_three_levels_down_pins_the_outer_struct(how: str) -> None:
    o = Outer(5)
    with pytest.raises(PinError) as ei:
        if how == "move":
            move(o)
        elif how == "copy":
            copy.copy(o)
        else:
            copy.deepcopy(o)
    assert_splat(
        ei,
        "pin",
        cls=PinError,
        lines=[INNER_LOCK],
        origin='self.lock = SpinLock(v, name="Inner::lock")',
        mentions=["field 'mid.inner.lock' of Outer", "would move a pinned value"],
    )
    assert _value(o) == 5  # Nothing moved.


def test_mem_helpers_on_a_field_that_contains_a_pinned_value() -> None:
    a, b = Owner(), Owner()
    old = a.outer
    with pytest.raises(PinError) as ei:
        mem.replace(a, "outer", Outer(2))
    moved = line() - 1
    assert_splat(
        ei,
        "pin",
        cls=PinError,
        lines=[moved, INNER_LOCK],
        site='mem.replace(a, "outer"',
        mentions=["field 'mid.inner.lock' of Outer"],
    )
    assert a.outer is old and _value(a.outer) == 1
    with pytest.raises(PinError) as ei:
        mem.swap(a, "outer", b, "outer")
    assert_splat(ei, "pin", cls=PinError, lines=[line() - 1, INNER_LOCK])
    with pytest.raises(PinError) as ei:
        mem.take(a, "outer", Outer(3))
    assert_splat(ei, "pin", cls=PinError, lines=[line() - 1, INNER_LOCK])
    assert a.outer is old and b.outer is not old


class WithTuple:
    def __init__(self) -> None:
        self.pair = (1, Mutex(0, name="WithTuple::pair.1"))


def test_a_tuple_field_is_inline() -> None:
    w = WithTuple()
    pinned = WithTuple.__init__.__code__.co_firstlineno + 1
    with pytest.raises(PinError) as ei:
        move(w)
    assert_splat(ei, "pin", cls=PinError, lines=[pinned], mentions=["field 'pair[1]' of"])


class Boxed:
    """A struct whose lock is behind pointers: a `KBox`, a `Pin`, an `Arc`, a guard."""

    def __init__(self) -> None:
        self.boxed = KBox.new(Mutex(1, name="Boxed::boxed"), GFP_KERNEL)
        self.pinned: Pin[KBox[Mutex[int]]] = Pin(KBox.new(Mutex(2, name="Boxed::pin"), GFP_KERNEL))
        self.shared = Arc.new(Mutex(3, name="Boxed::shared"))
        self.me = self
        self.guard: MutexGuard[int] | None = None

    def release(self) -> None:
        self.boxed.drop()
        self.pinned.get().drop()
        self.shared.drop()


def test_moving_pointers_to_pinned_values_is_legal() -> None:
    b = Boxed()
    assert move(b.boxed) is b.boxed  # `let k = kbox;`: the mutex stays in its allocation.
    assert move(b.pinned) is b.pinned  # A `Pin<KBox<Mutex>>` moves as a pointer.
    assert move(b.shared) is b.shared
    assert move(b) is b  # The struct holds only pointers (and a pointer to itself).
    b.guard = b.shared.get().lock()
    assert move(b.guard) is b.guard  # A guard is a borrow of the lock, movable.
    assert copy.copy(b).boxed is b.boxed  # Copying the struct copies the pointers.
    b.guard.drop()
    b.guard = None
    other = KBox.new(Mutex(9, name="other box"), GFP_KERNEL)
    old = mem.replace(b, "boxed", other)  # `mem::replace` of a `KBox<Mutex>` field.
    with old.get().lock() as g:
        assert g.data == 1
    old.drop()
    holder = Boxed()
    mem.swap(b, "boxed", holder, "boxed")
    with b.boxed.get().lock() as g1, holder.boxed.get().lock(nested=1) as g2:
        assert (g1.data, g2.data) == (1, 9)
    b.release()
    holder.release()


def test_cloning_a_pinned_pointee_is_refused() -> None:
    b = Boxed()
    with pytest.raises(PinError) as ei:
        copy.deepcopy(b)
    copied = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[copied], mentions=["copy.deepcopy() of the Boxed"])
    b.release()


def test_moves_of_structs_are_not_checked_with_checks_off() -> None:
    o = Outer(4)
    with checking(False):
        assert move(o) is o
        assert copy.copy(o).mid is o.mid
