"""The exhaustive binder_alloc KUnit case: its enumeration, and a deterministic sample.

The full 750,000 runs are `python -m binder alloc-exhaustive`; here every 1009th run
(a prime stride, so the sample walks through layouts, front/back placement and free
orders alike) runs with the checks on, and a deliberately broken page range shows the
checks of a run are not vacuous.
"""

from __future__ import annotations

from collections import Counter

import pytest

from binder.alloc_kunit import (
    BINDER_MMAP_SIZE,
    BUFFER_MIN_SIZE,
    BUFFER_NUM,
    FREE_SEQUENCES,
    TOTAL_EXHAUSTIVE_CASES,
    all_cases,
    gen_buf_offsets,
    run_exhaustive,
)
from binder.page_range import ShrinkablePageRange
from binder.process import Process
from ownership.page import PAGE_SIZE

from ..binder_harness import BinderWorld

SAMPLE_STRIDE = 1009


def test_enumeration_matches_the_c_test() -> None:
    layouts = list(gen_buf_offsets())
    assert len(layouts) == 5**5
    assert len(FREE_SEQUENCES) == 120 and FREE_SEQUENCES[0] == (0, 1, 2, 3, 4)
    # The first layout: every buffer ends BUFFER_MIN_SIZE after the previous one.
    assert layouts[0][0] == tuple(BUFFER_MIN_SIZE * (i + 1) for i in range(BUFFER_NUM))
    # The last: each end is two pages and a bit after the previous one (NEXT_NEXT_UNALIGNED).
    ends, aligns = layouts[-1]
    assert aligns == (4,) * BUFFER_NUM
    assert ends[0] == 2 * PAGE_SIZE + BUFFER_MIN_SIZE
    assert ends[-1] <= BINDER_MMAP_SIZE
    n = 0
    placement: Counter[bool] = Counter()
    for tc in all_cases():
        n += 1
        placement[tc.front_pages] += 1
        assert sum(tc.sizes) == (tc.end if tc.front_pages else BINDER_MMAP_SIZE)
        assert all(s >= BUFFER_MIN_SIZE for s in tc.sizes)
    assert n == TOTAL_EXHAUSTIVE_CASES == 750_000
    assert placement[True] == placement[False] == 375_000


def test_exhaustive_sample_passes(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        result = run_exhaustive(o.proc, o.task.pid, select=lambda i: i % SAMPLE_STRIDE == 0)
    assert result.runs == len(range(0, TOTAL_EXHAUSTIVE_CASES, SAMPLE_STRIDE))
    assert result.failures == 0, result.failed_cases
    # Every run drained the shrinker: nothing is left on the LRU or mapped.
    assert set(o.proc.pages.page_states()) == {"free"}
    assert world.reg.shrinker.count_objects() == 0


class _ForgetfulRange(ShrinkablePageRange):
    """A broken page range: it forgets to make the last page of a freed range Available."""

    def stop_using_range(self, start: int, end: int) -> None:
        super().stop_using_range(start, end - 1)


class _ForgetfulProcess(Process):
    page_range_type = _ForgetfulRange


@pytest.mark.parametrize("stride", [4999])
def test_a_broken_page_range_fails_the_runs(stride: int) -> None:
    w = BinderWorld(process_type=_ForgetfulProcess)
    o = w.open()
    with o.current():
        result = run_exhaustive(o.proc, o.task.pid, select=lambda i: i % stride == 0)
    assert result.runs > 0 and result.failures == result.runs
    assert any("expect lru but is alloc" in c for c in result.failed_cases)
    w.teardown()
