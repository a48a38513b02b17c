"""Red-black trees with pre-allocated nodes (rust/kernel/rbtree.rs).

Inserting into a kernel `RBTree` allocates a node. Code that must not allocate at the
point of insertion (under a spinlock) allocates the node first, with
`RBTreeNodeReservation.new(GFP_KERNEL)` outside the lock, and turns it into a node
with `into_node(key, value)`, which cannot fail (slides: "To make operations
infallible, we allocate memory before we need it"). A reservation or node is consumed
once; reusing one is a `LifetimeError`.

The model keeps keys sorted in a list (`bisect`), which has the same observable
behaviour: ordered iteration, `cursor_lower_bound`, O(log n) lookup.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from .alloc import Flags, alloc_check
from .config import STATE
from .errors import LifetimeError
from .site import Site, here

__all__ = ["RBTree", "RBTreeNode", "RBTreeNodeReservation"]


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


class RBTree(Generic[K, V]):
    """An ordered map whose insertions take pre-allocated nodes.

    Invariants: `_keys` is sorted and has the same keys as `_map`.
    """

    __slots__ = ("_keys", "_map")

    def __init__(self) -> None:
        self._keys: list[K] = []
        self._map: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def is_empty(self) -> bool:
        return not self._keys

    def get(self, key: K) -> V | None:
        return self._map.get(key)

    def insert(self, node: RBTreeNode[K, V]) -> V | None:
        """Insert (replacing an equal key, whose old value is returned); never allocates."""
        node._consume("RBTreeNode")
        k = node.key
        old = self._map.get(k)
        if k not in self._map:
            bisect.insort(self._keys, k)
        self._map[k] = node.value
        return old

    def try_create_and_insert(self, key: K, value: V, gfp: Flags) -> V | None:
        """Allocate a node and insert (`RBTree::try_create_and_insert`)."""
        return self.insert(RBTreeNode.new(key, value, gfp))

    def remove(self, key: K) -> V | None:
        if key not in self._map:
            return None
        i = bisect.bisect_left(self._keys, key)
        del self._keys[i]
        return self._map.pop(key)

    def first(self) -> tuple[K, V] | None:
        return (self._keys[0], self._map[self._keys[0]]) if self._keys else None

    def last(self) -> tuple[K, V] | None:
        return (self._keys[-1], self._map[self._keys[-1]]) if self._keys else None

    def cursor_lower_bound(self, key: K) -> tuple[K, V] | None:
        """The first entry whose key is >= `key`."""
        i = bisect.bisect_left(self._keys, key)
        if i == len(self._keys):
            return None
        k = self._keys[i]
        return (k, self._map[k])

    def floor(self, key: K) -> tuple[K, V] | None:
        """The last entry whose key is <= `key`."""
        i = bisect.bisect_right(self._keys, key)
        if i == 0:
            return None
        k = self._keys[i - 1]
        return (k, self._map[k])

    def prev(self, key: K) -> tuple[K, V] | None:
        """The last entry whose key is < `key`."""
        i = bisect.bisect_left(self._keys, key)
        if i == 0:
            return None
        k = self._keys[i - 1]
        return (k, self._map[k])

    def next(self, key: K) -> tuple[K, V] | None:
        """The first entry whose key is > `key`."""
        i = bisect.bisect_right(self._keys, key)
        if i == len(self._keys):
            return None
        k = self._keys[i]
        return (k, self._map[k])

    def items(self) -> Iterator[tuple[K, V]]:
        for k in list(self._keys):
            yield (k, self._map[k])

    def values(self) -> Iterator[V]:
        for k in list(self._keys):
            yield self._map[k]

    def keys(self) -> list[K]:
        return list(self._keys)

    def clear(self) -> None:
        self._keys.clear()
        self._map.clear()
