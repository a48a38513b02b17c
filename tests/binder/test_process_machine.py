"""A state machine over a process's buffers: reserve, commit, free, abort, shrink.

The model is the set of live buffers, each held by the kernel (an `Allocation`) or by
userspace (committed), with the bytes written into it. After every step:

* the range allocator agrees with the model (ranges disjoint, free space and oneway
  space accounted), in whichever representation it is;
* every page a live buffer touches is Used, every other page Available or Free, and
  the LRU holds exactly the Available ones;
* every live buffer still holds its bytes, as userspace reads them.

`ENOSPC` must happen exactly when the model says no gap (or no oneway space) fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from binder.allocation import Allocation
from binder.range_alloc import TREE_THRESHOLD
from ownership.errors import ENOSPC, KernelError
from ownership.page import PAGE_SIZE
from ownership.warn import KernelWarning

from ..binder_harness import BinderWorld, Opened

MAP_SIZE = 16 * PAGE_SIZE


@dataclass
class Buf:
    size: int
    oneway: bool
    payload: bytes
    alloc: Allocation | None  # None while userspace holds it


class ProcessBuffersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = BinderWorld()
        self.o: Opened = self.world.open(map_size=MAP_SIZE)
        self.base = self.o.addr
        self.bufs: dict[int, Buf] = {}
        self.counter = 0
        self.kinds: set[str] = set()

    def _largest_gap(self) -> int:
        prev, best = 0, 0
        for ptr in sorted(self.bufs):
            off = ptr - self.base
            best = max(best, off - prev)
            prev = off + self.bufs[ptr].size
        return max(best, MAP_SIZE - prev)

    def _oneway_left(self) -> int:
        return MAP_SIZE // 2 - sum(b.size for b in self.bufs.values() if b.oneway)

    def _alloc(self, size: int, oneway: bool) -> None:
        fits = self._largest_gap() >= size and (not oneway or size <= self._oneway_left())
        self.counter += 1
        with self.o.current():
            try:
                a = self.o.proc.buffer_alloc(self.counter, size, oneway, self.o.task.pid).success()
            except KernelError as e:
                assert e.errno == ENOSPC and not fits, e
                return
            assert fits
            payload = bytes((self.counter + i) % 251 for i in range(min(size, 64)))
            a.write(size - len(payload), payload)
            self.bufs[a.ptr] = Buf(size, oneway, payload, a)

    @rule(size=st.integers(min_value=1, max_value=3 * PAGE_SIZE), oneway=st.booleans())
    def reserve(self, size: int, oneway: bool) -> None:
        self._alloc(size, oneway)

    @rule(size=st.sampled_from([8, 64, PAGE_SIZE // 8, PAGE_SIZE - 8]))
    def reserve_small(self, size: int) -> None:
        self._alloc(size, False)

    @precondition(lambda self: any(b.alloc is not None for b in self.bufs.values()))
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        ptr = data.draw(
            st.sampled_from(sorted(p for p, b in self.bufs.items() if b.alloc is not None))
        )
        a = self.bufs[ptr].alloc
        assert a is not None
        with self.o.current():
            a.keep_alive()
        self.bufs[ptr].alloc = None

    @precondition(lambda self: any(b.alloc is None for b in self.bufs.values()))
    @rule(data=st.data())
    def userspace_frees(self, data: st.DataObject) -> None:
        ptr = data.draw(st.sampled_from(sorted(p for p, b in self.bufs.items() if b.alloc is None)))
        with self.o.current():
            a = self.o.proc.buffer_get(ptr)
        assert a is not None and a.size == self.bufs[ptr].size
        self.bufs[ptr].alloc = a

    @precondition(lambda self: any(b.alloc is not None for b in self.bufs.values()))
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        ptr = data.draw(
            st.sampled_from(sorted(p for p, b in self.bufs.items() if b.alloc is not None))
        )
        a = self.bufs.pop(ptr).alloc
        assert a is not None
        with self.o.current():
            a.drop()

    @precondition(lambda self: any(b.alloc is None for b in self.bufs.values()))
    @rule(data=st.data())
    def abort_of_a_delivered_buffer_is_refused(self, data: st.DataObject) -> None:
        ptr = data.draw(st.sampled_from(sorted(p for p, b in self.bufs.items() if b.alloc is None)))
        # The range allocator says EPERM; the driver warns and changes nothing.
        with self.o.current(), pytest.warns(KernelWarning, match="failed to free"):
            self.o.proc.buffer_raw_free(ptr)

    @rule(n=st.integers(min_value=1, max_value=20))
    def shrink(self, n: int) -> None:
        before = self.world.reg.shrinker.count_objects()
        freed = self.world.kernel.shrink(n)
        assert freed == min(n, before)

    @invariant()
    def allocator_matches(self) -> None:
        with self.o.proc.inner.lock() as g:
            mapping = g.data.mapping
            assert mapping is not None
            alloc = mapping.alloc
            ranges = alloc.debug_ranges()
            self.kinds.add(alloc.kind)
            free_oneway = alloc.free_oneway_space()
            free = alloc.free_ranges()
        got = [(r.offset, r.size, r.state, r.is_oneway) for r in ranges]
        want = [
            (p - self.base, b.size, "reserved" if b.alloc is not None else "allocated", b.oneway)
            for p, b in sorted(self.bufs.items())
        ]
        assert got == want
        assert free_oneway == self._oneway_left()
        assert sum(s for _, s in free) + sum(b.size for b in self.bufs.values()) == MAP_SIZE

    @invariant()
    def page_states_match_live_buffers(self) -> None:
        used: set[int] = set()
        for p, b in self.bufs.items():
            off = p - self.base
            used.update(range(off // PAGE_SIZE, -(-(off + b.size) // PAGE_SIZE)))
        states = self.o.proc.pages.page_states()
        for i, s in enumerate(states):
            assert (s == "used") == (i in used), (i, s)
        assert self.world.reg.shrinker.count_objects() == states.count("available")

    @invariant()
    def contents_survive(self) -> None:
        with self.o.current():
            for p, b in self.bufs.items():
                n = len(b.payload)
                assert self.o.task.read_user(p + b.size - n, n) == b.payload

    def teardown(self) -> None:
        with self.o.current():
            for b in self.bufs.values():
                if b.alloc is not None:
                    b.alloc.drop()
        self.world.teardown()


class TreeBuffersMachine(ProcessBuffersMachine):
    """Starts with more than TREE_THRESHOLD buffers, so the tree is in use."""

    @initialize()
    def many_buffers(self) -> None:
        for _ in range(TREE_THRESHOLD + 1):
            self._alloc(64, False)
        with self.o.proc.inner.lock() as g:
            assert g.data.mapping is not None and g.data.mapping.alloc.kind == "tree"


_settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestProcessBuffersMachine = ProcessBuffersMachine.TestCase
TestProcessBuffersMachine.settings = _settings
TestTreeBuffersMachine = TreeBuffersMachine.TestCase
TestTreeBuffersMachine.settings = _settings
