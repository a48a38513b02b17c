"""Binder threads: the command loop of BINDER_WRITE_READ (drivers/android/binder/thread.rs).

A `Thread` is one userspace thread using binder. `BINDER_WRITE_READ` runs its two
halves here: `write` consumes `BC_*` commands from the user's write buffer
(transactions, replies, refcount commands, death notifications, looper state), and
`read` fills the user's read buffer with `BR_*` work, sleeping on `work_condvar` until
some arrives. A thread owns its local todo list and its position in the transaction
stack (`current_transaction`); a looper thread with no transaction in flight also
takes work from its process's queue, registering as ready when there is none.

`copy_transaction_data` is the heart of a transaction: it reserves a buffer in the
target (`Process.buffer_alloc`), copies the payload from the sender's memory, and
translates every object named in the offsets array: local binders become handles in
the target (and back), file descriptors are duplicated into the target, and
scatter-gather buffers (`BINDER_TYPE_PTR`) are copied after the payload with their
parent pointers fixed up. Every offset is validated first (the checks are
`binder.validate`'s, pure arithmetic that `proofs/` proves); any failure unwinds the
objects already translated (the buffer's destructor releases them) and is reported as
`BR_FAILED_REPLY`.

Types: `Thread` (the shared part, with `inner: SpinLock[InnerThread]`),
`InnerThread` (looper flags, the work list (an `ownership.list.List` of `DLArc`s),
transaction stack, extended error),
`ThreadError` (the reusable work item carrying an error code), and the
scatter-gather bookkeeping (`ScatterGatherState`, `ScatterGatherEntry`).

Lock order: `Process.inner` (SpinLock) -> `Thread.inner` (SpinLock). `Thread.inner` is
never held while taking `Process.inner`, `Process.node_refs`, or while copying to or
from userspace (which may fault and sleep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.context import may_sleep
from ownership.errors import EAGAIN, EINTR, EINVAL, ENOMEM, EPERM, KernelError
from ownership.file import FileRef, close_fd
from ownership.list import AtomicTracker, HasListLinks, List, ListArc, ListLinks
from ownership.marker import impl_send, impl_sync
from ownership.sync import Arc, CondVar, SpinLock
from ownership.uaccess import UserSlice
from ownership.unsafe import unsafe

from . import validate
from .allocation import Allocation, AllocationView, NewAllocation, PageReader
from .defs import (
    BINDER_TYPE_BINDER,
    BINDER_TYPE_FD,
    BINDER_TYPE_FDA,
    BINDER_TYPE_HANDLE,
    BINDER_TYPE_PTR,
    BINDER_TYPE_WEAK_BINDER,
    BINDER_TYPE_WEAK_HANDLE,
    TF_ACCEPT_FDS,
    U32_MAX,
    U64_MAX,
    LooperFlag,
    next_debug_id,
    ptr_align,
)
from .error import BinderError
from .transaction import Transaction, TransactionInfo, drop_pending_files
from .uapi import (
    BC_ACQUIRE,
    BC_ACQUIRE_DONE,
    BC_CLEAR_DEATH_NOTIFICATION,
    BC_DEAD_BINDER_DONE,
    BC_DECREFS,
    BC_ENTER_LOOPER,
    BC_EXIT_LOOPER,
    BC_FREE_BUFFER,
    BC_INCREFS,
    BC_INCREFS_DONE,
    BC_REGISTER_LOOPER,
    BC_RELEASE,
    BC_REPLY,
    BC_REPLY_SG,
    BC_REQUEST_DEATH_NOTIFICATION,
    BC_TRANSACTION,
    BC_TRANSACTION_SG,
    BINDER_BUFFER_FLAG_HAS_PARENT,
    BR_DEAD_REPLY,
    BR_FAILED_REPLY,
    BR_NOOP,
    BR_OK,
    BR_ONEWAY_SPAM_SUSPECT,
    BR_SPAWN_LOOPER,
    BR_TRANSACTION_COMPLETE,
    binder_buffer_object,
    binder_extended_error,
    binder_fd_array_object,
    binder_fd_object,
    binder_transaction_data,
    binder_transaction_data_secctx,
    binder_transaction_data_sg,
    binder_write_read,
    code_name,
    flat_binder_object,
    object_size,
)
from .work import (
    BinderReturnWriter,
    DeliverCode,
    DeliverToRead,
    DLArc,
    SelfArc,
    UserReader,
    cancel_work,
    drop_work,
    new_dlarc,
    run_work,
)

if TYPE_CHECKING:
    from .process import Process

__all__ = ["InnerThread", "Thread", "ThreadError"]

Reply = Transaction | int


def _u32(b: bytes) -> int:
    return int.from_bytes(b, "little")


# ---------------------------------------------------------------------------
# Scatter-gather state of one transaction (BINDER_TYPE_PTR / BINDER_TYPE_FDA).


@dataclass(slots=True)
class _Fixup:
    """Write `pointer_value` at `target_offset` (a PTR's parent: `is_pointer`) or skip
    `skip` bytes (an FDA's fds, written when the transaction is received).

    Invariants: the kind is `is_pointer`, never `skip == 0` (CVE-2026-23194: an fd array
    with zero fds is a skip of 0 bytes, not a pointer fixup); see `validate.fixup_plan`.
    """

    target_offset: int
    is_pointer: bool
    pointer_value: int = 0
    skip: int = 0


@dataclass(slots=True)
class ScatterGatherEntry:
    """One `BINDER_TYPE_PTR` buffer to copy after the payload.

    Invariants: `[offset, offset + length)` lies in the claimed buffers area;
    `pointer_fixups` are at increasing offsets, each at or above `fixup_min_offset`
    at the time it was added.
    """

    obj_index: int
    offset: int
    sender_uaddr: int
    length: int
    fixup_min_offset: int = 0
    pointer_fixups: list[_Fixup] = field(default_factory=list)


@dataclass(slots=True)
class _ParentFixupInfo:
    """Where a validated fixup goes (`ParentFixupInfo`)."""

    parent_sg_index: int
    num_ancestors: int
    new_min_offset: int
    target_offset: int


@dataclass(slots=True)
class ScatterGatherState:
    """The scatter-gather layout of one transaction (discarded when it is copied).

    Invariants: `ancestors` indexes `sg_entries` (the last buffer object and its
    parents, in order); `offset <= limit` delimits the unused buffer space.
    """

    offset: int
    limit: int
    sg_entries: list[ScatterGatherEntry] = field(default_factory=list)
    ancestors: list[int] = field(default_factory=list)

    def claim_next(self, size: int) -> int:
        """Claim the next `size` (8-aligned) bytes of the buffers area; `EINVAL` if none."""
        aligned = ptr_align(size)
        if aligned is None or self.offset + aligned > self.limit:
            raise KernelError(EINVAL, f"no space for a {size}-byte BINDER_TYPE_PTR buffer")
        off = self.offset
        self.offset += aligned
        return off

    def validate_parent_fixup(
        self, parent: int, parent_offset: int, length: int, num_valid: int
    ) -> _ParentFixupInfo:
        """A fixup in `parent` (one of the `num_valid` objects validated so far) must hit
        the last buffer or an ancestor, at rising offsets (`validate.check_parent`,
        `validate.check_fixup`)."""
        ancestors = [self.sg_entries[a].obj_index for a in self.ancestors]
        pos = validate.check_parent(parent, num_valid, ancestors)
        if isinstance(pos, str):
            raise KernelError(EINVAL, f"{pos}: {parent}")
        sg_idx = self.ancestors[pos]
        entry = self.sg_entries[sg_idx]
        new_min = validate.check_fixup(entry.fixup_min_offset, parent_offset, length, entry.length)
        if isinstance(new_min, str):
            raise KernelError(EINVAL, new_min)
        return _ParentFixupInfo(sg_idx, pos + 1, new_min, entry.offset + parent_offset)


# ---------------------------------------------------------------------------
# Thread state.


@impl_send("the error code is an atomic")
@impl_sync("the error code is an atomic")
class ThreadError(DeliverToRead):
    """A reusable work item delivering one error code (`BR_FAILED_REPLY`, ...).

    Invariants: `error_code != BR_OK` exactly while the item is queued (its
    `links_track` set); delivering or cancelling it resets the code. It lives in an
    `Arc` of which it keeps one count (the thread's `DArc<ThreadError>`) until its
    thread is released.
    """

    __slots__ = ("error_code",)

    def __init__(self) -> None:
        super().__init__()
        self.error_code = BR_OK

    @classmethod
    def new(cls) -> ThreadError:
        """`ThreadError::try_new()`: allocate it in its `Arc` (may sleep; `ENOMEM`)."""
        arc: Arc[DeliverToRead] = Arc.new(cls(), GFP_KERNEL)
        err = arc.get()
        assert isinstance(err, ThreadError)
        err.set_arc(arc, keep=True)
        arc.drop()
        return err

    def set_error_code(self, code: int) -> None:
        self.error_code = code

    def is_unused(self) -> bool:
        return self.error_code == BR_OK

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        code, self.error_code = self.error_code, BR_OK
        writer.write_code(code)
        return True

    def cancel(self) -> None:
        self.error_code = BR_OK

    def drop_undelivered(self) -> None:
        self.cancel()


class InnerThread:
    """The fields of a `Thread` protected by its spinlock.

    Invariants: `process_work_list` is False when `work_list` holds only deferred
    items (they wait for the next real work); `current_transaction` is the top of
    the thread's transaction stack, linked by `from_parent`.
    """

    __slots__ = (
        "current_transaction",
        "extended_error",
        "is_dead",
        "looper_flags",
        "looper_need_return",
        "process_work_list",
        "reply_work",
        "return_work",
        "work_list",
    )

    def __init__(self, reply_work: ThreadError, return_work: ThreadError) -> None:
        self.looper_flags = LooperFlag(0)
        self.looper_need_return = False
        self.is_dead = False
        self.reply_work = reply_work
        self.return_work = return_work
        self.process_work_list = False
        self.work_list: List[DeliverToRead] = List(0, name="Thread::work_list")
        self.current_transaction: Transaction | None = None
        self.extended_error = binder_extended_error(0, BR_OK, 0)

    def pop_work(self) -> DLArc | None:
        if not self.process_work_list:
            return None
        work = self.work_list.pop_front()
        self.process_work_list = not self.work_list.is_empty()
        return work

    def push_work(self, work: DLArc) -> DLArc | None:
        """Queue `work`; returns it back if the thread is dead (drop it unlocked)."""
        if self.is_dead:
            return work
        self.work_list.push_back(work)
        self.process_work_list = True
        return None

    def push_reply_work(self, code: int) -> DLArc | None:
        if self.is_dead:
            # Not queued on a dead thread (its error items are no longer counted).
            return None
        work = self.reply_work.list_arc()
        if work is not None:
            self.reply_work.set_error_code(code)
            return self.push_work(work)
        return None

    def push_return_work(self, reply: int) -> None:
        if self.is_dead:
            # Not queued on a dead thread (its error items are no longer counted).
            return
        work = self.return_work.list_arc()
        if work is not None:
            self.return_work.set_error_code(reply)
            back = self.push_work(work)
            if back is not None:
                # Only the error code is reset: nothing here sleeps or takes a lock.
                cancel_work(back)

    def push_work_deferred(self, work: DLArc) -> None:
        """Queue work that waits until the thread gets another item (no wakeup)."""
        self.work_list.push_back(work)

    def pop_transaction_to_reply(self, thread: Thread) -> Transaction:
        t = self.current_transaction
        if t is None:
            raise KernelError(EINVAL, "no transaction to reply to")
        if t.from_thread is thread:
            raise KernelError(EINVAL, "the thread must first get the reply to its own transaction")
        self.current_transaction = t.find_from(thread)
        return t

    def pop_transaction_replied(self, transaction: Transaction) -> bool:
        if self.current_transaction is not transaction:
            return False
        self.current_transaction = transaction.clone_next()
        return True

    def looper_enter(self) -> None:
        self.looper_flags |= LooperFlag.ENTERED
        if self.looper_flags & LooperFlag.REGISTERED:
            self.looper_flags |= LooperFlag.INVALID

    def looper_register(self, valid: bool) -> None:
        self.looper_flags |= LooperFlag.REGISTERED
        if not valid or self.looper_flags & LooperFlag.ENTERED:
            self.looper_flags |= LooperFlag.INVALID

    def looper_exit(self) -> None:
        self.looper_flags |= LooperFlag.EXITED

    def is_looper(self) -> bool:
        return bool(self.looper_flags & (LooperFlag.ENTERED | LooperFlag.REGISTERED))

    def should_use_process_work_queue(self) -> bool:
        return self.current_transaction is None and not self.process_work_list and self.is_looper()


@dataclass(slots=True)
class _WriteRead:
    """A mutable copy of the user's `binder_write_read` while the ioctl runs."""

    write_size: int
    write_consumed: int
    write_buffer: int
    read_size: int
    read_consumed: int
    read_buffer: int

    @classmethod
    def of(cls, s: binder_write_read) -> _WriteRead:
        return cls(
            s.write_size,
            s.write_consumed,
            s.write_buffer,
            s.read_size,
            s.read_consumed,
            s.read_buffer,
        )

    def to_uapi(self) -> binder_write_read:
        return binder_write_read(
            self.write_size & U64_MAX,
            self.write_consumed & U64_MAX,
            self.write_buffer,
            self.read_size & U64_MAX,
            self.read_consumed & U64_MAX,
            self.read_buffer,
        )


@impl_send("all mutable state is behind Thread.inner")
@impl_sync("all mutable state is behind Thread.inner")
class Thread(HasListLinks):
    """A userspace thread using binder (thread.rs `Thread`).

    Invariants: `id` is the thread's pid and unique in `process.threads`; the thread
    is on `process.ready_threads` only while it waits for process work, and never on
    any other list (`links`, id 0, tracked by `links_track`). It lives in an `Arc` of
    which it keeps one count, the stand-in for the process's `RBTree<i32, Arc<Thread>>`
    (and the counts of the holders the model does not track), until its process gives
    it back (`discard`, after `release`). The last count runs `drop_arc`, the model of
    dropping the `Thread`: the work still on its list and its error items go with it.
    """

    __slots__ = (
        "id",
        "inner",
        "links",
        "links_track",
        "process",
        "self_arc",
        "task",
        "work_condvar",
    )

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {0: ("links", "links_track")}

    def __init__(
        self, id_: int, process: Process, task: object, errors: tuple[ThreadError, ThreadError]
    ) -> None:
        self.id = id_
        self.process = process
        self.task = task
        self.inner: SpinLock[InnerThread] = SpinLock(InnerThread(*errors), name="Thread::inner")
        self.work_condvar = CondVar(name="Thread::work_condvar")
        self.links = ListLinks(0)
        self.links_track = AtomicTracker(0)
        self.self_arc: SelfArc[Thread] | None = None

    @classmethod
    def new(cls, id_: int, process: Process, task: object) -> Thread:
        """Allocate a thread and its two error work items (may sleep, `ENOMEM`)."""
        errors = (ThreadError.new(), ThreadError.new())
        arc = Arc.new(cls(id_, process, task, errors), GFP_KERNEL)
        thread = arc.get()
        thread.self_arc = SelfArc(arc, keep=True)
        arc.drop()
        return thread

    def list_arc(self) -> ListArc[Thread] | Arc[Thread]:
        """`ListArc::try_from_arc(self.clone())`: the new count as a `ListArc`, or, if
        the thread is already on the ready list, as the `Arc` given back (the `Err`),
        for the caller to drop once it holds no lock (the thread's `drop_arc` may sleep).
        """
        sa = self.self_arc
        assert sa is not None
        arc = sa.clone()
        la = ListArc.try_from_arc(arc)
        return arc if la is None else la

    def __repr__(self) -> str:
        return f"Thread({self.process.pid()}:{self.id})"

    # --- state queries --------------------------------------------------------------

    def clear_extended_error(self, debug_id: int) -> None:
        with self.inner.lock() as g:
            g.data.extended_error = binder_extended_error(debug_id & U32_MAX, BR_OK, 0)

    def take_extended_error(self) -> binder_extended_error:
        with self.inner.lock() as g:
            ee = g.data.extended_error
            g.data.extended_error = binder_extended_error(0, BR_OK, 0)
        return ee

    def set_current_transaction(self, transaction: Transaction) -> bool:
        """Make `transaction` the one this thread serves; False if the thread is dead.

        In the model a process can be released while one of its threads is still in
        the driver delivering work (upstream, the ioctl's file reference delays the
        release), so a dead thread refuses the transaction instead of losing it.
        """
        with self.inner.lock() as g:
            if g.data.is_dead:
                return False
            g.data.current_transaction = transaction
            return True

    def has_current_transaction(self) -> bool:
        with self.inner.lock() as g:
            return g.data.current_transaction is not None

    def looper_flags(self) -> LooperFlag:
        with self.inner.lock() as g:
            return g.data.looper_flags

    def is_current_transaction(self, transaction: Transaction) -> bool:
        with self.inner.lock() as g:
            return g.data.current_transaction is transaction

    def top_of_transaction_stack(self) -> Transaction | None:
        with self.inner.lock() as g:
            cur = g.data.current_transaction
            if cur is not None and cur.from_thread is self:
                raise KernelError(EINVAL, "got new transaction with bad transaction stack")
            return cur

    # --- getting work ------------------------------------------------------------------

    @may_sleep
    def get_work_local(self, wait: bool) -> DLArc | None:
        """Work from the thread's own list, waiting for it if `wait` (`EAGAIN` if none)."""
        with self.inner.lock() as g:
            if g.data.looper_need_return:
                return g.data.pop_work()
            if not wait:
                work = g.data.pop_work()
                if work is None:
                    raise KernelError(EAGAIN)
                return work
            while True:
                inner = g.data
                work = inner.pop_work()
                if work is not None:
                    return work
                inner.looper_flags |= LooperFlag.WAITING
                self.work_condvar.wait(g)
                inner.looper_flags &= ~LooperFlag.WAITING
                if inner.is_dead:
                    # The process is dying: the model's fatal signal (`EINTR`).
                    raise KernelError(EINTR, "binder thread released while waiting")
                if inner.looper_need_return:
                    return None

    @may_sleep
    def get_work(self, wait: bool) -> DLArc | None:
        """Work from the thread's list, else the process's; registers as ready to wait."""
        with self.inner.lock() as g:
            work = g.data.pop_work()
            if work is not None:
                return work
            need_return = g.data.looper_need_return
        if need_return:
            return self.process.get_work()
        if not wait:
            work = self.process.get_work()
            if work is None:
                raise KernelError(EAGAIN)
            return work
        got = self.process.get_work_or_register(self)
        if not isinstance(got, Registration):
            return got
        reg = got
        signal_pending = False
        try:
            with self.inner.lock() as g:
                while True:
                    inner = g.data
                    work = inner.pop_work()
                    if work is not None:
                        return work
                    inner.looper_flags |= LooperFlag.WAITING | LooperFlag.WAITING_PROC
                    self.work_condvar.wait(g)
                    inner.looper_flags &= ~(LooperFlag.WAITING | LooperFlag.WAITING_PROC)
                    signal_pending = inner.is_dead
                    if signal_pending or inner.looper_need_return:
                        break
        finally:
            # Off the ready list first, then look again: work may have come meanwhile.
            reg.drop()
        with self.inner.lock() as g:
            work = g.data.pop_work()
        if work is None and signal_pending:
            raise KernelError(EINTR, "binder thread released while waiting")
        return work

    # --- pushing work --------------------------------------------------------------------

    def push_work(self, work: DLArc) -> DLArc | None:
        """Deliver `work` through this thread; returns it back if the thread is dead."""
        with self.inner.lock() as g:
            res = g.data.push_work(work)
        if res is None:
            # Upstream uses `notify_sync` for two-way work (`should_sync_wakeup`), a
            # scheduling hint; the model's condvar has one kind of wakeup.
            self.work_condvar.notify_one()
        return res

    @may_sleep
    def push_work_if_looper(self, work: DLArc) -> None:
        """To this thread if it is a live looper, else to its process (`BinderError` if dead)."""
        with self.inner.lock() as g:
            if g.data.is_looper() and not g.data.is_dead:
                g.data.push_work(work)
                return
        self.process.push_work(work)

    def push_work_deferred(self, work: DLArc) -> None:
        with self.inner.lock() as g:
            g.data.push_work_deferred(work)

    def push_return_work(self, reply: int) -> None:
        with self.inner.lock() as g:
            g.data.push_return_work(reply)

    def exit_looper(self) -> None:
        """Make a waiting `get_work` return (process flush)."""
        with self.inner.lock() as g:
            should_notify = bool(g.data.looper_flags & LooperFlag.WAITING)
            if should_notify:
                g.data.looper_need_return = True
        if should_notify:
            self.work_condvar.notify_one()

    # --- replies ----------------------------------------------------------------------------

    @may_sleep
    def deliver_reply(
        self, reply: Reply, transaction: Transaction, ee: binder_extended_error | None = None
    ) -> None:
        if self.deliver_single_reply(reply, transaction, ee):
            transaction.from_thread.unwind_transaction_stack()

    @may_sleep
    def deliver_single_reply(
        self, reply: Reply, transaction: Transaction, ee: binder_extended_error | None
    ) -> bool:
        """Deliver a reply (or an error code) to this, the sending thread.

        Returns whether the thread is dead: the caller then unwinds its stack.
        """
        reply_la: DLArc | None = None
        if isinstance(reply, Transaction):
            with self.process.inner.lock() as pg:
                reply.set_outstanding(pg)
            reply_la = reply.take_dlarc()
        undelivered: DLArc | None = None
        dead = False
        delivered = False
        with self.inner.lock() as g:
            inner = g.data
            if not inner.pop_transaction_replied(transaction):
                undelivered = reply_la
            elif inner.is_dead:
                dead = True
                undelivered = reply_la
            else:
                if ee is not None and inner.extended_error.command == BR_OK:
                    inner.extended_error = ee
                if reply_la is not None:
                    undelivered = inner.push_work(reply_la)
                else:
                    assert isinstance(reply, int)
                    undelivered = inner.push_reply_work(reply)
                delivered = undelivered is None
        if undelivered is not None:
            drop_work(undelivered)
        if delivered:
            self.work_condvar.notify_one()
        return dead

    @may_sleep
    def unwind_transaction_stack(self) -> None:
        """This thread died: fail every transaction waiting on it, down the stack."""
        thread = self
        while True:
            with thread.inner.lock() as g:
                try:
                    transaction = g.data.pop_transaction_to_reply(thread)
                except KernelError:
                    break
            if not transaction.from_thread.deliver_single_reply(BR_DEAD_REPLY, transaction, None):
                break
            thread = transaction.from_thread

    # --- the transaction commands ---------------------------------------------------------------

    def _read_transaction_info(self, cmd: int, reader: UserReader, info: TransactionInfo) -> None:
        if cmd in (BC_TRANSACTION, BC_REPLY):
            td = binder_transaction_data.unpack(reader.read(binder_transaction_data.SIZE))
            buffers_size = 0
        else:
            sg = binder_transaction_data_sg.unpack(reader.read(binder_transaction_data_sg.SIZE))
            td = sg.transaction_data()
            buffers_size = sg.buffers_size
        info.is_reply = cmd in (BC_REPLY, BC_REPLY_SG)
        info.from_pid = self.process.pid()
        info.from_tid = self.id
        info.code = td.code
        info.flags = td.flags
        info.data_ptr = td.buffer
        info.data_size = td.data_size
        info.offsets_ptr = td.offsets
        info.offsets_size = td.offsets_size
        info.buffers_size = buffers_size
        info.target_handle = td.handle
        info.debug_id = next_debug_id()

    @may_sleep
    def transaction(self, cmd: int, reader: UserReader) -> TransactionInfo:
        """BC_TRANSACTION(_SG) / BC_REPLY(_SG): failures go to the read buffer."""
        info = TransactionInfo()
        self._read_transaction_info(cmd, reader, info)
        self.clear_extended_error(info.debug_id)
        try:
            if info.is_reply:
                self._reply_inner(info)
            elif info.is_oneway():
                self._oneway_transaction_inner(info)
            else:
                self._transaction_inner(info)
        except KernelError as e:
            err = BinderError.of(e)
            self.push_return_work(err.reply)
            if err.reply != BR_TRANSACTION_COMPLETE:
                info.reply = err.reply
                if err.source is not None:
                    info.errno = -err.source.errno
                    with self.inner.lock() as g:
                        g.data.extended_error = binder_extended_error(
                            info.debug_id & U32_MAX, err.reply, -err.source.errno
                        )
        return info

    def _new_completion(self, code: int) -> tuple[DLArc, DeliverCode]:
        """A `DeliverCode` in its `DLArc` (may sleep; `ENOMEM`), and the item itself."""
        item = DeliverCode(code)
        return new_dlarc(item), item

    def _transaction_inner(self, info: TransactionInfo) -> None:
        node_ref = self.process.get_transaction_node(info.target_handle)
        info.to_pid = node_ref.node.owner.pid()
        try:
            top = self.top_of_transaction_stack()
            completion_la, completion = self._new_completion(BR_TRANSACTION_COMPLETE)
        except KernelError:
            node_ref.drop()
            raise
        try:
            transaction = Transaction.new(node_ref, top, self, info)
        except KernelError:
            completion_la.drop()
            raise
        stacked = False
        with self.inner.lock() as g:
            if transaction.is_stacked_on(g.data.current_transaction):
                stacked = True
                g.data.current_transaction = transaction
                # Deferred: the caller waits for the reply before returning to userspace.
                g.data.push_work_deferred(completion_la)
        if not stacked:
            completion_la.drop()
            transaction.drop_undelivered()
            raise KernelError(EINVAL, "got new transaction with bad transaction stack")
        try:
            transaction.submit(info)
        except KernelError:
            completion.skip()
            with self.inner.lock() as g:
                cur = g.data.current_transaction
                if cur is transaction:
                    g.data.current_transaction = transaction.clone_next()
            raise

    def _reply_inner(self, info: TransactionInfo) -> None:
        with self.inner.lock() as g:
            orig = g.data.pop_transaction_to_reply(self)
        if not orig.from_thread.is_current_transaction(orig):
            raise KernelError(EINVAL, "got reply transaction with bad transaction stack")
        info.to_tid = orig.from_thread.id
        info.to_pid = orig.from_thread.process.pid()
        # The transaction must complete for its sender even if the reply cannot be built.
        completion_la: DLArc | None = None
        try:
            completion_la, _ = self._new_completion(BR_TRANSACTION_COMPLETE)
            allow_fds = bool(orig.flags & TF_ACCEPT_FDS)
            reply = Transaction.new_reply(self, orig.from_thread.process, info, allow_fds)
        except KernelError as e:
            if completion_la is not None:
                completion_la.drop()
            err = BinderError.of(e)
            param = -err.source.errno if err.source is not None else 0
            ee = binder_extended_error(info.debug_id & U32_MAX, err.reply, param)
            orig.from_thread.deliver_reply(BR_FAILED_REPLY, orig, ee)
            info.reply = BR_FAILED_REPLY
            raise err.completed() from None
        with self.inner.lock() as g:
            back = g.data.push_work(completion_la)
        if back is not None:
            back.drop()
        orig.from_thread.deliver_reply(reply, orig)

    def _oneway_transaction_inner(self, info: TransactionInfo) -> None:
        node_ref = self.process.get_transaction_node(info.target_handle)
        info.to_pid = node_ref.node.owner.pid()
        transaction = Transaction.new(node_ref, None, self, info)
        spam = self.process.is_oneway_spam_detection_enabled() and info.oneway_spam_suspect
        try:
            completion_la, completion = self._new_completion(
                BR_ONEWAY_SPAM_SUSPECT if spam else BR_TRANSACTION_COMPLETE
            )
        except KernelError:
            transaction.drop_undelivered()
            raise
        with self.inner.lock() as g:
            back = g.data.push_work(completion_la)
        if back is not None:
            back.drop()
        try:
            transaction.submit(info)
        except KernelError:
            completion.skip()
            raise

    # --- copying a transaction's payload ---------------------------------------------------------

    @may_sleep
    def copy_transaction_data(
        self, to_process: Process, info: TransactionInfo, debug_id: int, allow_fds: bool
    ) -> NewAllocation:
        """Reserve a buffer in `to_process` and copy and translate the payload into it."""
        data_size = info.data_size
        aligned_data_size = ptr_align(data_size)
        if aligned_data_size is None:
            raise KernelError(EINVAL, "data size overflows")
        offsets_size = info.offsets_size
        buffers_size = info.buffers_size
        if offsets_size % 8 or buffers_size % 8:
            raise KernelError(EINVAL, "offsets or buffers size not 8-aligned")
        total = aligned_data_size + offsets_size + buffers_size
        if total > U64_MAX:
            raise KernelError(ENOMEM, "transaction size overflows")
        length = max(total, 8)
        alloc = to_process.buffer_alloc(debug_id, length, info.is_oneway(), info.from_pid)
        info.oneway_spam_suspect = alloc.oneway_spam_detected
        try:
            self._fill_allocation(alloc, info, aligned_data_size, allow_fds)
        except BaseException:
            # The buffer's destructor releases the objects translated so far.
            drop_pending_files(alloc)
            alloc.drop()
            raise
        return alloc

    def _fill_allocation(
        self, alloc: NewAllocation, info: TransactionInfo, aligned_data_size: int, allow_fds: bool
    ) -> None:
        data_size = info.data_size
        offsets_size = info.offsets_size
        buffer_reader = UserSlice(info.data_ptr, data_size).reader()
        end_of_previous_object = 0
        sg_state: ScatterGatherState | None = None
        if offsets_size > 0:
            offsets_reader = UserSlice(info.offsets_ptr, offsets_size).reader()
            offsets_start = aligned_data_size
            offsets_end = aligned_data_size + offsets_size
            sg_state = ScatterGatherState(offsets_end, offsets_end + info.buffers_size)
            view = AllocationView(alloc, data_size)
            for index, index_offset in enumerate(range(offsets_start, offsets_end, 8)):
                raw = offsets_reader.read(8)
                alloc.write(index_offset, raw)
                offset = int.from_bytes(raw, "little")
                reason = validate.check_object_offset(offset, end_of_previous_object, data_size)
                if reason is not None:
                    raise KernelError(EINVAL, f"{reason}: {offset:#x}")
                if end_of_previous_object < offset:
                    view.copy_into(
                        buffer_reader, end_of_previous_object, offset - end_of_previous_object
                    )
                obj = _read_object(buffer_reader)
                reason = validate.check_object_end(offset, len(obj), data_size)
                if reason is not None:
                    raise KernelError(EINVAL, f"{reason}: {offset:#x}")
                num_valid = validate.validated_count(index_offset, offsets_start)
                self._translate_object(index, offset, obj, view, allow_fds, sg_state, num_valid)
                end_of_previous_object = offset + len(obj)
                # The buffer now owns the objects up to here: its destructor releases them.
                alloc.set_info_offsets(range(offsets_start, index_offset + 8))
        alloc.copy_into(buffer_reader, end_of_previous_object, data_size - end_of_previous_object)
        if sg_state is not None:
            self._apply_sg(alloc, sg_state)

    def _translate_object(
        self,
        obj_index: int,
        offset: int,
        raw: bytes,
        view: AllocationView,
        allow_fds: bool,
        sg: ScatterGatherState,
        num_valid: int,
    ) -> None:
        type_ = _u32(raw[:4])
        if type_ in (BINDER_TYPE_BINDER, BINDER_TYPE_WEAK_BINDER):
            fbo = flat_binder_object.unpack(raw)
            strong = type_ == BINDER_TYPE_BINDER
            node_ref = self.process.get_node(fbo.binder, fbo.cookie, fbo.flags, strong, self)
            view.transfer_binder_object(offset, fbo, strong, node_ref)
        elif type_ in (BINDER_TYPE_HANDLE, BINDER_TYPE_WEAK_HANDLE):
            fbo = flat_binder_object.unpack(raw)
            strong = type_ == BINDER_TYPE_HANDLE
            node_ref = self.process.get_node_from_handle(fbo.handle, strong)
            view.transfer_binder_object(offset, fbo, strong, node_ref)
        elif type_ == BINDER_TYPE_FD:
            if not allow_fds:
                raise KernelError(EPERM, "the target does not accept file descriptors")
            fdo = binder_fd_object.unpack(raw)
            file = FileRef.fget(fdo.fd)
            try:
                # The real fd is written when the transaction is received.
                view.write(offset, binder_fd_object(BINDER_TYPE_FD, 0, U32_MAX, fdo.cookie).pack())
                view.alloc.info_add_fd(file, offset + 8, False)
            except BaseException:
                file.drop()
                raise
        elif type_ == BINDER_TYPE_PTR:
            bbo = binder_buffer_object.unpack(raw)
            alloc_offset = sg.claim_next(bbo.length)
            idx = len(sg.sg_entries)
            alloc_check(GFP_KERNEL, "ScatterGatherEntry")
            sg.sg_entries.append(
                ScatterGatherEntry(obj_index, alloc_offset, bbo.buffer, bbo.length)
            )
            user_ptr = view.alloc.ptr + alloc_offset
            if not bbo.flags & BINDER_BUFFER_FLAG_HAS_PARENT:
                sg.ancestors = [idx]
            else:
                fix = sg.validate_parent_fixup(
                    bbo.parent, bbo.parent_offset, validate.POINTER_SIZE, num_valid
                )
                del sg.ancestors[fix.num_ancestors :]
                sg.ancestors.append(idx)
                parent = sg.sg_entries[fix.parent_sg_index]
                parent.fixup_min_offset = fix.new_min_offset
                parent.pointer_fixups.append(
                    _Fixup(fix.target_offset, True, pointer_value=user_ptr)
                )
            view.write(
                offset,
                binder_buffer_object(
                    BINDER_TYPE_PTR, bbo.flags, user_ptr, bbo.length, bbo.parent, bbo.parent_offset
                ).pack(),
            )
        elif type_ == BINDER_TYPE_FDA:
            if not allow_fds:
                raise KernelError(EPERM, "the target does not accept file descriptors")
            fda = binder_fd_array_object.unpack(raw)
            fds_len = fda.num_fds * 4
            if fda.parent_offset % 4:
                raise KernelError(EINVAL, "FDA parent offset not aligned")
            fix = sg.validate_parent_fixup(fda.parent, fda.parent_offset, fds_len, num_valid)
            view.alloc.info_add_fd_reserve(fda.num_fds)
            del sg.ancestors[fix.num_ancestors :]
            parent = sg.sg_entries[fix.parent_sg_index]
            if parent.sender_uaddr % 4:
                raise KernelError(EINVAL, "FDA parent buffer not aligned")
            parent.fixup_min_offset = fix.new_min_offset
            parent.pointer_fixups.append(_Fixup(fix.target_offset, False, skip=fds_len))
            fda_bytes = (
                UserSlice(parent.sender_uaddr + fda.parent_offset, fds_len).reader().read(fds_len)
            )
            for i in range(0, fds_len, 4):
                file = FileRef.fget(_u32(fda_bytes[i : i + 4]))
                try:
                    view.alloc.info_add_fd(file, fix.target_offset + i, True)
                except BaseException:
                    file.drop()
                    raise
            view.write(
                offset,
                binder_fd_array_object(
                    BINDER_TYPE_FDA, 0, fda.num_fds, fda.parent, fda.parent_offset
                ).pack(),
            )
        else:  # pragma: no cover - `_read_object` only returns known types.
            raise KernelError(EINVAL, f"unknown object type {type_:#x}")

    def _apply_sg(self, alloc: Allocation, sg: ScatterGatherState) -> None:
        for entry in sg.sg_entries:
            end_prev = entry.offset
            offset_end = entry.offset + entry.length
            reader = UserSlice(entry.sender_uaddr, entry.length).reader()
            for fixup in entry.pointer_fixups:
                flen, writes = validate.fixup_plan(fixup.is_pointer, fixup.skip)
                target_end = fixup.target_offset + flen
                reason = validate.check_fixup_in_buffer(
                    end_prev, fixup.target_offset, flen, offset_end
                )
                if reason is not None:
                    raise KernelError(EINVAL, reason)
                alloc.copy_into(reader, end_prev, fixup.target_offset - end_prev)
                if writes:
                    alloc.write(fixup.target_offset, fixup.pointer_value.to_bytes(8, "little"))
                reader.skip(flen)
                end_prev = target_end
            alloc.copy_into(reader, end_prev, offset_end - end_prev)

    # --- BINDER_WRITE_READ -----------------------------------------------------------------------

    @may_sleep
    def write(self, req: _WriteRead) -> None:
        """Consume the commands of the write buffer, advancing `req.write_consumed`."""
        start = (req.write_buffer + req.write_consumed) & U64_MAX
        length = max(req.write_size - req.write_consumed, 0)
        reader = PageReader(UserSlice(start, length).reader())
        proc = self.process
        while reader.len() >= 4:
            with self.inner.lock() as g:
                if not g.data.return_work.is_unused():
                    break
            before = reader.len()
            cmd = _u32(reader.read(4))
            if cmd in (BC_TRANSACTION, BC_TRANSACTION_SG, BC_REPLY, BC_REPLY_SG):
                self.transaction(cmd, reader)
            elif cmd == BC_FREE_BUFFER:
                ptr = int.from_bytes(reader.read(8), "little")
                buffer = proc.buffer_get(ptr)
                if buffer is None:
                    # Upstream only logs a user error and carries on; the model fails the
                    # write with EINVAL so a double free is visible to the caller.
                    raise KernelError(
                        EINVAL, f"BC_FREE_BUFFER {ptr:#x}: no such buffer (double free?)"
                    )
                if buffer.looper_need_return_on_free():
                    with self.inner.lock() as g:
                        g.data.looper_need_return = True
                    # The fds of an fd array are the buffer's: closed with it.
                    _close_fds_on_free(buffer)
                buffer.drop()
            elif cmd in (BC_INCREFS, BC_ACQUIRE, BC_RELEASE, BC_DECREFS):
                handle = _u32(reader.read(4))
                inc = cmd in (BC_INCREFS, BC_ACQUIRE)
                strong = cmd in (BC_ACQUIRE, BC_RELEASE)
                proc.update_ref(handle, inc, strong)
            elif cmd in (BC_INCREFS_DONE, BC_ACQUIRE_DONE):
                proc.inc_ref_done(reader, cmd == BC_ACQUIRE_DONE)
            elif cmd == BC_REQUEST_DEATH_NOTIFICATION:
                proc.request_death(reader, self)
            elif cmd == BC_CLEAR_DEATH_NOTIFICATION:
                proc.clear_death(reader, self)
            elif cmd == BC_DEAD_BINDER_DONE:
                proc.dead_binder_done(int.from_bytes(reader.read(8), "little"), self)
            elif cmd == BC_REGISTER_LOOPER:
                valid = proc.register_thread()
                with self.inner.lock() as g:
                    g.data.looper_register(valid)
            elif cmd == BC_ENTER_LOOPER:
                with self.inner.lock() as g:
                    g.data.looper_enter()
            elif cmd == BC_EXIT_LOOPER:
                with self.inner.lock() as g:
                    g.data.looper_exit()
            else:
                # Unknown codes fail the write (BC_ATTEMPT_ACQUIRE and BC_ACQUIRE_RESULT
                # are no longer supported).
                raise KernelError(EINVAL, f"unknown binder command {code_name(cmd)}")
            req.write_consumed += before - reader.len()

    @may_sleep
    def read(self, req: _WriteRead, wait: bool) -> None:
        """Fill the read buffer with work, advancing `req.read_consumed`."""
        start = (req.read_buffer + req.read_consumed) & U64_MAX
        read_len = max(req.read_size - req.read_consumed, 0)
        writer = BinderReturnWriter(UserSlice(start, read_len).writer(), self)
        with self.inner.lock() as g:
            in_pool = g.data.is_looper()
            use_proc_queue = g.data.should_use_process_work_queue()
        getter = self.get_work if use_proc_queue else self.get_work_local
        has_noop_placeholder = False
        if req.read_consumed == 0:
            writer.write_code(BR_NOOP)
            has_noop_placeholder = True
        initial_len = writer.len()
        while writer.len() >= binder_transaction_data_secctx.SIZE + 4:
            try:
                work = getter(wait and initial_len == writer.len())
            except KernelError:
                if initial_len == writer.len():
                    raise
                break
            if work is None or not run_work(work, self, writer):
                break
        req.read_consumed += read_len - writer.len()
        if has_noop_placeholder and in_pool and self.process.needs_thread():
            UserSlice(req.read_buffer, req.read_size).writer().write(
                BR_SPAWN_LOOPER.to_bytes(4, "little")
            )

    @may_sleep
    def write_read(self, arg: int, wait: bool) -> None:
        """The BINDER_WRITE_READ ioctl: `arg` is the user address of a `binder_write_read`."""
        us = UserSlice(arg, binder_write_read.SIZE)
        req = _WriteRead.of(binder_write_read.unpack(us.reader().read(binder_write_read.SIZE)))
        out = us.writer()
        if req.write_size > 0:
            try:
                self.write(req)
            except KernelError:
                req.read_consumed = 0
                out.write(req.to_uapi().pack())
                with self.inner.lock() as g:
                    g.data.looper_need_return = False
                raise
        err: KernelError | None = None
        if req.read_size > 0:
            try:
                self.read(req, wait)
            except KernelError as e:
                err = e
        out.write(req.to_uapi().pack())
        with self.inner.lock() as g:
            g.data.looper_need_return = False
        if err is not None:
            raise err

    # --- teardown ---------------------------------------------------------------------------

    @may_sleep
    def release(self) -> None:
        """The thread exits (BINDER_THREAD_EXIT or process death): `Thread::release`.

        As upstream, only the work `get_work_local` can see is cancelled: deferred
        items behind the last real one (a node's refcount work, a
        `BR_TRANSACTION_COMPLETE`) stay on the list, and so does deferred work pushed
        after this (`push_work_deferred` does not look at `is_dead`); they are dropped
        with the thread (`drop_arc`), once its process gave back its count (`discard`).
        """
        with self.inner.lock() as g:
            g.data.is_dead = True
        # A thread still sleeping in the driver wakes up as if killed.
        self.work_condvar.notify_all()
        self.unwind_transaction_stack()
        while True:
            try:
                work = self.get_work_local(False)
            except KernelError:
                break
            if work is None:
                break
            cancel_work(work)

    def discard(self) -> None:
        """Give back the thread's own count (its process's `Arc<Thread>`, after `release`).

        The last count frees the thread (`drop_arc`), which may sleep.
        """
        sa = self.self_arc
        assert sa is not None
        sa.release_kept()

    @may_sleep
    def drop_arc(self) -> None:
        """The last `Arc<Thread>` went: drop the thread's fields (`InnerThread`'s `Drop`).

        Its `work_list` is dropped as upstream's `List` `Drop` drops it: every item
        still on it (deferred work that `release` could not see) is dropped undelivered,
        giving back its list right and count. Then its two `DArc<ThreadError>` go. The
        thread is dead and nobody holds it, so nothing is queued on it any more.
        """
        while True:
            with self.inner.lock() as g:
                work = g.data.work_list.pop_front()
            if work is None:
                break
            # Dropped with the lock released: an item's destructor may take locks.
            drop_work(work)
        with self.inner.lock() as g:
            errors = (g.data.reply_work, g.data.return_work)
        for err in errors:
            if err.self_arc is not None:
                err.self_arc.release_kept()


class Registration:
    """The thread is on its process's `ready_threads` list until this is dropped.

    Invariants: after `drop()` the thread is on no ready list (unless a pusher already
    took it off).
    """

    __slots__ = ("_dropped", "thread")

    def __init__(self, thread: Thread) -> None:
        self.thread = thread
        self._dropped = False

    def drop(self) -> None:
        if self._dropped:
            return
        self._dropped = True
        with self.thread.process.inner.lock() as g:
            # SAFETY: a thread is never pushed to any list but the `ready_threads` of its
            # own process, so it is in this list or in none.
            with unsafe("SAFETY: a thread is only ever on its own process's ready_threads"):
                removed = g.data.ready_threads.remove(self.thread)
        if removed is not None:
            # The thread keeps a count of its own: this frees nothing.
            removed.drop()


def _close_fds_on_free(buffer: Allocation) -> None:
    """Close the fds a freed buffer installed for an fd array (`close_on_free`)."""
    info = buffer.allocation_info
    if info is None:
        return
    fds, info.close_on_free = info.close_on_free, []
    for fd in fds:
        try:
            close_fd(fd)
        except KernelError:
            # Userspace already closed it: nothing to do, as upstream ignores the error.
            continue


def _read_object(reader: UserReader) -> bytes:
    """`BinderObject::read_from`: one embedded object, validated by its type tag."""
    header = reader.read(4)
    size = object_size(_u32(header))
    if size is None:
        raise KernelError(EINVAL, f"unknown binder object type {_u32(header):#x}")
    return header + reader.read(size - 4)
