"""Hypothesis state machines over the range allocator, for both representations.

The model is the set of live ranges with their states. After every step the
allocator must agree with it: ranges disjoint and inside the area, the free gaps
exactly the complement, the oneway budget `size / 2` minus the live oneway ranges,
the tree's two indexes consistent and its free ranges merged. Each errno is checked
against the model (`ENOSPC` exactly when no gap fits or the oneway budget is short),
and each `FreedRange` against the pages no remaining range touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from binder.range_alloc import (
    TREE_THRESHOLD,
    RangeAllocator,
    ReserveNewArgs,
    ReserveNewSuccess,
)
from ownership.errors import EINVAL, ENOENT, ENOSPC, EPERM, KernelError
from ownership.page import PAGE_SIZE

AREA = 16 * PAGE_SIZE

sizes = st.one_of(
    st.integers(min_value=1, max_value=3 * PAGE_SIZE),
    st.sampled_from([PAGE_SIZE // 8, PAGE_SIZE, 2 * PAGE_SIZE, PAGE_SIZE - 8, PAGE_SIZE + 8]),
)


@dataclass
class Live:
    size: int
    allocated: bool
    oneway: bool
    pid: int
    debug_id: int
    data: str | None = None


def pages_touched(offset: int, size: int) -> set[int]:
    return set(range(offset // PAGE_SIZE, -(-(offset + size) // PAGE_SIZE)))


class RangeAllocatorMachine(RuleBasedStateMachine):
    """Reserve, commit, reserve_existing and abort against a model of the live ranges."""

    max_live: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.alloc: RangeAllocator[str] = RangeAllocator(AREA)
        self.live: dict[int, Live] = {}
        self.next_id = 0
        self.kinds_seen: set[str] = set()

    def _reserve(self, size: int, oneway: bool, pid: int) -> int:
        self.next_id += 1
        args: ReserveNewArgs[str] = ReserveNewArgs(size, oneway, self.next_id, pid)
        while True:
            res = self.alloc.reserve_new(args)
            if isinstance(res, ReserveNewSuccess):
                return res.offset
            args = res.make_alloc()

    def _largest_gap(self) -> int:
        ends = sorted((off, off + r.size) for off, r in self.live.items())
        prev, best = 0, 0
        for start, end in ends:
            best = max(best, start - prev)
            prev = end
        return max(best, AREA - prev)

    def _oneway_free(self) -> int:
        return AREA // 2 - sum(r.size for r in self.live.values() if r.oneway)

    @rule(size=sizes, oneway=st.booleans(), pid=st.integers(min_value=1, max_value=3))
    def reserve_new(self, size: int, oneway: bool, pid: int) -> None:
        if self.max_live is not None and len(self.live) >= self.max_live:
            return
        fits = self._largest_gap() >= size and (not oneway or size <= self._oneway_free())
        try:
            off = self._reserve(size, oneway, pid)
        except KernelError as e:
            assert e.errno == ENOSPC and not fits
            return
        assert fits
        for o, r in self.live.items():
            assert off + size <= o or o + r.size <= off, "overlapping ranges"
        assert 0 <= off and off + size <= AREA
        self.live[off] = Live(size, False, oneway, pid, self.next_id)

    @precondition(lambda self: any(not r.allocated for r in self.live.values()))
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        off = data.draw(st.sampled_from(sorted(o for o, r in self.live.items() if not r.allocated)))
        info = f"info-{off}"
        self.alloc.reservation_commit(off, info)
        self.live[off].allocated = True
        self.live[off].data = info

    @precondition(lambda self: any(r.allocated for r in self.live.values()))
    @rule(data=st.data())
    def reserve_existing(self, data: st.DataObject) -> None:
        off = data.draw(st.sampled_from(sorted(o for o, r in self.live.items() if r.allocated)))
        r = self.live[off]
        assert self.alloc.reserve_existing(off) == (r.size, r.debug_id, r.data)
        r.allocated = False
        r.data = None

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        off = data.draw(st.sampled_from(sorted(self.live)))
        r = self.live[off]
        if r.allocated:
            with pytest.raises(KernelError) as e:
                self.alloc.reservation_abort(off)
            assert e.value.errno == EPERM
            return
        freed = self.alloc.reservation_abort(off)
        del self.live[off]
        still_used: set[int] = set()
        for o, other in self.live.items():
            still_used |= pages_touched(o, other.size)
        expected = pages_touched(off, r.size) - still_used
        assert set(range(freed.start_page_idx, freed.end_page_idx)) == expected

    @rule(data=st.data())
    def wrong_state_calls(self, data: st.DataObject) -> None:
        """Calls on offsets in the wrong state fail with upstream's errno, changing nothing."""
        starts = {o for o in self.live}
        off = data.draw(st.integers(min_value=0, max_value=AREA).filter(lambda o: o not in starts))
        if self.alloc.kind == "empty":
            expected_missing = (EINVAL, EINVAL, EINVAL)
        else:
            expected_missing = (ENOENT, ENOENT, EINVAL)
        calls: list[Callable[[], object]] = [
            lambda: self.alloc.reservation_commit(off, None),
            lambda: self.alloc.reserve_existing(off),
            lambda: self.alloc.reservation_abort(off),
        ]
        for call, want in zip(calls, expected_missing):
            with pytest.raises(KernelError) as e:
                call()
            assert e.value.errno == want
        for o, r in self.live.items():
            with pytest.raises(KernelError) as e:
                if r.allocated:
                    self.alloc.reservation_commit(o, None)
                else:
                    self.alloc.reserve_existing(o)
            assert e.value.errno == ENOENT

    @invariant()
    def matches_model(self) -> None:
        alloc = self.alloc
        self.kinds_seen.add(alloc.kind)
        got = [
            (r.offset, r.size, r.state == "allocated", r.is_oneway, r.pid)
            for r in alloc.debug_ranges()
        ]
        want = [(o, r.size, r.allocated, r.oneway, r.pid) for o, r in sorted(self.live.items())]
        assert got == want
        assert alloc.count_buffers() == len(self.live)
        assert alloc.free_oneway_space() == self._oneway_free()
        # The free gaps are exactly the complement of the live ranges.
        free = alloc.free_ranges()
        assert sum(s for _, s in free) + sum(r.size for r in self.live.values()) == AREA
        for i in range(len(free) - 1):
            assert free[i][0] + free[i][1] < free[i + 1][0], "adjacent free ranges not merged"
        if alloc.kind == "array":
            assert len(self.live) <= TREE_THRESHOLD
        tree = alloc.tree_representation()
        if tree is not None:
            assert not tree.is_empty()
            assert tree.free_tree.keys() == sorted((s, o) for o, s in free)
        if alloc.kind == "empty":
            assert not self.live


class ArrayRangeMachine(RangeAllocatorMachine):
    """Never more than TREE_THRESHOLD live ranges: the array representation only."""

    max_live = TREE_THRESHOLD

    def teardown(self) -> None:
        assert "tree" not in self.kinds_seen


class TreeRangeMachine(RangeAllocatorMachine):
    """Starts beyond the threshold, so the tree is in use (and may empty back)."""

    @initialize(n=st.integers(min_value=TREE_THRESHOLD + 1, max_value=TREE_THRESHOLD + 4))
    def fill(self, n: int) -> None:
        for _ in range(n):
            off = self._reserve(PAGE_SIZE // 4, False, 9)
            self.live[off] = Live(PAGE_SIZE // 4, False, False, 9, self.next_id)
        assert self.alloc.kind == "tree"


_settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestArrayRangeMachine = ArrayRangeMachine.TestCase
TestArrayRangeMachine.settings = _settings
TestTreeRangeMachine = TreeRangeMachine.TestCase
TestTreeRangeMachine.settings = _settings
