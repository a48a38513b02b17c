"""Rule 1: a `VmAreaRef` is usable only while the mmap read lock or its VMA read lock is held."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.borrow import Lifetime
from ownership.errors import LifetimeError, UnsafeError
from ownership.mm.virt import VmAreaRef, flags
from ownership.unsafe import unsafe
from tests.expect import assert_splat

from .drivers import MixedMapDevice
from .helpers import current_mm


def _anon(proc: Task, pages: int = 2) -> int:
    return proc.mmap(None, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)


USES: dict[str, Callable[[VmAreaRef], object]] = {
    "flags": lambda v: v.flags(),
    "start": lambda v: v.start(),
    "end": lambda v: v.end(),
    "mm": lambda v: v.mm(),
    "as_ptr": lambda v: v.as_ptr(),
    "vm_pgoff": lambda v: v.vm_pgoff(),
    "vm_ops": lambda v: v.vm_ops(),
    "vm_private_data": lambda v: v.vm_private_data(),
    "as_mixedmap_vma": lambda v: v.as_mixedmap_vma(),
    "zap_page_range_single": lambda v: v.zap_page_range_single(v.start(), PAGE_SIZE),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_every_method_checks_the_mmap_read_guard(proc: Task, use: str) -> None:
    addr = _anon(proc)
    guard = current_mm().mmap_read_lock()
    vma = guard.vma_lookup(addr)
    assert vma is not None
    USES[use](vma)  # Fine while the guard is held.
    guard.drop()
    with pytest.raises(LifetimeError) as e:
        USES[use](vma)
    assert_splat(e, "lifetime", site=f"v.{use}(", origin="guard.drop()")
    assert "vma = guard.vma_lookup(addr)" in str(e.value), (
        "the report names where the reference was made"
    )


def test_reference_from_a_with_block_dies_at_its_end(proc: Task) -> None:
    addr = _anon(proc)
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        start = vma.start()
    with pytest.raises(LifetimeError) as e:
        vma.end()
    assert_splat(
        e, "lifetime", site="vma.end()", origin="with current_mm().mmap_read_lock() as guard:"
    )
    assert start == addr


def test_vma_read_guard_is_the_reference_and_dies_with_the_lock(proc: Task) -> None:
    addr = _anon(proc)
    vma = current_mm().lock_vma_under_rcu(addr)
    assert vma is not None
    assert vma.start() == addr and vma.end() == addr + 2 * PAGE_SIZE
    vma.drop()
    with pytest.raises(LifetimeError) as e:
        vma.flags()
    assert_splat(e, "lifetime", site="vma.flags()", origin="vma.drop()")


def test_mixedmap_view_dies_with_the_guard_it_came_from(kernel: Kernel, proc: Task) -> None:
    dev = MixedMapDevice()
    kernel.register_miscdevice("mixed", dev)
    f = proc.open("mixed")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ)
    guard = current_mm().mmap_read_lock()
    vma = guard.vma_lookup(addr)
    assert vma is not None
    mixed = vma.as_mixedmap_vma()
    assert mixed is not None
    guard.drop()
    with pytest.raises(LifetimeError) as e:
        mixed.flags()
    assert_splat(e, "lifetime", site="mixed.flags()", origin="guard.drop()")
    proc.munmap(addr, PAGE_SIZE)
    f.close()
    dev.drop_pages()


def test_from_raw_without_any_lock_is_refused(proc: Task) -> None:
    addr = _anon(proc)
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        raw = vma.as_ptr()
    lt = Lifetime("a lifetime the caller made up")
    with unsafe("SAFETY: deliberately wrong: no lock is held"), pytest.raises(UnsafeError) as e:
        VmAreaRef.from_raw(raw, lt)
    assert_splat(
        e,
        "vma-from-raw-unlocked",
        site="VmAreaRef.from_raw(raw, lt)",
        origin="return proc.mmap(None, pages * PAGE_SIZE",
    )


def test_from_raw_under_the_lock_is_accepted(proc: Task) -> None:
    addr = _anon(proc)
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        raw = vma.as_ptr()
        with unsafe("SAFETY: `guard` holds the mmap read lock for its whole lifetime."):
            again = VmAreaRef.from_raw(raw, guard.lifetime)
        assert again.start() == addr


def test_clean_nested_locks_and_lookups(proc: Task) -> None:
    addr = _anon(proc, 3)
    mm = current_mm()
    with mm.mmap_read_lock() as guard:
        assert guard.vma_lookup(addr - 1) is None
        vma = guard.vma_lookup(addr + PAGE_SIZE)
        assert vma is not None and vma.flags() & flags.READ
        vguard = mm.lock_vma_under_rcu(addr)
        assert vguard is not None
        with vguard:
            assert vguard.start() == vma.start()
        assert vma.end() == addr + 3 * PAGE_SIZE
    assert guard.vma_lookup is not None
