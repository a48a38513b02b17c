"""`struct page` and the buddy allocator of the simulated kernel (mm/page_alloc.c).

Every page of a `Kernel` is a `StructPage`: its pfn, NUMA node, kind (`normal`, `anon`,
`slab`, `typed`), refcount (`_refcount`), mapcount (`_mapcount`, how many PTEs map it)
and its 4096 bytes of contents. The pool spans at least two NUMA nodes; each node owns a
contiguous pfn range, and `alloc` prefers the requested node and falls back to the others
as the kernel's zonelist does.

Freed pages go back on their node's free list and are reused (last freed, first
reused), so a stale `struct page *` really does point at someone else's page later; a
generation counter (`gen`) tells the abstractions that this happened. Contents are not
cleared on free: an allocation without `__GFP_ZERO` sees whatever was there, as in C.

The C side checks what `CONFIG_DEBUG_VM` would: a `put_page` or `get_page` on a page whose
refcount is zero is a `RefcountError` ("bad page state"), raised before any change.

Lock order: `PagePool._lock` is a leaf (the zone lock); nothing is called under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .. import sched
from ..config import STATE
from ..errors import EINVAL, KernelError, RefcountError
from ..site import Site, here
from ._raw import locked
from .consts import PAGE_SIZE

if TYPE_CHECKING:
    from ..borrow import BorrowTracker
    from .kernel import Kernel

__all__ = ["PAGE_KINDS", "PageKind", "PagePool", "StructPage"]

PageKind = Literal["normal", "anon", "slab", "typed"]
PAGE_KINDS: tuple[PageKind, ...] = ("normal", "anon", "slab", "typed")


class StructPage:
    """One `struct page`.

    Invariants: `refcount >= 0`, `mapcount >= 0`; a page with `refcount == 0` is on its
    node's free list and `freed_at` says where it was freed; `gen` increases on every
    allocation of the page, so a handle that remembers `gen` can tell reuse apart.
    `data` is None while the page holds only zeroes (lazily materialised).
    """

    __slots__ = (
        "alloc_site",
        "data",
        "freed_at",
        "gen",
        "kernel",
        "kind",
        "mapcount",
        "nid",
        "pfn",
        "refcount",
        "shadow",
        "wrappers",
    )

    def __init__(self, kernel: Kernel, pfn: int, nid: int) -> None:
        self.kernel = kernel
        self.pfn = pfn
        self.nid = nid
        self.kind: PageKind = "normal"
        self.refcount = 0
        self.mapcount = 0
        self.data: bytearray | None = None
        self.gen = 0
        self.freed_at: Site | None = None
        self.alloc_site: Site | None = None
        # The checker's shadow state for this page (the model's KCSAN): byte-range borrows
        # taken by the raw accessors of `ownership.page`.
        self.shadow: BorrowTracker | None = None
        self.wrappers: dict[type, object] = {}

    # --- contents ------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """Copy `length` bytes from `offset` (the caller has checked the bounds)."""
        d = self.data
        if d is None:
            return bytes(length)
        return bytes(d[offset : offset + length])

    def write(self, offset: int, src: bytes | bytearray | memoryview) -> None:
        d = self.data
        if d is None:
            d = self.data = bytearray(PAGE_SIZE)
        d[offset : offset + len(src)] = src

    def fill_zero(self, offset: int, length: int) -> None:
        d = self.data
        if d is not None:
            d[offset : offset + length] = bytes(length)

    def copy_from(self, other: StructPage) -> None:
        self.data = None if other.data is None else bytearray(other.data)

    # --- state ---------------------------------------------------------------------

    @property
    def is_free(self) -> bool:
        return self.refcount == 0

    def describe(self) -> str:
        state = (
            "free" if self.refcount == 0 else f"refcount {self.refcount}, mapcount {self.mapcount}"
        )
        return f"struct page pfn {self.pfn:#x} (node {self.nid}, {self.kind}, {state})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class PagePool:
    """The page allocator of one `Kernel`: `nr_nodes` nodes of `pages_per_node` pages.

    Invariants: every page with `refcount == 0` that was ever handed out is on exactly one
    free list (its node's); `nr_free[n]` counts node `n`'s free pages, never-used ones
    included.
    """

    def __init__(self, kernel: Kernel, nr_nodes: int, pages_per_node: int) -> None:
        if nr_nodes < 2:
            raise ValueError("the simulated kernel has at least two NUMA nodes")
        if pages_per_node < 1:
            raise ValueError("a node needs at least one page")
        self.kernel = kernel
        self.nr_nodes = nr_nodes
        self.pages_per_node = pages_per_node
        self._lock = sched.active().raw_lock()
        self._pages: dict[int, StructPage] = {}
        self._free: list[list[StructPage]] = [[] for _ in range(nr_nodes)]
        self._next_unused = [n * pages_per_node for n in range(nr_nodes)]
        self.nr_allocated = 0

    @property
    def max_pfn(self) -> int:
        return self.nr_nodes * self.pages_per_node

    def nr_free(self) -> int:
        with locked(self._lock):
            return self.max_pfn - self.nr_allocated

    def _take(self, nid: int) -> StructPage | None:
        free = self._free[nid]
        if free:
            return free.pop()
        nxt = self._next_unused[nid]
        if nxt >= (nid + 1) * self.pages_per_node:
            return None
        self._next_unused[nid] = nxt + 1
        page = StructPage(self.kernel, nxt, nid)
        self._pages[nxt] = page
        return page

    def alloc(self, nid: int, kind: PageKind = "normal", zero: bool = False) -> StructPage | None:
        """`alloc_pages_node(nid, gfp, 0)`: a page with refcount 1, or None when out of memory."""
        if not 0 <= nid < self.nr_nodes:
            raise KernelError(EINVAL, f"no NUMA node {nid}")
        with locked(self._lock):
            page = None
            for n in [nid, *(m for m in range(self.nr_nodes) if m != nid)]:
                page = self._take(n)
                if page is not None:
                    break
            if page is None:
                return None
            page.refcount = 1
            page.mapcount = 0
            page.kind = kind
            page.gen += 1
            page.freed_at = None
            self.nr_allocated += 1
        if zero:
            page.data = None
        page.alloc_site = here() if STATE.on else None
        return page

    def get_page(self, page: StructPage) -> None:
        """`get_page()`: a new reference; the page must not be free."""
        with locked(self._lock):
            if page.refcount <= 0:
                raise RefcountError(
                    "get_page() on a free page (bad page state)",
                    rule="page-refcount",
                    obj=page.describe(),
                    site=here(),
                    origin=page.freed_at,
                    origin_label="the page was freed",
                )
            page.refcount += 1

    def put_page(self, page: StructPage) -> bool:
        """`put_page()`: drop a reference; True when the page went back to the allocator."""
        with locked(self._lock):
            if page.refcount <= 0:
                raise RefcountError(
                    "put_page() on a free page: refcount underflow (bad page state)",
                    rule="page-refcount",
                    obj=page.describe(),
                    site=here(),
                    origin=page.freed_at,
                    origin_label="the page was freed",
                )
            page.refcount -= 1
            if page.refcount:
                return False
            page.freed_at = here() if STATE.on else None
            page.mapcount = 0
            page.kind = "normal"
            page.shadow = None
            page.wrappers = {}
            self._free[page.nid].append(page)
            self.nr_allocated -= 1
            return True

    def pfn_to_page(self, pfn: int) -> StructPage | None:
        """`pfn_to_page()` for a pfn that was ever handed out, else None."""
        with locked(self._lock):
            return self._pages.get(pfn)

    def pfn_valid(self, pfn: int) -> bool:
        return 0 <= pfn < self.max_pfn

    def pfn_to_page_any(self, pfn: int) -> StructPage:
        """The `struct page` of any valid pfn, creating its (free, zero) descriptor."""
        with locked(self._lock):
            page = self._pages.get(pfn)
            if page is None:
                page = StructPage(self.kernel, pfn, pfn // self.pages_per_node)
                self._pages[pfn] = page
                nid = page.nid
                # A pfn below the node's high-water mark is on the free list already.
                if pfn >= self._next_unused[nid]:
                    # Hand out the pfns in order: the skipped ones become free pages.
                    for p in range(self._next_unused[nid], pfn):
                        sp = StructPage(self.kernel, p, nid)
                        self._pages[p] = sp
                        self._free[nid].append(sp)
                    self._next_unused[nid] = pfn + 1
                    self._free[nid].append(page)
            return page

    def allocated_pages(self) -> list[StructPage]:
        """Every page currently allocated (for consistency checks)."""
        with locked(self._lock):
            return [p for p in self._pages.values() if p.refcount > 0]
