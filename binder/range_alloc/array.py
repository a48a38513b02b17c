"""The array representation of the range allocator (drivers/android/binder/range_alloc/array.rs).

A process with few buffers keeps them in a `KVec` of at most `TREE_THRESHOLD`
ranges, sorted by offset. Only the live ranges are stored: the gaps between them are
the free space. A new range goes after the last one if it fits there, otherwise into
the first gap that fits (fragmentation does not matter with so few ranges). The
`KVec` is allocated before the first reservation (`EmptyArrayAlloc`, GFP_KERNEL,
outside the spinlock); inserting and removing within its capacity never allocates.

The decisions (placement, the oneway budget, spam detection after the insert) are
`binder.range_core`'s, shared with the tree, so that the result does not depend on the
representation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ownership.alloc import GFP_KERNEL, KVec
from ownership.context import may_sleep
from ownership.errors import EINVAL, ENOENT, ENOSPC, EPERM, KernelError
from ownership.page import PAGE_MASK, PAGE_SIZE

from .. import range_core as core
from .descriptor import Allocated, FreedRange, Range, RangeInfo, Reserved

__all__ = ["ArrayRangeAllocator", "EmptyArrayAlloc"]

T = TypeVar("T")


class EmptyArrayAlloc(Generic[T]):
    """The `KVec` an `Empty` allocator needs to become an array, allocated up front.

    Invariants: `ranges` is empty and has capacity `TREE_THRESHOLD`.
    """

    __slots__ = ("ranges",)

    def __init__(self, ranges: KVec[Range[T]]) -> None:
        self.ranges = ranges

    @classmethod
    @may_sleep
    def try_new(cls, capacity: int) -> EmptyArrayAlloc[T]:
        """Allocate the array with GFP_KERNEL (`ENOMEM` on failure)."""
        ranges: KVec[Range[T]] = KVec.with_capacity(capacity, GFP_KERNEL)
        return cls(ranges)


class ArrayRangeAllocator(Generic[T]):
    """The ranges of a mapping with few buffers, sorted by offset.

    Invariants: `ranges` is sorted by offset, its ranges are disjoint and inside
    `[0, size)`, and `len(ranges) <= ranges.capacity()`; `free_oneway_space` is
    `size // 2` minus the sizes of the oneway ranges.
    """

    __slots__ = ("_free_oneway_space", "_size", "ranges")

    def __init__(self, size: int, alloc: EmptyArrayAlloc[T]) -> None:
        # INVARIANT: the KVec is empty, and the whole oneway budget is free.
        self.ranges: KVec[Range[T]] = alloc.ranges
        self._size = size
        self._free_oneway_space = size // 2

    def free_oneway_space(self) -> int:
        return self._free_oneway_space

    def count_buffers(self) -> int:
        return len(self.ranges)

    def total_size(self) -> int:
        return self._size

    def is_full(self) -> bool:
        return len(self.ranges) == self.ranges.capacity()

    def debug_ranges(self) -> list[RangeInfo]:
        return [
            RangeInfo(
                r.offset,
                r.size,
                "reserved" if isinstance(r.state, Reserved) else "allocated",
                r.state.is_oneway,
                r.state.pid,
                r.state.debug_id,
            )
            for r in self.ranges
        ]

    def reserve_new(self, debug_id: int, size: int, is_oneway: bool, pid: int) -> tuple[int, bool]:
        """Reserve `size` bytes: `(offset, oneway_spam_detected)`; `ENOSPC` if impossible.

        The decisions are `binder.range_core`'s (placement, oneway budget, spam after
        the insert); this method records them in the `KVec`.
        """
        ranges = self.ranges
        found = core.array_place([(r.offset, r.size) for r in ranges], self._size, size)
        held = ((r.size, r.state.is_oneway, r.state.pid) for r in ranges)
        decided = core.reserve_decision(
            self._size,
            self._free_oneway_space,
            size,
            is_oneway,
            pid,
            None if found is None else found[1],
            held,
        )
        if isinstance(decided, str):
            raise KernelError(ENOSPC, f"{decided} for {size} bytes")
        assert found is not None
        idx, offset = found
        self._free_oneway_space = decided.free_oneway_space
        # INVARIANT: the gap at `offset` holds `size` bytes, and inserting at `idx`
        # keeps the ranges sorted; the capacity was checked by `is_full()`.
        self._insert(idx, Range(offset, size, Reserved(debug_id, is_oneway, pid)))
        return (offset, decided.oneway_spam_detected)

    def _insert(self, idx: int, new: Range[T]) -> None:
        """`Vec::insert_within_capacity`: shift the tail up by one, never allocating."""
        ranges = self.ranges
        n = len(ranges)
        if n == 0 or idx == n:
            pushed = ranges.push_within_capacity(new)
        else:
            pushed = ranges.push_within_capacity(ranges[n - 1])
            for j in range(n - 1, idx, -1):
                ranges[j] = ranges[j - 1]
            ranges[idx] = new
        # The caller checked `is_full()`, so the push cannot fail.
        assert pushed, "ArrayRangeAllocator insert beyond capacity"

    def _remove(self, idx: int) -> Range[T]:
        """`Vec::remove`: shift the tail down by one."""
        ranges = self.ranges
        removed = ranges[idx]
        for j in range(idx, len(ranges) - 1):
            ranges[j] = ranges[j + 1]
        ranges.pop()
        return removed

    def _position(self, offset: int) -> int:
        # A linear scan: faster than bisection for at most eight ranges.
        ranges = self.ranges
        for i in range(len(ranges)):
            if ranges[i].offset == offset:
                return i
        return -1

    def _range_at(self, offset: int) -> Range[T]:
        """The range starting at `offset`; `ENOENT` if there is none."""
        i = self._position(offset)
        if i < 0:
            raise KernelError(ENOENT, f"no range at offset {offset}")
        return self.ranges[i]

    def reservation_abort(self, offset: int) -> FreedRange:
        """Remove the reserved range at `offset` (`EINVAL` if absent, `EPERM` if allocated)."""
        i = self._position(offset)
        if i < 0:
            raise KernelError(EINVAL, f"no range at offset {offset}")
        ranges = self.ranges
        r = ranges[i]
        if isinstance(r.state, Allocated):
            raise KernelError(EPERM, f"range at offset {offset} is allocated to userspace")
        size = r.size
        self._free_oneway_space = core.oneway_space_after_free(
            self._free_oneway_space, size, r.state.is_oneway
        )
        # The pages no allocated range uses any more: the interior ones, plus a partial
        # page at either end when the neighbour does not reach into it.
        start = -(-offset // PAGE_SIZE)
        end = (offset + size) // PAGE_SIZE
        if offset % PAGE_SIZE != 0 and (i == 0 or ranges[i - 1].endpoint() <= (offset & PAGE_MASK)):
            start -= 1
        endpoint = offset + size
        if endpoint % PAGE_SIZE != 0:
            page_after = (endpoint & PAGE_MASK) + PAGE_SIZE
            if i + 1 == len(ranges) or page_after <= ranges[i + 1].offset:
                end += 1
        self._remove(i)
        return FreedRange(start, end)

    def reservation_commit(self, offset: int, data: T | None) -> None:
        """Reserved -> Allocated at `offset`, storing `data`; `ENOENT` otherwise."""
        r = self._range_at(offset)
        state = r.state
        if not isinstance(state, Reserved):
            raise KernelError(ENOENT, f"range at offset {offset} is not reserved")
        r.state = state.allocate(data)

    def reserve_existing(self, offset: int) -> tuple[int, int, T | None]:
        """Allocated -> Reserved at `offset`: `(size, debug_id, data)`; `ENOENT` otherwise."""
        r = self._range_at(offset)
        state = r.state
        if not isinstance(state, Allocated):
            raise KernelError(ENOENT, f"range at offset {offset} is not allocated")
        data = state.take()
        r.state = state.reservation
        return (r.size, state.debug_id, data)

    def take_for_each(self, callback: Callable[[int, int, int, T | None], None]) -> None:
        for r in self.ranges:
            state = r.state
            if isinstance(state, Allocated):
                callback(r.offset, r.size, state.debug_id, state.take())
