"""The public API is importable and a driver's mapping round-trips through userspace."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL
from ownership.aref import ARef
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.errors import EACCES, EFAULT
from ownership.miscdevice import File, MiscDevice
from ownership.mm import (
    Mm,
    MmapReadGuard,
    MmapWriteGuard,
    MmWithUser,
    MmWithUserAsync,
    VmaReadGuard,
)
from ownership.mm.virt import VmAreaMixedMap, VmAreaMut, VmAreaNew, VmAreaRef, flags
from ownership.page import (
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    AsPageIter,
    BorrowedPage,
    Page,
    page_align,
)
from ownership.task import current
from ownership.unsafe import unsafe
from tests.expect import raises_errno


class OnePage(MiscDevice):
    """Maps one read-only page holding a greeting."""

    def __init__(self) -> None:
        self.page: Page | None = None

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.try_clear_maywrite()
        mixed = vma.set_mixedmap()
        page = Page.alloc_page(GFP_KERNEL)
        with unsafe("SAFETY: the page was just allocated and nobody else can reach it."):
            page.write_raw(b"hello", 0, 5)
        mixed.vm_insert_page(vma.start(), page)
        self.page = page


def test_public_names_exist() -> None:
    assert (PAGE_SIZE, PAGE_SHIFT, PAGE_MASK) == (4096, 12, 0xFFFF_FFFF_FFFF_F000)
    assert page_align(1) == PAGE_SIZE
    assert issubclass(MmWithUser, Mm) and issubclass(MmWithUserAsync, MmWithUser)
    assert issubclass(VmAreaMixedMap, VmAreaRef) and issubclass(VmAreaNew, VmAreaRef)
    assert issubclass(VmAreaMut, VmAreaRef) and issubclass(VmaReadGuard, VmAreaRef)
    assert issubclass(BorrowedPage, Page)
    assert (flags.READ, flags.PFNMAP, flags.MIXEDMAP) == (0x1, 0x400, 0x1000_0000)
    assert {MmapReadGuard, MmapWriteGuard} and AsPageIter is not None


def test_driver_mapping_round_trip(kernel: Kernel, proc: Task) -> None:
    dev = OnePage()
    kernel.register_miscdevice("greeter", dev)
    f = proc.open("greeter")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert proc.read_user(addr, 5) == b"hello"
    with raises_errno(EFAULT):
        proc.write_user(addr, b"x")
    with raises_errno(EACCES):
        proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE)
    mm = current().mm()
    assert mm is not None
    with mm.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        assert vma.flags() & flags.MIXEDMAP and not vma.flags() & flags.MAYWRITE
    proc.munmap(addr, PAGE_SIZE)
    f.close()
    assert dev.page is not None
    dev.page.drop()


def test_anonymous_memory_and_mm_refcounts(kernel: Kernel, proc: Task) -> None:
    addr = proc.mmap(None, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    proc.write_user(addr + PAGE_SIZE - 2, b"abcd")
    assert proc.read_user(addr + PAGE_SIZE - 2, 4) == b"abcd"
    mm = current().mm()
    assert mm is not None
    grab = ARef.from_ref(mm.as_mm())
    proc.exit()
    assert grab.get().mmget_not_zero() is None
    grab.drop()
