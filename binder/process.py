"""A process using binder, memory layer (drivers/android/binder/process.rs).

There is one `Process` per open binder file. This module holds what concerns its
mapping: `mmap` (refusing foreign processes, writable and zero-address mappings),
`create_mapping` (the `RangeAllocator` and the registration of the VMA with the
`ShrinkablePageRange`), and the buffer operations the IPC layer builds on:
`buffer_alloc` (reserve a range with the "NeedAlloc" retry loop, so that nothing is
allocated under the spinlock, then make its pages Used), `buffer_get` (take back a
buffer userspace frees), `buffer_raw_free` (abort the reservation and make the pages
Available, before releasing the lock) and `buffer_make_freeable` (commit a buffer
handed to userspace). `binder.process_ipc` holds the IPC half; `Process` is one object
with one `inner` spinlock, as upstream, built from both (`ProcessInner` adds the
mapping to the IPC fields).

`Process` lives in an `Arc` (`Process.new`); an `Allocation` holds a count of it.
Dropping the last count frees the page range (all pages) and the `mm` reference.

Lock order (upstream): `ShrinkablePageRange::mm` (Mutex) -> the mmap lock ->
`Process::inner` (SpinLock) -> `ShrinkablePageRange` (SpinLock) -> the lru spinlock.
`buffer_raw_free` calls `stop_using_range` with `Process::inner` held; `use_range` runs
with no lock held; `mmap` runs with the mmap write lock held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from ownership.alloc import GFP_KERNEL
from ownership.aref import ARef
from ownership.context import may_sleep
from ownership.errors import EINVAL, EPERM, KernelError
from ownership.marker import impl_send, impl_sync
from ownership.mm.virt import VmAreaNew
from ownership.page import PAGE_SIZE
from ownership.sync import Arc, SpinLock
from ownership.task import Task, current
from ownership.unsafe import unsafe
from ownership.warn import warn

from .allocation import Allocation, AllocationInfo, NewAllocation
from .context import Context
from .error import BinderError
from .page_range import SZ_4M, ShrinkablePageRange, Shrinker
from .process_ipc import ProcessIpc, ProcessIpcInner
from .range_alloc import RangeAllocator, ReserveNewArgs, ReserveNewSuccess

__all__ = ["Mapping", "Process", "ProcessInner"]


def _check_ptr(ptr: object) -> None:
    if not isinstance(ptr, int) or isinstance(ptr, bool):
        raise TypeError(f"a user pointer is an int, got {type(ptr).__name__}")


class Mapping:
    """The registered mapping of a process: its user address and its range allocator.

    Invariants: `alloc` covers `[address, address + size)` of the process's address
    space, which is the VMA registered with the process's page range.
    """

    __slots__ = ("address", "alloc")

    def __init__(self, address: int, size: int) -> None:
        self.address = address
        self.alloc: RangeAllocator[AllocationInfo] = RangeAllocator(size)


class ProcessInner(ProcessIpcInner):
    """The fields of `Process` behind `Process.inner`: the IPC ones and the mapping.

    Invariants: `mapping` is None until the first successful `mmap`, and again after
    the process was released.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mapping: Mapping | None = None


@impl_send("every mutable field is behind Process.inner, node_refs or the page range's locks")
@impl_sync("every mutable field is behind Process.inner, node_refs or the page range's locks")
class Process(ProcessIpc):
    """A process that opened a binder device (one per open file).

    Invariants: `task` holds a reference to the opener's thread-group leader; `pages`
    is bound to the opener's address space; `inner.mapping` is set once, by the first
    successful `mmap`, and taken at release; the object lives in an `Arc` made by `new`.
    """

    page_range_type: ClassVar[type[ShrinkablePageRange]] = ShrinkablePageRange
    """The page range class (a test substitutes an unfixed variant to show a bug)."""

    def __init__(self, ctx: Context, shrinker: Shrinker) -> None:
        cur = current()
        self.ctx = ctx
        # INVARIANT: a get_task_struct reference to the opener's group leader.
        self.task: ARef[Task] = ARef.from_ref(cur.group_leader())
        self.inner: SpinLock[ProcessInner] = SpinLock(ProcessInner(), name="Process::inner")
        try:
            self.pages = self.page_range_type.new(shrinker)
        except BaseException:
            self.task.drop()
            raise
        self.init_ipc()
        self._self_arc: Callable[[], Arc[Process]] | None = None

    @classmethod
    @may_sleep
    def new(cls, ctx: Context, shrinker: Shrinker) -> Arc[Process]:
        """Make the process of the current task, in an `Arc`, registered with `ctx`."""
        proc = cls(ctx, shrinker)
        try:
            arc = Arc.new(proc, GFP_KERNEL)
        except BaseException:
            proc._drop_memory()
            raise
        # Remember the Arc's allocation without owning a count: `self_arc()` clones it
        # while the process is alive (some count exists), like `ArcBorrow::into()`.
        # `into_raw` of a clone keeps that clone's count, which `from_raw(..).drop()`
        # gives straight back: the net count is unchanged.
        raw = arc.clone().into_raw()
        with unsafe(
            "SAFETY: `raw` was just given up by `into_raw` of a clone, whose count this handle "
            "takes over and drops at once."
        ):
            Arc.from_raw(raw).drop()

        def self_arc() -> Arc[Process]:
            # A method of the process is running, so some handle holds a count and the
            # allocation is alive; a count taken after the last one went is a
            # RefcountError (refcount_inc on zero), never a silent use after free.
            with unsafe(
                "SAFETY: `raw` is the process's own allocation and a method of the process is "
                "running, so a count keeps it alive; the handle is forgotten below, never dropped."
            ):
                borrowed = Arc.from_raw(raw)
            new = borrowed.clone()
            # The borrowed handle never owned a count: forget it without a decrement.
            borrowed.into_raw()
            return new

        proc._self_arc = self_arc
        ctx.register_process(proc)
        return arc

    def self_arc(self) -> Arc[Process]:
        """A new `Arc` count of this process (`Arc::from(ArcBorrow)`)."""
        make = self._self_arc
        if make is None:
            raise KernelError(EINVAL, "Process::self_arc on a process that is not in an Arc")
        return make()

    # --- mmap ----------------------------------------------------------------------------

    @may_sleep
    def mmap(self, vma: VmAreaNew) -> None:
        """The mmap file operation: set up the one binder mapping of this process.

        `EINVAL` from another process or at address 0, `EPERM` for a writable mapping,
        `EBUSY` if the process already has a mapping.
        """
        # A mapping may only be made by the process that opened the file.
        if current().group_leader() != self.task.get():
            raise KernelError(EINVAL, "binder mmap from a process that did not open the file")
        if vma.start() == 0:
            raise KernelError(EINVAL, "binder mmap at address 0")
        try:
            vma.try_clear_maywrite()
        except KernelError:
            raise KernelError(EPERM, "binder mappings must not be writable") from None
        vma.set_dontcopy()
        vma.set_mixedmap()
        self.create_mapping(vma)

    def create_mapping(self, vma: VmAreaNew) -> None:
        size = min(vma.end() - vma.start(), SZ_4M)
        mapping = Mapping(vma.start(), size)
        page_count = self.pages.register_with_vma(vma)
        if page_count * PAGE_SIZE != size:
            raise KernelError(EINVAL, "binder mapping size is not a whole number of pages")
        # Save the range allocator for later.
        with self.inner.lock() as g:
            g.data.mapping = mapping

    # --- buffers ---------------------------------------------------------------------------

    @may_sleep
    def buffer_alloc(self, debug_id: int, size: int, is_oneway: bool, from_pid: int) -> NewAllocation:
        """Reserve a buffer of `size` bytes and make its pages present and Used.

        `BR_DEAD_REPLY` (a `BinderError`) without a mapping, `ENOSPC` when it does not
        fit, `ENOMEM`, or `ESRCH` when the VMA is gone or not binder's.
        """
        args: ReserveNewArgs[AllocationInfo] = ReserveNewArgs(size, is_oneway, debug_id, from_pid)
        while True:
            with self.inner.lock() as g:
                mapping = g.data.mapping
                if mapping is None:
                    raise BinderError.new_dead()
                res = mapping.alloc.reserve_new(args)
                if isinstance(res, ReserveNewSuccess):
                    address = mapping.address
                    break
            # Memory is needed: allocate it with the lock released, then retry.
            args = res.make_alloc()
        # The allocations the allocator did not use are freed here, outside the lock.
        res.free_unused()
        alloc = NewAllocation(
            self.self_arc(), debug_id, res.offset, size, address + res.offset, res.oneway_spam_detected
        )
        # The range stays reserved until `alloc` is freed, so no `stop_using_range` can
        # race with this on these pages; several `use_range` on one page are fine.
        try:
            self.pages.use_range(res.offset // PAGE_SIZE, -(-(res.offset + size) // PAGE_SIZE))
        except BaseException:
            alloc.drop()
            raise
        return alloc

    def buffer_get(self, ptr: int) -> Allocation | None:
        """The buffer userspace hands back at `ptr` (Allocated -> Reserved), if any."""
        _check_ptr(ptr)
        with self.inner.lock() as g:
            mapping = g.data.mapping
            if mapping is None:
                return None
            offset = ptr - mapping.address
            if offset < 0:
                return None
            try:
                size, debug_id, data = mapping.alloc.reserve_existing(offset)
            except KernelError:
                return None
        alloc = Allocation(self.self_arc(), debug_id, offset, size, ptr)
        if data is not None:
            alloc.set_info(data)
        return alloc

    def buffer_raw_free(self, ptr: int) -> None:
        """Free the reserved buffer at `ptr` and make its now unused pages Available."""
        _check_ptr(ptr)
        failed = None
        with self.inner.lock() as g:
            mapping = g.data.mapping
            if mapping is None:
                return
            offset = ptr - mapping.address
            if offset < 0:
                return
            try:
                freed = mapping.alloc.reservation_abort(offset)
            except KernelError as e:
                failed = (mapping.address, e)
            else:
                # Done before the lock is released, so that `use_range` is not called on
                # these pages until `stop_using_range` has returned.
                self.pages.stop_using_range(freed.start_page_idx, freed.end_page_idx)
        if failed is not None:
            warn("binder-buffer-free", f"pointer {ptr:#x} failed to free, base = {failed[0]:#x}: {failed[1]}")

    def buffer_make_freeable(self, offset: int, data: AllocationInfo | None) -> None:
        """Commit the buffer at `offset` (handed to userspace), storing `data` with it."""
        failed: KernelError | None = None
        with self.inner.lock() as g:
            mapping = g.data.mapping
            if mapping is not None:
                try:
                    mapping.alloc.reservation_commit(offset, data)
                    data = None
                except KernelError as e:
                    failed = e
        if failed is not None:
            warn("binder-buffer-commit", f"offset {offset} failed to be marked freeable: {failed}")
        # Data that was not stored is dropped outside the lock: it may hold node references.
        if data is not None:
            data.drop()

    # --- teardown ------------------------------------------------------------------------

    @may_sleep
    def deferred_release_memory(self) -> None:
        """Free every buffer still allocated (the end of `deferred_release`)."""
        with self.inner.lock() as g:
            mapping, g.data.mapping = g.data.mapping, None
        if mapping is None:
            return
        taken: list[tuple[int, int, int, AllocationInfo | None]] = []
        mapping.alloc.take_for_each(lambda off, size, debug_id, data: taken.append((off, size, debug_id, data)))
        for off, size, debug_id, data in taken:
            alloc = Allocation(self.self_arc(), debug_id, off, size, mapping.address + off)
            if data is not None:
                alloc.set_info(data)
            alloc.drop()

    @may_sleep
    def _drop_memory(self) -> None:
        self.pages.drop()
        self.task.drop()

    @may_sleep
    def drop_arc(self) -> None:
        """The last `Arc` count went: free the pages and give back the mm and the task."""
        self._drop_memory()

    def mapping_info(self) -> tuple[int, int] | None:
        """`(address, size)` of the mapping, if there is one."""
        with self.inner.lock() as g:
            m = g.data.mapping
            return (m.address, m.alloc.total_size()) if m is not None else None
