"""A buffer of a process's binder mapping in use by the kernel.

Upstream: drivers/android/binder/allocation.rs.

`Allocation` is a range of the mapping that the range allocator holds Reserved for the
kernel: while it exists, the pages under it are Used (`ShrinkablePageRange.use_range`
ran for them and nothing can make them Available), which is what makes its reads and
writes (through the page range's `unsafe` accessors) sound. Every access is
bounds-checked against the buffer (`EFAULT`), before any byte moves.

It ends in one of two ways:

* `drop()`: the buffer is freed. The objects recorded in its `AllocationInfo` are
  released (the oneway node is told, node and handle counts taken by translated binder
  objects are given back, the payload is zeroed if asked), then
  `Process.buffer_raw_free` aborts the reservation and makes the pages Available.
* `keep_alive()`: the buffer was delivered to userspace. The reservation is committed
  (Allocated) with the `AllocationInfo` stored in the range allocator, until userspace
  frees it with `BC_FREE_BUFFER` (`Process.buffer_get` gives it back as an
  `Allocation`).

`NewAllocation` is a buffer still being filled by a transaction: dropping it means the
transaction failed; `success()` turns it into a plain `Allocation`. The types are split
as upstream splits them, so that the failure path is the default.

An `Allocation` holds an `Arc` count on its `Process`, as upstream; dropping the last
one tears the process's memory down, so `drop()` may sleep.

Also here: `AllocationView` (kept in allocation.rs upstream too), the payload part of
a buffer that `Thread.copy_transaction_data` writes translated objects into (it turns
a node into a binder or a handle of the receiver); and `PageReader`, which the model
alone has: the reader of a user command stream that copies ahead up to the end of the
current page.

Lock order: none held by this module; `AllocationView.transfer_binder_object` takes
the receiver's `Process.node_refs` (Mutex) and a node owner's `Process.inner`
(SpinLock) through the `Process` methods it calls.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.config import STATE
from ownership.context import may_sleep
from ownership.errors import EFAULT, EINVAL, KernelError, LifetimeError
from ownership.site import Site, site_of_frame
from ownership.sync import Arc
from ownership.uaccess import UserSliceReader
from ownership.unsafe import unsafe
from ownership.warn import warn

from .uapi import (
    BINDER_TYPE_BINDER,
    BINDER_TYPE_HANDLE,
    BINDER_TYPE_WEAK_BINDER,
    BINDER_TYPE_WEAK_HANDLE,
    flat_binder_object,
)

if TYPE_CHECKING:
    from ownership.file import FileRef

    from .node import Node, NodeRef
    from .process import Process

__all__ = [
    "Allocation",
    "AllocationInfo",
    "AllocationView",
    "FileEntry",
    "NewAllocation",
    "PageReader",
]

_USIZE_MAX = (1 << 64) - 1


def _api_caller() -> Site:
    """Where the driver called the public `Allocation` method that is checking.

    Three frames up: this helper, the check, the public method; ownership's wrappers
    (such as `@may_sleep`'s) above that are skipped.
    """
    return site_of_frame(sys._getframe(3))


@dataclass
class FileEntry:
    """A file embedded in a transaction, to be installed as an fd in the receiver."""

    file: FileRef
    buffer_offset: int
    close_on_free: bool


@dataclass
class AllocationInfo:
    """What the driver remembers about a buffer while userspace holds it.

    Invariants: `offsets` is the range of the buffer holding the object offsets (u64
    each); `target_node` is a `NodeRef` (dropped with the info); `oneway_node` is the
    node whose oneway queue waits for this buffer to be freed.
    """

    offsets: range | None = None
    target_node: NodeRef | None = None
    oneway_node: Node | None = None
    clear_on_free: bool = False
    files_to_translate: list[FileEntry] = field(default_factory=list)
    close_on_free: list[int] = field(default_factory=list)

    def drop(self) -> None:
        """Release what the info owns by itself (the target node reference)."""
        node_ref, self.target_node = self.target_node, None
        if node_ref is not None:
            node_ref.drop()


class Allocation:
    """A buffer of the mapping that the kernel is using.

    Invariants: `[offset, offset + size)` is Reserved in the process's range allocator,
    so its pages are Used until `drop()` or `keep_alive()`; `ptr` is its user address;
    `_arc` owns one count of `process`.
    """

    __slots__ = (
        "_arc",
        "_ended_at",
        "_ended_how",
        "allocation_info",
        "debug_id",
        "free_on_drop",
        "offset",
        "oneway_spam_detected",
        "origin_site",
        "process",
        "ptr",
        "size",
    )

    def __init__(
        self,
        process: Arc[Process],
        debug_id: int,
        offset: int,
        size: int,
        ptr: int,
        oneway_spam_detected: bool = False,
    ) -> None:
        self._arc = process
        self.process: Process = process.get()
        self.debug_id = debug_id
        self.offset = offset
        self.size = size
        self.ptr = ptr
        self.oneway_spam_detected = oneway_spam_detected
        self.allocation_info: AllocationInfo | None = None
        self.free_on_drop = True
        self._ended_at: Site | None = None
        self._ended_how = ""
        self.origin_site = site_of_frame(sys._getframe(1))

    def describe(self) -> str:
        return f"binder buffer {self.ptr:#x} ({self.size} bytes, pid {self.process.pages.pid})"

    def _check_live(self, use: str) -> None:
        if self._ended_at is not None and STATE.on:
            raise LifetimeError(
                f"{use} of a binder Allocation after it was {self._ended_how}",
                rule="binder-allocation-use-after-free",
                obj=self.describe(),
                site=_api_caller(),
                origin=self._ended_at,
                origin_label=f"the allocation was {self._ended_how}",
                notes=[("the buffer was allocated", self.origin_site)],
            )

    def _end(self, how: str) -> None:
        self._ended_at = _api_caller()
        self._ended_how = how

    def size_check(self, offset: int, size: int) -> None:
        """`EFAULT` unless `[offset, offset + size)` lies inside the buffer."""
        if not isinstance(offset, int) or not isinstance(size, int):
            raise TypeError("buffer offsets and sizes are ints")
        if offset < 0 or size < 0 or offset + size > _USIZE_MAX or offset + size > self.size:
            raise KernelError(EFAULT, f"[{offset}, {offset}+{size}) is outside {self.describe()}")

    # --- access -----------------------------------------------------------------------

    @may_sleep
    def copy_into(self, reader: UserSliceReader, offset: int, size: int) -> None:
        """Copy `size` bytes from userspace into the buffer at `offset` (may sleep)."""
        self._check_live("copy_into")
        self.size_check(offset, size)
        with unsafe(
            "SAFETY: while this object exists the range is Reserved, so its pages are in use."
        ):
            self.process.pages.copy_from_user_slice(reader, self.offset + offset, size)

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes of the buffer at `offset`."""
        self._check_live("read")
        self.size_check(offset, size)
        with unsafe(
            "SAFETY: while this object exists the range is Reserved, so its pages are in use."
        ):
            return self.process.pages.read(self.offset + offset, size)

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` into the buffer at `offset`."""
        self._check_live("write")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write takes bytes, got {type(data).__name__}")
        self.size_check(offset, len(data))
        with unsafe(
            "SAFETY: while this object exists the range is Reserved, so its pages are in use."
        ):
            self.process.pages.write(self.offset + offset, bytes(data))

    def fill_zero(self) -> None:
        """Zero the whole buffer."""
        self._check_live("fill_zero")
        with unsafe(
            "SAFETY: while this object exists the range is Reserved, so its pages are in use."
        ):
            self.process.pages.fill_zero(self.offset, self.size)

    # --- the info -----------------------------------------------------------------------

    def set_info(self, info: AllocationInfo) -> None:
        self._check_live("set_info")
        self.allocation_info = info

    def get_or_init_info(self) -> AllocationInfo:
        self._check_live("get_or_init_info")
        if self.allocation_info is None:
            self.allocation_info = AllocationInfo()
        return self.allocation_info

    def set_info_offsets(self, offsets: range) -> None:
        self.get_or_init_info().offsets = offsets

    def set_info_oneway_node(self, oneway_node: Node) -> None:
        self.get_or_init_info().oneway_node = oneway_node

    def set_info_clear_on_drop(self) -> None:
        self.get_or_init_info().clear_on_free = True

    def set_info_target_node(self, target_node: NodeRef) -> None:
        self.get_or_init_info().target_node = target_node

    def take_oneway_node(self) -> Node | None:
        info = self.allocation_info
        if info is None:
            return None
        node, info.oneway_node = info.oneway_node, None
        return node

    @may_sleep
    def info_add_fd_reserve(self, num_fds: int) -> None:
        """Make room for `num_fds` more files without allocating later (GFP_KERNEL)."""
        alloc_check(GFP_KERNEL, "Allocation::info_add_fd_reserve")
        self.get_or_init_info()

    @may_sleep
    def info_add_fd(self, file: FileRef, buffer_offset: int, close_on_free: bool) -> None:
        alloc_check(GFP_KERNEL, "Allocation::info_add_fd")
        self.get_or_init_info().files_to_translate.append(
            FileEntry(file, buffer_offset, close_on_free)
        )

    def set_info_close_on_free(self, fds: list[int]) -> None:
        self.get_or_init_info().close_on_free = list(fds)

    def looper_need_return_on_free(self) -> bool:
        """Whether freeing this buffer closes fds (the looper should return soon)."""
        info = self.allocation_info
        return info is not None and bool(info.close_on_free)

    # --- the end --------------------------------------------------------------------------

    def keep_alive(self) -> None:
        """The buffer goes to userspace: commit it, with its info, until `BC_FREE_BUFFER`."""
        self._check_live("keep_alive")
        info, self.allocation_info = self.allocation_info, None
        self.process.buffer_make_freeable(self.offset, info)
        self.free_on_drop = False
        self._end("kept alive (handed to userspace)")
        self._arc.drop()

    @may_sleep
    def drop(self) -> None:
        """Free the buffer: release what its info holds, then the range and its pages."""
        self._check_live("drop")
        self._end("freed")
        if self.free_on_drop:
            info, self.allocation_info = self.allocation_info, None
            if info is not None:
                self._release_info(info)
            self.process.buffer_raw_free(self.ptr)
        self._arc.drop()

    def _release_info(self, info: AllocationInfo) -> None:
        if info.oneway_node is not None:
            info.oneway_node.pending_oneway_finished()
            info.oneway_node = None
        info.drop()
        if info.offsets is not None:
            for index_offset in range(info.offsets.start, info.offsets.stop, 8):
                try:
                    self._cleanup_object(index_offset, info.offsets.start)
                except KernelError as e:
                    warn(
                        "binder-cleanup-object",
                        f"error cleaning up object at offset {index_offset}: {e}",
                    )
        if info.clear_on_free:
            try:
                self._fill_zero_unchecked()
            except KernelError as e:
                warn("binder-clear-on-free", f"failed to clear data on free: {e}")

    def _fill_zero_unchecked(self) -> None:
        with unsafe(
            "SAFETY: the range is still Reserved (buffer_raw_free has not run), so the pages are "
            "in use."
        ):
            self.process.pages.fill_zero(self.offset, self.size)

    def _read_unchecked(self, offset: int, size: int) -> bytes:
        self.size_check(offset, size)
        with unsafe("SAFETY: the range is still Reserved (buffer_raw_free has not run)."):
            return self.process.pages.read(self.offset + offset, size)

    def _cleanup_object(self, index_offset: int, limit: int) -> None:
        """Give back the node or handle count a translated object in the buffer holds."""
        offset = int.from_bytes(self._read_unchecked(index_offset, 8), "little")
        # The objects live in the data area, before the offsets (upstream's view limit).
        if offset + 4 > limit:
            raise KernelError(EINVAL, f"object offset {offset} beyond the data")
        type_ = int.from_bytes(self._read_unchecked(offset, 4), "little")
        if type_ not in (
            BINDER_TYPE_BINDER,
            BINDER_TYPE_WEAK_BINDER,
            BINDER_TYPE_HANDLE,
            BINDER_TYPE_WEAK_HANDLE,
        ):
            return
        if offset + flat_binder_object.SIZE > limit:
            raise KernelError(EINVAL, f"object at {offset} beyond the data")
        obj = flat_binder_object.unpack(self._read_unchecked(offset, flat_binder_object.SIZE))
        if type_ in (BINDER_TYPE_BINDER, BINDER_TYPE_WEAK_BINDER):
            self.process.update_node(obj.binder, obj.cookie, type_ == BINDER_TYPE_BINDER)
        else:
            self.process.update_ref(obj.handle, False, type_ == BINDER_TYPE_HANDLE)


class NewAllocation(Allocation):
    """A buffer being filled by a transaction: dropping it fails the transaction.

    Invariants: those of `Allocation`; after `success()` this object is spent.
    """

    __slots__ = ()

    def success(self) -> Allocation:
        """The transaction succeeded: the buffer lives on as a plain `Allocation`."""
        self._check_live("success")
        done = Allocation.__new__(Allocation)
        for name in Allocation.__slots__:
            object.__setattr__(done, name, getattr(self, name))
        done.origin_site = self.origin_site
        # INVARIANT: the new object owns the reservation and the Arc count; this one is spent.
        self._end("moved out by success()")
        return done


class AllocationView:
    """The first `limit` bytes of a buffer: where the payload's objects live (`AllocationView`).

    Reads and writes beyond `limit` fail with `EINVAL`, so a translated object cannot
    spill into the offsets array or the scatter-gather area.

    Invariants: `limit <= alloc.size` (the payload's data size).
    """

    __slots__ = ("alloc", "limit")

    def __init__(self, alloc: Allocation, limit: int) -> None:
        self.alloc = alloc
        self.limit = limit

    def _check(self, offset: int, size: int) -> None:
        if offset + size > self.limit:
            raise KernelError(
                EINVAL, f"object at {offset:#x}+{size} beyond the data ({self.limit})"
            )

    def write(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))
        self.alloc.write(offset, data)

    def copy_into(self, reader: UserSliceReader, offset: int, size: int) -> None:
        self._check(offset, size)
        self.alloc.copy_into(reader, offset, size)

    def transfer_binder_object(
        self, offset: int, obj: flat_binder_object, strong: bool, node_ref: NodeRef
    ) -> None:
        """Write the object as the receiver must see it: a binder to its owner, else a handle."""
        node = node_ref.node
        target = self.alloc.process
        if node.owner is target:
            kind = BINDER_TYPE_BINDER if strong else BINDER_TYPE_WEAK_BINDER
            try:
                self.write(
                    offset, flat_binder_object(kind, obj.flags, node.ptr, node.cookie).pack()
                )
            except BaseException:
                node_ref.drop()
                raise
            # The buffer holds a user count on the node, released when it is freed.
            node.update_refcount(True, 1, strong)
            node_ref.drop()
        else:
            handle = target.insert_or_update_handle(node_ref, False)
            kind = BINDER_TYPE_HANDLE if strong else BINDER_TYPE_WEAK_HANDLE
            try:
                self.write(offset, flat_binder_object(kind, obj.flags, handle, 0).pack())
            except KernelError:
                target.update_ref(handle, False, strong)
                raise KernelError(EINVAL, "could not write the translated handle") from None


class PageReader:
    """A `UserSliceReader` that copies up to the end of the current page at a time.

    Reading a command stream 4 or 64 bytes at a time costs one simulated page walk per
    read; this reads ahead within the page it is in (never across into a page the
    stream did not ask for), so a fault happens at the same command as upstream.

    Invariants: `_buf[_pos:]` are the next bytes of the slice, already copied.
    """

    __slots__ = ("_buf", "_inner", "_pos")

    PAGE = 4096

    def __init__(self, inner: UserSliceReader) -> None:
        self._inner = inner
        self._buf = b""
        self._pos = 0

    def len(self) -> int:
        return len(self._buf) - self._pos + self._inner.len()

    def _fill(self, n: int) -> None:
        have = len(self._buf) - self._pos
        if have >= n:
            return
        need = n - have
        to_page_end = self.PAGE - (self._inner.ptr % self.PAGE)
        chunk = min(max(need, to_page_end), self._inner.len())
        if chunk < need:
            chunk = need  # past the end: the inner reader raises EFAULT
        self._buf = self._buf[self._pos :] + self._inner.read(chunk)
        self._pos = 0

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def skip(self, n: int) -> None:
        self.read(n)
