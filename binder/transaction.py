"""Transactions (drivers/android/binder/transaction.rs).

A `Transaction` is one `BC_TRANSACTION` or `BC_REPLY` after its payload was copied
into a buffer of the target process (an `Allocation` of the memory layer), on its way
to the target's todo list. Delivered (`do_work`), it writes `BR_TRANSACTION` or
`BR_REPLY` with the buffer's user address, gives the buffer to userspace (who frees it
with `BC_FREE_BUFFER`), and for a two-way transaction becomes the receiving thread's
current transaction, which its `BC_REPLY` answers. Cancelled (the target died), it
frees the buffer and sends the sender `BR_DEAD_REPLY`.

Two-way transactions form a stack: `from_parent` is the transaction the sending thread
was serving when it sent this one, so nested calls back into a process already in the
chain go to the thread waiting there (`find_target_thread`).

`TransactionInfo` is the decoded `binder_transaction_data` plus what the driver learns
while processing it (the target pid, the reply code, the errno), as upstream keeps it
for tracing and the extended error. The two types are split as upstream splits them:
the info lives on the sending thread's stack; the transaction is shared.

Lock order: `Process.inner` (SpinLock, the target's) -> `Thread.inner` (SpinLock) and
-> `Transaction.allocation` (SpinLock). The allocation is never dropped under a lock:
its destructor takes `Process.inner` and the node locks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.context import may_sleep
from ownership.errors import EINVAL, KernelError
from ownership.file import O_CLOEXEC, FileDescriptorReservation, FileRef
from ownership.marker import impl_send, impl_sync
from ownership.sync import SpinLock, SpinLockGuard

from .allocation import Allocation, NewAllocation
from .defs import FLAT_BINDER_FLAG_ACCEPTS_FDS, TF_CLEAR_BUF, TF_ONE_WAY, TF_UPDATE_TXN, ptr_align
from .error import BinderError
from .uapi import (
    BR_DEAD_REPLY,
    BR_FAILED_REPLY,
    BR_REPLY,
    BR_TRANSACTION,
    binder_transaction_data,
)
from .work import BinderReturnWriter, DeliverToRead, DLArc, drop_work, new_dlarc

if TYPE_CHECKING:
    from .node import Node, NodeRef
    from .process import Process, ProcessInner
    from .thread import Thread

__all__ = ["Transaction", "TransactionInfo", "TranslatedFds", "drop_pending_files", "translate_fds"]


@dataclass(slots=True)
class TransactionInfo:
    """The decoded command and its outcome (transaction.rs `TransactionInfo`)."""

    from_pid: int = 0
    from_tid: int = 0
    to_pid: int = 0
    to_tid: int = 0
    code: int = 0
    flags: int = 0
    data_ptr: int = 0
    data_size: int = 0
    offsets_ptr: int = 0
    offsets_size: int = 0
    buffers_size: int = 0
    target_handle: int = 0
    errno: int = 0
    reply: int = 0
    oneway_spam_suspect: bool = False
    is_reply: bool = False
    debug_id: int = 0

    def is_oneway(self) -> bool:
        return bool(self.flags & TF_ONE_WAY)


@impl_send("the allocation is behind a SpinLock; everything else is immutable or atomic")
@impl_sync("the allocation is behind a SpinLock; everything else is immutable or atomic")
class Transaction(DeliverToRead):
    """A transaction or reply on its way to, or being served by, its target.

    Invariants: `allocation` holds the target buffer until it is delivered
    (`do_work` hands it to userspace) or cancelled (freed); `is_outstanding` is set
    while the target process counts it in `outstanding_txns`. A reply has no
    `target_node` and no `from_parent`. It lives in an `Arc` whose one `DLArc`
    (`_dlarc`, untracked upstream: made with the allocation) is held until `submit`
    or a reply delivery queues it.
    """

    __slots__ = (
        "_dlarc",
        "_outstanding",
        "allocation",
        "code",
        "data_address",
        "data_size",
        "debug_id",
        "flags",
        "from_parent",
        "from_thread",
        "offsets_size",
        "sender_euid",
        "target_node",
        "to",
    )

    def __init__(
        self,
        *,
        debug_id: int,
        target_node: Node | None,
        from_parent: Transaction | None,
        from_thread: Thread,
        to: Process,
        allocation: Allocation,
        code: int,
        flags: int,
        data_size: int,
        offsets_size: int,
        sender_euid: int,
    ) -> None:
        super().__init__()
        self._dlarc: DLArc | None = None
        self.debug_id = debug_id
        self.target_node = target_node
        self.from_parent = from_parent
        self.from_thread = from_thread
        self.to = to
        self.code = code
        self.flags = flags
        self.data_size = data_size
        self.offsets_size = offsets_size
        self.data_address: int = allocation.ptr
        self.sender_euid = sender_euid
        # The buffer until it is delivered or freed (None from then on).
        self.allocation: SpinLock[Allocation | None] = SpinLock(
            allocation, name="Transaction::allocation"
        )
        # A flag set once and cleared at most twice (do_work/cancel, then drop).
        self._outstanding = threading.Lock()

    def __repr__(self) -> str:
        kind = (
            "reply"
            if self.target_node is None
            else ("oneway" if self.flags & TF_ONE_WAY else "call")
        )
        return f"Transaction({self.debug_id} {kind} code {self.code:#x} to {self.to.pid()})"

    # --- construction -----------------------------------------------------------

    @classmethod
    def new(
        cls,
        node_ref: NodeRef,
        from_parent: Transaction | None,
        from_thread: Thread,
        info: TransactionInfo,
    ) -> Transaction:
        """Copy the payload into the target and build the transaction (consumes `node_ref`)."""
        node = node_ref.node
        allow_fds = bool(node.flags & FLAT_BINDER_FLAG_ACCEPTS_FDS)
        to = node.owner
        try:
            alloc = from_thread.copy_transaction_data(to, info, info.debug_id, allow_fds)
        except KernelError:
            node_ref.drop()
            raise
        if info.is_oneway():
            if from_parent is not None:
                alloc.drop()
                node_ref.drop()
                raise BinderError.of(
                    KernelError(EINVAL, "oneway transaction in a transaction stack")
                )
            alloc.set_info_oneway_node(node)
        if info.flags & TF_CLEAR_BUF:
            alloc.set_info_clear_on_drop()
        # The buffer now holds the reference on the target node until it is freed.
        alloc.set_info_target_node(node_ref)
        return cls._from_info(info, alloc, from_thread, to, node, from_parent)

    @classmethod
    def new_reply(
        cls, from_thread: Thread, to: Process, info: TransactionInfo, allow_fds: bool
    ) -> Transaction:
        alloc = from_thread.copy_transaction_data(to, info, info.debug_id, allow_fds)
        if info.flags & TF_CLEAR_BUF:
            alloc.set_info_clear_on_drop()
        return cls._from_info(info, alloc, from_thread, to, None, None)

    @classmethod
    def _from_info(
        cls,
        info: TransactionInfo,
        alloc: NewAllocation,
        from_thread: Thread,
        to: Process,
        target_node: Node | None,
        from_parent: Transaction | None,
    ) -> Transaction:
        """The transaction for `info` whose payload is in `alloc` (a reply has no target).

        The transaction's own allocation (`DTRWrap::arc_pin_init`) may fail with `ENOMEM`:
        the buffer is then freed without starting the node's next oneway transaction.
        """
        t = cls(
            debug_id=info.debug_id,
            target_node=target_node,
            from_parent=from_parent,
            from_thread=from_thread,
            to=to,
            allocation=alloc.success(),
            code=info.code,
            flags=info.flags,
            data_size=info.data_size,
            offsets_size=info.offsets_size,
            sender_euid=from_thread.process.euid(),
        )
        try:
            t._dlarc = new_dlarc(t)
        except KernelError:
            with t.allocation.lock() as ag:
                if ag.data is not None:
                    # Never submitted: its buffer must not start the next oneway.
                    ag.data.take_oneway_node()
            t.drop_undelivered()
            raise
        return t

    def take_dlarc(self) -> DLArc:
        """The transaction's `DLArc`, to queue it (once)."""
        la, self._dlarc = self._dlarc, None
        if la is None:
            raise ValueError(f"{self!r} was already queued")
        return la

    # --- the transaction stack ---------------------------------------------------

    def is_stacked_on(self, onext: Transaction | None) -> bool:
        return self.from_parent is onext

    def clone_next(self) -> Transaction | None:
        return self.from_parent

    def find_target_thread(self) -> Thread | None:
        """A thread of the target process already in this stack (it waits for us)."""
        it = self.from_parent
        while it is not None:
            if it.from_thread.process is self.to:
                return it.from_thread
            it = it.from_parent
        return None

    def find_from(self, thread: Thread) -> Transaction | None:
        it = self.from_parent
        while it is not None:
            if it.from_thread is thread:
                return it
            it = it.from_parent
        return None

    # --- outstanding accounting (for BINDER_FREEZE) ----------------------------------

    def set_outstanding(self, to_guard: SpinLockGuard[ProcessInner]) -> None:
        """Count this transaction in the target's `outstanding_txns` (once)."""
        if self._outstanding.acquire(False):
            to_guard.data.add_outstanding_txn()

    def drop_outstanding_txn(self) -> None:
        """Uncount it, if it was counted and not yet uncounted."""
        if self._outstanding.locked():
            self._outstanding.release()
            self.to.drop_outstanding_txn()

    # --- submission ------------------------------------------------------------------

    @may_sleep
    def submit(self, info: TransactionInfo) -> None:
        """Push to the target: a thread in the stack, the node's oneway queue, or the process.

        Raises `BinderError` (`BR_DEAD_REPLY`, `BR_FROZEN_REPLY`, or
        `BR_TRANSACTION_PENDING_FROZEN` for a oneway transaction queued to a frozen
        process, which is still delivered on thaw).
        """
        outdated: DLArc | None = None
        undelivered: DLArc | None = None
        error: BinderError | None = None
        oneway = bool(self.flags & TF_ONE_WAY)
        process = self.to
        me = self.take_dlarc()
        with process.inner.lock() as guard:
            inner = guard.data
            self.set_outstanding(guard)
            if oneway and self.target_node is not None:
                target = self.target_node
                if inner.is_frozen.is_frozen():
                    inner.async_recv = True
                    if self.flags & TF_UPDATE_TXN:
                        outdated = target.take_outdated_transaction(self, guard)
                        if outdated is not None:
                            old = outdated.get()
                            assert isinstance(old, Transaction)
                            with old.allocation.lock() as ag:
                                if ag.data is not None:
                                    # Not submitted: its buffer must not start the next oneway.
                                    ag.data.take_oneway_node()
                res = target.submit_oneway(me, guard)
                if res is not None:
                    error, undelivered = BinderError.of(res[0]), res[1]
                elif inner.is_frozen.is_frozen():
                    error = BinderError.new_frozen_oneway()
            elif inner.is_frozen.is_frozen():
                inner.sync_recv = True
                error = BinderError.new_frozen()
                undelivered = me
            else:
                thread = self.find_target_thread()
                if thread is not None:
                    info.to_tid = thread.id
                    res2 = thread.push_work(me)
                    if res2 is not None:
                        error, undelivered = BinderError.new_dead(), res2
                else:
                    res3 = inner.push_work(me)
                    if res3 is not None:
                        error, undelivered = BinderError.of(res3[0]), res3[1]
        # Drop work only after releasing the process lock: its destructor takes locks.
        if outdated is not None:
            drop_work(outdated)
        if undelivered is not None:
            drop_work(undelivered)
        if error is not None:
            raise error

    def can_replace(self, old: Transaction) -> bool:
        """Whether this oneway transaction supersedes `old` (TF_UPDATE_TXN)."""
        if self.from_thread.process.pid() != old.from_thread.process.pid():
            return False
        both = TF_ONE_WAY | TF_UPDATE_TXN
        if self.flags & old.flags & both != both:
            return False
        return (
            self.code == old.code
            and self.flags == old.flags
            and self.target_node is old.target_node
        )

    # --- DeliverToRead -------------------------------------------------------------------

    def _take_allocation(self) -> Allocation | None:
        # `mem::take`: the buffer is moved out of the lock, not borrowed from it.
        with self.allocation.lock() as g:
            return g.replace(None)

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        two_way = self.target_node is not None and not self.flags & TF_ONE_WAY
        alloc = self._take_allocation()
        if alloc is None:
            if two_way:
                self.from_thread.deliver_reply(BR_FAILED_REPLY, self)
            self.drop_outstanding_txn()
            return True
        try:
            files = translate_fds(alloc)
        except KernelError:
            # On failure to install the fds, fail the transaction for the sender and
            # ignore it on the recipient; the buffer is freed eagerly.
            drop_pending_files(alloc)
            alloc.drop()
            if two_way:
                self.from_thread.deliver_reply(BR_FAILED_REPLY, self)
            self.drop_outstanding_txn()
            return True
        ptr, cookie = self.target_node.get_id() if self.target_node is not None else (0, 0)
        offsets = self.data_address + (ptr_align(self.data_size) or 0) if self.offsets_size else 0
        tr = binder_transaction_data(
            target=ptr,
            cookie=cookie,
            code=self.code,
            flags=self.flags,
            sender_pid=self.from_thread.process.pid() if two_way else 0,
            sender_euid=self.sender_euid,
            data_size=self.data_size,
            offsets_size=self.offsets_size,
            buffer=self.data_address,
            offsets=offsets,
        )
        code = BR_REPLY if self.target_node is None else BR_TRANSACTION
        try:
            writer.write_code(code)
            writer.write_payload(tr.pack())
        except KernelError:
            # The read buffer faulted (upstream's `send_failed_reply` scope guard): the
            # transaction is dropped, its buffer freed, and the sender told.
            files.abort()
            alloc.drop()
            if two_way:
                self.from_thread.deliver_reply(BR_FAILED_REPLY, self)
            self.drop_outstanding_txn()
            raise
        # No failure paths from here on.
        alloc.set_info_close_on_free(files.commit())
        # It is now userspace's buffer: freed by BC_FREE_BUFFER.
        alloc.keep_alive()
        self.drop_outstanding_txn()
        if two_way and not thread.set_current_transaction(self):
            # The receiving thread died while the transaction was delivered to it.
            self.from_thread.deliver_reply(BR_DEAD_REPLY, self)
        return False

    @may_sleep
    def cancel(self) -> None:
        alloc = self._take_allocation()
        if alloc is not None:
            drop_pending_files(alloc)
            alloc.drop()
        if self.target_node is not None and not self.flags & TF_ONE_WAY:
            self.from_thread.deliver_reply(BR_DEAD_REPLY, self)
        self.drop_outstanding_txn()

    def should_sync_wakeup(self) -> bool:
        return not self.flags & TF_ONE_WAY

    @may_sleep
    def drop_undelivered(self) -> None:
        """Rust's `Drop`: free a buffer that was never delivered, uncount the transaction."""
        la, self._dlarc = self._dlarc, None
        if la is not None:
            # Never queued: its list right and count go with it.
            la.drop()
        alloc = self._take_allocation()
        if alloc is not None:
            drop_pending_files(alloc)
            alloc.drop()
        self.drop_outstanding_txn()


class TranslatedFds:
    """File descriptors reserved in the receiver, installed only on `commit()`.

    Invariants: each reservation is either installed (`commit`) or given back
    (`abort`), exactly once.
    """

    __slots__ = ("close_on_free", "reservations")

    def __init__(
        self,
        reservations: list[tuple[FileDescriptorReservation, FileRef]],
        close_on_free: list[int],
    ) -> None:
        self.reservations = reservations
        self.close_on_free = close_on_free

    def commit(self) -> list[int]:
        """Install every reserved fd; returns the fds to close when the buffer is freed."""
        for res, file in self.reservations:
            res.fd_install(file)
        self.reservations = []
        return self.close_on_free

    def abort(self) -> None:
        for res, file in self.reservations:
            res.drop()
            file.drop()
        self.reservations = []


def translate_fds(alloc: Allocation) -> TranslatedFds:
    """Reserve an fd in the receiving (current) task for every file of the buffer and
    write the fd numbers into the buffer (`Allocation::translate_fds`)."""
    info = alloc.allocation_info
    if info is None or not info.files_to_translate:
        return TranslatedFds([], [])
    files, info.files_to_translate = list(info.files_to_translate), []
    reservations: list[tuple[FileDescriptorReservation, FileRef]] = []
    close_on_free: list[int] = []
    done = 0
    try:
        alloc_check(GFP_KERNEL, "TranslatedFds")
        for entry in files:
            res = FileDescriptorReservation.get_unused_fd_flags(O_CLOEXEC)
            reservations.append((res, entry.file))
            done += 1
            fd = res.reserved_fd()
            alloc.write(entry.buffer_offset, fd.to_bytes(4, "little"))
            if entry.close_on_free:
                close_on_free.append(fd)
    except BaseException:
        TranslatedFds(reservations, []).abort()
        for entry in files[done:]:
            entry.file.drop()
        raise
    return TranslatedFds(reservations, close_on_free)


def drop_pending_files(alloc: Allocation) -> None:
    """`fput` the files of a buffer that will never be delivered (its `FileList` drop)."""
    info = alloc.allocation_info
    if info is None:
        return
    files, info.files_to_translate = info.files_to_translate, []
    for entry in files:
        entry.file.drop()
