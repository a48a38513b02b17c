"""`VBox` and `VVec` (rust/kernel/alloc/kbox.rs, kvec.rs with the `Vmalloc` allocator).

vmalloc memory is virtually contiguous and made of separate order-0 pages. That is what
`AsPageIter` exposes: `page_iter()` yields a `BorrowedPage` for each backing page
(`vmalloc_to_page`), tied to the owner's life. A `BorrowedPage` used after its `VBox`
was dropped - or after a `VVec` grew and moved to new pages - is a `LifetimeError`
naming where the owner ended (seed 000: "BorrowedPage ... owned by some other entity,
e.g. a vmalloc allocation").

Both hold bytes: `VBox.new(data, gfp)` / `VBox.new_zeroed(size, gfp)` make a fixed-size
buffer, `VVec` grows (`extend_from_slice`, `push`) with fallible reallocation. Every
allocation goes through `alloc_check` (may sleep with `GFP_KERNEL`, failure injection ->
`ENOMEM`) and takes its pages from `Kernel.current()`. A size vmalloc cannot give is
`ENOMEM` before anything is allocated: more than the vmalloc space (`VMALLOC_SIZE`, 32 TiB
on x86-64, checked before the sleep check) or more pages than the machine has
(`__vmalloc_node_range` checks `totalram_pages()`).

Lock order: none taken here (the page allocator's zone lock is a leaf).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..bindings.consts import VMALLOC_SIZE
from ..bindings.gfp import Flags, alloc_check
from ..bindings.kernel import Kernel
from ..borrow import Lifetime
from ..errors import EINVAL, ENOMEM, KernelError
from ..page import PAGE_SIZE, BorrowedPage, refuse_drop_while_mapped
from ..prim import usize
from ..site import Site, here
from ..unsafe import unsafe
from .owned import _Owned

__all__ = ["VBox", "VVec"]


def _nr_pages(size: int) -> int:
    return (size + PAGE_SIZE - 1) // PAGE_SIZE


class _VmallocArea:
    """The pages behind one vmalloc allocation (`struct vm_struct`).

    Invariants: `pages` are order-0 pages of `kernel`, each owned once by this area,
    covering `size` bytes; `lt` ends when the area is freed.
    """

    __slots__ = ("kernel", "lt", "pages", "size")

    def __init__(self, size: int, gfp: Flags, what: str, site: Site) -> None:
        # The area and its guard page must fit in the vmalloc space (`get_vm_area`).
        if size + PAGE_SIZE > VMALLOC_SIZE:
            raise KernelError(
                ENOMEM, f"{what}: {size} bytes is more than the vmalloc space ({VMALLOC_SIZE})"
            )
        alloc_check(gfp, what)
        kernel = Kernel.current()
        n = _nr_pages(size)
        if n > kernel.pool.max_pfn:
            raise KernelError(ENOMEM, f"{what}: {size} bytes is more than the machine has")
        pages = []
        try:
            for _ in range(n):
                sp = kernel.alloc_page(reclaim=gfp.may_sleep, zero=True)
                if sp is None:
                    raise KernelError(ENOMEM, f"{what}: out of pages")
                pages.append(sp)
        except BaseException:
            for sp in pages:
                kernel.put_page(sp)
            raise
        self.kernel = kernel
        self.pages = pages
        self.size = size
        self.lt = Lifetime(what, site)

    def read(self, offset: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            i, off = divmod(offset, PAGE_SIZE)
            k = min(PAGE_SIZE - off, n)
            out += self.pages[i].read(off, k)
            offset += k
            n -= k
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            i, off = divmod(offset + pos, PAGE_SIZE)
            k = min(PAGE_SIZE - off, len(data) - pos)
            self.pages[i].write(off, data[pos : pos + k])
            pos += k

    def free(self, site: Site, label: str) -> None:
        self.lt.end(site, label)
        pages, self.pages = self.pages, []
        for sp in pages:
            self.kernel.put_page(sp)

    def page_iter(self, what: str) -> Iterator[BorrowedPage]:
        for sp in list(self.pages):
            with unsafe(
                f"SAFETY: `sp` is a page of this live {what} (vmalloc_to_page), which stays "
                "allocated for the owner's lifetime `self.lt`."
            ):
                yield BorrowedPage.from_raw(sp, self.lt)


class VBox(_Owned):
    """A vmalloc'd, owned buffer of bytes (`VBox<[u8; N]>`).

    Invariants: until dropped, `_area` holds `len(self)` bytes in its own pages.
    """

    __slots__ = ("_area",)

    def __init__(self, area: _VmallocArea, site: Site) -> None:
        super().__init__(site)
        self._area = area

    @classmethod
    def new(cls, data: bytes, gfp: Flags) -> VBox:
        """A buffer holding `data`; may sleep with `GFP_KERNEL`; `ENOMEM` on failure."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"VBox.new takes bytes, got {type(data).__name__}")
        site = here()
        area = _VmallocArea(len(data), gfp, "VBox", site)
        area.write(0, bytes(data))
        return cls(area, site)

    @classmethod
    def new_zeroed(cls, size: int, gfp: Flags) -> VBox:
        """A zeroed buffer of `size` bytes."""
        n = usize(size, "size")
        site = here()
        return cls(_VmallocArea(n, gfp, "VBox", site), site)

    @property
    def lifetime(self) -> Lifetime:
        """The owner's life: `BorrowedPage`s of this box hold it."""
        return self._area.lt

    def __len__(self) -> int:
        self._alive("len")
        return self._area.size

    def _range(self, offset: object, n: object) -> tuple[int, int]:
        off = usize(offset, "offset")
        k = usize(n, "n")
        if off + k > self._area.size:
            raise KernelError(
                EINVAL, f"[{off}, {off + k}) is outside a buffer of {self._area.size} bytes"
            )
        return off, k

    def read(self, offset: int, n: int) -> bytes:
        self._alive("read")
        off, k = self._range(offset, n)
        return self._area.read(off, k)

    def write(self, offset: int, data: bytes) -> None:
        self._alive("write")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write takes bytes, got {type(data).__name__}")
        off, _ = self._range(offset, len(data))
        self._area.write(off, bytes(data))

    def as_bytes(self) -> bytes:
        self._alive("as_bytes")
        return self._area.read(0, self._area.size)

    def page_iter(self) -> Iterator[BorrowedPage]:
        """A `BorrowedPage` per backing page, valid while this `VBox` lives."""
        self._alive("page_iter")
        return self._area.page_iter("VBox")

    def drop(self) -> None:
        """`vfree`: the pages go back; borrowed pages of this box die.

        Refused (`drop-while-borrowed`) before anything is freed while a page of the box
        is mapped (a `with_page_mapped` closure of one of its `BorrowedPage`s runs).
        """
        self._alive("drop")
        refuse_drop_while_mapped(self._area.pages, "a VBox")
        self._drop()
        assert self._dropped_at is not None
        self._area.free(self._dropped_at, "the VBox was dropped")


class VVec(_Owned):
    """A growable vmalloc'd vector of bytes (`VVec<u8>`).

    Invariants: `_len <= _area.size` (the capacity); growing past the capacity moves the
    contents to a new area and frees the old one, ending its borrowed pages.
    """

    __slots__ = ("_area", "_len")

    def __init__(self, area: _VmallocArea, site: Site) -> None:
        super().__init__(site)
        self._area = area
        self._len = 0

    @classmethod
    def new(cls) -> VVec:
        """An empty vector; allocates nothing."""
        site = here()
        return cls(_empty_area(site), site)

    @classmethod
    def with_capacity(cls, capacity: int, gfp: Flags) -> VVec:
        n = usize(capacity, "capacity")
        site = here()
        return cls(_VmallocArea(n, gfp, "VVec", site), site)

    def __len__(self) -> int:
        self._alive("len")
        return self._len

    def capacity(self) -> int:
        self._alive("capacity")
        return self._area.size

    def reserve(self, additional: int, gfp: Flags) -> None:
        """Make room for `additional` more bytes; reallocation may sleep or fail (`ENOMEM`)."""
        self._alive("reserve")
        need = self._len + usize(additional, "additional")
        if need <= self._area.size:
            return
        cap = max(need, 2 * self._area.size, PAGE_SIZE)
        site = here()
        area = _VmallocArea(cap, gfp, "VVec", site)
        area.write(0, self._area.read(0, self._len))
        old, self._area = self._area, area
        old.free(site, "the VVec grew and moved to new pages")

    def extend_from_slice(self, data: bytes, gfp: Flags) -> None:
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"extend_from_slice takes bytes, got {type(data).__name__}")
        self.reserve(len(data), gfp)
        self._area.write(self._len, bytes(data))
        self._len += len(data)

    def push(self, byte: int, gfp: Flags) -> None:
        if not isinstance(byte, int) or not 0 <= byte <= 255:
            raise TypeError(f"push takes a byte (0..=255), got {byte!r}")
        self.extend_from_slice(bytes([byte]), gfp)

    def as_bytes(self) -> bytes:
        self._alive("as_bytes")
        return self._area.read(0, self._len)

    def clear(self) -> None:
        self._alive("clear")
        self._len = 0

    def page_iter(self) -> Iterator[BorrowedPage]:
        """A `BorrowedPage` per backing page, valid until the vector is dropped or reallocated."""
        self._alive("page_iter")
        return self._area.page_iter("VVec")

    def drop(self) -> None:
        """`vfree`; refused like `VBox.drop` while a page of the vector is mapped."""
        self._alive("drop")
        refuse_drop_while_mapped(self._area.pages, "a VVec")
        self._drop()
        assert self._dropped_at is not None
        self._area.free(self._dropped_at, "the VVec was dropped")


def _empty_area(site: Site) -> _VmallocArea:
    area = _VmallocArea.__new__(_VmallocArea)
    area.kernel = Kernel.current()
    area.pages = []
    area.size = 0
    area.lt = Lifetime("VVec", site)
    return area
