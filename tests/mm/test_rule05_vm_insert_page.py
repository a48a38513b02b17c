"""Rule 5: `vm_insert_page` exists only on `VmAreaMixedMap`, and fails as C does.

A page that is not an order-0 normal page of this kernel is `EINVAL`, an address outside
the VMA `EFAULT`, an occupied PTE `EBUSY`, a failed page-table allocation `ENOMEM`.
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL, GFP_ZERO, fail_nth
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.borrow import Lifetime
from ownership.errors import EBUSY, EFAULT, EINVAL, ENOMEM
from ownership.mm.virt import VmAreaMixedMap, VmAreaRef
from ownership.page import BorrowedPage, Page
from ownership.unsafe import unsafe
from tests.expect import raises_errno

from .drivers import ScratchDevice
from .helpers import current_mm


def _mixed_mapping(kernel: Kernel, proc: Task, pages: int = 2) -> int:
    kernel.register_miscdevice("scratch", ScratchDevice())
    f = proc.open("scratch")
    addr = proc.mmap(f, pages * PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.close()
    return addr


def _insert(addr: int, page: Page, at: int | None = None) -> None:
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        mixed = vma.as_mixedmap_vma()
        assert mixed is not None
        mixed.vm_insert_page(addr if at is None else at, page)


def test_only_the_mixedmap_view_has_vm_insert_page() -> None:
    assert hasattr(VmAreaMixedMap, "vm_insert_page")
    assert not hasattr(VmAreaRef, "vm_insert_page")


def test_no_mixedmap_view_of_an_anonymous_vma(proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None and vma.as_mixedmap_vma() is None


@pytest.mark.parametrize("kind", ["anon", "slab", "typed"])
def test_pages_that_are_not_normal_are_einval(kernel: Kernel, proc: Task, kind: str) -> None:
    addr = _mixed_mapping(kernel, proc)
    raw = kernel.alloc_special_page(kind)  # type: ignore[arg-type]
    owner = Lifetime(f"the {kind} page's owner")
    with unsafe("SAFETY: `raw` stays allocated until `owner` ends, at the end of this test."):
        page = BorrowedPage.from_raw(raw, owner)
    with raises_errno(EINVAL):
        _insert(addr, page)
    owner.end()
    kernel.put_page(raw)


def test_a_page_of_another_kernel_is_einval(kernel: Kernel, proc: Task) -> None:
    addr = _mixed_mapping(kernel, proc)
    other = Kernel()
    with other.spawn_process("elsewhere").as_current():
        stranger = Page.alloc_page(GFP_KERNEL)
    assert stranger.as_ptr().kernel is other
    with raises_errno(EINVAL):
        _insert(addr, stranger)
    stranger.drop()


def test_outside_the_vma_is_efault_and_occupied_is_ebusy(kernel: Kernel, proc: Task) -> None:
    addr = _mixed_mapping(kernel, proc, pages=2)
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with raises_errno(EFAULT):
        _insert(addr, page, at=addr + 2 * PAGE_SIZE)
    with raises_errno(EFAULT):
        _insert(addr, page, at=addr - PAGE_SIZE)
    _insert(addr, page)
    with raises_errno(EBUSY):
        _insert(addr, page)
    with raises_errno(EINVAL):
        _insert(addr, page, at=addr + 1)
    page.drop()


def test_page_table_allocation_failure_is_enomem(kernel: Kernel, proc: Task) -> None:
    addr = _mixed_mapping(kernel, proc)
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with fail_nth(1), raises_errno(ENOMEM):
        _insert(addr, page)
    _insert(addr, page)
    page.drop()


def test_clean_insert_under_either_lock_is_visible_to_userspace(kernel: Kernel, proc: Task) -> None:
    addr = _mixed_mapping(kernel, proc, pages=2)
    first, second = Page.alloc_page(GFP_KERNEL | GFP_ZERO), Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with unsafe("SAFETY: both pages were just allocated; nobody else can reach them."):
        first.write_raw(b"first", 0, 5)
        second.write_raw(b"second", 0, 6)
    _insert(addr, first)
    vguard = current_mm().lock_vma_under_rcu(addr + PAGE_SIZE)
    assert vguard is not None
    mixed = vguard.as_mixedmap_vma()
    assert mixed is not None
    mixed.vm_insert_page(addr + PAGE_SIZE, second)
    vguard.drop()
    assert proc.read_user(addr, 5) == b"first"
    assert proc.read_user(addr + PAGE_SIZE, 6) == b"second"
    raw = first.as_ptr()
    assert (raw.refcount, raw.mapcount) == (2, 1), "the VMA took its own reference"
    first.drop()
    assert proc.read_user(addr, 5) == b"first", "the mapping keeps the page alive"
    proc.munmap(addr, 2 * PAGE_SIZE)
    assert raw.refcount == 0
    second.drop()
