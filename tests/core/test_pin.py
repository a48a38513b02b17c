"""Pinning: locks and condvars are pinned where they are built and never move.

The model's moves are `mem.replace`, `mem.swap`, `mem.take`, `move(value)`,
`copy.copy`/`copy.deepcopy` and pickling, and `Pin.into_inner`. Each on a lock, a
condvar, or a struct holding one is a `PinError` naming where the value was pinned;
the same operations on `Unpin` values are fine.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from ownership.config import checking
from ownership.errors import PinError
from ownership.pin import Pin, mem, move, pin_init, pinned_site
from ownership.sync import Arc, CondVar, Mutex, SpinLock
from tests.expect import assert_splat, line


class Inner:
    """`struct Inner { lock: SpinLock<u32>, wait: CondVar }` (both pinned fields)."""

    def __init__(self, value: int) -> None:
        self.lock = SpinLock(value, name="Inner::lock")
        self.wait = CondVar("Inner::wait")


class Holder:
    def __init__(self, inner: Inner) -> None:
        self.inner = inner
        self.count = 0


INNER_LOCK_LINE = Inner.__init__.__code__.co_firstlineno + 1


def test_mem_replace_of_a_lock() -> None:
    inner = Inner(1)
    with pytest.raises(PinError) as ei:
        mem.replace(inner, "lock", SpinLock(2, name="Inner::lock"))
    moved = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[moved, INNER_LOCK_LINE])
    with inner.lock.lock() as g:
        assert g.data == 1  # Not replaced.


def test_mem_swap_of_two_locks() -> None:
    a, b = Inner(1), Inner(2)
    with pytest.raises(PinError) as ei:
        mem.swap(a, "lock", b, "lock")
    moved = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[moved, INNER_LOCK_LINE])
    with a.lock.lock() as ga, b.lock.lock(nested=1) as gb:
        assert (ga.data, gb.data) == (1, 2)


def test_mem_take_of_a_condvar() -> None:
    inner = Inner(1)
    with pytest.raises(PinError) as ei:
        mem.take(inner, "wait", CondVar("replacement"))
    moved = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[moved, INNER_LOCK_LINE + 1])


def test_move_of_a_lock() -> None:
    lock = Mutex(0, name="moved mutex")
    pinned = line() - 1
    with pytest.raises(PinError) as ei:
        move(lock)
    moved = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[moved, pinned])


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_duplicating_a_lock(how: str) -> None:
    lock = SpinLock([1], name="copied")
    pinned = line() - 1
    dups: dict[str, Callable[[object], object]] = {
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
        "pickle": pickle.dumps,
    }
    dup = dups[how]
    with pytest.raises(PinError) as ei:
        dup(lock)
    assert_splat(ei, "pin", cls=PinError, lines=[pinned])


def test_moving_a_struct_that_contains_a_lock() -> None:
    holder = Holder(Inner(5))
    with pytest.raises(PinError) as ei:
        mem.replace(holder, "inner", Inner(6))
    moved = line() - 1
    assert_splat(
        ei, "pin", cls=PinError, lines=[moved, INNER_LOCK_LINE], mentions=["field 'lock' of Inner"]
    )
    with pytest.raises(PinError):
        move(holder.inner)
    with pytest.raises(PinError):
        copy.deepcopy(holder)


def test_pin_into_inner_of_a_pinned_value() -> None:
    p = pin_init(Inner, 3)
    built = line() - 1
    with pytest.raises(PinError) as ei:
        p.into_inner()
    moved = line() - 1
    assert_splat(ei, "pin", cls=PinError, lines=[moved, built])
    assert pinned_site(p.get().lock) is not None


def test_unpin_values_move_freely() -> None:
    holder = Holder(Inner(1))
    assert mem.replace(holder, "count", 7) == 0
    other = Holder(Inner(2))
    mem.swap(holder, "count", other, "count")
    assert (holder.count, other.count) == (0, 7)
    assert move([1, 2]) == [1, 2]
    assert Pin(42).into_inner() == 42
    assert copy.deepcopy({"a": 1}) == {"a": 1}


def test_pin_set_and_arc_pinning() -> None:
    p: Pin[SpinLock[int]] = Pin(SpinLock(1, name="pin set a"))
    p.set(SpinLock(2, name="pin set b"))
    with p.get().lock() as g:
        assert g.data == 2
    arc = Arc.new(Inner(9))
    with pytest.raises(PinError):
        move(arc.get().lock)
    arc.drop()


def test_moves_are_not_checked_with_checks_off() -> None:
    inner = Inner(1)
    with checking(False):
        old = mem.replace(inner, "lock", SpinLock(2, name="Inner::lock"))
    with old.lock() as g:
        assert g.data == 1
