"""Work items delivered to a thread's read buffer (`DeliverToRead`, rust_binder_main.rs).

Everything the driver hands to userspace in `BINDER_WRITE_READ`'s read half is a work
item on a todo list, the process's or a thread's: an incoming transaction or reply, a
node refcount request (`BR_INCREFS`...), a death notification, a
`BR_TRANSACTION_COMPLETE`, an error code. Upstream they are `DLArc<dyn
DeliverToRead>` (a `ListArc`: an `Arc` with the exclusive right to be in one list); the
todo lists are intrusive linked lists, so pushing never allocates and can be done
under a spinlock.

This module holds that protocol and the small pieces upstream keeps next to it in
rust_binder_main.rs: `ListTracker` (the `AtomicTracker` that makes `ListArc::try_from_arc`
fail for an item already in a list), `DeliverCode` (a bare return code such as
`BR_TRANSACTION_COMPLETE`), and `BinderReturnWriter` (writes return codes to the user
read buffer). It is split from `rust_binder_main.py`, which the memory layer owns and
which registers the device, so the IPC modules do not import the device module.

Lock order: none; a `ListTracker` is an atomic flag, not a lock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

from ownership import sched

from .uapi import code_name

if TYPE_CHECKING:
    from .thread import Thread

__all__ = [
    "BinderReturnWriter",
    "DeliverCode",
    "DeliverToRead",
    "ListTracker",
    "UserReader",
    "UserWriter",
]


class UserReader(Protocol):
    """The reading half of a `UserSlice` (`UserSliceReader`): copies from userspace."""

    def read(self, n: int) -> bytes: ...

    def skip(self, n: int) -> None: ...

    def len(self) -> int: ...


class UserWriter(Protocol):
    """The writing half of a `UserSlice` (`UserSliceWriter`): copies to userspace."""

    def write(self, data: bytes) -> None: ...

    def len(self) -> int: ...


class DeliverToRead(ABC):
    """A work item for the read half of `BINDER_WRITE_READ` (the `DeliverToRead` trait).

    As the Rust trait's default methods, the base gives the items that have nothing to
    do on cancel or on an undelivered drop, and that never want a sync wakeup, those
    no-op defaults; an item overrides what it does differently. Only `do_work` must be
    written by every item.
    """

    __slots__ = ()

    @abstractmethod
    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        """Write this item to `writer`; True to go on with the next item, False to return."""

    def cancel(self) -> None:
        """Called instead of `do_work` when the item will never be delivered."""
        return None

    def should_sync_wakeup(self) -> bool:
        """Whether the receiving thread is woken as for a two-way transaction."""
        return False

    def drop_undelivered(self) -> None:
        """Rust's `drop(work)` of an item that was never delivered nor cancelled."""
        return None


class ListTracker:
    """`AtomicTracker`: at most one `ListArc` (list membership) exists at a time.

    Invariants: `_flag` is held iff the owner is in a list (or about to be pushed by
    the thread that claimed it). Claiming is an atomic test-and-set.
    """

    __slots__ = ("_flag",)

    def __init__(self) -> None:
        self._flag = threading.Lock()

    def try_claim(self) -> bool:
        """`ListArc::try_from_arc`: True if the caller may now push the item."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic test-and-set: a preemption point under an explorer.
            hook(self)
        return self._flag.acquire(False)

    def release(self) -> None:
        """`ListArc::into_arc`: the item left its list."""
        hook = sched.atomic_hook
        if hook is not None:
            hook(self)
        if self._flag.locked():
            self._flag.release()

    def is_listed(self) -> bool:
        return self._flag.locked()


class BinderReturnWriter:
    """Writes return codes and their payloads into the user's read buffer.

    Invariants: `writer` is the user read buffer of the calling thread's
    `BINDER_WRITE_READ`; `codes` lists every code written, in order (statistics).
    """

    __slots__ = ("codes", "thread", "writer")

    def __init__(self, writer: UserWriter, thread: Thread) -> None:
        self.writer = writer
        self.thread = thread
        self.codes: list[int] = []

    def write_code(self, code: int) -> None:
        """Write a `BR_*` code (may fault on the user buffer: `EFAULT`)."""
        self.writer.write(code.to_bytes(4, "little"))
        self.codes.append(code)

    def write_payload(self, payload: bytes) -> None:
        self.writer.write(payload)

    def len(self) -> int:
        return self.writer.len()


class DeliverCode(DeliverToRead):
    """A bare return code to deliver (`BR_TRANSACTION_COMPLETE`, `BR_ONEWAY_SPAM_SUSPECT`).

    Invariants: once `skip()` was called the item writes nothing (upstream disables it
    instead of unlinking it, because `List::remove` is unsafe).
    """

    __slots__ = ("code", "skipped")

    def __init__(self, code: int) -> None:
        self.code = code
        self.skipped = False

    def skip(self) -> None:
        self.skipped = True

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        if not self.skipped:
            writer.write_code(self.code)
        return True

    def __repr__(self) -> str:
        return f"DeliverCode({code_name(self.code)}{', skipped' if self.skipped else ''})"
