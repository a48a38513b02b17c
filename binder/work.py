"""Work items delivered to a thread's read buffer (`DeliverToRead`, rust_binder_main.rs).

Everything the driver hands to userspace in `BINDER_WRITE_READ`'s read half is a work
item on a todo list, the process's or a thread's: an incoming transaction or reply, a
node refcount request (`BR_INCREFS`...), a death notification, a
`BR_TRANSACTION_COMPLETE`, an error code. Upstream they are `DLArc<dyn
DeliverToRead>` (a `ListArc`: an `Arc` with the exclusive right to be in one list); the
todo lists are intrusive linked lists, so pushing never allocates and can be done
under a spinlock.

This module holds that protocol and the small pieces upstream keeps next to it in
rust_binder_main.rs: `DeliverToRead` (the trait, with the list links of `DTRWrap`: one
`ListLinks` of id 0 and the `AtomicTracker` that makes `ListArc::try_from_arc` fail for
an item already in a todo list), `DLArc` (a `ListArc` of a work item), `SelfArc` (how a
method with a `self: &DArc<Self>` receiver takes a new count of its own object),
`DeliverCode` (a bare return code such as `BR_TRANSACTION_COMPLETE`), and
`BinderReturnWriter` (writes return codes to the user read buffer). It is split from
`rust_binder_main.py`, which the memory layer owns and which registers the device, so
the IPC modules do not import the device module.

Every work item lives in an `Arc` (`ownership.sync`), as upstream's `DArc`, and is queued
as a `DLArc` in an `ownership.list.List`. Items that upstream holders keep alive by
`DArc` counts the model does not all track (nodes, thread errors): such an item keeps
one count of its own (`SelfArc.keep`), the stand-in for those holders, which the model
never gives back; the lists' counts and the tracker are exact.

Lock order: none; an `AtomicTracker` is an atomic flag, not a lock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from ownership.list import AtomicTracker, HasListLinks, ListArc, ListLinks
from ownership.sync import Arc
from ownership.unsafe import unsafe

from .uapi import code_name

if TYPE_CHECKING:
    from .thread import Thread

__all__ = [
    "BinderReturnWriter",
    "DLArc",
    "DeliverCode",
    "DeliverToRead",
    "SelfArc",
    "UserReader",
    "UserWriter",
    "cancel_work",
    "drop_work",
    "new_dlarc",
    "run_work",
]

T = TypeVar("T")


class UserReader(Protocol):
    """The reading half of a `UserSlice` (`UserSliceReader`): copies from userspace."""

    def read(self, n: int) -> bytes: ...

    def skip(self, n: int) -> None: ...

    def len(self) -> int: ...


class UserWriter(Protocol):
    """The writing half of a `UserSlice` (`UserSliceWriter`): copies to userspace."""

    def write(self, data: bytes) -> None: ...

    def len(self) -> int: ...


class SelfArc(Generic[T]):
    """The `Arc` allocation of an object, for its `self: &DArc<Self>` methods.

    `clone()` takes a new count as `ArcBorrow::into()` does: a method of the object is
    running, so some holder's count keeps the allocation alive; a count taken after the
    last one went is a `RefcountError` (refcount_t addition on 0), never a silent use
    after free. `keep` makes the object hold one count of its own (see the module
    docstring).

    Invariants: `_raw` is the allocation of `arc` given to `__init__`; this object owns no
    count unless `_kept` is set, and then exactly one.
    """

    __slots__ = ("_kept", "_raw")

    def __init__(self, arc: Arc[T], keep: bool = False) -> None:
        self._kept: Arc[T] | None = arc.clone() if keep else None
        raw = arc.clone().into_raw()
        # SAFETY: `raw` comes from `into_raw` of a clone, whose count is dropped at once.
        with unsafe("SAFETY: `raw` comes from into_raw of a clone; its count is dropped here"):
            Arc.from_raw(raw).drop()
        self._raw = raw

    def release_kept(self) -> None:
        """Give back the object's own count (`keep`); the last one frees it."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.drop()

    def clone(self) -> Arc[T]:
        """A new count of the object (`self.clone()` on a `&DArc<Self>` receiver)."""
        # SAFETY: a method of the object runs, so a count keeps the allocation alive; the
        # borrowed handle is forgotten with `into_raw`, never dropped.
        with unsafe("SAFETY: the allocation is alive while a method of the object runs"):
            borrowed = Arc.from_raw(self._raw)
        new = borrowed.clone()
        borrowed.into_raw()
        return new


class DeliverToRead(HasListLinks, ABC):
    """A work item for the read half of `BINDER_WRITE_READ` (the `DeliverToRead` trait).

    As upstream's `DTRWrap`, every item has the links of the todo lists (id 0) and the
    tracker that lets a reusable item be queued again once it left its list.

    As the Rust trait's default methods, the base gives the items that have nothing to
    do on cancel or on an undelivered drop, and that never want a sync wakeup, those
    no-op defaults; an item overrides what it does differently. Only `do_work` must be
    written by every item.

    Invariants: `links` is in at most one todo list (or a node's `oneway_todo`);
    `links_track` is set while a `DLArc` of the item exists; `self_arc` is set once the
    item is in its `Arc` (`set_arc`).
    """

    __slots__ = ("links", "links_track", "self_arc")

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {0: ("links", "links_track")}

    def __init__(self) -> None:
        self.links = ListLinks(0)
        self.links_track = AtomicTracker(0)
        self.self_arc: SelfArc[DeliverToRead] | None = None

    def set_arc(self, arc: Arc[DeliverToRead], keep: bool = False) -> None:
        """Record the item's `Arc` (made by its constructor); `keep`: hold a count."""
        self.self_arc = SelfArc(arc, keep)

    def list_arc(self) -> DLArc | None:
        """`ListArc::try_from_arc(self.clone())`: None if the item is already queued."""
        sa = self.self_arc
        if sa is None:
            raise TypeError(f"{type(self).__name__} is not in an Arc (set_arc was not called)")
        arc = sa.clone()
        la = ListArc.try_from_arc(arc)
        if la is None:
            arc.drop()
        return la

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


DLArc = ListArc[DeliverToRead]
"""`DLArc<dyn DeliverToRead>`: a work item with the right to be in a todo list."""


def new_dlarc(item: DeliverToRead, keep: bool = False) -> DLArc:
    """Allocate `item` in its `Arc` and return its `DLArc` (`DTRWrap::arc_pin_init`).

    May sleep (`GFP_KERNEL`); `ENOMEM` on failure, with nothing allocated.
    """
    la: DLArc = ListArc.new(item)
    item.set_arc(la.as_arc(), keep)
    return la


def run_work(la: DLArc, thread: Thread, writer: BinderReturnWriter) -> bool:
    """`work.into_arc().do_work(thread, writer)`: the item's count is held meanwhile."""
    arc = la.into_arc()
    try:
        return arc.get().do_work(thread, writer)
    finally:
        arc.drop()


def cancel_work(la: DLArc) -> None:
    """`work.into_arc().cancel()`: an item that will never be delivered."""
    arc = la.into_arc()
    try:
        arc.get().cancel()
    finally:
        arc.drop()


def drop_work(la: DLArc) -> None:
    """`drop(work)` of a queued item handed back undelivered (its `Drop`, then the count)."""
    arc = la.into_arc()
    try:
        arc.get().drop_undelivered()
    finally:
        arc.drop()


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
        super().__init__()
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
