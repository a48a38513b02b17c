"""Bad input never crashes the model or corrupts the world (property tests).

Unaligned, negative, wrapping or over-64-bit addresses and lengths, unknown flag bits and
wrong types give `KernelError(EINVAL)` (or the errno the kernel returns) or a clear
`TypeError`; afterwards the world is consistent and still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, VBox
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    USIZE_MAX,
    Kernel,
)
from ownership.errors import KernelError, VmaFlagError
from ownership.mm import MmWithUser
from ownership.page import Page, page_align
from ownership.task import current
from ownership.uaccess import UserSlice
from ownership.unsafe import unsafe

from .drivers import ScratchDevice

SPECIAL = [
    0,
    1,
    PAGE_SIZE - 1,
    PAGE_SIZE,
    PAGE_SIZE + 1,
    TASK_SIZE,
    TASK_SIZE + 1,
    USIZE_MAX,
    USIZE_MAX + 1,
    -1,
    -PAGE_SIZE,
    1 << 70,
]
INTS = st.one_of(st.sampled_from(SPECIAL), st.integers(min_value=-(2**66), max_value=2**66))
JUNK = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
ARGS = st.one_of(INTS, INTS, INTS, JUNK)

pytestmark = pytest.mark.filterwarnings("ignore::ownership.warn.KernelWarning")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _world() -> tuple[Kernel, Any, int]:
    k = Kernel(pages_per_node=512)
    k.register_miscdevice("scratch", ScratchDevice())
    p = k.spawn_process("fuzz")
    with p.as_current():
        base = p.mmap(None, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    return k, p, base


def _expected(e: BaseException) -> bool:
    return isinstance(e, (KernelError, TypeError, VmaFlagError))


def _still_works(k: Kernel, p: Any, base: int) -> None:
    assert not k.check_consistency(), k.check_consistency()
    with p.as_current():
        a = p.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write_user(a, b"ok")
        assert p.read_user(a, 2) == b"ok"
        p.munmap(a, PAGE_SIZE)


@SETTINGS
@given(
    call=st.sampled_from(
        ["mmap", "munmap", "mprotect", "madvise", "read_user", "write_user", "userfaultfd_register"]
    ),
    a=ARGS,
    b=ARGS,
    c=ARGS,
    d=ARGS,
)
def test_syscalls_with_bad_arguments(call: str, a: Any, b: Any, c: Any, d: Any) -> None:
    k, p, base = _world()
    with p.as_current():
        try:
            if call == "mmap":
                p.mmap(None, a, b, c if isinstance(c, int) else MAP_PRIVATE | MAP_ANONYMOUS, addr=d)
            elif call == "munmap":
                p.munmap(a, b)
            elif call == "mprotect":
                p.mprotect(a if not isinstance(a, int) else base + a, b, c)
            elif call == "madvise":
                p.madvise(base if not isinstance(a, int) else a, b, c)
            elif call == "read_user":
                p.read_user(a, b if not isinstance(b, int) else b % 10_000)
            elif call == "write_user":
                p.write_user(a, b"xyz" if isinstance(b, int) else b)
            else:
                p.userfaultfd_register(a, b, c)
        except BaseException as e:
            assert _expected(e), repr(e)
    _still_works(k, p, base)


@SETTINGS
@given(addr=ARGS, size=ARGS, value=ARGS, off=ARGS, n=ARGS)
def test_rust_api_with_bad_arguments(addr: Any, size: Any, value: Any, off: Any, n: Any) -> None:
    k, p, base = _world()
    with p.as_current():
        f = p.open("scratch")
        dev_addr = p.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
        f.close()
        mm = current().mm()
        assert isinstance(mm, MmWithUser)
        page = Page.alloc_page(GFP_KERNEL)

        def lookup() -> object:
            with mm.mmap_read_lock() as guard:
                vma = guard.vma_lookup(addr)
                return None if vma is None else vma.start()

        calls: list[Callable[[], object]] = [
            lookup,
            lambda: mm.lock_vma_under_rcu(addr),
            lambda: page_align(addr),
            lambda: UserSlice(addr, size).reader().read_raw(1),
            lambda: VBox.new_zeroed(
                size if not isinstance(size, int) else size % (1 << 40), GFP_ATOMIC
            ).drop(),
        ]
        for call in calls:
            try:
                got = call()
                if isinstance(got, MmWithUser):
                    pass
                elif got is not None and hasattr(got, "drop"):
                    got.drop()
            except BaseException as e:
                assert _expected(e), repr(e)
        with mm.mmap_write_lock() as wguard:
            for target in (base, dev_addr):
                vma = wguard.vma_lookup(target)
                assert vma is not None
                before = vma.flags()
                fns: list[Callable[[], object]] = [
                    lambda v=vma: v.zap_page_range_single(addr, size),  # type: ignore[misc]
                    lambda v=vma: v.set_flags(value),  # type: ignore[misc]
                ]
                for fn in fns:
                    try:
                        fn()
                    except BaseException as e:
                        assert _expected(e), repr(e)
                assert vma.flags() == before or not isinstance(value, int) or vma.flags() == value
        with mm.mmap_read_lock() as rguard:
            ref = rguard.vma_lookup(dev_addr)
            assert ref is not None
            mixed = ref.as_mixedmap_vma()
            assert mixed is not None
            try:
                mixed.vm_insert_page(addr, page)
            except BaseException as e:
                assert _expected(e), repr(e)
        with unsafe("SAFETY: the page is private to this example"):
            raw_calls: list[Callable[[], object]] = [
                lambda: page.read_raw(off, n),
                lambda: page.fill_zero_raw(off, n),
                lambda: page.write_raw(b"\1" * 8, off, n),
            ]
            for fn2 in raw_calls:
                try:
                    fn2()
                except BaseException as e:
                    assert _expected(e), repr(e)
        page.drop()
        p.munmap(dev_addr, 2 * PAGE_SIZE)
    _still_works(k, p, base)
