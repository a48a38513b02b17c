"""The tree representation of the range allocator (drivers/android/binder/range_alloc/tree.rs).

Beyond `TREE_THRESHOLD` ranges the allocator keeps two red-black trees:

* `tree`: a descriptor for every range, live *and* free, keyed by offset; adjacent
  free ranges are always merged, so two free descriptors are never neighbours;
* `free_tree`: one entry per free range keyed by `(size, offset)`, so the smallest
  free range that fits is one `cursor_lower_bound((size, 0))` away (best fit).

Inserting into a kernel `RBTree` needs a node, and the allocator runs under a
spinlock, so every node comes from a reservation made earlier with GFP_KERNEL:
`ReserveNewTreeAlloc` (three nodes per `reserve_new`: the descriptor split off the
free range, its `free_tree` entry, and the `free_tree` entry the new range will need
when it is freed, stored with its descriptor) and `FromArrayAllocs` (enough nodes to
rebuild an array as a tree).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from ownership.alloc import GFP_KERNEL, KVec
from ownership.context import may_sleep
from ownership.errors import EINVAL, ENOENT, ENOSPC, EPERM, KernelError
from ownership.page import PAGE_SIZE
from ownership.rbtree import RBTree, RBTreeNode, RBTreeNodeReservation

from .. import range_core as core
from .descriptor import Allocated, DescriptorState, FreedRange, Range, RangeInfo, Reserved

__all__ = ["Descriptor", "FromArrayAllocs", "ReserveNewTreeAlloc", "TreeRangeAllocator"]

T = TypeVar("T")

FreeKey = tuple[int, int]
"""A `free_tree` key: `(size, offset)` of a free range."""


class Descriptor(Generic[T]):
    """One range of the tree, free (`state is None`) or live.

    Invariants: a live descriptor carries the node reservation its `free_tree` entry
    will use when it is freed, so freeing never allocates.
    """

    __slots__ = ("offset", "size", "state")

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size
        self.state: tuple[DescriptorState[T], RBTreeNodeReservation] | None = None


class ReserveNewTreeAlloc(Generic[T]):
    """The three tree nodes one `reserve_new` may need, allocated before the spinlock."""

    __slots__ = ("desc_node_res", "free_tree_node_res", "tree_node_res")

    def __init__(
        self,
        tree_node_res: RBTreeNodeReservation,
        free_tree_node_res: RBTreeNodeReservation,
        desc_node_res: RBTreeNodeReservation,
    ) -> None:
        self.tree_node_res = tree_node_res
        self.free_tree_node_res = free_tree_node_res
        self.desc_node_res = desc_node_res

    @classmethod
    @may_sleep
    def try_new(cls) -> ReserveNewTreeAlloc[T]:
        """Allocate the nodes with GFP_KERNEL (`ENOMEM` on failure)."""
        tree_node_res = RBTreeNodeReservation.new(GFP_KERNEL)
        free_tree_node_res = RBTreeNodeReservation.new(GFP_KERNEL)
        desc_node_res = RBTreeNodeReservation.new(GFP_KERNEL)
        return cls(tree_node_res, free_tree_node_res, desc_node_res)

    def initialize(
        self, desc: Descriptor[T]
    ) -> tuple[RBTreeNode[int, Descriptor[T]], RBTreeNode[FreeKey, None], RBTreeNodeReservation]:
        """Turn the reservations into the nodes for the split-off free range `desc`."""
        return (
            self.tree_node_res.into_node(desc.offset, desc),
            self.free_tree_node_res.into_node((desc.size, desc.offset), None),
            self.desc_node_res,
        )


class FromArrayAllocs(Generic[T]):
    """Enough nodes to rebuild an array of `len` ranges as a tree (`2 * len + 1` each)."""

    __slots__ = ("free_tree", "tree")

    def __init__(
        self, tree: KVec[RBTreeNodeReservation], free_tree: KVec[RBTreeNodeReservation]
    ) -> None:
        self.tree = tree
        self.free_tree = free_tree

    @classmethod
    @may_sleep
    def try_new(cls, length: int) -> FromArrayAllocs[T]:
        """Allocate with GFP_KERNEL (`ENOMEM` on failure)."""
        num_descriptors = 2 * length + 1
        tree: KVec[RBTreeNodeReservation] = KVec.with_capacity(num_descriptors, GFP_KERNEL)
        for _ in range(num_descriptors):
            tree.push(RBTreeNodeReservation.new(GFP_KERNEL), GFP_KERNEL)
        free_tree: KVec[RBTreeNodeReservation] = KVec.with_capacity(num_descriptors, GFP_KERNEL)
        for _ in range(num_descriptors):
            free_tree.push(RBTreeNodeReservation.new(GFP_KERNEL), GFP_KERNEL)
        return cls(tree, free_tree)

    def pop_tree(self) -> RBTreeNodeReservation:
        res = self.tree.pop()
        # `try_new` made 2 * TREE_THRESHOLD + 1 nodes: one per range and per gap.
        assert res is not None, "FromArrayAllocs ran out of tree nodes"
        return res

    def pop_free_tree(self) -> RBTreeNodeReservation:
        res = self.free_tree.pop()
        assert res is not None, "FromArrayAllocs ran out of free-tree nodes"
        return res


class TreeRangeAllocator(Generic[T]):
    """The ranges of a mapping with many buffers: best fit over merged free ranges.

    Invariants: the descriptors of `tree` tile `[0, size)` without overlap; no two
    free descriptors are adjacent; `free_tree` has exactly one `(size, offset)` key per
    free descriptor; `free_oneway_space` is `size // 2` minus the sizes of the oneway
    ranges.
    """

    __slots__ = ("_free_oneway_space", "_size", "free_tree", "tree")

    def __init__(self, size: int) -> None:
        self.tree: RBTree[int, Descriptor[T]] = RBTree()
        self.free_tree: RBTree[FreeKey, None] = RBTree()
        self._size = size
        self._free_oneway_space = size // 2

    @classmethod
    def from_array(
        cls, size: int, ranges: KVec[Range[T]], alloc: FromArrayAllocs[T]
    ) -> TreeRangeAllocator[T]:
        """Build a tree holding the array's ranges (draining `ranges`) and its gaps."""
        tree: TreeRangeAllocator[T] = cls(size)
        free_offset = 0
        for r in ranges:
            free_size = r.offset - free_offset
            if free_size > 0:
                tree._insert_free(free_offset, free_size, alloc.pop_tree(), alloc.pop_free_tree())
            free_offset = r.endpoint()
            if r.state.is_oneway:
                tree._free_oneway_space = max(0, tree._free_oneway_space - r.size)
            desc: Descriptor[T] = Descriptor(r.offset, r.size)
            desc.state = (r.state, alloc.pop_free_tree())
            tree.tree.insert(alloc.pop_tree().into_node(r.offset, desc))
        ranges.clear()
        # After the last range there may be a free range.
        if free_offset < size:
            tree._insert_free(
                free_offset, size - free_offset, alloc.pop_tree(), alloc.pop_free_tree()
            )
        return tree

    def _insert_free(
        self,
        offset: int,
        size: int,
        tree_res: RBTreeNodeReservation,
        free_res: RBTreeNodeReservation,
    ) -> None:
        self.free_tree.insert(free_res.into_node((size, offset), None))
        self.tree.insert(tree_res.into_node(offset, Descriptor(offset, size)))

    def is_empty(self) -> bool:
        """Whether the only descriptor is one free range (there is always at least one)."""
        if len(self.tree) != 1:
            # Free ranges are never adjacent, so two descriptors mean a live one.
            return False
        first = self.tree.first()
        assert first is not None
        return first[1].state is None

    def total_size(self) -> int:
        return self._size

    def free_oneway_space(self) -> int:
        return self._free_oneway_space

    def count_buffers(self) -> int:
        return sum(1 for d in self.tree.values() if d.state is not None)

    def debug_ranges(self) -> list[RangeInfo]:
        out = []
        for d in self.tree.values():
            if d.state is None:
                continue
            st = d.state[0]
            kind: Literal["reserved", "allocated"] = (
                "reserved" if isinstance(st, Reserved) else "allocated"
            )
            out.append(RangeInfo(d.offset, d.size, kind, st.is_oneway, st.pid, st.debug_id))
        return out

    def free_ranges(self) -> list[tuple[int, int]]:
        """Every free range as `(offset, size)`, in offset order (for invariant checks)."""
        return [(d.offset, d.size) for d in self.tree.values() if d.state is None]

    def reserve_new(
        self, debug_id: int, size: int, is_oneway: bool, pid: int, alloc: ReserveNewTreeAlloc[T]
    ) -> tuple[int, bool]:
        """Best-fit reservation: `(offset, oneway_spam_detected)`; `ENOSPC` if impossible."""
        best = self.free_tree.cursor_lower_bound((size, 0))
        # The other live ranges, walked only when the spam check runs (the best fit is
        # still free, so the new range is not among them).
        held = (
            (d.size, d.state[0].is_oneway, d.state[0].pid)
            for d in self.tree.values()
            if d.state is not None
        )
        decided = core.reserve_decision(
            self._size,
            self._free_oneway_space,
            size,
            is_oneway,
            pid,
            None if best is None else best.current()[0][1],
            held,
        )
        if isinstance(decided, str):
            raise KernelError(ENOSPC, f"{decided} for {size} bytes")
        assert best is not None
        found_size, found_off = best.current()[0]
        desc = self.tree.get(found_off)
        assert desc is not None, "free_tree entry without a descriptor"
        # The rest of the free range, in case it has to be split.
        rest_off, rest_size = core.split_free(found_off, found_size, size)
        rest: Descriptor[T] = Descriptor(rest_off, rest_size)
        tree_node, free_tree_node, desc_node_res = alloc.initialize(rest)
        # INVARIANT: the descriptor becomes a live range of exactly `size` bytes and
        # keeps the reservation for its future free-tree entry.
        desc.state = (Reserved(debug_id, is_oneway, pid), desc_node_res)
        desc.size = size
        self._free_oneway_space = decided.free_oneway_space
        self.free_tree.remove((found_size, found_off))
        if rest_size != 0:
            self.tree.insert(tree_node)
            self.free_tree.insert(free_tree_node)
        return (found_off, decided.oneway_spam_detected)

    def reservation_abort(self, offset: int) -> FreedRange:
        """Free the reserved range at `offset`, merging free neighbours."""
        desc = self.tree.get(offset)
        if desc is None or desc.state is None:
            raise KernelError(EINVAL, f"no range at offset {offset}")
        state, free_node_res = desc.state
        if isinstance(state, Allocated):
            raise KernelError(EPERM, f"range at offset {offset} is allocated to userspace")
        desc.state = None
        size = desc.size
        self._free_oneway_space = core.oneway_space_after_free(
            self._free_oneway_space, size, state.is_oneway
        )
        freed_start = -(-offset // PAGE_SIZE)
        freed_end = (offset + size) // PAGE_SIZE
        # How large the next free range must be to free one more page at the end, and
        # the previous one at the start.
        unalign_end = (offset + size) % PAGE_SIZE
        add_next_page_needed = PAGE_SIZE - unalign_end if unalign_end else None
        unalign_start = offset % PAGE_SIZE
        add_prev_page_needed = unalign_start if unalign_start else None

        # Merge with the next and the previous range where they are free (the merged
        # range is `range_core.merge_free`'s).
        nxt = self.tree.next(offset)
        nd = nxt[1] if nxt is not None and nxt[1].state is None else None
        prv = self.tree.prev(offset)
        pd = prv[1] if prv is not None and prv[1].state is None else None
        start, merged = core.merge_free(
            offset,
            size,
            None if pd is None else (pd.offset, pd.size),
            None if nd is None else (nd.offset, nd.size),
        )
        if nd is not None:
            if add_next_page_needed is not None and nd.size >= add_next_page_needed:
                freed_end += 1
            self.free_tree.remove((nd.size, nd.offset))
            self.tree.remove(nd.offset)
        if pd is not None:
            if add_prev_page_needed is not None and pd.size >= add_prev_page_needed:
                freed_start -= 1
            self.free_tree.remove((pd.size, pd.offset))
            self.tree.remove(offset)
            pd.size = merged
        else:
            desc.size = merged
        size = merged

        self.free_tree.insert(free_node_res.into_node((size, start), None))
        return FreedRange(freed_start, freed_end)

    def reservation_commit(self, offset: int, data: T | None) -> None:
        """Reserved -> Allocated at `offset`, storing `data`; `ENOENT` otherwise."""
        desc = self.tree.get(offset)
        state = desc.state[0] if desc is not None and desc.state is not None else None
        if desc is None or desc.state is None or not isinstance(state, Reserved):
            raise KernelError(ENOENT, f"no reserved range at offset {offset}")
        desc.state = (state.allocate(data), desc.state[1])

    def reserve_existing(self, offset: int) -> tuple[int, int, T | None]:
        """Allocated -> Reserved at `offset`: `(size, debug_id, data)`; `ENOENT` otherwise."""
        desc = self.tree.get(offset)
        state = desc.state[0] if desc is not None and desc.state is not None else None
        if desc is None or desc.state is None or not isinstance(state, Allocated):
            raise KernelError(ENOENT, f"no allocated range at offset {offset}")
        data = state.take()
        desc.state = (state.reservation, desc.state[1])
        return (desc.size, state.debug_id, data)

    def take_for_each(self, callback: Callable[[int, int, int, T | None], None]) -> None:
        for d in self.tree.values():
            if d.state is not None:
                st = d.state[0]
                if isinstance(st, Allocated):
                    callback(d.offset, d.size, st.debug_id, st.take())
