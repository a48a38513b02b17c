"""The range allocator of a process's binder mapping (drivers/android/binder/range_alloc/mod.rs).

Every process that mmaps `/dev/binder` gets one area (at most 4 MiB) into which the
driver copies incoming transactions. `RangeAllocator` hands out byte ranges of that
area; the pages behind them are managed separately by `binder.page_range`. C binder
keeps a `struct binder_buffer` per range; Rust Binder keeps a descriptor per range with
two states:

* `Reserved`: the kernel is using the range (a transaction is being built into it, or
  userspace has handed it back with `BC_FREE_BUFFER` and the kernel is tearing it down).
  Only a reserved range can be aborted (freed).
* `Allocated`: the range was delivered to userspace and is idle in the kernel; it holds
  the driver's bookkeeping (`T`, e.g. the `AllocationInfo`) until userspace frees it.

There are three representations, switched by `RangeAllocator` itself, because most
processes only ever have a handful of buffers:

* `Empty(size)`: no range has ever been reserved (or the tree emptied again);
* `ArrayRangeAllocator` (`array.py`): a sorted `KVec` of at most `TREE_THRESHOLD`
  ranges, placing new ranges at the end or in the first gap that fits;
* `TreeRangeAllocator` (`tree.py`): two red-black trees (all ranges by offset, free
  ranges by size) giving best fit and merging free neighbours; it reverts to `Empty`
  when its last range is freed.

The allocator runs under the process spinlock (`Process.inner`), where nothing may
sleep, so it never allocates: `reserve_new` returns `ReserveNewNeedAlloc` when it needs
memory, the caller drops the lock, calls `make_alloc()` (GFP_KERNEL), re-locks and
retries. Memory it was given but did not use comes back in `ReserveNewSuccess`, to be
freed after the lock is released.

Oneway (asynchronous) transactions may use at most half of the area
(`free_oneway_space`). Once less than a tenth of the area is left for them, a sender
holding more than 50 oneway buffers or more than a quarter of the area is reported as a
oneway spammer; both representations detect it identically.

Every decision (where a range goes, the oneway budget, spam detection, the split and
merge of free ranges, the NeedAlloc retry's next step) is `binder.range_core`'s, a
module of pure arithmetic that both representations call and `proofs/` proves.

Errors follow upstream: `ENOSPC` (no gap, or no oneway space), `ENOENT` (commit or
`reserve_existing` of an offset that is not in the required state), `EPERM` (abort of
an allocated range), `EINVAL` (abort of an unknown offset, or any call before the first
reservation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ownership.context import may_sleep
from ownership.errors import EINVAL, KernelError

from .. import range_core as core
from .array import ArrayRangeAllocator, EmptyArrayAlloc
from .descriptor import (
    TREE_THRESHOLD,
    Allocated,
    DescriptorState,
    FreedRange,
    Range,
    RangeInfo,
    Reserved,
    check_offset,
    check_size,
)
from .tree import FromArrayAllocs, ReserveNewTreeAlloc, TreeRangeAllocator

__all__ = [
    "TREE_THRESHOLD",
    "Allocated",
    "DescriptorState",
    "FreedRange",
    "Range",
    "RangeAllocator",
    "RangeInfo",
    "ReserveNew",
    "ReserveNewArgs",
    "ReserveNewNeedAlloc",
    "ReserveNewSuccess",
    "Reserved",
    "check_offset",
    "check_size",
]

T = TypeVar("T")


@dataclass(slots=True)
class ReserveNewArgs(Generic[T]):
    """The arguments of `reserve_new`, with the memory it may need, allocated up front.

    Invariants: each `*_alloc` field, when set, was allocated with GFP_KERNEL outside any
    spinlock and is consumed at most once by `reserve_new`.
    """

    size: int
    is_oneway: bool = False
    debug_id: int = 0
    pid: int = 0
    empty_array_alloc: EmptyArrayAlloc[T] | None = None
    new_tree_alloc: FromArrayAllocs[T] | None = None
    tree_alloc: ReserveNewTreeAlloc[T] | None = None


@dataclass(slots=True)
class ReserveNewSuccess(Generic[T]):
    """`reserve_new` reserved `[offset, offset + size)`.

    The pre-allocations it did not use are returned here, so that the caller frees them
    after releasing the spinlock.

    Invariants: the range at `offset` is Reserved; the `unused_*` fields are owned by
    this object until `free_unused()`.
    """

    offset: int
    oneway_spam_detected: bool
    unused_empty_array_alloc: EmptyArrayAlloc[T] | None = None
    unused_new_tree_alloc: FromArrayAllocs[T] | None = None
    unused_tree_alloc: ReserveNewTreeAlloc[T] | None = None

    def free_unused(self) -> None:
        """Free the unused pre-allocations (`kfree`, after the spinlock is released)."""
        empty, self.unused_empty_array_alloc = self.unused_empty_array_alloc, None
        if empty is not None:
            empty.ranges.drop()
        trees, self.unused_new_tree_alloc = self.unused_new_tree_alloc, None
        if trees is not None:
            trees.tree.drop()
            trees.free_tree.drop()
        self.unused_tree_alloc = None


class ReserveNewNeedAlloc(Generic[T]):
    """`reserve_new` needs memory: drop the lock, call `make_alloc()`, retry.

    Invariants: at least one `need_*` flag is set whose matching field of `args` is
    None. (A full array also asks for the tree's reservation nodes when they were
    already brought; `make_alloc` then skips them, as upstream's does.)
    """

    __slots__ = ("args", "need_empty_array_alloc", "need_new_tree_alloc", "need_tree_alloc")

    def __init__(
        self,
        args: ReserveNewArgs[T],
        *,
        need_empty_array_alloc: bool = False,
        need_new_tree_alloc: bool = False,
        need_tree_alloc: bool = False,
    ) -> None:
        self.args = args
        self.need_empty_array_alloc = need_empty_array_alloc
        self.need_new_tree_alloc = need_new_tree_alloc
        self.need_tree_alloc = need_tree_alloc

    @may_sleep
    def make_alloc(self) -> ReserveNewArgs[T]:
        """Allocate what the retry needs (GFP_KERNEL: must not hold a spinlock)."""
        args = self.args
        if self.need_empty_array_alloc and args.empty_array_alloc is None:
            args.empty_array_alloc = EmptyArrayAlloc.try_new(TREE_THRESHOLD)
        if self.need_new_tree_alloc and args.new_tree_alloc is None:
            args.new_tree_alloc = FromArrayAllocs.try_new(TREE_THRESHOLD)
        if self.need_tree_alloc and args.tree_alloc is None:
            args.tree_alloc = ReserveNewTreeAlloc.try_new()
        return args


ReserveNew = ReserveNewSuccess[T] | ReserveNewNeedAlloc[T]


class RangeAllocator(Generic[T]):
    """`RangeAllocator<T>`: the ranges of one mapping, in one of three representations.

    Invariants: exactly one of `_array` and `_tree` is set, or neither (`Empty`);
    `_size` is the size of the area in bytes; the array never holds more than
    `TREE_THRESHOLD` ranges; the tree is never empty (it reverts to `Empty`).
    """

    __slots__ = ("_array", "_size", "_tree")

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"area size must be an int, got {type(size).__name__}")
        if size < 0:
            raise KernelError(EINVAL, f"area size {size} is negative")
        self._size = size
        self._array: ArrayRangeAllocator[T] | None = None
        self._tree: TreeRangeAllocator[T] | None = None

    @property
    def kind(self) -> Literal["empty", "array", "tree"]:
        """Which representation is in use."""
        if self._array is not None:
            return "array"
        if self._tree is not None:
            return "tree"
        return "empty"

    def total_size(self) -> int:
        return self._size

    def free_oneway_space(self) -> int:
        if self._array is not None:
            return self._array.free_oneway_space()
        if self._tree is not None:
            return self._tree.free_oneway_space()
        return self._size // 2

    def count_buffers(self) -> int:
        if self._array is not None:
            return self._array.count_buffers()
        if self._tree is not None:
            return self._tree.count_buffers()
        return 0

    def debug_ranges(self) -> list[RangeInfo]:
        """Every live range in offset order (what `debug_print` prints)."""
        if self._array is not None:
            return self._array.debug_ranges()
        if self._tree is not None:
            return self._tree.debug_ranges()
        return []

    def free_ranges(self) -> list[tuple[int, int]]:
        """Every maximal free gap as `(offset, size)`, in offset order."""
        if self._tree is not None:
            return self._tree.free_ranges()
        gaps = []
        prev_end = 0
        for r in self.debug_ranges():
            if r.offset > prev_end:
                gaps.append((prev_end, r.offset - prev_end))
            prev_end = r.offset + r.size
        if prev_end < self._size:
            gaps.append((prev_end, self._size - prev_end))
        return gaps

    def tree_representation(self) -> TreeRangeAllocator[T] | None:
        """The tree, when that is the representation in use (for invariant checks)."""
        return self._tree

    def reserve_new(self, args: ReserveNewArgs[T]) -> ReserveNew[T]:
        """Reserve a new range, or ask for memory (`ReserveNewNeedAlloc`) and change nothing.

        Raises `KernelError(ENOSPC)` when no gap fits or the oneway space is exhausted,
        `EINVAL` for a size that is not positive.
        """
        check_size(args.size)
        # The loop replaces upstream's recursion after a representation switch; each
        # turn's decision is `range_core.reserve_step`'s.
        while True:
            array, tree = self._array, self._tree
            step = core.reserve_step(
                self.kind,
                array is not None and array.is_full(),
                args.empty_array_alloc is not None,
                args.new_tree_alloc is not None,
                args.tree_alloc is not None,
            )
            if step.action == core.NEED_ALLOC:
                return ReserveNewNeedAlloc(
                    args,
                    need_empty_array_alloc=step.need_empty_array,
                    need_new_tree_alloc=step.need_new_tree,
                    need_tree_alloc=step.need_tree,
                )
            if step.action == core.MAKE_ARRAY:
                empty = args.empty_array_alloc
                assert empty is not None
                args.empty_array_alloc = None
                # INVARIANT: the array takes over the pre-allocated KVec of capacity
                # TREE_THRESHOLD.
                self._array = ArrayRangeAllocator(self._size, empty)
                continue
            if step.action == core.MAKE_TREE:
                allocs = args.new_tree_alloc
                assert array is not None and allocs is not None
                # INVARIANT: `from_array` moves every range into the tree, built from
                # the pre-allocated nodes; the array is gone afterwards.
                self._tree = TreeRangeAllocator.from_array(array.total_size(), array.ranges, allocs)
                self._array = None
                continue
            if step.action == core.RESERVE_ARRAY:
                assert array is not None
                offset, spam = array.reserve_new(args.debug_id, args.size, args.is_oneway, args.pid)
                return ReserveNewSuccess(
                    offset,
                    spam,
                    args.empty_array_alloc,
                    args.new_tree_alloc,
                    args.tree_alloc,
                )
            alloc = args.tree_alloc
            assert tree is not None and alloc is not None
            # The tree consumes the node reservations even when it fails with ENOSPC,
            # as the Rust version moves them in.
            args.tree_alloc = None
            offset, spam = tree.reserve_new(
                args.debug_id, args.size, args.is_oneway, args.pid, alloc
            )
            return ReserveNewSuccess(
                offset, spam, args.empty_array_alloc, args.new_tree_alloc, None
            )

    def reservation_abort(self, offset: int) -> FreedRange:
        """Free the reserved range at `offset`; returns the pages no range uses any more.

        `EPERM` if the range is allocated (userspace still owns it), `EINVAL` if there is
        no range at `offset`.
        """
        check_offset(offset)
        if self._array is not None:
            return self._array.reservation_abort(offset)
        tree = self._tree
        if tree is None:
            raise KernelError(EINVAL, f"reservation_abort({offset}) before any reservation")
        freed = tree.reservation_abort(offset)
        if tree.is_empty():
            # INVARIANT: an empty tree reverts to `Empty`, dropping its nodes.
            self._tree = None
        return freed

    def reservation_commit(self, offset: int, data: T | None) -> None:
        """Reserved -> Allocated at `offset`, storing `data` with the range.

        On an error (`ENOENT`) nothing is stored and `data` stays the caller's, to be
        dropped after the spinlock is released (upstream passes `&mut Option<T>` for
        the same reason).
        """
        check_offset(offset)
        if self._array is not None:
            self._array.reservation_commit(offset, data)
        elif self._tree is not None:
            self._tree.reservation_commit(offset, data)
        else:
            raise KernelError(EINVAL, f"reservation_commit({offset}) before any reservation")

    def reserve_existing(self, offset: int) -> tuple[int, int, T | None]:
        """Allocated -> Reserved at `offset`: `(size, debug_id, data)`; else `ENOENT`."""
        check_offset(offset)
        if self._array is not None:
            return self._array.reserve_existing(offset)
        if self._tree is not None:
            return self._tree.reserve_existing(offset)
        raise KernelError(EINVAL, f"reserve_existing({offset}) before any reservation")

    def take_for_each(self, callback: Callable[[int, int, int, T | None], None]) -> None:
        """Call `callback(offset, size, debug_id, data)` for every allocated range.

        Used only at process teardown; the data is taken out of the allocator.
        """
        if self._array is not None:
            self._array.take_for_each(callback)
        elif self._tree is not None:
            self._tree.take_for_each(callback)

    def __iter__(self) -> Iterator[RangeInfo]:
        return iter(self.debug_ranges())
