"""Allocation: `KBox`/`KVec` ownership, failure injection, RBTree node reservations.

An allocation failure surfaces as `KernelError(ENOMEM)` exactly where the kernel
returns `-ENOMEM`; `fail_after`, `fail_nth` and a seeded probability inject it. A
reservation made outside a lock is consumed once, under the lock, without allocating.
"""

from __future__ import annotations

import pytest

from ownership.alloc import (
    GFP_ATOMIC,
    GFP_KERNEL,
    KBox,
    KVec,
    allocation_count,
    fail_after,
    fail_nth,
    fail_probability,
)
from ownership.errors import EINVAL, ENOMEM, KernelError, LifetimeError
from ownership.rbtree import RBTree, RBTreeNode, RBTreeNodeReservation
from ownership.sync import SpinLock
from tests.expect import assert_splat, line, raises_errno

# --- KBox / KVec -----------------------------------------------------------------------


@pytest.mark.parametrize("use", ["get", "drop", "into_inner"])
def test_kbox_use_after_drop(use: str) -> None:
    b = KBox.new({"a": 1}, GFP_KERNEL)
    made = line() - 1
    b.drop()
    dropped = line() - 1
    with pytest.raises(LifetimeError) as ei:
        getattr(b, use)()
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, dropped, made])


def test_kbox_write_after_into_inner() -> None:
    b = KBox.new([1], GFP_ATOMIC)
    value = b.into_inner()
    taken = line() - 1
    with pytest.raises(LifetimeError) as ei:
        b.set([2])
    used = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[used, taken])
    assert value == [1]


def test_kbox_lifetime_for_borrowers() -> None:
    b = KBox.new(3, GFP_KERNEL)
    lt = b.lifetime
    assert lt.is_alive()
    b.drop()
    assert not lt.is_alive()


def test_kvec_grows_through_fallible_allocation() -> None:
    v: KVec[int] = KVec.with_capacity(2, GFP_KERNEL)
    before = allocation_count()
    assert v.push_within_capacity(1) and v.push_within_capacity(2)
    assert not v.push_within_capacity(3)
    assert allocation_count() == before
    with fail_nth(1), pytest.raises(KernelError) as ei:
        v.push(3, GFP_KERNEL)
    assert ei.value.errno == ENOMEM and len(v) == 2  # The failed push changed nothing.
    v.push(3, GFP_KERNEL)
    assert list(v) == [1, 2, 3] and v.pop() == 3 and v[0] == 1
    v.drop()
    with pytest.raises(LifetimeError):
        len(v)


def test_kvec_reserve_rejects_bad_sizes() -> None:
    v: KVec[int] = KVec.new()
    with raises_errno(EINVAL):
        v.reserve(-1, GFP_KERNEL)
    with raises_errno(EINVAL):
        v.reserve(1 << 64, GFP_KERNEL)
    with pytest.raises(TypeError):
        v.reserve("3", GFP_KERNEL)  # type: ignore[arg-type]


# --- failure injection -------------------------------------------------------------------


def test_fail_after() -> None:
    with fail_after(2):
        KBox.new(1, GFP_KERNEL).drop()
        KBox.new(2, GFP_ATOMIC).drop()
        for _ in range(3):
            with pytest.raises(KernelError) as ei:
                KBox.new(3, GFP_KERNEL)
            assert ei.value.errno == ENOMEM and ei.value.to_errno() == -ENOMEM
    KBox.new(4, GFP_KERNEL).drop()  # Restored after the block.


def test_fail_nth() -> None:
    outcomes = []
    with fail_nth(3):
        for i in range(5):
            try:
                KBox.new(i, GFP_KERNEL).drop()
                outcomes.append("ok")
            except KernelError as e:
                outcomes.append(e.name)
    assert outcomes == ["ok", "ok", "ENOMEM", "ok", "ok"]


def test_fail_probability_is_reproducible() -> None:
    def run() -> list[bool]:
        out = []
        with fail_probability(0.5, seed=11):
            for _ in range(40):
                try:
                    KBox.new(0, GFP_ATOMIC).drop()
                    out.append(True)
                except KernelError:
                    out.append(False)
        return out

    first = run()
    assert first == run()
    assert 5 < first.count(False) < 35
    with fail_probability(1.0), raises_errno(ENOMEM):
        KBox.new(0, GFP_KERNEL)
    with fail_probability(0.0):
        KBox.new(0, GFP_KERNEL).drop()


def test_injection_arguments_are_checked() -> None:
    with pytest.raises(ValueError), fail_after(-1):
        pass
    with pytest.raises(ValueError), fail_nth(0):
        pass
    with pytest.raises(TypeError), fail_after("2"):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError), fail_probability(1.5):
        pass


def test_allocation_count_counts_every_attempt() -> None:
    before = allocation_count()
    KBox.new(1, GFP_KERNEL).drop()
    with fail_nth(1), raises_errno(ENOMEM):
        KBox.new(1, GFP_KERNEL)
    assert allocation_count() - before == 2


# --- RBTree node reservations ----------------------------------------------------------


def test_reservation_used_twice() -> None:
    res = RBTreeNodeReservation.new(GFP_KERNEL)
    made = line() - 1
    res.into_node(1, "a")
    used = line() - 1
    with pytest.raises(LifetimeError) as ei:
        res.into_node(2, "b")
    again = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[again, used, made])


def test_node_inserted_twice() -> None:
    tree: RBTree[int, str] = RBTree()
    node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(1, "a")
    tree.insert(node)
    inserted = line() - 1
    with pytest.raises(LifetimeError) as ei:
        tree.insert(node)
    again = line() - 1
    assert_splat(ei, "lifetime", cls=LifetimeError, lines=[again, inserted])
    assert len(tree) == 1


def test_insert_under_a_spinlock_with_a_reservation_allocates_nothing() -> None:
    lock: SpinLock[RBTree[int, str]] = SpinLock(RBTree(), name="tree lock")
    nodes = [RBTreeNodeReservation.new(GFP_KERNEL).into_node(k, f"v{k}") for k in (5, 1, 3)]
    before = allocation_count()
    with lock.lock() as g:
        for n in nodes:
            assert g.data.insert(n) is None
        assert g.data.try_create_and_insert(4, "v4", GFP_ATOMIC) is None
    assert allocation_count() - before == 1  # Only the GFP_ATOMIC node.
    with lock.lock() as g:
        t = g.data
        assert t.keys() == [1, 3, 4, 5]
        c = t.cursor_lower_bound(2)
        assert c is not None and c.current() == (3, "v3") and t.floor(2) == (1, "v1")
        assert t.prev(3) == (1, "v1") and t.next(3) == (4, "v4")
        assert t.first() == (1, "v1") and t.last() == (5, "v5")
        assert t.remove(3) == "v3" and 3 not in t and t.remove(3) is None


def test_recycled_node_reservation() -> None:
    node = RBTreeNode.new(1, "x", GFP_KERNEL)
    res = node.into_reservation()
    tree: RBTree[int, str] = RBTree()
    tree.insert(res.into_node(2, "y"))
    assert tree.get(2) == "y"
    with pytest.raises(LifetimeError):
        node.into_reservation()
