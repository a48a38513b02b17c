"""Small drivers shared by the mm tests (test-only code, written as a driver would be)."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, GFP_ZERO
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew, VmAreaRef, VmOperations
from ownership.page import PAGE_SIZE, Page
from ownership.unsafe import unsafe


class MixedMapDevice(MiscDevice):
    """Maps pages of its own, marked with their index, into a read-only MIXEDMAP VMA."""

    def __init__(self) -> None:
        self.pages: list[Page] = []

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.try_clear_maywrite()
        mixed = vma.set_mixedmap()
        for i in range((vma.end() - vma.start()) // PAGE_SIZE):
            page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
            with unsafe("SAFETY: the page was just allocated; nobody else can reach it."):
                page.write_raw(bytes([0xA0 + i]) * 8, 0, 8)
            mixed.vm_insert_page(vma.start() + i * PAGE_SIZE, page)
            self.pages.append(page)

    def drop_pages(self) -> None:
        for page in self.pages:
            page.drop()
        self.pages.clear()


class ScratchDevice(MiscDevice):
    """Accepts any mapping, writable included, as VM_MIXEDMAP with no pages (a stranger's VMA)."""

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.set_mixedmap()


class FaultingOps(VmOperations):
    """Serves faults from a list of pages; counts the callbacks."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages
        self.opened = 0
        self.closed = 0

    def open(self, vma: VmAreaRef) -> None:
        self.opened += 1

    def close(self, vma: VmAreaRef) -> None:
        self.closed += 1

    def fault(self, vma: VmAreaRef, address: int) -> Page | None:
        i = (address - vma.start()) // PAGE_SIZE + vma.vm_pgoff()
        return self.pages[i] if i < len(self.pages) else None


class FaultingDevice(MiscDevice):
    """Maps lazily: pages are served by `vm_ops->fault` on first touch."""

    def __init__(self, nr_pages: int, refuse_writable: bool = True) -> None:
        self.pages: list[Page] = []
        for i in range(nr_pages):
            page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
            with unsafe("SAFETY: the page was just allocated; nobody else can reach it."):
                page.write_raw(f"page {i}".encode(), 0, len(f"page {i}"))
            self.pages.append(page)
        self.ops = FaultingOps(self.pages)
        self.refuse_writable = refuse_writable

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        if self.refuse_writable:
            vma.try_clear_maywrite()
        vma.set_mixedmap()
        vma.set_vm_ops(self.ops)
        vma.set_private_data(self)

    def drop_pages(self) -> None:
        for page in self.pages:
            page.drop()
        self.pages.clear()
