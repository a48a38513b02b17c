"""`kernel::rbtree` as upstream's doc examples use it, and the borrow rules on its cursors.

Each example test is a line-by-line port of a doc example of rust/kernel/rbtree.rs
(`RBTree`, `CursorMut`, `Cursor`). The rule tests change the tree through another path
while a cursor, iterator or `&mut V` lives (a `BorrowError` naming both sites), and use
a cursor after the guard of the lock around the tree was released (a `LifetimeError`).
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL
from ownership.errors import BorrowError, LifetimeError
from ownership.rbtree import Cursor, CursorMut, RBTree, RBTreeNode, RBTreeNodeReservation
from ownership.sync.lock import Mutex, SpinLock


def _tree(*keys: int) -> RBTree[int, int]:
    tree: RBTree[int, int] = RBTree()
    for k in keys:
        tree.try_create_and_insert(k, k * 10, GFP_KERNEL)
    return tree


def test_the_rbtree_example() -> None:
    tree = _tree(20, 10, 30)
    assert (tree.get(10), tree.get(20), tree.get(30)) == (100, 200, 300)
    it = tree.iter()
    assert (it.next(), it.next(), it.next(), it.next()) == ((10, 100), (20, 200), (30, 300), None)
    assert [f"{k} = {v}" for k, v in tree] == ["10 = 100", "20 = 200", "30 = 300"]
    old = tree.try_create_and_insert(10, 1000, GFP_KERNEL)
    assert old is not None and old.to_key_value() == (10, 100)
    assert list(tree.iter()) == [(10, 1000), (20, 200), (30, 300)]
    # `*tree.get_mut(&30).unwrap() = 3000;`
    v = tree.get_mut(30)
    assert v is not None
    v.set(3000)
    assert list(tree.iter()) == [(10, 1000), (20, 200), (30, 3000)]
    tree.remove(10)
    assert list(tree.iter()) == [(20, 200), (30, 3000)]


def test_insert_a_preallocated_node_under_a_spinlock() -> None:
    lock: SpinLock[RBTree[int, int]] = SpinLock(RBTree(), name="rbtree example lock")
    node = RBTreeNode.new(10, 100, GFP_KERNEL)
    with lock.lock() as guard:
        assert guard.data.insert(node) is None
        assert guard.data.get(10) == 100


def test_reuse_a_removed_nodes_allocation() -> None:
    tree = _tree(20, 10, 30)
    existing = tree.remove_node(30)
    assert existing is not None
    assert list(tree.iter()) == [(10, 100), (20, 200)]
    reservation = RBTreeNodeReservation.new(GFP_KERNEL)
    tree.insert(reservation.into_node(15, 150))
    assert list(tree.iter()) == [(10, 100), (15, 150), (20, 200)]
    # The removed node's memory is reused too.
    tree.insert(existing.into_reservation().into_node(40, 400))
    assert tree.keys() == [10, 15, 20, 40]
    assert tree.remove_node(99) is None


def test_the_cursor_mut_walk() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front_mut()
    assert cursor is not None and cursor.current() == (10, 100)
    cursor = cursor.move_next()
    assert cursor is not None and cursor.current() == (20, 200)
    assert cursor.peek_next() == (30, 300) and cursor.current() == (20, 200)
    assert cursor.peek_prev() == (10, 100)
    cursor = cursor.move_next()
    assert cursor is not None and cursor.current() == (30, 300)
    assert cursor.move_next() is None
    back = tree.cursor_back_mut()
    assert back is not None and back.current() == (30, 300)
    assert RBTree[int, int]().cursor_front_mut() is None


def test_cursor_lower_bound() -> None:
    tree = _tree(10, 20, 30, 40, 50)
    c = tree.cursor_lower_bound(20)
    assert isinstance(c, Cursor) and c.current() == (20, 200)
    c = tree.cursor_lower_bound(25)
    assert c is not None and c.current() == (30, 300)
    assert tree.cursor_lower_bound(55) is None
    m = tree.cursor_lower_bound_mut(45)
    assert isinstance(m, CursorMut) and m.current() == (50, 500)


def test_a_cursor_mut_changes_values() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front_mut()
    assert cursor is not None
    _k, v = cursor.current_mut()
    v.set(1000)
    # The cursor's last use is over, so reading the tree is allowed (as Rust's NLL).
    assert tree.get(10) == 1000


def test_remove_current() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front_mut()
    assert cursor is not None and cursor.current() == (10, 100)
    nxt, node = cursor.remove_current()
    assert nxt is not None and nxt.current() == (20, 200) and node.to_key_value() == (10, 100)
    cursor = tree.cursor_back_mut()
    assert cursor is not None and cursor.current() == (30, 300)
    prev, _ = cursor.remove_current()
    assert prev is not None and prev.current() == (20, 200)
    last, _ = prev.remove_current()
    assert last is None and tree.is_empty()


def test_remove_neighbours() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front_mut()
    assert cursor is not None and cursor.remove_prev() is None
    cursor = tree.cursor_back_mut()
    assert cursor is not None and cursor.current() == (30, 300)
    removed = cursor.remove_prev()
    assert removed is not None and removed.to_key_value() == (20, 200)
    assert cursor.remove_next() is None
    cursor = cursor.move_prev()
    assert cursor is not None and cursor.current() == (10, 100)
    removed = cursor.remove_next()
    assert removed is not None and removed.to_key_value() == (30, 300)


def test_the_shared_cursor() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front()
    assert cursor is not None and cursor.current() == (10, 100)
    # Shared borrows coexist with reads.
    assert tree.get(20) == 200 and cursor.peek_next() == (20, 200)
    back = tree.cursor_back()
    assert back is not None and back.current() == (30, 300) and cursor.current() == (10, 100)


# --- the rules on the new paths -------------------------------------------------------


def test_changing_the_tree_under_a_live_cursor_is_a_borrow_error() -> None:
    tree = _tree(10, 20, 30)
    cursor = tree.cursor_front()
    assert cursor is not None
    tree.remove(20)  # Another path changes the tree while the cursor lives...
    with pytest.raises(BorrowError) as e:
        cursor.peek_next()  # ...and the cursor's next use is the violation.
    err = e.value
    assert err.rule == "borrow-invalidated"
    assert err.origin is not None and "test_rbtree.py" in err.origin.filename
    assert err.site is not None and err.site.lineno > err.origin.lineno
    assert any("was made" in label for label, _ in err.notes)


def test_reading_the_tree_under_a_live_cursor_mut_is_a_borrow_error() -> None:
    tree = _tree(10, 20)
    cursor = tree.cursor_front_mut()
    assert cursor is not None
    assert tree.get(20) == 200
    with pytest.raises(BorrowError, match="read through another path"):
        cursor.remove_current()
    assert tree.keys() == [10, 20]  # The violation had no effect.


def test_a_second_cursor_mut_invalidates_the_first() -> None:
    tree = _tree(10, 20)
    a = tree.cursor_front_mut()
    b = tree.cursor_back_mut()
    assert a is not None and b is not None
    assert b.remove_prev() is not None
    with pytest.raises(BorrowError):
        a.current()


def test_inserting_under_an_iterator_and_a_value_mut() -> None:
    tree = _tree(10, 20)
    it = tree.iter()
    assert it.next() == (10, 100)
    tree.insert(RBTreeNode.new(15, 150, GFP_KERNEL))
    with pytest.raises(BorrowError):
        it.next()
    v = tree.get_mut(10)
    assert v is not None
    tree.remove(20)
    with pytest.raises(BorrowError):
        v.set(1)


def test_a_finished_iterator_no_longer_borrows() -> None:
    tree = _tree(10, 20)
    assert list(tree.iter()) == [(10, 100), (20, 200)]
    tree.remove(10)
    assert tree._borrows.live() == 0


def test_a_moved_cursor_is_dead() -> None:
    tree = _tree(10, 20)
    cursor = tree.cursor_front_mut()
    assert cursor is not None
    moved = cursor.move_next()
    assert moved is not None
    with pytest.raises(LifetimeError, match="moved"):
        cursor.current()


@pytest.mark.parametrize("lock_type", [SpinLock, Mutex])
def test_a_cursor_outliving_its_trees_guard_is_a_lifetime_error(lock_type: type) -> None:
    lock = lock_type(_tree(10, 20), name=f"rbtree cursor {lock_type.__name__}")
    guard = lock.lock()
    cursor = guard.data.cursor_front()
    assert cursor is not None and cursor.current() == (10, 100)
    guard.drop()
    with pytest.raises(LifetimeError) as e:
        cursor.current()
    assert e.value.origin_label == "the guard was released"
    assert any("was made" in label for label, _ in e.value.notes)


def test_a_cursor_mut_outliving_its_trees_guard() -> None:
    lock: SpinLock[RBTree[int, int]] = SpinLock(_tree(10, 20), name="rbtree cursor_mut lock")
    with lock.lock() as guard:
        cursor = guard.data.cursor_front_mut()
        assert cursor is not None
        cursor = cursor.move_next()
        assert cursor is not None
    with pytest.raises(LifetimeError):
        cursor.remove_current()
    with lock.lock() as guard:
        assert guard.data.keys() == [10, 20]
