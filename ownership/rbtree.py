"""Red-black trees with pre-allocated nodes (rust/kernel/rbtree.rs).

Inserting into a kernel `RBTree` allocates a node. Code that must not allocate at the
point of insertion (under a spinlock) allocates the node first, with
`RBTreeNodeReservation.new(GFP_KERNEL)` outside the lock, and turns it into a node
with `into_node(key, value)`, which cannot fail (slides: "To make operations
infallible, we allocate memory before we need it"). A reservation or node is consumed
once; reusing one is a `LifetimeError`.

The model keeps keys sorted in a list (`bisect`), which has the same observable
behaviour: ordered iteration, `cursor_lower_bound`, O(log n) lookup.

Borrows of the tree: `iter()`, the cursors (`cursor_front`, `cursor_back`,
`cursor_lower_bound` give a shared `Cursor`; their `_mut` forms an exclusive
`CursorMut`) and `get_mut` borrow the tree as Rust's `&self`/`&mut self` would. They
are checked the way Miri checks them (`ownership.borrow.BorrowStack`): changing the tree
through another path (an `insert`, a `remove`, another cursor) while a borrow lives, or
reading it while a `CursorMut` lives, invalidates the borrow, and its next use is a
`BorrowError` (`borrow-invalidated`) naming both sites. A borrow made while the tree is
the data of a held `SpinLock`/`Mutex` dies with that guard: used after the guard was
released, it is a `LifetimeError`.

Differences in form from upstream: Python cannot hand out `&mut V`, so `get_mut` and
`CursorMut.current_mut`/`peek_*_mut` return a `ValueMut` (`get()`, `set(value)`);
`*tree.get_mut(&k).unwrap() = v` is `tree.get_mut(k).set(v)`. Cursor moves consume
the cursor as upstream's `move_next(self)` does: the old object is dead (a
`LifetimeError` if used). What the model has and upstream lacks: `first`, `last`,
`floor`, `prev`, `next`, `items`, `clear`, `len()`, `in`, and `keys()` returning a list.

Lock order: none; the tree is protected by whatever lock its owner puts it in.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from .alloc import Flags, alloc_check
from .borrow import BorrowStack, Lifetime, Tag
from .config import STATE
from .context import ctx
from .errors import LifetimeError
from .site import Site, here
from .sync.lock import Lock

__all__ = [
    "Cursor",
    "CursorMut",
    "Iter",
    "RBTree",
    "RBTreeNode",
    "RBTreeNodeReservation",
    "ValueMut",
]


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)
V = TypeVar("V")


class _Consumable:
    __slots__ = ("_site", "_used_at")

    def __init__(self, site: Site) -> None:
        self._site = site
        self._used_at: Site | None = None

    def _consume(self, what: str) -> None:
        if self._used_at is not None and STATE.on:
            raise LifetimeError(
                f"{what} used twice",
                obj=type(self).__name__,
                site=here(),
                origin=self._used_at,
                origin_label="it was consumed",
                notes=[("it was allocated", self._site)],
            )
        self._used_at = here()


class RBTreeNodeReservation(_Consumable):
    """Memory for one tree node, allocated ahead of time."""

    __slots__ = ()

    @classmethod
    def new(cls, gfp: Flags) -> RBTreeNodeReservation:
        alloc_check(gfp, "RBTreeNodeReservation::new")
        return cls(here())

    def into_node(self, key: K, value: V) -> RBTreeNode[K, V]:
        """Fill the reserved memory; never fails."""
        self._consume("RBTreeNodeReservation")
        return RBTreeNode(key, value, here())


class RBTreeNode(_Consumable, Generic[K, V]):
    """An allocated node not yet in a tree."""

    __slots__ = ("key", "value")

    def __init__(self, key: K, value: V, site: Site) -> None:
        super().__init__(site)
        self.key = key
        self.value = value

    @classmethod
    def new(cls, key: K, value: V, gfp: Flags) -> RBTreeNode[K, V]:
        alloc_check(gfp, "RBTreeNode::new")
        return cls(key, value, here())

    def into_reservation(self) -> RBTreeNodeReservation:
        """Recycle the node's memory (`RBTreeNode::into_reservation`)."""
        self._consume("RBTreeNode")
        return RBTreeNodeReservation(here())

    def to_key_value(self) -> tuple[K, V]:
        """Take the key and value out, freeing the node (`RBTreeNode::to_key_value`)."""
        self._consume("RBTreeNode")
        return (self.key, self.value)


class RBTree(Generic[K, V]):
    """An ordered map whose insertions take pre-allocated nodes.

    Invariants: `_keys` is sorted and has the same keys as `_map`; `_borrows` holds the
    live borrows (iterators, cursors, `ValueMut`s) of the tree.
    """

    __slots__ = ("_borrows", "_keys", "_map")

    def __init__(self) -> None:
        self._keys: list[K] = []
        self._map: dict[K, V] = {}
        self._borrows = BorrowStack("RBTree")

    # --- borrows ------------------------------------------------------------------

    def _read(self) -> None:
        if self._borrows._tags:
            self._borrows.access(False, here())

    def _write(self) -> None:
        if self._borrows._tags:
            self._borrows.access(True, here())

    def _guard_lifetime(self) -> Lifetime | None:
        """The lifetime of the guard through which this thread holds the tree, if any."""
        for h in ctx.st.held:
            lock = h.instance
            if isinstance(lock, Lock) and lock._data is self:
                g = lock.held_guard()
                if g is not None:
                    return g.lifetime
        return None

    def _borrow(self, what: str, exclusive: bool) -> Tag:
        return self._borrows.borrow(
            what, exclusive, here(), self._guard_lifetime() if STATE.on else None
        )

    # --- reads --------------------------------------------------------------------

    def __len__(self) -> int:
        self._read()
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        self._read()
        return key in self._map

    def __iter__(self) -> Iter[K, V]:
        """`for (k, v) in &tree`."""
        return Iter(self, self._borrow("an RBTree iterator", False))

    def iter(self) -> Iter[K, V]:
        """An iterator over the entries, sorted by key, borrowing the tree."""
        return Iter(self, self._borrow("an RBTree iterator", False))

    def is_empty(self) -> bool:
        self._read()
        return not self._keys

    def get(self, key: K) -> V | None:
        self._read()
        return self._map.get(key)

    def first(self) -> tuple[K, V] | None:
        self._read()
        return (self._keys[0], self._map[self._keys[0]]) if self._keys else None

    def last(self) -> tuple[K, V] | None:
        self._read()
        return (self._keys[-1], self._map[self._keys[-1]]) if self._keys else None

    def floor(self, key: K) -> tuple[K, V] | None:
        """The last entry whose key is <= `key`."""
        self._read()
        i = bisect.bisect_right(self._keys, key)
        if i == 0:
            return None
        k = self._keys[i - 1]
        return (k, self._map[k])

    def prev(self, key: K) -> tuple[K, V] | None:
        """The last entry whose key is < `key`."""
        self._read()
        i = bisect.bisect_left(self._keys, key)
        if i == 0:
            return None
        k = self._keys[i - 1]
        return (k, self._map[k])

    def next(self, key: K) -> tuple[K, V] | None:
        """The first entry whose key is > `key`."""
        self._read()
        i = bisect.bisect_right(self._keys, key)
        if i == len(self._keys):
            return None
        k = self._keys[i]
        return (k, self._map[k])

    def items(self) -> Iterator[tuple[K, V]]:
        self._read()
        for k in list(self._keys):
            yield (k, self._map[k])

    def values(self) -> Iterator[V]:
        self._read()
        for k in list(self._keys):
            yield self._map[k]

    def keys(self) -> list[K]:
        self._read()
        return list(self._keys)

    # --- writes -------------------------------------------------------------------

    def _insert(self, node: RBTreeNode[K, V]) -> RBTreeNode[K, V] | None:
        node._consume("RBTreeNode")
        k = node.key
        if k in self._map:
            old = RBTreeNode(k, self._map[k], here())
        else:
            old = None
            bisect.insort(self._keys, k)
        self._map[k] = node.value
        return old

    def insert(self, node: RBTreeNode[K, V]) -> RBTreeNode[K, V] | None:
        """Insert, replacing an equal key, whose old node is returned; never allocates."""
        self._write()
        return self._insert(node)

    def try_create_and_insert(self, key: K, value: V, gfp: Flags) -> RBTreeNode[K, V] | None:
        """Allocate a node and insert (`RBTree::try_create_and_insert`)."""
        return self.insert(RBTreeNode.new(key, value, gfp))

    def _take(self, key: K) -> RBTreeNode[K, V]:
        i = bisect.bisect_left(self._keys, key)
        del self._keys[i]
        return RBTreeNode(key, self._map.pop(key), here())

    def remove_node(self, key: K) -> RBTreeNode[K, V] | None:
        """Remove the entry of `key`, returning its node (to reuse or `to_key_value`)."""
        self._write()
        if key not in self._map:
            return None
        return self._take(key)

    def remove(self, key: K) -> V | None:
        self._write()
        if key not in self._map:
            return None
        i = bisect.bisect_left(self._keys, key)
        del self._keys[i]
        return self._map.pop(key)

    def get_mut(self, key: K) -> ValueMut[K, V] | None:
        """`&mut V` of the entry of `key`, borrowing the tree exclusively."""
        if key not in self._map:
            self._write()
            return None
        return ValueMut(self, key, self._borrow("an RBTree &mut V", True))

    def clear(self) -> None:
        self._write()
        self._keys.clear()
        self._map.clear()

    # --- cursors ------------------------------------------------------------------

    def _cursor(self, i: int, exclusive: bool) -> Cursor[K, V] | CursorMut[K, V] | None:
        if not 0 <= i < len(self._keys):
            if exclusive:
                self._write()
            else:
                self._read()
            return None
        if exclusive:
            return CursorMut(self, self._keys[i], self._borrow("an RBTree CursorMut", True))
        return Cursor(self, self._keys[i], self._borrow("an RBTree Cursor", False))

    def cursor_front(self) -> Cursor[K, V] | None:
        """A shared cursor at the smallest key; None if the tree is empty."""
        c = self._cursor(0, False)
        assert c is None or isinstance(c, Cursor)
        return c

    def cursor_back(self) -> Cursor[K, V] | None:
        """A shared cursor at the largest key; None if the tree is empty."""
        c = self._cursor(len(self._keys) - 1, False)
        assert c is None or isinstance(c, Cursor)
        return c

    def cursor_lower_bound(self, key: K) -> Cursor[K, V] | None:
        """A shared cursor at `key`, or else at the first larger key; None if none."""
        c = self._cursor(bisect.bisect_left(self._keys, key), False)
        assert c is None or isinstance(c, Cursor)
        return c

    def cursor_front_mut(self) -> CursorMut[K, V] | None:
        """An exclusive cursor at the smallest key; None if the tree is empty."""
        c = self._cursor(0, True)
        assert c is None or isinstance(c, CursorMut)
        return c

    def cursor_back_mut(self) -> CursorMut[K, V] | None:
        """An exclusive cursor at the largest key; None if the tree is empty."""
        c = self._cursor(len(self._keys) - 1, True)
        assert c is None or isinstance(c, CursorMut)
        return c

    def cursor_lower_bound_mut(self, key: K) -> CursorMut[K, V] | None:
        """An exclusive cursor at `key`, or else at the first larger key; None if none."""
        c = self._cursor(bisect.bisect_left(self._keys, key), True)
        assert c is None or isinstance(c, CursorMut)
        return c


class ValueMut(Generic[K, V]):
    """`&'a mut V` into a tree entry (Python cannot assign through a reference).

    Invariants: `_tag` is an exclusive borrow of `_tree`; while it is valid, `_key` is
    in the tree.
    """

    __slots__ = ("_key", "_tag", "_tree")

    def __init__(self, tree: RBTree[K, V], key: K, tag: Tag) -> None:
        self._tree = tree
        self._key = key
        self._tag = tag

    def get(self) -> V:
        self._tag.use("read")
        return self._tree._map[self._key]

    def set(self, value: V) -> None:
        """`*v = value`."""
        self._tag.use("write")
        self._tree._map[self._key] = value


class Iter(Generic[K, V]):
    """`rbtree::Iter`: the entries in key order, borrowing the tree (shared).

    Invariants: `_tag` is a shared borrow of `_tree`; `_pos` indexes the next entry.
    """

    __slots__ = ("_pos", "_tag", "_tree")

    def __init__(self, tree: RBTree[K, V], tag: Tag) -> None:
        self._tree = tree
        self._tag = tag
        self._pos = 0

    def __iter__(self) -> Iter[K, V]:
        return self

    def __next__(self) -> tuple[K, V]:
        self._tag.use("next()")
        keys = self._tree._keys
        if self._pos >= len(keys):
            # The iterator's last use: its borrow ends here.
            self._tag.release()
            raise StopIteration
        k = keys[self._pos]
        self._pos += 1
        return (k, self._tree._map[k])

    def next(self) -> tuple[K, V] | None:
        """`iter.next()`: the next entry, or None at the end."""
        try:
            return self.__next__()
        except StopIteration:
            return None


class _CursorBase(Generic[K, V]):
    """What both cursors share: a position (a key of the tree) and a borrow.

    Invariants: while `_moved_at` is None and `_tag` is valid, `_key` is in `_tree`.
    """

    __slots__ = ("_key", "_moved_at", "_tag", "_tree")

    _kind = "Cursor"

    def __init__(self, tree: RBTree[K, V], key: K, tag: Tag) -> None:
        self._tree = tree
        self._key = key
        self._tag = tag
        self._moved_at: Site | None = None

    def _use(self, use: str) -> RBTree[K, V]:
        if self._moved_at is not None and STATE.on:
            raise LifetimeError(
                f"{self._kind}.{use}() on a cursor that was moved",
                obj=f"RBTree {self._kind}",
                site=here(),
                origin=self._moved_at,
                origin_label="the cursor was moved (consumed) here",
                notes=[("the cursor was made", self._tag.site)],
            )
        self._tag.use(f"{self._kind}.{use}()")
        return self._tree

    def _neighbor(self, tree: RBTree[K, V], step: int) -> K | None:
        i = bisect.bisect_left(tree._keys, self._key) + step
        if not 0 <= i < len(tree._keys):
            return None
        return tree._keys[i]

    def current(self) -> tuple[K, V]:
        """The current entry."""
        tree = self._use("current")
        return (self._key, tree._map[self._key])

    def _peek(self, use: str, step: int) -> tuple[K, V] | None:
        tree = self._use(use)
        k = self._neighbor(tree, step)
        return None if k is None else (k, tree._map[k])

    def peek_prev(self) -> tuple[K, V] | None:
        """The previous entry, without moving."""
        return self._peek("peek_prev", -1)

    def peek_next(self) -> tuple[K, V] | None:
        """The next entry, without moving."""
        return self._peek("peek_next", 1)


class Cursor(_CursorBase[K, V]):
    """`rbtree::Cursor<'a, K, V>`: a read-only position in the tree (a shared borrow)."""

    __slots__ = ()


class CursorMut(_CursorBase[K, V]):
    """`rbtree::CursorMut<'a, K, V>`: a position that can change the tree (exclusive)."""

    __slots__ = ()

    _kind = "CursorMut"

    def current_mut(self) -> tuple[K, ValueMut[K, V]]:
        """The current entry, with a mutable value."""
        self._use("current_mut")
        return (self._key, ValueMut(self._tree, self._key, self._tag))

    def _peek_mut(self, use: str, step: int) -> tuple[K, ValueMut[K, V]] | None:
        tree = self._use(use)
        k = self._neighbor(tree, step)
        return None if k is None else (k, ValueMut(tree, k, self._tag))

    def peek_prev_mut(self) -> tuple[K, ValueMut[K, V]] | None:
        return self._peek_mut("peek_prev_mut", -1)

    def peek_next_mut(self) -> tuple[K, ValueMut[K, V]] | None:
        return self._peek_mut("peek_next_mut", 1)

    def _move_to(self, key: K | None) -> CursorMut[K, V] | None:
        # INVARIANT: `self` is consumed (upstream's `fn move_next(self)`); its borrow
        # passes to the new cursor, or ends with it when there is none.
        self._moved_at = here()
        if key is None:
            self._tag.release()
            return None
        return CursorMut(self._tree, key, self._tag)

    def move_prev(self) -> CursorMut[K, V] | None:
        """Move to the previous entry; None (and the borrow ends) if there is none."""
        tree = self._use("move_prev")
        return self._move_to(self._neighbor(tree, -1))

    def move_next(self) -> CursorMut[K, V] | None:
        """Move to the next entry; None (and the borrow ends) if there is none."""
        tree = self._use("move_next")
        return self._move_to(self._neighbor(tree, 1))

    def remove_current(self) -> tuple[CursorMut[K, V] | None, RBTreeNode[K, V]]:
        """Remove the current entry: a cursor at the next entry (else the previous, else
        None) and the removed node."""
        tree = self._use("remove_current")
        nxt = self._neighbor(tree, 1)
        if nxt is None:
            nxt = self._neighbor(tree, -1)
        tree._borrows.access(True, here(), through=self._tag)
        node = tree._take(self._key)
        return (self._move_to(nxt), node)

    def _remove_neighbor(self, use: str, step: int) -> RBTreeNode[K, V] | None:
        tree = self._use(use)
        k = self._neighbor(tree, step)
        if k is None:
            return None
        tree._borrows.access(True, here(), through=self._tag)
        return tree._take(k)

    def remove_prev(self) -> RBTreeNode[K, V] | None:
        """Remove the previous entry, returning its node, if there is one."""
        return self._remove_neighbor("remove_prev", -1)

    def remove_next(self) -> RBTreeNode[K, V] | None:
        """Remove the next entry, returning its node, if there is one."""
        return self._remove_neighbor("remove_next", 1)
