"""Rust misc device sample with mmap (samples/rust/rust_misc_device.rs + the mmap part
of the series "Rust support for mm_struct, vm_area_struct, and mmap for miscdevice").

`/dev/rust-misc-device` keeps an integer per open file (the upstream sample's ioctls
`HELLO`, `GET_VALUE`, `SET_VALUE`, through user pointers) and can be mapped read-only:

* `mmap` refuses a writable mapping (`EPERM`): it clears `VM_MAYWRITE` with
  `try_clear_maywrite()` so that `mprotect(PROT_WRITE)` can never make it writable, sets
  `VM_DONTCOPY` (a child process does not inherit the pages) and `VM_MIXEDMAP`, installs
  its `vm_ops` and private data, and inserts one zeroed page per mapped page, each
  starting with a header naming the page.
* `RUST_MISC_DEV_ZAP` drops page `arg` from the mapping (what a shrinker does) and
  `RUST_MISC_DEV_REINSERT` puts it back at the address remembered from `mmap` (what
  Rust Binder's `use_page_slow` does). Before inserting, the driver checks that the VMA
  found at that address is still its own (`vm_ops` and `vm_private_data`, Binder's
  `check_vma`): after `munmap` and a new mapping at the same address, the lookup finds
  someone else's VMA and the driver refuses with `ESRCH`. Built with `check_vma=False`,
  it inserts its page into the stranger's VMA - the bug of CVE-2026-43434.

Lock order: mmap lock -> `Inner` mutex (the `mmap` handler runs under the mmap write
lock); `REINSERT` drops the mutex before taking the mmap read lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..alloc import GFP_KERNEL, GFP_ZERO
from ..aref import ARef
from ..errors import EINVAL, ENOTTY, EPERM, ESRCH, KernelError
from ..miscdevice import File, MiscDevice
from ..mm import Mm
from ..mm.virt import VmAreaNew, VmAreaRef, VmOperations
from ..page import PAGE_SIZE, Page
from ..site import driver_module
from ..sync import Mutex
from ..task import current
from ..uaccess import UserSlice
from ..unsafe import unsafe

driver_module(__file__)

__all__ = [
    "MAX_PAGES",
    "RUST_MISC_DEV_GET_VALUE",
    "RUST_MISC_DEV_HELLO",
    "RUST_MISC_DEV_REINSERT",
    "RUST_MISC_DEV_SET_VALUE",
    "RUST_MISC_DEV_ZAP",
    "RustMiscDeviceMmap",
    "page_header",
]


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


RUST_MISC_DEV_HELLO = _ioc(0, "|", 0x80, 0)
RUST_MISC_DEV_GET_VALUE = _ioc(2, "|", 0x81, 4)
RUST_MISC_DEV_SET_VALUE = _ioc(1, "|", 0x82, 4)
RUST_MISC_DEV_ZAP = _ioc(0, "|", 0x83, 0)
RUST_MISC_DEV_REINSERT = _ioc(0, "|", 0x84, 0)

MAX_PAGES = 16


def page_header(index: int) -> bytes:
    """The bytes each mapped page starts with."""
    return f"rust-misc-device page {index}\n".encode()


@dataclass
class Inner:
    """Per-open state, behind the file's mutex.

    Invariants: `pages` are the pages mapped at `vma_addr` of the address space `mm`
    (an `mmgrab` reference), owned here until release.
    """

    value: int = 0
    pages: list[Page] = field(default_factory=list)
    vma_addr: int = 0
    mm: ARef[Mm] | None = None


class _SampleVmOps(VmOperations):
    """The sample's `vm_ops`: its identity marks the sample's own VMAs.

    Invariants: one instance per driver, alive as long as the driver.
    """


class RustMiscDeviceMmap(MiscDevice):
    """The driver; one instance serves every open file.

    Invariants: per-file state lives in `file.private_data` (a `Mutex[Inner]`).
    """

    def __init__(self, *, check_vma: bool = True) -> None:
        self.check_vma = check_vma
        self.vm_ops = _SampleVmOps()

    # --- file operations --------------------------------------------------------------

    def open(self, file: File) -> None:
        file.private_data = Mutex(Inner(), name="rust_misc_device::Inner")

    def release(self, file: File) -> None:
        inner = self._inner(file)
        with inner.lock() as g:
            pages, g.data.pages = g.data.pages, []
            mm, g.data.mm = g.data.mm, None
        for page in pages:
            page.drop()
        if mm is not None:
            mm.drop()

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        if cmd == RUST_MISC_DEV_HELLO:
            return 0
        if cmd == RUST_MISC_DEV_GET_VALUE:
            with self._inner(file).lock() as g:
                value = g.data.value
            UserSlice(_user_ptr(arg), 4).writer().write_slice(
                value.to_bytes(4, "little", signed=True)
            )
            return 0
        if cmd == RUST_MISC_DEV_SET_VALUE:
            raw = UserSlice(_user_ptr(arg), 4).reader().read_raw(4)
            with self._inner(file).lock() as g:
                g.data.value = int.from_bytes(raw, "little", signed=True)
            return 0
        if cmd == RUST_MISC_DEV_ZAP:
            return self._zap(file, _page_index(arg))
        if cmd == RUST_MISC_DEV_REINSERT:
            return self._reinsert(file, _page_index(arg))
        raise KernelError(ENOTTY, f"rust-misc-device: ioctl {cmd:#x} not recognised")

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        try:
            vma.try_clear_maywrite()
        except KernelError:
            raise KernelError(EPERM, "rust-misc-device pages are read-only") from None
        nr_pages = (vma.end() - vma.start()) // PAGE_SIZE
        if nr_pages > MAX_PAGES:
            raise KernelError(EINVAL, f"at most {MAX_PAGES} pages can be mapped")
        inner = self._inner(file)
        vma.set_dontcopy()
        mixed = vma.set_mixedmap()
        vma.set_vm_ops(self.vm_ops)
        vma.set_private_data(inner)
        pages: list[Page] = []
        try:
            for i in range(nr_pages):
                page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
                pages.append(page)
                header = page_header(i)
                with unsafe("SAFETY: the page was just allocated; no one else can access it yet."):
                    page.write_raw(header, 0, len(header))
                mixed.vm_insert_page(vma.start() + i * PAGE_SIZE, page)
        except BaseException:
            for page in pages:
                page.drop()
            raise
        mm = current().mm()
        assert mm is not None
        grab = ARef.from_ref(mm.as_mm())
        with inner.lock() as g:
            old_pages, g.data.pages = g.data.pages, pages
            old_mm, g.data.mm = g.data.mm, grab
            g.data.vma_addr = vma.start()
        for page in old_pages:
            page.drop()
        if old_mm is not None:
            old_mm.drop()

    # --- page management -------------------------------------------------------------

    def _inner(self, file: File) -> Mutex[Inner]:
        inner = file.private_data
        if not isinstance(inner, Mutex):
            raise KernelError(EINVAL, "rust-misc-device: file not opened through this driver")
        return inner

    def _owns(self, vma: VmAreaRef, inner: Mutex[Inner]) -> bool:
        """Binder's `check_vma`: is the VMA at our address still the one we set up?"""
        return vma.vm_ops() is self.vm_ops and vma.vm_private_data() is inner

    def _target(self, file: File, index: int) -> tuple[Mutex[Inner], Page, int, ARef[Mm]]:
        inner = self._inner(file)
        with inner.lock() as g:
            if index >= len(g.data.pages) or g.data.mm is None:
                raise KernelError(EINVAL, f"rust-misc-device: no page {index}")
            page = g.data.pages[index]
            addr = g.data.vma_addr + index * PAGE_SIZE
            mm = g.data.mm.clone()
        return inner, page, addr, mm

    def _on_vma(self, file: File, index: int, act: Callable[[VmAreaRef, int, Page], None]) -> int:
        """`act(vma, addr, page)` on our VMA holding page `index`, under the mmap read lock."""
        inner, page, addr, mm = self._target(file, index)
        try:
            user = mm.get().mmget_not_zero()
            if user is None:
                raise KernelError(ESRCH, "rust-misc-device: the address space is gone")
            try:
                with user.get().mmap_read_lock() as guard:
                    vma = guard.vma_lookup(addr)
                    if vma is None or (self.check_vma and not self._owns(vma, inner)):
                        raise KernelError(ESRCH, "rust-misc-device: the mapping is gone")
                    act(vma, addr, page)
            finally:
                user.drop()
        finally:
            mm.drop()
        return 0

    def _zap(self, file: File, index: int) -> int:
        def zap(vma: VmAreaRef, addr: int, _page: Page) -> None:
            vma.zap_page_range_single(addr, PAGE_SIZE)

        return self._on_vma(file, index, zap)

    def _reinsert(self, file: File, index: int) -> int:
        def reinsert(vma: VmAreaRef, addr: int, page: Page) -> None:
            mixed = vma.as_mixedmap_vma()
            if mixed is None:
                raise KernelError(ESRCH, "rust-misc-device: not a VM_MIXEDMAP mapping")
            mixed.vm_insert_page(addr, page)

        return self._on_vma(file, index, reinsert)


def _user_ptr(arg: object) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool):
        raise KernelError(EINVAL, "rust-misc-device: the argument must be a user address")
    return arg


def _page_index(arg: object) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < MAX_PAGES:
        raise KernelError(EINVAL, f"rust-misc-device: bad page index {arg!r}")
    return arg
