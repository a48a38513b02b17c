"""The range allocator's decisions as pure arithmetic (range_alloc/{array,tree,mod}.rs).

Upstream's allocator mixes two things: the decisions (where a new range goes, whether
the oneway budget allows it, whether the sender is a oneway spammer, how a free range
is split) and the data structures that record them (a `KVec` of ranges, two
red-black trees). This module holds the decisions, over plain integers and booleans,
and `binder.range_alloc` (both representations) calls them: one rule, one place. It
imports nothing, so `proofs/` can run these very functions symbolically (the ints
replaced by solver terms, every branch explored) without loading the driver or the
simulated kernel; `proofs/binder_alloc.py` proves what they guarantee.

Written for both readers: a condition that would branch once per range is computed
without a branch (`&` on booleans, a boolean used as 0 or 1), because a symbolic run
explores every branch and a branch per range would double its paths per range. The
concrete results are the same as with `and` and `if`.

No locks: the caller holds `Process.inner` (the allocator's spinlock), and nothing
here sleeps or allocates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "MAKE_ARRAY",
    "MAKE_TREE",
    "NEED_ALLOC",
    "NO_FREE_RANGE",
    "NO_ONEWAY_SPACE",
    "RESERVE_ARRAY",
    "RESERVE_TREE",
    "SPAM_MAX_BUFFERS",
    "Reservation",
    "Step",
    "array_place",
    "low_oneway_space",
    "merge_free",
    "oneway_space_after_free",
    "reserve_decision",
    "reserve_step",
    "split_free",
]

NO_ONEWAY_SPACE = "no oneway space"
"""Why `reserve_decision` refused: the oneway budget is exhausted (ENOSPC)."""

NO_FREE_RANGE = "no free range"
"""Why `reserve_decision` refused: no gap of the requested size (ENOSPC)."""

SPAM_MAX_BUFFERS = 50
"""A sender holding more oneway buffers than this is a spammer once space runs low."""


class Reservation(NamedTuple):
    """What `reserve_decision` decided: the new range's offset, the oneway budget left,
    and whether the sender was detected as a oneway spammer."""

    offset: int
    free_oneway_space: int
    oneway_spam_detected: bool


def array_place(ranges: Sequence[tuple[int, int]], area: int, size: int) -> tuple[int, int] | None:
    """Where the array representation puts `size` bytes: `(index, offset)`, or None.

    `ranges` are the live ranges as `(offset, size)`, sorted by offset. The new range
    goes after the last one when it fits there, else into the first gap that fits;
    `index` is where it is inserted to keep the ranges sorted.
    """
    n = len(ranges)
    after_last = ranges[n - 1][0] + ranges[n - 1][1] if n else 0
    if size <= area - after_last:
        return (n, after_last)
    end_of_prev = 0
    for i in range(n):
        offset, length = ranges[i]
        if size <= offset - end_of_prev:
            return (i, end_of_prev)
        end_of_prev = offset + length
    return None


def split_free(found_offset: int, found_size: int, size: int) -> tuple[int, int]:
    """The tree's best fit took the free range `(found_offset, found_size)` for `size`
    bytes: the new range starts at `found_offset`; the rest `(offset, size)` stays free
    (a rest of size 0 is not inserted)."""
    return (found_offset + size, found_size - size)


def merge_free(
    offset: int, size: int, prev: tuple[int, int] | None, nxt: tuple[int, int] | None
) -> tuple[int, int]:
    """The tree frees `(offset, size)`: the free range it becomes, `(start, size)`, merged
    with the previous and the next descriptor when they are free (`(offset, size)`, else
    None), so that no two free descriptors are ever neighbours."""
    start, total = offset, size
    if nxt is not None:
        total += nxt[1]
    if prev is not None:
        start = prev[0]
        total += prev[1]
    return (start, total)


MAKE_ARRAY = "make array"
MAKE_TREE = "make tree"
RESERVE_ARRAY = "reserve in the array"
RESERVE_TREE = "reserve in the tree"
NEED_ALLOC = "need memory"


class Step(NamedTuple):
    """What `RangeAllocator.reserve_new` does next. With `NEED_ALLOC`, the `need_*`
    flags say which pre-allocations `ReserveNewNeedAlloc.make_alloc` must make."""

    action: str
    need_empty_array: bool = False
    need_new_tree: bool = False
    need_tree: bool = False


def reserve_step(
    kind: str, array_full: bool, has_empty_array: bool, has_new_tree: bool, has_tree: bool
) -> Step:
    """One turn of `reserve_new`'s retry loop, for the representation `kind` ("empty",
    "array", "tree") and the pre-allocations the caller brought (`has_*`).

    An empty allocator becomes an array (needing its `KVec`); a full array becomes a
    tree (needing the nodes to rebuild it, and asking at once for the nodes the tree's
    reservation will need, so that one round trip through `make_alloc` suffices).
    """
    if kind == "empty":
        if has_empty_array:
            return Step(MAKE_ARRAY)
        return Step(NEED_ALLOC, need_empty_array=True)
    if kind == "array":
        if not array_full:
            return Step(RESERVE_ARRAY)
        if has_new_tree:
            return Step(MAKE_TREE)
        return Step(NEED_ALLOC, need_new_tree=True, need_tree=True)
    if has_tree:
        return Step(RESERVE_TREE)
    return Step(NEED_ALLOC, need_tree=True)


def low_oneway_space(area: int, pid: int, held: Iterable[tuple[int, bool, int]]) -> bool:
    """Whether `pid` holds more than 50 oneway buffers or more than a quarter of the area.

    `held` lists the live ranges as `(size, is_oneway, pid)`.
    """
    total = 0
    count = 0
    for size, is_oneway, owner in held:
        # Branch-free (see the module docstring): `mine` is 0 or 1.
        mine = is_oneway & (owner == pid)
        total += size * mine
        count += mine
    return (count > SPAM_MAX_BUFFERS) | (total > area // 4)


def reserve_decision(
    area: int,
    free_oneway_space: int,
    size: int,
    is_oneway: bool,
    pid: int,
    offset: int | None,
    held: Iterable[tuple[int, bool, int]],
) -> Reservation | str:
    """Decide one `reserve_new`, for either representation.

    `offset` is where the representation would place the range (None: no gap fits);
    `held` lists the *other* live ranges as `(size, is_oneway, pid)`, and is only
    iterated when the spam check runs. The oneway budget is checked first and stored
    by the caller only on success. Spam detection runs *after* the insert: the new
    range counts among the sender's holdings (CVE-2026-43435: TreeRange checked before
    inserting, ArrayRange not at all). Returns the `Reservation`, or why it failed
    (`NO_ONEWAY_SPACE` or `NO_FREE_RANGE`, both ENOSPC).
    """
    if is_oneway:
        new_oneway_space = free_oneway_space - size
        if new_oneway_space < 0:
            return NO_ONEWAY_SPACE
    else:
        new_oneway_space = free_oneway_space
    if offset is None:
        return NO_FREE_RANGE
    spam = False
    if is_oneway and new_oneway_space < area // 10:
        spam = low_oneway_space(area, pid, _with_new(held, size, is_oneway, pid))
    return Reservation(offset, new_oneway_space, spam)


def _with_new(
    held: Iterable[tuple[int, bool, int]], size: int, is_oneway: bool, pid: int
) -> Iterable[tuple[int, bool, int]]:
    """The holdings after the insert: the other ranges, then the new one."""
    yield from held
    yield (size, is_oneway, pid)


def oneway_space_after_free(free_oneway_space: int, size: int, is_oneway: bool) -> int:
    """The oneway budget after a range of `size` bytes is freed."""
    # Branch-free (see the module docstring): only a oneway range gives its bytes back.
    return free_oneway_space + size * is_oneway
