"""Pages (rust/kernel/page.rs): `Page`, `BorrowedPage`, `AsPageIter`, `page_align`.

`Page` wraps one order-0 `struct page` of the simulated kernel and owns it: it holds one
reference, given back by `drop()` (`__free_pages`). `BorrowedPage` is the same view of a
page that someone else owns (a `VBox`, a `VVec`): it frees nothing and dies with its
owner. The types are split as upstream splits them because ownership is the difference:
a `Page` may be dropped, a `BorrowedPage` must not outlive the allocation it points into.

The raw accessors (`read_raw`, `write_raw`, `fill_zero_raw`, `copy_from_user_slice_raw`)
are `unsafe` with upstream's Safety text, and the model checks what of it can be checked:
the page must still be valid for the handle (`LifetimeError` naming where the owner ended),
and no access may overlap a concurrent write to the same bytes (each access borrows its
byte range in the page's `BorrowTracker`: shared for reads, exclusive for writes; an
overlapping access on another thread is a `BorrowError` naming both sites). Bounds are
checked as `with_pointer_into_page` does: `offset + len <= PAGE_SIZE`, else `EINVAL`.

Arguments that are `usize` upstream must be ints in `[0, 2**64)`: anything else is a
`TypeError` (it could not have been a `usize`).

`Page.alloc_page(gfp)` allocates from `Kernel.current()` (the current task's kernel,
else the default one; see `ownership.bindings.kernel`).

Lock order: the byte-range trackers' internal locks and `_shadow_lock` are leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar, runtime_checkable

from . import sched
from .bindings.gfp import Flags, alloc_check
from .bindings.kernel import Kernel
from .bindings.page_alloc import StructPage
from .borrow import Borrow, BorrowTracker, Lifetime
from .config import STATE
from .context import may_sleep
from .errors import EINVAL, ENOMEM, KernelError, LifetimeError, SendError, UnsafeError
from .handle import DropRules, Handle
from .marker import NotThreadSafe, impl_send, impl_sync
from .prim import USIZE_MAX, usize
from .site import Site, here
from .uaccess import UserSliceReader
from .unsafe import unsafe_fn

__all__ = [
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "AsPageIter",
    "BorrowedPage",
    "KmapLocal",
    "Page",
    "page_align",
]

R = TypeVar("R")

#: A bitwise shift for the page size.
PAGE_SHIFT = 12
#: The number of bytes in a page.
PAGE_SIZE = 1 << PAGE_SHIFT
#: A bitmask that gives the page containing a given address (`!(PAGE_SIZE - 1)` as usize).
PAGE_MASK = USIZE_MAX ^ (PAGE_SIZE - 1)


def page_align(addr: int) -> int | None:
    """Round `addr` up to the next multiple of `PAGE_SIZE`; None if that overflows a usize."""
    a = usize(addr, "addr")
    v = a + (PAGE_SIZE - 1)
    if v > USIZE_MAX:
        return None
    return v & PAGE_MASK


_shadow_lock = threading.Lock()


def _tracker(sp: StructPage) -> BorrowTracker:
    t = sp.shadow
    if t is None:
        with _shadow_lock:
            t = sp.shadow
            if t is None:
                t = sp.shadow = BorrowTracker(f"struct page pfn {sp.pfn:#x} (node {sp.nid})")
    return t


# The live `kmap_local_page` mappings of each page (by id of its `struct page`): a page
# (or the allocation owning it) must not be dropped while one lives.
_mapped: dict[int, list[KmapLocal]] = {}


def refuse_drop_while_mapped(pages: Iterable[StructPage], owner: str) -> None:
    """Raise `LifetimeError` (`drop-while-borrowed`) if a page of `pages` is mapped.

    Called by every drop of a page's owner before anything is torn down: a mapping
    (`with_page_mapped`) borrows the page, and its owner, until its closure returns.
    """
    if not STATE.on or not _mapped:
        return
    for sp in pages:
        live = _mapped.get(id(sp))
        if live:
            m = live[-1]
            raise LifetimeError(
                f"drop of {owner} while a kmap_local mapping of its page is live",
                rule="drop-while-borrowed",
                obj=sp.describe(),
                site=here(),
                origin=m.origin_site,
                origin_label="the page was mapped, and the mapping's closure has not returned",
            )


def _bounds(offset: object, length: object) -> tuple[int, int]:
    off = usize(offset, "offset")
    n = usize(length, "len")
    if off > PAGE_SIZE or n > PAGE_SIZE or off + n > PAGE_SIZE:
        raise KernelError(EINVAL, f"[{off}, {off}+{n}) is not inside a page of {PAGE_SIZE} bytes")
    return off, n


class KmapLocal(NotThreadSafe):
    """A page mapped into the kernel with `kmap_local_page` for the duration of a closure.

    Invariants: valid only on the thread that mapped it, until the closure given to
    `with_page_mapped` returns (`_lt`), and only while the handle it was mapped through
    (`_owner`: a `Page`, or a `BorrowedPage` and so its owner) can still reach the page:
    every access checks both, is bounds-checked and borrows its byte range.
    """

    __slots__ = ("_lt", "_owner", "_page", "_tid", "origin_site")

    def __init__(self, page: StructPage, lt: Lifetime, site: Site, owner: Page) -> None:
        self._page = page
        self._lt = lt
        self._tid = sched.current_id()
        self.origin_site = site
        self._owner = owner

    def _check(self, use: str) -> StructPage:
        if STATE.on:
            if not self._lt.alive:
                self._lt.expired(f"{use} through a kmap_local mapping", made=self.origin_site)
            if sched.current_id() != self._tid:
                raise SendError(
                    f"{use} through a kmap_local mapping on another thread than the one that "
                    "mapped it",
                    rule="kmap-local-thread",
                    obj=f"kmap_local_page(pfn {self._page.pfn:#x})",
                    site=here(),
                    origin=self.origin_site,
                    origin_label="the page was mapped",
                )
            # The page (and, for a borrowed page, its owner) must outlive the mapping.
            self._owner._live(f"{use} through a kmap_local mapping")
        return self._page

    def read(self, offset: int, length: int) -> bytes:
        sp = self._check("read")
        off, n = _bounds(offset, length)
        b = _tracker(sp).acquire(False, off, off + n, here()) if STATE.on and n else None
        try:
            return sp.read(off, n)
        finally:
            if b is not None:
                b.release()

    def write(self, offset: int, data: bytes | bytearray) -> None:
        sp = self._check("write")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write takes bytes, got {type(data).__name__}")
        off, n = _bounds(offset, len(data))
        b = _tracker(sp).acquire(True, off, off + n, here()) if STATE.on and n else None
        try:
            sp.write(off, data)
        finally:
            if b is not None:
                b.release()


@runtime_checkable
class AsPageIter(Protocol):
    """Types that can iterate over the pages they own (`VBox`, `VVec`)."""

    def page_iter(self) -> Iterator[BorrowedPage]:
        """Every page owned by `self`, as `BorrowedPage`s tied to `self`'s life."""
        ...


@impl_send("Page: there is no logic that relies on staying on a thread (rust/kernel/page.rs)")
@impl_sync("Page: there is no logic that relies on not being accessed concurrently")
class Page(Handle):
    """An owned order-0 page (`Page`).

    Invariants: until `drop()`, `_page` is a valid page (`refcount > 0`, generation
    `_gen`) of which this handle owns one reference; its order is 0.
    """

    __slots__ = ("_gen", "_page", "origin_site")

    # A second drop is a use ("drop") after drop, as `_live` reports it.
    _drop_rules = DropRules(
        LifetimeError,
        rule="page-use-after-drop",
        use_message="{use} of a {name} after it was dropped",
        dropped_label="the page handle was dropped",
        made_label="the page was allocated",
    )

    def __init__(self, page: StructPage, site: Site) -> None:
        self._page = page
        self._gen = page.gen
        self._dropped_at = None
        self.origin_site = site

    @classmethod
    @may_sleep(gfp="gfp")
    def alloc_page(cls, gfp: Flags) -> Page:
        """Allocate a new page (`alloc_pages(gfp, 0)`); may sleep with `GFP_KERNEL`.

        `__GFP_ZERO` gives a zeroed page; otherwise the contents are whatever the page
        held last. `KernelError(ENOMEM)` when no page is available (or injected).
        """
        alloc_check(gfp, "alloc_page")
        kernel = Kernel.current()
        sp = kernel.alloc_page(reclaim=gfp.may_sleep, zero=bool(gfp & Flags.ZERO))
        if sp is None:
            raise KernelError(ENOMEM, "alloc_page: out of memory")
        # INVARIANT: we just allocated an order-0 page and own its only reference.
        return Page(sp, here())

    # --- validity ----------------------------------------------------------------

    def _handle_obj(self) -> str:
        return self._page.describe()

    def _made_at(self) -> Site:
        return self.origin_site

    def _live(self, use: str) -> StructPage:
        """The `struct page`, after checking this handle may still reach it."""
        sp = self._page
        if STATE.on:
            if self._dropped_at is not None:
                raise self._use_after_drop(use)
            if sp.gen != self._gen or sp.refcount <= 0:
                raise LifetimeError(
                    f"{use} of a page that was freed under this handle",
                    rule="page-use-after-free",
                    obj=sp.describe(),
                    site=here(),
                    origin=sp.freed_at,
                    origin_label="the page was freed",
                    notes=[("the handle was made", self.origin_site)],
                )
        return sp

    def as_ptr(self) -> StructPage:
        """The raw `struct page *`."""
        return self._live("as_ptr")

    def nid(self) -> int:
        """The NUMA node id containing this page (`page_to_nid`)."""
        return self._live("nid").nid

    def describe(self) -> str:
        return f"{type(self).__name__}({self._page.describe()})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # --- mapped access -------------------------------------------------------------

    def with_page_mapped(self, f: Callable[[KmapLocal], R]) -> R:
        """Run `f` with the page mapped (`kmap_local_page`); the mapping ends when `f` returns."""
        sp = self._live("with_page_mapped")
        site = here()
        lt = Lifetime(f"kmap_local_page(pfn {sp.pfn:#x})", site)
        m = KmapLocal(sp, lt, site, self)
        with _shadow_lock:
            _mapped.setdefault(id(sp), []).append(m)
        try:
            return f(m)
        finally:
            with _shadow_lock:
                live = _mapped[id(sp)]
                live.remove(m)
                if not live:
                    del _mapped[id(sp)]
            lt.end(here(), "the page was unmapped (kunmap_local)")

    def _access(
        self, use: str, exclusive: bool, offset: object, length: object
    ) -> tuple[StructPage, int, int, Borrow | None]:
        sp = self._live(use)
        off, n = _bounds(offset, length)
        b = _tracker(sp).acquire(exclusive, off, off + n, here()) if STATE.on and n else None
        return sp, off, n, b

    @unsafe_fn(
        safety="No write to the same page may overlap this read while it runs, and the page "
        "must stay valid for the call.",
        checked="an overlapping concurrent write is a BorrowError (byte-range borrows of the "
        "page); a page whose owner ended is a LifetimeError; out of bounds is EINVAL",
    )
    def read_raw(self, offset: int, length: int) -> bytes:
        """Copy `length` bytes from `offset` of this page (`EINVAL` out of bounds).

        Safety: no write to the same bytes of the page may run concurrently.
        """
        sp, off, n, b = self._access("read_raw", False, offset, length)
        try:
            return sp.read(off, n)
        finally:
            if b is not None:
                b.release()

    @unsafe_fn(
        safety="No read or write of the same page may overlap this write while it runs.",
        checked="an overlapping concurrent access is a BorrowError; a page whose owner ended "
        "is a LifetimeError; out of bounds is EINVAL",
    )
    def write_raw(self, src: bytes, offset: int, length: int) -> None:
        """Copy `length` bytes of `src` into this page at `offset`.

        Safety: no read or write of the same bytes of the page may run concurrently.
        """
        if not isinstance(src, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_raw takes bytes, got {type(src).__name__}")
        n0 = usize(length, "len")
        if len(src) < n0:
            raise KernelError(EINVAL, f"write_raw: src has {len(src)} bytes, len is {n0}")
        sp, off, n, b = self._access("write_raw", True, offset, length)
        try:
            sp.write(off, bytes(src[:n]))
        finally:
            if b is not None:
                b.release()

    @unsafe_fn(
        safety="No read or write of the same page may overlap this write while it runs.",
        checked="an overlapping concurrent access is a BorrowError; a page whose owner ended "
        "is a LifetimeError; out of bounds is EINVAL",
    )
    def fill_zero_raw(self, offset: int, length: int) -> None:
        """Zero `length` bytes of this page from `offset`.

        Safety: no read or write of the same bytes of the page may run concurrently.
        """
        sp, off, n, b = self._access("fill_zero_raw", True, offset, length)
        try:
            sp.fill_zero(off, n)
        finally:
            if b is not None:
                b.release()

    @unsafe_fn(
        safety="No read or write of the same page may overlap this copy while it runs "
        "(races on the userspace side are allowed).",
        checked="an overlapping access while the copy (and its user faults) runs is a "
        "BorrowError; a page whose owner ended is a LifetimeError; out of bounds is EINVAL",
    )
    @may_sleep
    def copy_from_user_slice_raw(self, reader: UserSliceReader, offset: int, length: int) -> None:
        """Copy `length` bytes from userspace into this page; may sleep (user page faults).

        Safety: no read or write of the same bytes of the page may run concurrently; races
        with userspace on the user memory are allowed.
        """
        if not isinstance(reader, UserSliceReader):
            raise TypeError(
                f"copy_from_user_slice_raw takes a UserSliceReader, got {type(reader).__name__}"
            )
        sp, off, n, b = self._access("copy_from_user_slice_raw", True, offset, length)
        try:
            data = reader.read_raw(n)
            sp.write(off, data)
        finally:
            if b is not None:
                b.release()

    # --- ownership -------------------------------------------------------------------

    def drop(self) -> None:
        """Give the page back (`__free_pages(page, 0)`); never sleeps."""
        sp = self._live("drop")
        refuse_drop_while_mapped((sp,), "a Page")
        self._dropped_at = here()
        # SAFETY: this handle owns one reference of `sp` (type invariant) and gives it up.
        sp.kernel.put_page(sp)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dropped_at is None:
            self.drop()


class BorrowedPage(Page):
    """A non-owning view of a page owned by someone else (a `VBox`, a `VVec`).

    Invariants: the borrowed `struct page` is valid for all of `_lt` (the owner's
    life); dropping a `BorrowedPage` frees nothing.
    """

    __slots__ = ("_lt",)

    def __init__(self, page: StructPage, lt: Lifetime, site: Site) -> None:
        super().__init__(page, site)
        self._lt = lt

    @classmethod
    @unsafe_fn(
        safety="`ptr` points to a valid struct page, and it remains valid for the entire "
        "lifetime `lifetime`.",
        checked="a freed page or an ended lifetime at from_raw is an UnsafeError; every use "
        "after the owner ended is a LifetimeError",
    )
    def from_raw(cls, ptr: StructPage, lifetime: Lifetime) -> BorrowedPage:
        """Borrow the page `ptr` for `lifetime` (`BorrowedPage::from_raw`).

        Safety: `ptr` must point to a valid `struct page` that remains valid for all of
        `lifetime`.
        """
        if not isinstance(ptr, StructPage):
            raise TypeError(f"BorrowedPage.from_raw takes a struct page, got {type(ptr).__name__}")
        if not isinstance(lifetime, Lifetime):
            raise TypeError(
                f"BorrowedPage.from_raw takes a Lifetime, got {type(lifetime).__name__}"
            )
        if STATE.on:
            if ptr.refcount <= 0:
                raise UnsafeError(
                    "BorrowedPage::from_raw on a page that is not valid (it is free)",
                    rule="borrowed-page-invalid",
                    obj=ptr.describe(),
                    site=here(),
                    origin=ptr.freed_at,
                    origin_label="the page was freed",
                )
            if not lifetime.is_alive():
                raise UnsafeError(
                    "BorrowedPage::from_raw for a lifetime that already ended",
                    rule="borrowed-page-invalid",
                    obj=ptr.describe(),
                    site=here(),
                    origin=lifetime.end_site,
                    origin_label=lifetime.end_label,
                )
        # INVARIANT: the caller promises `ptr` stays valid for `lifetime`; checked above for now.
        return cls(ptr, lifetime, here())

    def _live(self, use: str) -> StructPage:
        lt = self._lt
        if STATE.on and not lt.is_alive():
            ended = lt
            while ended.alive and ended.parent is not None:
                ended = ended.parent
            raise LifetimeError(
                f"{use} of a BorrowedPage after its owner ended",
                rule="borrowed-page-outlived-owner",
                obj=self._page.describe(),
                site=here(),
                origin=ended.end_site,
                origin_label=ended.end_label,
                notes=[("the page was borrowed", self.origin_site)],
            )
        return super()._live(use)

    def drop(self) -> None:
        """End this borrow; the page stays with its owner (`ManuallyDrop`)."""
        sp = super()._live("drop")
        refuse_drop_while_mapped((sp,), "a BorrowedPage")
        self._dropped_at = here()
