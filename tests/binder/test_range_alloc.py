"""The range allocator: both representations, upstream errnos, oneway space, NeedAlloc."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binder.range_alloc import (
    TREE_THRESHOLD,
    FreedRange,
    RangeAllocator,
    ReserveNewArgs,
    ReserveNewNeedAlloc,
    ReserveNewSuccess,
)
from binder.range_alloc.array import ArrayRangeAllocator, EmptyArrayAlloc
from binder.range_alloc.tree import FromArrayAllocs, ReserveNewTreeAlloc, TreeRangeAllocator
from ownership.alloc import KVec, allocation_count, fail_nth
from ownership.errors import (
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EPERM,
    AtomicSleepError,
    KernelError,
)
from ownership.page import PAGE_SIZE
from ownership.sync import SpinLock

AREA = 128 * 1024


def reserve(
    alloc: RangeAllocator[str], size: int, *, oneway: bool = False, pid: int = 1, debug_id: int = 0
) -> ReserveNewSuccess[str]:
    """`buffer_alloc`'s retry loop without the lock: allocate whatever is asked, retry."""
    args: ReserveNewArgs[str] = ReserveNewArgs(size, oneway, debug_id, pid)
    while True:
        res = alloc.reserve_new(args)
        if isinstance(res, ReserveNewSuccess):
            return res
        args = res.make_alloc()


def kind_of(alloc: RangeAllocator[str]) -> str:
    """The representation in use (a function, so checks are not narrowed statically)."""
    return alloc.kind


def errno_of(exc: pytest.ExceptionInfo[KernelError]) -> int:
    return exc.value.errno


# --- representations and the NeedAlloc protocol ------------------------------------


def test_empty_asks_for_the_array_then_reserves_at_zero() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    assert kind_of(alloc) == "empty"
    args: ReserveNewArgs[str] = ReserveNewArgs(100, False, 1, 7)
    res = alloc.reserve_new(args)
    assert isinstance(res, ReserveNewNeedAlloc)
    assert res.need_empty_array_alloc and not res.need_tree_alloc
    # Asking for memory changed nothing.
    assert kind_of(alloc) == "empty" and alloc.count_buffers() == 0
    ok = alloc.reserve_new(res.make_alloc())
    assert isinstance(ok, ReserveNewSuccess)
    assert ok.offset == 0 and kind_of(alloc) == "array" and alloc.count_buffers() == 1


def test_array_switches_to_tree_beyond_threshold_and_back_to_empty() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    offsets = [reserve(alloc, 64, debug_id=i).offset for i in range(TREE_THRESHOLD)]
    assert kind_of(alloc) == "array" and offsets == [64 * i for i in range(TREE_THRESHOLD)]
    args: ReserveNewArgs[str] = ReserveNewArgs(64)
    need = alloc.reserve_new(args)
    assert isinstance(need, ReserveNewNeedAlloc)
    assert need.need_new_tree_alloc and need.need_tree_alloc
    assert kind_of(alloc) == "array"
    ok = alloc.reserve_new(need.make_alloc())
    assert isinstance(ok, ReserveNewSuccess) and ok.offset == 64 * TREE_THRESHOLD
    assert kind_of(alloc) == "tree" and alloc.count_buffers() == TREE_THRESHOLD + 1
    # Every further reservation in the tree needs its three nodes.
    need2 = alloc.reserve_new(ReserveNewArgs(64))
    assert isinstance(need2, ReserveNewNeedAlloc) and need2.need_tree_alloc
    for off in [*offsets, 64 * TREE_THRESHOLD]:
        alloc.reservation_abort(off)
    assert kind_of(alloc) == "empty" and alloc.free_oneway_space() == AREA // 2


def test_unused_preallocations_come_back_for_freeing_outside_the_lock() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    args: ReserveNewArgs[str] = ReserveNewArgs(64)
    args.empty_array_alloc = EmptyArrayAlloc.try_new(TREE_THRESHOLD)
    args.tree_alloc = ReserveNewTreeAlloc.try_new()
    ok = alloc.reserve_new(args)
    assert isinstance(ok, ReserveNewSuccess)
    assert ok.unused_empty_array_alloc is None
    assert ok.unused_tree_alloc is args.tree_alloc


def test_array_places_at_end_then_first_fit_tree_places_best_fit() -> None:
    # The array: 0..100 A, 100..300 B, 300..450 C; free B, then a 50-byte range goes at
    # the end (it fits there), and one too big for the end goes into B's gap.
    alloc: RangeAllocator[str] = RangeAllocator(500)
    a = reserve(alloc, 100).offset
    b = reserve(alloc, 200).offset
    c = reserve(alloc, 150).offset
    assert (a, b, c) == (0, 100, 300)
    alloc.reservation_abort(b)
    assert reserve(alloc, 50).offset == 450
    assert reserve(alloc, 150).offset == 100

    # The tree: gaps of 300 (first) and 120 (later); best fit takes the 120 gap.
    tree: RangeAllocator[str] = RangeAllocator(4000)
    offs = [reserve(tree, s).offset for s in (300, 10, 120, 10, 5, 5, 5, 5, 5)]
    assert kind_of(tree) == "tree"
    tree.reservation_abort(offs[0])
    tree.reservation_abort(offs[2])
    assert reserve(tree, 100).offset == offs[2]


def test_tree_merges_free_neighbours() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(10 * 64)
    offs = [reserve(alloc, 64).offset for _ in range(10)]
    assert kind_of(alloc) == "tree"
    for off in (offs[3], offs[5], offs[4]):
        alloc.reservation_abort(off)
    # A 192-byte range fits only in the merged 3..6 gap.
    assert reserve(alloc, 192).offset == offs[3]
    with pytest.raises(KernelError) as e:
        reserve(alloc, 64)
    assert errno_of(e) == ENOSPC


# --- upstream error codes ------------------------------------------------------------


@pytest.mark.parametrize("fill", [1, TREE_THRESHOLD + 1], ids=["array", "tree"])
def test_state_machine_errnos(fill: int) -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    offs = [reserve(alloc, 256, debug_id=i).offset for i in range(fill)]
    off = offs[0]
    # Reserved: commit once; a second commit or a reserve_existing of a reserved range
    # is ENOENT.
    alloc.reservation_commit(off, "info")
    with pytest.raises(KernelError) as e:
        alloc.reservation_commit(off, "again")
    assert errno_of(e) == ENOENT
    # Allocated: userspace owns it, so aborting is EPERM.
    with pytest.raises(KernelError) as e:
        alloc.reservation_abort(off)
    assert errno_of(e) == EPERM
    assert alloc.reserve_existing(off) == (256, 0, "info")
    with pytest.raises(KernelError) as e:
        alloc.reserve_existing(off)
    assert errno_of(e) == ENOENT
    # Unknown offsets: commit and reserve_existing ENOENT, abort EINVAL.
    for bad in (off + 1, AREA, -PAGE_SIZE):
        with pytest.raises(KernelError) as e:
            alloc.reservation_commit(bad, None)
        assert errno_of(e) == ENOENT
        with pytest.raises(KernelError) as e:
            alloc.reserve_existing(bad)
        assert errno_of(e) == ENOENT
        with pytest.raises(KernelError) as e:
            alloc.reservation_abort(bad)
        assert errno_of(e) == EINVAL
    alloc.reservation_abort(off)
    with pytest.raises(KernelError) as e:
        alloc.reservation_abort(off)
    assert errno_of(e) == EINVAL


def test_empty_allocator_refuses_everything_with_einval() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    calls: list[Callable[[], object]] = [
        lambda: alloc.reservation_abort(0),
        lambda: alloc.reservation_commit(0, None),
        lambda: alloc.reserve_existing(0),
    ]
    for call in calls:
        with pytest.raises(KernelError) as e:
            call()
        assert errno_of(e) == EINVAL


def test_enospc_when_full_and_oversized() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    reserve(alloc, AREA)
    with pytest.raises(KernelError) as e:
        reserve(alloc, 1)
    assert errno_of(e) == ENOSPC
    other: RangeAllocator[str] = RangeAllocator(AREA)
    with pytest.raises(KernelError) as e:
        reserve(other, AREA + 1)
    assert errno_of(e) == ENOSPC


# --- oneway space and spam ------------------------------------------------------------


@pytest.mark.parametrize("fill", [0, TREE_THRESHOLD + 1], ids=["array", "tree"])
def test_oneway_space_is_half_the_area(fill: int) -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    for _ in range(fill):
        reserve(alloc, 8)
    assert alloc.free_oneway_space() == AREA // 2
    first = reserve(alloc, AREA // 4, oneway=True).offset
    assert alloc.free_oneway_space() == AREA // 4
    with pytest.raises(KernelError) as e:
        reserve(alloc, AREA // 4 + 1, oneway=True)
    assert errno_of(e) == ENOSPC
    # The failure stored nothing; a synchronous range of that size still fits.
    assert alloc.free_oneway_space() == AREA // 4
    reserve(alloc, AREA // 4 + 1)
    alloc.reservation_abort(first)
    assert alloc.free_oneway_space() == AREA // 2


SPAM_SEQUENCE = [
    # (size, pid): pid 2 takes more than a quarter of the area with oneway buffers.
    (AREA // 8, 1),
    (AREA // 8, 2),
    (AREA // 8 + 8, 2),
    (AREA // 16, 2),
    (AREA // 32, 1),
    (AREA // 64, 2),
]


def _run_spam(reserve_fn: Callable[[int, int], bool]) -> list[bool]:
    return [reserve_fn(size, pid) for size, pid in SPAM_SEQUENCE]


def test_oneway_spam_detection_identical_in_both_representations() -> None:
    array: ArrayRangeAllocator[str] = ArrayRangeAllocator(
        AREA, EmptyArrayAlloc.try_new(TREE_THRESHOLD)
    )
    # A tree converted from an empty array: one free range covering the area.
    tree: TreeRangeAllocator[str] = TreeRangeAllocator.from_array(
        AREA, KVec.new(), FromArrayAllocs.try_new(0)
    )

    def on_array(size: int, pid: int) -> bool:
        return array.reserve_new(0, size, True, pid)[1]

    def on_tree(size: int, pid: int) -> bool:
        return tree.reserve_new(0, size, True, pid, ReserveNewTreeAlloc.try_new())[1]

    flags_array = _run_spam(on_array)
    flags_tree = _run_spam(on_tree)
    assert flags_array == flags_tree
    # Only pid 2's reservations once oneway space is below a tenth of the area.
    assert flags_array == [False, False, False, True, False, True]
    assert array.free_oneway_space() == tree.free_oneway_space()


def test_oneway_spam_through_the_switching_allocator() -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    flags = [
        reserve(alloc, size, oneway=True, pid=pid).oneway_spam_detected
        for size, pid in SPAM_SEQUENCE
    ]
    assert flags == [False, False, False, True, False, True]


# --- FreedRange ---------------------------------------------------------------------------


def test_freed_range_interior_and_neighbours() -> None:
    assert FreedRange.interior_pages(0, PAGE_SIZE) == FreedRange(0, 1)
    assert FreedRange.interior_pages(100, PAGE_SIZE) == FreedRange(1, 1)
    alloc: RangeAllocator[str] = RangeAllocator(8 * PAGE_SIZE)
    a = reserve(alloc, PAGE_SIZE + 100).offset  # pages 0..1, ends inside page 1
    b = reserve(alloc, 2 * PAGE_SIZE).offset  # starts inside page 1, ends inside page 3
    # Freeing A: page 1 is shared with B, so only page 0 is freed.
    assert alloc.reservation_abort(a) == FreedRange(0, 1)
    # Freeing B now: nothing else touches pages 1..3.
    assert alloc.reservation_abort(b) == FreedRange(1, 4)


# --- allocation never under the spinlock ------------------------------------------------


def test_make_alloc_under_the_spinlock_is_an_atomic_sleep() -> None:
    inner: SpinLock[RangeAllocator[str]] = SpinLock(RangeAllocator(AREA), name="test.proc.inner")
    with inner.lock() as guard:
        res = guard.data.reserve_new(ReserveNewArgs(64))
        assert isinstance(res, ReserveNewNeedAlloc)
        with pytest.raises(AtomicSleepError) as e:
            res.make_alloc()  # The bug: allocating with GFP_KERNEL while holding the lock.
    assert e.value.rule == "atomic-sleep"
    report = str(e.value)
    assert report.count("test_range_alloc.py:") >= 2
    assert "test.proc.inner" in report
    # Nothing was reserved, and the lock was released cleanly.
    with inner.lock() as guard:
        assert kind_of(guard.data) == "empty"


def test_need_alloc_retry_loop_under_the_spinlock_is_clean() -> None:
    inner: SpinLock[RangeAllocator[str]] = SpinLock(RangeAllocator(AREA), name="test.proc.inner")
    args: ReserveNewArgs[str] = ReserveNewArgs(64)
    offsets = []
    for _ in range(TREE_THRESHOLD + 3):
        while True:
            with inner.lock() as guard:
                res = guard.data.reserve_new(args)
            if isinstance(res, ReserveNewSuccess):
                offsets.append(res.offset)
                args = ReserveNewArgs(64)
                break
            # The lock is released here: allocate, then re-lock and retry.
            args = res.make_alloc()
    assert offsets == [64 * i for i in range(TREE_THRESHOLD + 3)]


# --- allocation failure -----------------------------------------------------------------


def test_allocation_failure_at_every_point_is_a_clean_enomem() -> None:
    # Count the allocations a reservation sequence makes, then fail each in turn.
    def scenario(alloc: RangeAllocator[str]) -> list[int]:
        return [reserve(alloc, 32).offset for _ in range(TREE_THRESHOLD + 2)]

    before = allocation_count()
    expected = scenario(RangeAllocator(AREA))
    points = allocation_count() - before
    assert points > TREE_THRESHOLD
    for n in range(1, points + 1):
        alloc: RangeAllocator[str] = RangeAllocator(AREA)
        done: list[int] = []
        with fail_nth(n), pytest.raises(KernelError) as e:
            for _ in range(TREE_THRESHOLD + 2):
                done.append(reserve(alloc, 32).offset)
        assert errno_of(e) == ENOMEM
        # Everything reserved before the failure is intact; nothing half-made.
        assert [r.offset for r in alloc.debug_ranges()] == done
        assert done == expected[: len(done)]
        for off in done:
            alloc.reservation_abort(off)
        assert alloc.count_buffers() == 0 and alloc.free_oneway_space() == AREA // 2


# --- bad input ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(size=st.one_of(st.integers(max_value=0), st.integers(min_value=2**64, max_value=2**70)))
def test_bad_sizes(size: int) -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    with pytest.raises(KernelError) as e:
        reserve(alloc, size)
    assert errno_of(e) in (EINVAL, ENOSPC)
    assert alloc.count_buffers() == 0


@settings(max_examples=100, deadline=None)
@given(bad=st.one_of(st.floats(), st.text(), st.booleans(), st.none(), st.binary()))
def test_wrong_types_are_type_errors(bad: object) -> None:
    alloc: RangeAllocator[str] = RangeAllocator(AREA)
    reserve(alloc, 64)
    with pytest.raises(TypeError):
        alloc.reserve_new(ReserveNewArgs(bad))  # type: ignore[arg-type]
    for call in (alloc.reservation_abort, alloc.reserve_existing):
        with pytest.raises(TypeError):
            call(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        alloc.reservation_commit(bad, None)  # type: ignore[arg-type]
    assert alloc.count_buffers() == 1
