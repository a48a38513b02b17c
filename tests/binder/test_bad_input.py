"""Bad input to the memory layer: errnos where the kernel returns them, else `TypeError`.

Sizes that are not positive are `EINVAL`, sizes that cannot fit are `ENOSPC`, user
pointers that are not buffers give nothing back, offsets outside a buffer are
`EFAULT`, and values of the wrong type are `TypeError`: never an internal crash, and
never a change of state.
"""

from __future__ import annotations

import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.errors import EFAULT, EINVAL, ENOSPC, KernelError
from ownership.page import PAGE_SIZE
from ownership.warn import KernelWarning

from ..binder_harness import KUNIT_MMAP_SIZE, BinderWorld

wrong_types = st.one_of(
    st.floats(),
    st.text(max_size=3),
    st.none(),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
)
big_or_negative = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=KUNIT_MMAP_SIZE + 1, max_value=2**64 + 5),
    st.integers(min_value=2**64, max_value=2**80),
)


def _state(world: BinderWorld) -> tuple[object, ...]:
    o = world.opened[0]
    with o.proc.inner.lock() as g:
        m = g.data.mapping
        assert m is not None
        return (
            tuple(m.alloc.debug_ranges()),
            m.alloc.free_oneway_space(),
            tuple(o.proc.pages.page_states()),
        )


def test_bad_sizes_and_pointers(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        keep = o.proc.buffer_alloc(1, 64, False, o.task.pid)
    before = _state(world)

    @settings(max_examples=150, deadline=None)
    @given(
        size=big_or_negative,
        oneway=st.booleans(),
        ptr=st.integers(min_value=-(2**70), max_value=2**70),
    )
    def check(size: int, oneway: bool, ptr: int) -> None:
        with o.current():
            try:
                o.proc.buffer_alloc(2, size, oneway, o.task.pid)
            except KernelError as e:
                assert e.errno in (EINVAL, ENOSPC)
                assert (e.errno == EINVAL) == (size <= 0)
            else:
                raise AssertionError(f"buffer_alloc({size}) succeeded")
            if ptr != keep.ptr:
                assert o.proc.buffer_get(ptr) is None
        assert _state(world) == before

    check()
    with o.current():
        keep.drop()


def test_wrong_types_are_type_errors(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid)
    before = _state(world)

    @settings(max_examples=100, deadline=None)
    @given(bad=wrong_types)
    def check(bad: object) -> None:
        with o.current():
            for call in (
                lambda: o.proc.buffer_alloc(2, bad, False, o.task.pid),  # type: ignore[arg-type]
                lambda: o.proc.buffer_get(bad),  # type: ignore[arg-type]
                lambda: o.proc.buffer_raw_free(bad),  # type: ignore[arg-type]
                lambda: a.read(bad, 1),  # type: ignore[arg-type]
                lambda: a.read(0, bad),  # type: ignore[arg-type]
                lambda: a.write(0, bad if not isinstance(bad, bytes) else bad.decode("latin-1")),  # type: ignore[arg-type]
            ):
                try:
                    call()
                except TypeError:
                    continue
                raise AssertionError(f"no TypeError for {bad!r}")
        assert _state(world) == before

    check()
    with o.current():
        a.drop()


def test_offsets_outside_a_buffer_are_efault(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, PAGE_SIZE + 3, False, o.task.pid)

    @settings(max_examples=150, deadline=None)
    @given(
        off=st.integers(min_value=-(2**65), max_value=2**65),
        n=st.integers(min_value=0, max_value=2 * PAGE_SIZE),
    )
    def check(off: int, n: int) -> None:
        inside = 0 <= off and off + n <= a.size
        with o.current():
            try:
                data = a.read(off, n)
            except KernelError as e:
                assert e.errno == EFAULT and not inside
            else:
                assert inside and len(data) == n

    check()
    with o.current():
        a.drop()


def test_freeing_a_pointer_that_is_no_buffer_warns_and_changes_nothing(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid)
    before = _state(world)
    with o.current():
        for ptr in (a.ptr + 8, o.addr + KUNIT_MMAP_SIZE, o.addr - PAGE_SIZE):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                o.proc.buffer_raw_free(ptr)
            assert all(issubclass(w.category, KernelWarning) for w in caught)
    assert _state(world) == before
    with o.current():
        a.drop()
