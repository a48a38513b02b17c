"""Allocation failure injected at every allocation point of the memory layer.

One scenario (open, mmap, buffers enough to go from the array to the tree, pages
installed, written and read, freed, the process torn down) is run once to count its
allocations, then once per allocation point with exactly that allocation failing. Every
run must end in success or in a clean `ENOMEM` at the operation that allocated, and
leave nothing behind: every page back in the pool, every `Process` freed, the world
consistent.
"""

from __future__ import annotations

import pytest

from binder.allocation import Allocation
from binder.range_alloc import TREE_THRESHOLD
from ownership.alloc import allocation_count, fail_nth
from ownership.errors import ENOMEM, KernelError
from ownership.page import PAGE_SIZE

from ..binder_harness import BinderWorld


def scenario(w: BinderWorld) -> list[str]:
    """The steps that completed (an `ENOMEM` ends the scenario early)."""
    done: list[str] = []
    try:
        o = w.open("victim", map_size=64 * PAGE_SIZE)
        done.append("open+mmap")
        allocs: list[Allocation] = []
        with o.current():
            try:
                for i in range(TREE_THRESHOLD + 3):
                    new = o.proc.buffer_alloc(i, PAGE_SIZE + 16 * i, i % 2 == 1, o.task.pid)
                    allocs.append(new.success())
                    allocs[-1].write(0, f"buffer {i}".encode())
                    assert (
                        o.task.read_user(allocs[-1].ptr, len(f"buffer {i}"))
                        == f"buffer {i}".encode()
                    )
                done.append("buffers")
                kept = allocs.pop()
                kept.keep_alive()
                back = o.proc.buffer_get(kept.ptr)
                assert back is not None
                allocs.append(back)
                done.append("round trip")
            finally:
                for alloc in allocs:
                    alloc.drop()
        w.kernel.shrink(1000)
        w.close(o)
        done.append("close")
    except KernelError as e:
        assert e.errno == ENOMEM, f"expected a clean ENOMEM, got {e!r}"
        done.append("ENOMEM")
    return done


def test_the_scenario_runs_clean_and_counts_its_allocations() -> None:
    w = BinderWorld()
    before = allocation_count()
    assert scenario(w) == ["open+mmap", "buffers", "round trip", "close"]
    assert allocation_count() - before > TREE_THRESHOLD
    w.teardown()


def _points() -> int:
    w = BinderWorld()
    before = allocation_count()
    scenario(w)
    n = allocation_count() - before
    w.teardown()
    return n


@pytest.mark.parametrize("chunk", range(4))
def test_failure_at_every_allocation_point_is_clean(chunk: int) -> None:
    points = _points()
    failed_somewhere = 0
    for n in range(1 + chunk, points + 1, 4):
        w = BinderWorld()
        with fail_nth(n):
            steps = scenario(w)
        if steps[-1] == "ENOMEM":
            failed_somewhere += 1
        # Whatever happened, the teardown finds every page, process and reference.
        w.teardown()
    assert failed_somewhere > 0
