"""`UniqueArc` and `Arc.into_unique_or_drop` (rust/kernel/sync/arc.rs), as upstream's
doc examples use them, and `ArcBorrow` as a method receiver."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL
from ownership.errors import AtomicSleepError, RefcountError
from ownership.sync.arc import Arc, ArcBorrow, UniqueArc, UniqueArcUninit, live_arcs
from ownership.sync.lock import SpinLock


@dataclass
class Example:
    a: int
    b: int

    @staticmethod
    def use_reference(this: ArcBorrow[Example]) -> int:
        """`fn use_reference(self: ArcBorrow<'_, Self>)`."""
        return this.get().a

    @staticmethod
    def take_over(this: Arc[Example]) -> int:
        """`fn take_over(self: Arc<Self>)`: the handle is the callee's to drop."""
        b = this.get().b
        this.drop()
        return b


def test_change_then_share() -> None:
    x = UniqueArc.new(Example(10, 20), GFP_KERNEL)
    x.get().a += 1
    x.get().b += 1
    arc: Arc[Example] = x.into_arc()
    assert arc.get() == Example(11, 21) and arc.refcount() == 1
    arc.drop()


def test_allocate_then_write_under_a_spinlock() -> None:
    """Allocation where sleeping is allowed, initialisation in atomic context."""
    lock: SpinLock[int] = SpinLock(0, name="unique arc write")
    x: UniqueArcUninit[Example] = UniqueArc.new_uninit(GFP_KERNEL)
    with lock.lock():
        u = x.write(Example(10, 20))
        with pytest.raises(AtomicSleepError):
            UniqueArc.new(Example(1, 2), GFP_KERNEL)
        atomic = UniqueArc.new(Example(1, 2), GFP_ATOMIC)
    arc = u.into_arc()
    assert arc.get() == Example(10, 20)
    arc.drop()
    atomic.drop()
    assert "Example" not in live_arcs()


def test_set_replaces_the_contents() -> None:
    x = UniqueArc.new(Example(1, 2))
    x.set(Example(3, 4))
    assert x.get() == Example(3, 4)
    x.drop()


def test_into_unique_or_drop() -> None:
    arc = Arc.new(Example(1, 2))
    other = arc.clone()
    assert other.into_unique_or_drop() is None  # Not the last count: dropped.
    assert arc.refcount() == 1
    unique = arc.into_unique_or_drop()
    assert unique is not None
    unique.get().a = 5
    back = unique.into_arc()
    assert back.get().a == 5 and back.refcount() == 1
    back.drop()
    assert "Example" not in live_arcs()


def test_arc_receivers() -> None:
    obj = Arc.new(Example(10, 20))
    assert Example.use_reference(obj.as_arc_borrow()) == 10
    assert Example.take_over(obj) == 20
    with pytest.raises(RefcountError):
        obj.get()


def test_a_consumed_unique_arc_is_dead() -> None:
    x = UniqueArc.new(Example(1, 2))
    arc = x.into_arc()
    with pytest.raises(RefcountError) as e:
        x.get()
    assert e.value.rule == "arc-use-after-drop"
    with pytest.raises(RefcountError):
        x.into_arc()
    u: UniqueArcUninit[Example] = UniqueArc.new_uninit()
    u.write(Example(0, 0)).drop()
    with pytest.raises(RefcountError):
        u.write(Example(0, 0))
    arc.drop()
    old = Arc.new(Example(1, 1))
    unique = old.into_unique_or_drop()
    assert unique is not None
    with pytest.raises(RefcountError):
        old.clone()
    unique.drop()
