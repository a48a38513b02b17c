"""The binder allocator KUnit test, ported (drivers/android/tests/binder_alloc_kunit.c).

`binder_alloc_exhaustive_test` places 5 buffers so that each buffer's end falls in one
of 5 alignment classes relative to the previous end (same page or next page or the one
after, page-aligned or not), at the front of the mapping or pushed to its back, and
frees them in every one of the 5! orders: 5^5 x 2 x 120 = 750,000 runs. Each run:

1. allocates the 5 buffers: every page a buffer touches must be present and off the
   LRU (Used);
2. frees them in the run's order: every page up to the last buffer's end must be on
   the LRU (Available);
3. allocates them again: the pages come back from the LRU (it must be empty after);
4. frees them again, checking as in 2;
5. drains the LRU with the shrinker's walk until it is empty: every page must be gone
   (Free).

This module is the test body, as the C file is: it runs against a `Process` whose
mapping the caller set up (KUnit: `kunit_attach_mm` and `kunit_vm_mmap` of 128 KiB),
with the calling thread running as that process. `python -m binder alloc-exhaustive`
runs all 750,000 runs; the test suite runs a deterministic sample (`select`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ownership.errors import KernelError
from ownership.page import PAGE_SIZE

from .allocation import Allocation
from .page_range import rust_shrink_free_page
from .process import Process

__all__ = [
    "BINDER_MMAP_SIZE",
    "BUFFER_MIN_SIZE",
    "BUFFER_NUM",
    "LOOP_END",
    "TOTAL_EXHAUSTIVE_CASES",
    "ExhaustiveResult",
    "TestCase",
    "gen_buf_offsets",
    "run_exhaustive",
]

BINDER_MMAP_SIZE = 128 * 1024
BUFFER_NUM = 5
BUFFER_MIN_SIZE = PAGE_SIZE // 8
# 5^5 alignment combinations * 2 places to share pages * 5! free sequences.
TOTAL_EXHAUSTIVE_CASES = 3125 * 2 * 120

(
    SAME_PAGE_UNALIGNED,
    SAME_PAGE_ALIGNED,
    NEXT_PAGE_UNALIGNED,
    NEXT_PAGE_ALIGNED,
    NEXT_NEXT_UNALIGNED,
) = range(5)
LOOP_END = 5
ALIGN_NAMES = ("SP_UNALIGNED", "SP_ALIGNED", "NP_UNALIGNED", "NP_ALIGNED", "NN_UNALIGNED")

FREE_SEQUENCES: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(BUFFER_NUM)))
"""The 5! free orders, in the order the C test's `permute_frees` generates them."""


def _page_align(n: int) -> int:
    return -(-n // PAGE_SIZE) * PAGE_SIZE


def gen_buf_offsets() -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every `(end_offsets, alignments)` of 5 buffers, in the C test's order."""

    def rec(
        index: int, ends: list[int], aligns: list[int]
    ) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
        if index == BUFFER_NUM:
            yield (tuple(ends), tuple(aligns))
            return
        end = ends[index - 1] if index else 0
        for align in range(LOOP_END):
            if align % 2:
                end = _page_align(end)
            else:
                end += BUFFER_MIN_SIZE
            ends.append(end)
            aligns.append(align)
            yield from rec(index + 1, ends, aligns)
            ends.pop()
            aligns.pop()

    yield from rec(0, [], [])


@dataclass(frozen=True)
class TestCase:
    """One run: the buffer sizes, where they share pages, and the free order."""

    sizes: tuple[int, ...]
    front_pages: bool
    free_sequence: tuple[int, ...]
    alignments: tuple[int, ...]
    end: int

    def describe(self) -> str:
        aligns = "".join(f"[ {i}:{ALIGN_NAMES[a]} ]" for i, a in enumerate(self.alignments))
        seq = "".join(f"[{i}]" for i in self.free_sequence)
        return f"{'front' if self.front_pages else 'back '} - {aligns} - {seq}"


def _layouts(buffer_size: int) -> Iterator[tuple[tuple[int, ...], bool, tuple[int, ...], int]]:
    """`(sizes, front_pages, alignments, end)` of every layout, in the C test's order."""
    for ends, aligns in gen_buf_offsets():
        front = tuple(e - (ends[i - 1] if i else 0) for i, e in enumerate(ends))
        back = list(reversed(front))
        back[0] += buffer_size - ends[-1]
        yield (front, True, aligns, ends[-1])
        yield (tuple(back), False, aligns, buffer_size)


def all_cases(buffer_size: int = BINDER_MMAP_SIZE) -> Iterator[TestCase]:
    """The 750,000 runs, in the C test's order (`gen_buf_offsets` -> `gen_buf_sizes`)."""
    for sizes, front_pages, aligns, end in _layouts(buffer_size):
        for seq in FREE_SEQUENCES:
            yield TestCase(sizes, front_pages, seq, aligns, end)


@dataclass
class ExhaustiveResult:
    """The outcome of a batch of runs."""

    runs: int = 0
    failures: int = 0
    failed_cases: list[str] = field(default_factory=list)

    def ok(self, expected_runs: int) -> bool:
        return self.failures == 0 and self.runs == expected_runs


class _Runner:
    """The per-run checks of the C test, against one process's mapping."""

    def __init__(self, proc: Process, pid: int) -> None:
        self.proc = proc
        self.pid = pid
        self.pages = proc.pages
        self.lru = proc.pages.shrinker.list_lru
        info = proc.mapping_info()
        if info is None:
            raise ValueError("the process has no binder mapping")
        self.base, self.buffer_size = info
        self.num_pages = self.buffer_size // PAGE_SIZE
        self.errors: list[str] = []

    def check_buffer_pages_allocated(self, alloc: Allocation, size: int) -> bool:
        start = (alloc.ptr - self.base) // PAGE_SIZE
        end = _page_align(alloc.ptr - self.base + size) // PAGE_SIZE
        for i, state in enumerate(self.pages.page_states(start, end), start):
            if state != "used":
                self.errors.append(
                    f"expect alloc but is {'lru' if state == 'available' else 'free'} at page "
                    f"index {i}"
                )
                return False
        return True

    def alloc_buf(self, sizes: tuple[int, ...], allocs: list[Allocation | None]) -> int:
        failures = 0
        for i in range(BUFFER_NUM):
            try:
                a: Allocation = self.proc.buffer_alloc(0, sizes[i], False, self.pid)
            except KernelError as e:
                # The C test counts a failed allocation (`IS_ERR`); a violation propagates.
                self.errors.append(f"buffer {i} of {sizes[i]} bytes: {e}")
                allocs[i] = None
                failures += 1
                continue
            allocs[i] = a
            if not self.check_buffer_pages_allocated(a, sizes[i]):
                failures += 1
        return failures

    def free_buf(self, allocs: list[Allocation | None], seq: tuple[int, ...], end: int) -> int:
        for i in seq:
            a = allocs[i]
            if a is not None:
                a.drop()
                allocs[i] = None
        failures = 0
        for i, state in enumerate(self.pages.page_states(0, (end - 1) // PAGE_SIZE + 1)):
            if state != "available":
                self.errors.append(
                    f"expect lru but is {'alloc' if state == 'used' else 'free'} at page index {i}"
                )
                failures += 1
        return failures

    def free_page(self) -> int:
        while True:
            count = self.lru.count()
            if not count:
                break
            self.lru.walk(rust_shrink_free_page, count)
        failures = 0
        for i, state in enumerate(self.pages.page_states()):
            if state != "free":
                self.errors.append(
                    f"expect free but is {'alloc' if state == 'used' else 'lru'} at page index {i}"
                )
                failures += 1
        return failures

    def run(self, tc: TestCase) -> bool:
        """`binder_alloc_test_alloc_free`: True if the run failed."""
        allocs: list[Allocation | None] = [None] * BUFFER_NUM
        failed = False
        try:
            failed |= self.alloc_buf(tc.sizes, allocs) > 0
            failed |= self.free_buf(allocs, tc.free_sequence, tc.end) > 0
            # Allocate from the LRU.
            failed |= self.alloc_buf(tc.sizes, allocs) > 0
            if self.lru.count():
                self.errors.append(
                    "lru list should be empty after reallocation but still has "
                    f"{self.lru.count()} pages"
                )
                failed = True
            failed |= self.free_buf(allocs, tc.free_sequence, tc.end) > 0
            failed |= self.free_page() > 0
        finally:
            for a in allocs:
                if a is not None:
                    a.drop()
        return failed


def run_exhaustive(
    proc: Process,
    pid: int,
    *,
    select: Callable[[int], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_reported: int = 20,
    progress_every: int = 10_000,
) -> ExhaustiveResult:
    """Run every case (or those whose index `select` accepts) against `proc`'s mapping.

    The calling thread must run as the process (`task.as_current()`). `progress(done,
    failures)` is called every `progress_every` runs.
    """
    runner = _Runner(proc, pid)
    result = ExhaustiveResult()
    index = -1
    for sizes, front_pages, aligns, end in _layouts(runner.buffer_size):
        for seq in FREE_SEQUENCES:
            index += 1
            if select is None or select(index):
                tc = TestCase(sizes, front_pages, seq, aligns, end)
                _one(runner, result, index, tc, progress, max_reported, progress_every)
    return result


def _one(
    runner: _Runner,
    result: ExhaustiveResult,
    index: int,
    tc: TestCase,
    progress: Callable[[int, int], None] | None,
    max_reported: int,
    progress_every: int = 10_000,
) -> None:
    """Run case `index` and account for it in `result`."""
    runner.errors.clear()
    failed = runner.run(tc)
    result.runs += 1
    if failed:
        result.failures += 1
        if len(result.failed_cases) < max_reported:
            result.failed_cases.append(
                f"case {index}: [FAILED] | {tc.describe()}: {'; '.join(runner.errors)}"
            )
    if progress is not None and result.runs % progress_every == 0:
        progress(result.runs, result.failures)
