"""The shrinkable pages behind a binder mapping (drivers/android/binder/page_range.rs).

A process's binder mapping is filled lazily: a page is allocated and inserted into the
VMA (`vm_insert_page`) only when a buffer needs it, and when no buffer uses it any more
it is not freed but put on a shrinker's LRU, from which memory pressure may reclaim it
(zapping it out of the VMA first). `ShrinkablePageRange` keeps one `PageInfo` per page
of the mapping, in one of three states:

* Free: no page;
* Available: a page, on the LRU (the shrinker may free it);
* Used: a page, off the LRU (a buffer is using it; reads and writes are allowed).

`use_range` takes pages to Used (allocating and inserting the missing ones; it may
sleep), `stop_using_range` takes them back to Available (atomic-safe), and the shrinker
takes Available pages to Free.

The types are split as upstream splits them: `Shrinker` is the registered shrinker
together with its `ListLru` (the kernel's `list_lru`: per-node lists under the "lru
spinlock"), shared by every page range; `ShrinkablePageRange` is per process and
pinned, since each `PageInfo` points back at it; `PageInfo` is one page slot.

Rust Binder only trusts a VMA it finds by address if it is its own: `register_with_vma`
stores the range as the VMA's private data and installs `BINDER_VM_OPS`, and
`check_vma` requires both before inserting or zapping a page (the fix for
CVE-2026-43434: a VMA unmapped and replaced at the same address must not receive binder
pages).

Lock order, as upstream:

  1. `mm_lock` (Mutex, serialises `vm_insert_page` and the zap of one range)
  2. the mmap lock (or the VMA read lock)
  3. `lock` (SpinLock: the page array, its size, the VMA address)
  4. the lru spinlock (`ListLru.lock`)

The shrinker is entered holding the lru spinlock, so it takes the others in the
opposite order and therefore only with trylocks (`mmget_not_zero`, `mm_lock.try_lock`,
`mmap_read_trylock`, `lock.try_lock`); it drops the lru spinlock before zapping the page,
and drops everything it took with atomic-safe destructors (`mmput_async`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final, Literal, Protocol

from ownership import sched
from ownership.alloc import GFP_HIGHMEM, GFP_KERNEL, GFP_ZERO, KVec
from ownership.aref import ARef
from ownership.config import STATE
from ownership.context import may_sleep
from ownership.errors import EBUSY, EFAULT, EINVAL, ESRCH, KernelBug, KernelError, UnsafeError
from ownership.marker import impl_send, impl_sync
from ownership.mm import Mm, MmapReadGuard, MmWithUser, MmWithUserAsync
from ownership.mm.virt import VmAreaMixedMap, VmAreaNew, VmAreaRef, VmOperations
from ownership.page import PAGE_SHIFT, PAGE_SIZE, Page
from ownership.pin import Pinned
from ownership.site import Site, site_of_frame
from ownership.sync import Mutex, MutexGuard, SpinLock, SpinLockGuard
from ownership.task import current
from ownership.uaccess import UserSliceReader
from ownership.unsafe import unsafe, unsafe_fn
from ownership.warn import warn

__all__ = [
    "BINDER_VM_OPS",
    "LRU_REMOVED_RETRY",
    "LRU_SKIP",
    "SZ_4M",
    "ListLru",
    "PageInfo",
    "PageState",
    "ShrinkablePageRange",
    "Shrinker",
    "ShrinkerHost",
    "rust_shrink_free_page",
]

SZ_4M = 4 << 20
"""The largest mapping binder uses; a larger VMA is used only up to this size."""

LRU_SKIP = 0
"""`LRU_SKIP`: the item stays on the list; the lru lock is still held."""
LRU_REMOVED_RETRY = 1
"""`LRU_REMOVED_RETRY`: the item was isolated and the lru lock dropped; rescan."""

PageState = Literal["free", "available", "used"]


PAGES_IN_USE: Final = (
    "All pages touched by this operation must be in use for the duration of the call."
)
"""The Safety contract of the page accessors (`read`, `write`, `fill_zero`,
`copy_from_user_slice`). Upstream repeats the same `# Safety` section on each; it is
written once here, and the static checker and the contract review read the constant."""

PAGES_IN_USE_CHECKED: Final = (
    "a page on the shrinker's LRU is an UnsafeError naming where it was made available; "
    "a page freed meanwhile is a LifetimeError"
)
"""What the model checks of `PAGES_IN_USE` at run time."""


class _BinderVmOps(VmOperations):
    """Rust Binder's `vm_operations_struct`: no callbacks, used only as an identity."""


BINDER_VM_OPS = _BinderVmOps()
"""Installed on every binder VMA; `check_vma` recognises binder's VMAs by it."""


class PageInfo:
    """One page slot of a `ShrinkablePageRange` (`PageInfo`).

    Invariants: `range` and `index` never change. `page` is written only under
    `range.lock`, and set to a page only with `range.mm_lock` held. `lru_nid` is the
    node list of `range.shrinker.list_lru` holding this slot (None when off the LRU),
    written only under the lru lock; `lru_site` is where it was last put on the LRU.
    """

    __slots__ = ("index", "lru_nid", "lru_site", "page", "range")

    def __init__(self, owner: ShrinkablePageRange, index: int) -> None:
        self.range = owner
        self.index = index
        self.page: Page | None = None
        self.lru_nid: int | None = None
        self.lru_site: Site | None = None

    def set_page(self, page: Page) -> None:
        """Install `page` (the caller holds `range.lock` and `range.mm_lock`)."""
        old = self.page
        if old is not None:
            # Upstream logs and frees the old page: the mm_lock makes this unreachable.
            warn("binder-set-page-twice", "set_page called when there is already a page")
            old.drop()
        self.page = page

    def take_page(self) -> Page | None:
        """Take the page out of the slot (the caller holds `range.lock`)."""
        page, self.page = self.page, None
        return page

    def describe(self) -> str:
        return f"binder page {self.index} of pid {self.range.pid}"


class _LruLists:
    """The lists of a `ListLru`: one insertion-ordered set per NUMA node.

    Invariants: `nodes[nid]` holds exactly the items whose `lru_nid` is `nid`, oldest
    first.
    """

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[int, dict[PageInfo, None]] = {}


IsolateFn = Callable[[PageInfo, SpinLockGuard[_LruLists]], int]


@impl_send("the lists are behind the lru spinlock")
@impl_sync("the lists are behind the lru spinlock")
class ListLru:
    """A `list_lru`: the pages the shrinker may reclaim, least recently added first.

    Invariants: an item is on at most one node list, and `item.lru_nid` names it;
    `_count` is the number of items on all lists. Everything is changed only with `lock`
    held.
    """

    __slots__ = ("_count", "lock")

    def __init__(self, name: str) -> None:
        self.lock: SpinLock[_LruLists] = SpinLock(_LruLists(), name=f"list_lru lock ({name})")
        self._count = 0

    def add(self, item: PageInfo, nid: int) -> bool:
        """`list_lru_add`: put `item` at the tail of node `nid`'s list unless it is listed."""
        with self.lock.lock() as g:
            lists = g.data
            if item.lru_nid is not None:
                return False
            lists.nodes.setdefault(nid, {})[item] = None
            self._count += 1
            item.lru_nid = nid
            if STATE.on:
                # Two frames up: past `stop_using_range`, to whoever stopped using it.
                item.lru_site = site_of_frame(sys._getframe(2))
            return True

    def delete(self, item: PageInfo) -> bool:
        """`list_lru_del`: take `item` off its list, if it is on one."""
        with self.lock.lock() as g:
            return self._unlink(g.data, item)

    def _unlink(self, lists: _LruLists, item: PageInfo) -> bool:
        nid = item.lru_nid
        if nid is None:
            return False
        del lists.nodes[nid][item]
        self._count -= 1
        item.lru_nid = None
        return True

    def isolate(self, guard: SpinLockGuard[_LruLists], item: PageInfo) -> None:
        """`list_lru_isolate`: remove `item` during a walk, under the walk's lock."""
        self._unlink(guard.data, item)

    def count(self) -> int:
        """`list_lru_count`: a lockless read of the number of items (one word)."""
        hook = sched.atomic_hook
        if hook is not None:
            # A lockless read races with add/del: a preemption point under an explorer,
            # on the lock word that add/del take (so the dfs pruning orders them).
            hook(self.lock._raw)
        return self._count

    def contains(self, item: PageInfo) -> bool:
        with self.lock.lock():
            return item.lru_nid is not None

    def walk(self, isolate: IsolateFn, nr_to_walk: int) -> int:
        """`list_lru_walk`: offer up to `nr_to_walk` items to `isolate`, lock held.

        `isolate(item, guard)` returns `LRU_SKIP` with the lock still held, or
        `LRU_REMOVED_RETRY` after isolating the item and dropping the lock; the walk
        then re-takes the lock and starts again from the head. Returns the number of
        items removed.
        """
        removed = 0
        guard = self.lock.lock()
        try:
            restart = True
            while restart and nr_to_walk > 0:
                restart = False
                for lst in list(guard.data.nodes.values()):
                    for item in list(lst):
                        if nr_to_walk <= 0:
                            break
                        if item.lru_nid is None:
                            continue
                        nr_to_walk -= 1
                        ret = isolate(item, guard)
                        if ret == LRU_REMOVED_RETRY:
                            if guard.is_held():
                                raise KernelBug(
                                    "list-lru-removed-retry-locked",
                                    "isolate callback returned LRU_REMOVED_RETRY with the lru "
                                    "lock held",
                                )
                            removed += 1
                            guard = self.lock.lock()
                            restart = True
                            break
                        if not guard.is_held():
                            raise KernelBug(
                                "list-lru-skip-unlocked",
                                "isolate callback returned LRU_SKIP after dropping the lru lock",
                            )
                    if restart or nr_to_walk <= 0:
                        break
        finally:
            if guard.is_held():
                guard.drop()
        return removed


class ShrinkerRegistration(Protocol):
    """What the kernel gives back for a registered shrinker."""

    def unregister(self) -> None: ...


class ShrinkerHost(Protocol):
    """The kernel a shrinker is registered with (`shrinker_alloc` + `shrinker_register`)."""

    def register_shrinker(
        self, name: str, count_objects: Callable[[], int], scan_objects: Callable[[int], int]
    ) -> ShrinkerRegistration: ...


@impl_send("the shrinker and its list_lru are thread safe")
@impl_sync("the shrinker and its list_lru are thread safe")
class Shrinker:
    """A shrinker with its `list_lru`, shared by the page ranges of one binder device.

    Invariants: `list_lru` holds only `PageInfo`s of live page ranges in the Available
    state; after `register(kernel)` the kernel calls `count_objects`/`scan_objects`.
    """

    __slots__ = ("_registration", "list_lru", "name")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a shrinker needs a non-empty name")
        self.name = name
        self.list_lru = ListLru(name)
        self._registration: ShrinkerRegistration | None = None

    def register(self, kernel: ShrinkerHost) -> None:
        """Register with `kernel` (`EBUSY` if this shrinker already is)."""
        if self._registration is not None:
            raise KernelError(EBUSY, f"shrinker '{self.name}' is already registered")
        self._registration = kernel.register_shrinker(
            self.name, self.count_objects, self.scan_objects
        )

    def unregister(self) -> None:
        """`shrinker_free`: the callbacks are not called again."""
        reg, self._registration = self._registration, None
        if reg is not None:
            reg.unregister()

    def count_objects(self) -> int:
        """`rust_shrink_count`: how many pages could be freed."""
        return self.list_lru.count()

    def scan_objects(self, nr_to_scan: int) -> int:
        """`rust_shrink_scan`: walk the LRU, freeing up to `nr_to_scan` pages."""
        return self.list_lru.walk(rust_shrink_free_page, nr_to_scan)


class _Inner:
    """The fields of a `ShrinkablePageRange` behind its spinlock.

    Invariants: `pages` has `size` slots once registered (0 before); `vma_addr` is the
    start of the registered VMA.
    """

    __slots__ = ("pages", "pages_alloc", "size", "vma_addr")

    def __init__(self) -> None:
        self.pages: tuple[PageInfo, ...] = ()
        self.pages_alloc: KVec[PageInfo] | None = None
        self.size = 0
        self.vma_addr = 0


@impl_send("every mutable field is behind mm_lock or lock")
@impl_sync("every mutable field is behind mm_lock or lock")
class ShrinkablePageRange(Pinned):
    """The pages of one process's binder mapping, reclaimable while unused.

    Invariants: pinned (every `PageInfo` points back here); `mm` holds an `mmgrab`
    reference to the address space of the process that opened the file; a slot's page
    is set only with `mm_lock` held, so a page checked missing under `lock` cannot appear
    while `mm_lock` is held; pages read or written through `read`/`write`/`fill_zero`/
    `copy_from_user_slice` are Used.
    """

    def __init__(self, shrinker: Shrinker) -> None:
        if not isinstance(shrinker, Shrinker):
            raise TypeError(f"ShrinkablePageRange needs a Shrinker, got {type(shrinker).__name__}")
        cur = current()
        mm = cur.mm()
        if mm is None:
            raise KernelError(ESRCH, "a kernel thread has no address space to map binder into")
        self.shrinker = shrinker
        self.pid = cur.pid
        # INVARIANT: an mmgrab reference to the opener's address space.
        self.mm: ARef[Mm] = ARef.from_ref(mm.as_mm())
        self.mm_lock: Mutex[None] = Mutex(None, name="ShrinkablePageRange::mm")
        self.lock: SpinLock[_Inner] = SpinLock(_Inner(), name="ShrinkablePageRange")
        self._dropped = False
        self._pin_here()

    @classmethod
    def new(cls, shrinker: Shrinker) -> ShrinkablePageRange:
        """A range for the current process (`ESRCH` from a kernel thread)."""
        return cls(shrinker)

    # --- identity of our VMAs --------------------------------------------------------

    def check_vma(self, vma: VmAreaRef) -> VmAreaMixedMap | None:
        """`vma` as a mixed map if it is ours (our `vm_ops` and private data), else None.

        The range outlives every VMA registered with it (it is dropped only after the
        file's release), so a stale private-data pointer cannot match another range.
        """
        if vma.vm_ops() is not BINDER_VM_OPS:
            return None
        if vma.vm_private_data() is not self:
            return None
        return vma.as_mixedmap_vma()

    def stable_trylock_mm(self) -> MutexGuard[None] | None:
        """`mm_lock.try_lock()`, usable by the shrinker under the lru spinlock.

        The guard stays valid until dropped even if the range is being torn down, because
        `drop()` takes `mm_lock` before freeing the page array.
        """
        return self.mm_lock.try_lock()

    def mmget_for_shrinker(self) -> ARef[MmWithUserAsync] | None:
        """An `mmget` reference for the shrinker, dropped with `mmput_async`.

        The shrinker may drop it while it still holds the lru spinlock, where a plain
        `mmput` (which may sleep) is not allowed.
        """
        mm = self.mm.get().mmget_not_zero()
        return MmWithUser.into_mmput_async(mm) if mm is not None else None

    @may_sleep
    def zap_page(self, mmap_read: MmapReadGuard, vma_addr: int, page_index: int) -> None:
        """Unmap page `page_index` from our VMA, if the VMA at `vma_addr` is still ours."""
        unchecked = mmap_read.vma_lookup(vma_addr)
        if unchecked is None:
            return
        vma = self.check_vma(unchecked)
        if vma is not None:
            vma.zap_vma_range(vma_addr + (page_index << PAGE_SHIFT), PAGE_SIZE)

    # --- setup ---------------------------------------------------------------------------

    def register_with_vma(self, vma: VmAreaNew) -> int:
        """Register the VMA being mapped; returns its number of pages (at most 4 MiB worth).

        `EINVAL` for a VMA of another address space or one with no page, `EBUSY` if a
        VMA was already registered.
        """
        num_bytes = min(vma.end() - vma.start(), SZ_4M)
        num_pages = num_bytes >> PAGE_SHIFT
        if self.mm.get() != vma.mm():
            raise KernelError(EINVAL, "failed to register with vma: invalid vma->vm_mm")
        if num_pages == 0:
            raise KernelError(EINVAL, "failed to register with vma: size zero")
        # The page array is allocated before taking the spinlock.
        pages: KVec[PageInfo] = KVec.with_capacity(num_pages, GFP_KERNEL)
        for i in range(num_pages):
            pages.push_within_capacity(PageInfo(self, i))
        with self.lock.lock() as g:
            inner = g.data
            busy = inner.size > 0
            if not busy:
                # INVARIANT: `size` slots, all Free, for the VMA starting at `vma_addr`.
                inner.pages = tuple(pages)
                inner.pages_alloc = pages
                inner.size = num_pages
                inner.vma_addr = vma.start()
                # The private data is only compared, never dereferenced.
                vma.set_private_data(self)
                vma.set_vm_ops(BINDER_VM_OPS)
        if busy:
            # The unused array is freed after the spinlock is released.
            pages.drop()
            raise KernelError(EBUSY, "failed to register with vma: already registered")
        return num_pages

    # --- Free/Available -> Used ---------------------------------------------------------------

    @may_sleep
    def use_range(self, start: int, end: int) -> None:
        """Make pages `[start, end)` present, mapped and Used. Must not be called atomic."""
        if start >= end:
            return
        g = self.lock.lock()
        try:
            inner = g.data
            if end > inner.size or start < 0:
                raise KernelBug(
                    "binder-use-range-bounds",
                    f"use_range({start}, {end}) beyond {inner.size} pages",
                )
            pages = inner.pages
            lru = self.shrinker.list_lru
            for i in range(start, end):
                info = pages[i]
                if info.page is not None:
                    # The page is about to be used: take it off the LRU. The shrinker
                    # cannot free it in between, because freeing needs our lock.
                    lru.delete(info)
                else:
                    # A missing page: allocate it on the slow path, without the lock.
                    g.drop()
                    self._use_page_slow(i)
                    g = self.lock.lock()
        finally:
            if g.is_held():
                g.drop()

    @may_sleep
    def _use_page_slow(self, i: int) -> None:
        """Allocate page `i`, insert it into our VMA and mark it Used (slow path)."""
        new_page: Page | None = Page.alloc_page(GFP_KERNEL | GFP_HIGHMEM | GFP_ZERO)
        try:
            with self.mm_lock.lock():
                with self.lock.lock() as g:
                    info = g.data.pages[i]
                    if info.page is not None:
                        # Someone installed it while we did not hold the spinlock.
                        self.shrinker.list_lru.delete(info)
                        return
                    vma_addr = g.data.vma_addr
                user_page_addr = vma_addr + (i << PAGE_SHIFT)
                # `mmput_async`: the caller is usually another process; if it held the last
                # mm_users count, a plain `mmput` would tear the address space down here.
                got = self.mm.get().mmget_not_zero()
                if got is None:
                    raise KernelError(ESRCH, "the process's address space is gone")
                mm = MmWithUser.into_mmput_async(got)
                try:
                    assert new_page is not None
                    self._insert_page(mm.get(), vma_addr, user_page_addr, new_page)
                    with self.lock.lock():
                        # The slot was empty when checked, and only holders of mm_lock
                        # (us) fill slots, so it still is.
                        info.set_page(new_page)
                        new_page = None
                finally:
                    mm.drop()
        finally:
            if new_page is not None:
                new_page.drop()

    @may_sleep
    def _insert_page(self, mm: MmWithUser, vma_addr: int, user_page_addr: int, page: Page) -> None:
        """Insert `page` at `user_page_addr` in our VMA, found under the VMA or mmap lock."""
        vma_read = mm.lock_vma_under_rcu(vma_addr)
        if vma_read is not None:
            with vma_read:
                vma = self.check_vma(vma_read)
                if vma is None:
                    raise KernelError(ESRCH, "the VMA at the binder address is not binder's")
                vma.vm_insert_page(user_page_addr, page)
            return
        with mm.mmap_read_lock() as mmap_read:
            unchecked = mmap_read.vma_lookup(vma_addr)
            vma = self.check_vma(unchecked) if unchecked is not None else None
            if vma is None:
                raise KernelError(ESRCH, "no binder VMA at the binder address")
            vma.vm_insert_page(user_page_addr, page)

    # --- Used -> Available ---------------------------------------------------------------------

    def stop_using_range(self, start: int, end: int) -> None:
        """Make the pages of `[start, end)` Available to the shrinker. Atomic-safe."""
        if start >= end:
            return
        with self.lock.lock() as g:
            inner = g.data
            if end > inner.size or start < 0:
                raise KernelBug(
                    "binder-stop-using-range-bounds",
                    f"stop_using_range({start}, {end}) beyond {inner.size} pages",
                )
            pages = inner.pages
            lru = self.shrinker.list_lru
            for i in range(end - 1, start - 1, -1):
                info = pages[i]
                page = info.page
                if page is not None:
                    lru.add(info, page.nid())

    # --- access to Used pages ---------------------------------------------------------------------

    def _iterate(self, offset: int, size: int, cb: Callable[[Page, int, int], None]) -> None:
        if size == 0:
            return
        with self.lock.lock() as g:
            pages, num_pages = g.data.pages, g.data.size
        if offset < 0 or size < 0 or offset + size > (num_pages << PAGE_SHIFT):
            raise KernelError(EFAULT, f"[{offset}, {offset}+{size}) is outside the mapping")
        page_index = offset >> PAGE_SHIFT
        offset &= PAGE_SIZE - 1
        while size > 0:
            available = min(size, PAGE_SIZE - offset)
            info = pages[page_index]
            page = info.page
            if page is None:
                warn("binder-page-null", f"{info.describe()} is missing")
                raise KernelError(EFAULT, f"{info.describe()} is not present")
            if STATE.on and info.lru_nid is not None:
                raise UnsafeError(
                    "binder page accessed while not in use (it is on the shrinker's LRU)",
                    rule="binder-page-not-in-use",
                    obj=info.describe(),
                    # The caller of the accessor (read, write...), past ownership's wrapper.
                    site=site_of_frame(sys._getframe(2)),
                    origin=info.lru_site,
                    origin_label="the page was made available to the shrinker",
                )
            cb(page, offset, available)
            size -= available
            page_index += 1
            offset = 0

    @unsafe_fn(safety=PAGES_IN_USE, checked=PAGES_IN_USE_CHECKED)
    def read(self, offset: int, size: int) -> bytes:
        """Copy `size` bytes at `offset` of the mapping into the kernel (`EFAULT` outside)."""
        out = bytearray()

        def chunk(page: Page, off: int, n: int) -> None:
            with unsafe(
                "SAFETY: the caller guarantees the page is in use, so nobody writes to it "
                "concurrently (the page's byte-range borrows check that)."
            ):
                out.extend(page.read_raw(off, n))

        self._iterate(offset, size, chunk)
        return bytes(out)

    @unsafe_fn(safety=PAGES_IN_USE, checked=PAGES_IN_USE_CHECKED)
    def write(self, offset: int, data: bytes) -> None:
        """Copy `data` into the mapping at `offset` (`EFAULT` outside)."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write takes bytes, got {type(data).__name__}")
        pos = 0

        def chunk(page: Page, off: int, n: int) -> None:
            nonlocal pos
            with unsafe(
                "SAFETY: the caller guarantees the page is in use; `data[pos:pos + n]` is exactly "
                "`n` bytes."
            ):
                page.write_raw(data[pos : pos + n], off, n)
            pos += n

        self._iterate(offset, len(data), chunk)

    @unsafe_fn(safety=PAGES_IN_USE, checked=PAGES_IN_USE_CHECKED)
    def fill_zero(self, offset: int, size: int) -> None:
        """Zero `size` bytes of the mapping at `offset`."""

        def chunk(page: Page, off: int, n: int) -> None:
            with unsafe("SAFETY: the page is in use for this call, per our caller"):
                page.fill_zero_raw(off, n)

        self._iterate(offset, size, chunk)

    @unsafe_fn(safety=PAGES_IN_USE, checked=PAGES_IN_USE_CHECKED)
    @may_sleep
    def copy_from_user_slice(self, reader: UserSliceReader, offset: int, size: int) -> None:
        """Copy `size` bytes from userspace into the mapping at `offset` (may sleep)."""

        def chunk(page: Page, off: int, n: int) -> None:
            with unsafe(
                "SAFETY: the caller guarantees the page is in use; races on the user side are "
                "allowed by `copy_from_user_slice_raw`."
            ):
                page.copy_from_user_slice_raw(reader, off, n)

        self._iterate(offset, size, chunk)

    # --- inspection -------------------------------------------------------------------------------

    def num_pages(self) -> int:
        with self.lock.lock() as g:
            return g.data.size

    def vma_addr(self) -> int:
        with self.lock.lock() as g:
            return g.data.vma_addr

    def page_states(self, start: int = 0, end: int | None = None) -> list[PageState]:
        """The states of slots `[start, end)` (Free / Available / Used), under the locks."""
        with self.lock.lock() as g, self.shrinker.list_lru.lock.lock():
            return [
                "free" if info.page is None else "available" if info.lru_nid is not None else "used"
                for info in g.data.pages[start:end]
            ]

    def page_count(self) -> int:
        """How many slots hold a page (Available or Used)."""
        with self.lock.lock() as g:
            return sum(1 for info in g.data.pages if info.page is not None)

    # --- teardown ------------------------------------------------------------------------

    @may_sleep
    def drop(self) -> None:
        """`PinnedDrop`: take every page off the LRU, free them, give back the mm.

        `mm_lock` is taken (it may sleep) so that a shrinker holding a
        `stable_trylock_mm` guard finishes first; after this the shrinker never sees
        our pages again.
        """
        if self._dropped:
            raise KernelBug("binder-page-range-double-drop", "ShrinkablePageRange dropped twice")
        with self.lock.lock() as g:
            pages, size, alloc = g.data.pages, g.data.size, g.data.pages_alloc
        if size:
            with self.mm_lock.lock():
                for info in pages:
                    self.shrinker.list_lru.delete(info)
            # Nobody else can reach the array now: free it and the pages in it.
            with self.lock.lock() as g:
                g.data.pages = ()
                g.data.size = 0
                g.data.pages_alloc = None
            for info in pages:
                page = info.take_page()
                if page is not None:
                    page.drop()
            if alloc is not None:
                alloc.drop()
        self._dropped = True
        self.mm.drop()


def rust_shrink_free_page(item: PageInfo, lru: SpinLockGuard[_LruLists]) -> int:
    """The list_lru isolate callback: free one Available page, entered with the lru lock.

    Everything is trylocked (the order is the reverse of the lock order); on any failure
    the page is skipped. On success the page is taken out of its slot under the range's
    spinlock, the lru lock is dropped, and the page is zapped from the VMA (if the VMA
    at the address is still ours) while the mmap read lock and `mm_lock` keep
    `use_page_slow` from re-inserting it. Then the guards, the mm and the page are
    dropped in upstream's order.
    """
    rng = item.range
    mm = rng.mmget_for_shrinker()
    if mm is None:
        return LRU_SKIP
    mm_mutex = rng.stable_trylock_mm()
    if mm_mutex is None:
        mm.drop()
        return LRU_SKIP
    mmap_read = mm.get().mmap_read_trylock()
    if mmap_read is None:
        mm_mutex.drop()
        mm.drop()
        return LRU_SKIP
    # The range's spinlock cannot be taken normally: we hold the lru lock.
    inner = rng.lock.try_lock()
    if inner is None:
        mmap_read.drop()
        mm_mutex.drop()
        mm.drop()
        return LRU_SKIP
    page: Page | None = None
    try:
        rng.shrinker.list_lru.isolate(lru, item)
        page_index = item.index
        # The slot is emptied before the page is unmapped; `use_page_slow` cannot insert a
        # new page until the zap is done, since we hold `mm_lock` and the mmap read lock.
        page = item.take_page()
        vma_addr = inner.data.vma_addr
        inner.drop()
        # From here on the PageInfo and the range may be freed at any moment once the lru
        # lock is released, except for `mm_lock`, which our guard keeps.
        lru.drop()
        rng.zap_page(mmap_read, vma_addr, page_index)
    finally:
        if inner.is_held():
            inner.drop()
        mmap_read.drop()
        mm_mutex.drop()
        mm.drop()
        if page is not None:
            page.drop()
    return LRU_REMOVED_RETRY
