"""Binder nodes, references to them, and death notifications (drivers/android/binder/node.rs).

A `Node` is a binder object that a process exports (a local `BBinder` in libbinder),
identified in its owner by `(ptr, cookie)`. Other processes reach it through a
`NodeRef` held in their handle table; the node counts how many strong and weak
`NodeRef` counts point at it and tells its owner, with `BR_INCREFS`/`BR_ACQUIRE` (and
later `BR_RELEASE`/`BR_DECREFS`), whether the kernel holds a reference, so userspace
keeps the object alive exactly while someone remote may still use it.

The types are split as upstream splits them:

* `Node`: the object, with its state `LockedBy` its owner's `Process.inner` lock
  (`NodeInner`: the two `CountState`s, the `DeliveryState` of its refcount work item,
  the queue of pending oneway transactions, the death list). A `Node` is itself a work
  item: delivered, it writes the refcount requests its counts call for.
* `CritIncrWrapper` and `NodeWrapper` (`binder.node.wrapper`, upstream node/wrapper.rs):
  a second work item for a "critical" zero-to-one strong increment that must be
  delivered to the thread doing it, allocated before the owner's lock is taken.
* `NodeRef`: one holder's counts on a node; dropping it gives them back.
* `NodeDeath`: a `BC_REQUEST_DEATH_NOTIFICATION` registration; a work item that
  delivers `BR_DEAD_BINDER` and `BR_CLEAR_DEATH_NOTIFICATION_DONE`.

The lists are `ownership.list` `List`s, as upstream's `kernel::list`: `oneway_todo`
(id 0, the same links as the todo lists), `death_list` (id 1, `NodeDeath.death_links`)
and `refs` (id `NodeRefInfo.LIST_NODE`). `Node.release` pops each death off the node's
own list under the lock (the fix of CVE-2025-68260); removing a death from a list it is
not in is a checked `UnsafeError`.

Lock order (upstream, observed nesting): `Process.node_refs` (Mutex) ->
`Process.inner` (SpinLock, of the node's owner) -> `NodeDeath.inner` (SpinLock) and
`Thread.inner` (SpinLock). `NodeDeath.set_cleared` takes `NodeDeath.inner` and releases
it before taking the owner's `Process.inner`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, ClassVar, cast

from ownership.alloc import GFP_KERNEL
from ownership.config import STATE
from ownership.context import may_sleep
from ownership.errors import EINVAL, KernelError, RefcountError
from ownership.handle import DropRules, Handle
from ownership.list import AtomicTracker, List, ListArc, ListLinks
from ownership.marker import impl_send, impl_sync
from ownership.site import Site, here, site_of_frame
from ownership.sync import Arc, LockedBy, SpinLock, SpinLockGuard
from ownership.unsafe import unsafe

from ..defs import next_debug_id
from ..error import BinderError
from ..uapi import (
    BR_ACQUIRE,
    BR_CLEAR_DEATH_NOTIFICATION_DONE,
    BR_DEAD_BINDER,
    BR_DECREFS,
    BR_INCREFS,
    BR_RELEASE,
    binder_ptr_cookie,
)
from ..work import BinderReturnWriter, DeliverToRead, DLArc, cancel_work, drop_work
from .wrapper import CritIncrWrapper, NodeWrapper

if TYPE_CHECKING:
    from ..process import NodeRefInfo, Process, ProcessInner
    from ..thread import Thread
    from ..transaction import Transaction

__all__ = [
    "CouldNotDeliverCriticalIncrement",
    "CountState",
    "CritIncrWrapper",
    "DeliveryState",
    "Node",
    "NodeDeath",
    "NodeRef",
    "NodeWrapper",
]

InnerGuard = SpinLockGuard["ProcessInner"]


def _caller(depth: int) -> Site:
    """The site `depth` frames above the caller: the driver code using a NodeRef."""
    return site_of_frame(sys._getframe(depth + 1))


class CouldNotDeliverCriticalIncrement(Exception):
    """A zero-to-one strong increment needs a `CritIncrWrapper`: allocate one, retry."""


class DeliveryState:
    """How the node's refcount work is currently scheduled (node.rs `DeliveryState`).

    Invariants (protected by the owner's `Process.inner`): `has_pushed_wrapper`
    implies `has_strong_zero2one`; a weak zero-to-one is only ever scheduled through
    the node itself.
    """

    __slots__ = (
        "has_pushed_node",
        "has_pushed_wrapper",
        "has_strong_zero2one",
        "has_weak_zero2one",
    )

    def __init__(self) -> None:
        self.has_pushed_node = False
        self.has_pushed_wrapper = False
        self.has_weak_zero2one = False
        self.has_strong_zero2one = False

    def should_normal_push(self) -> bool:
        return not self.has_pushed_node and not self.has_pushed_wrapper

    def did_normal_push(self) -> None:
        assert self.should_normal_push()
        self.has_pushed_node = True

    def should_push_weak_zero2one(self) -> bool:
        return not self.has_weak_zero2one and not self.has_strong_zero2one

    def can_push_weak_zero2one_normally(self) -> bool:
        return not self.has_pushed_node

    def did_push_weak_zero2one(self) -> None:
        assert self.should_push_weak_zero2one() and self.can_push_weak_zero2one_normally()
        self.has_pushed_node = True
        self.has_weak_zero2one = True

    def should_push_strong_zero2one(self) -> bool:
        return not self.has_strong_zero2one

    def can_push_strong_zero2one_normally(self) -> bool:
        return not self.has_pushed_node

    def did_push_strong_zero2one(self) -> None:
        assert self.should_push_strong_zero2one() and self.can_push_strong_zero2one_normally()
        self.has_pushed_node = True
        self.has_strong_zero2one = True

    def did_push_strong_zero2one_wrapper(self) -> None:
        assert self.should_push_strong_zero2one() and not self.can_push_strong_zero2one_normally()
        self.has_pushed_wrapper = True
        self.has_strong_zero2one = True


class CountState:
    """One kind (strong or weak) of count on a node.

    Invariants: `count` is the number of `NodeRef` counts; `has_count` is whether the
    owner process believes the kernel holds a reference (it was sent `BR_INCREFS` or
    `BR_ACQUIRE` and not yet the matching release).
    """

    __slots__ = ("count", "has_count")

    def __init__(self) -> None:
        self.count = 0
        self.has_count = False


class NodeInner:
    """The part of a `Node` protected by its owner's `Process.inner` lock.

    Invariants: `has_oneway_transaction` is set while a oneway transaction of this node
    is delivered and its buffer not yet freed; `oneway_todo` is empty otherwise;
    `active_inc_refs` counts BR_INCREFS/BR_ACQUIRE not yet acknowledged (at most 2).
    """

    __slots__ = (
        "active_inc_refs",
        "death_list",
        "delivery_state",
        "has_oneway_transaction",
        "oneway_todo",
        "refs",
        "strong",
        "weak",
    )

    def __init__(self) -> None:
        self.strong = CountState()
        self.weak = CountState()
        self.delivery_state = DeliveryState()
        # Pending oneway transactions: delivered one at a time, in order, each after
        # userspace freed the previous one's buffer (BC_FREE_BUFFER). A transaction is
        # in this list or in a todo list, through the same links (id 0).
        self.oneway_todo: List[DeliverToRead] = List(0, name="Node::oneway_todo")
        self.has_oneway_transaction = False
        # The death registrations on this node (list id 1; `NodeDeath.death_links`).
        self.death_list: List[NodeDeath] = List(1, name="Node::death_list")
        # BR_INCREFS/BR_ACQUIRE sent but not yet acknowledged with *_DONE.
        self.active_inc_refs = 0
        # The handles of other processes on this node (id `NodeRefInfo.LIST_NODE`).
        self.refs: List[NodeRefInfo] = List(0x2, name="Node::refs")


@impl_send("every field is either immutable or protected by the owner's Process.inner lock")
@impl_sync("all mutable state is reached through LockedBy with the owner's lock held")
class Node(DeliverToRead):
    """A binder object exported by `owner` (node.rs `Node`).

    Invariants: `inner` is reachable only with `owner.inner` held; `(ptr, cookie)` is
    the node's identity in its owner and never changes. The node is a work item
    (`DeliverToRead`): pushed at most once at a time, as `inner.delivery_state` records,
    and lives in an `Arc` of which it keeps one count (made by `new`, given back by
    `discard` when its process is released).
    """

    __slots__ = ("cookie", "debug_id", "flags", "inner", "origin_site", "owner", "ptr")

    @classmethod
    def new(cls, ptr: int, cookie: int, flags: int, owner: Process) -> Node:
        """Allocate a node in its `Arc` (`DTRWrap::arc_pin_init`; may sleep, `ENOMEM`)."""
        arc: Arc[DeliverToRead] = Arc.new(cls(ptr, cookie, flags, owner), GFP_KERNEL)
        node = arc.get()
        assert isinstance(node, Node)
        node.set_arc(arc, keep=True)
        arc.drop()
        return node

    def discard(self) -> None:
        """Give back the node's own count: a node nobody has seen (another thread
        inserted one first), or a node of a dead process after `release`."""
        sa = self.self_arc
        assert sa is not None
        sa.release_kept()

    def __init__(self, ptr: int, cookie: int, flags: int, owner: Process) -> None:
        super().__init__()
        self.origin_site = _caller(1) if STATE.on else None
        self.debug_id = next_debug_id()
        self.ptr = ptr
        self.cookie = cookie
        self.flags = flags
        self.owner = owner
        # INVARIANT: the node's state is protected by its owner's inner lock.
        self.inner: LockedBy[NodeInner, ProcessInner] = LockedBy(owner.inner, NodeInner())

    def __repr__(self) -> str:
        return f"Node({self.debug_id}: u{self.ptr:016x} c{self.cookie:016x})"

    def global_id(self) -> int:
        """An id unique across all nodes of the system (the `by_node` key)."""
        return id(self)

    def get_id(self) -> tuple[int, int]:
        return (self.ptr, self.cookie)

    def has_oneway_transaction(self, guard: InnerGuard) -> bool:
        return self.inner.access(guard).has_oneway_transaction

    def counts(self, guard: InnerGuard) -> tuple[int, int, bool, bool]:
        """(strong count, weak count, has strong, has weak), for tests and debug output."""
        inner = self.inner.access(guard)
        return (inner.strong.count, inner.weak.count, inner.strong.has_count, inner.weak.has_count)

    # --- refs list --------------------------------------------------------

    def insert_node_info(self, info: ListArc[NodeRefInfo]) -> None:
        """Record a handle of another process on this node (`refs.push_front`).

        `info.node_ref.node` is this node (upstream an unsafe fn with that Safety).
        """
        if info.get().node_ref.node is not self:
            raise KernelError(EINVAL, "insert_node_info: the NodeRefInfo is for another node")
        with self.owner.inner.lock() as guard:
            self.inner.access(guard).refs.push_front(info)

    def remove_node_info(self, info: NodeRefInfo) -> None:
        """Take a handle's info off this node's `refs` (it is dropped unlocked)."""
        with self.owner.inner.lock() as guard:
            # SAFETY: a `NodeRefInfo` is only inserted into the `refs` list of the node it
            # references in `info.node_ref.node`, which is this node, so `info` is in
            # this list or in none.
            with unsafe("SAFETY: a NodeRefInfo is only in the refs list of its own node"):
                removed = self.inner.access(guard).refs.remove(info)
        if removed is not None:
            removed.drop()

    # --- deaths -------------------------------------------------------------

    def add_death(self, death: ListArc[NodeDeath], guard: InnerGuard) -> None:
        if death.get().node is not self:
            raise KernelError(EINVAL, "attempt to add NodeDeath to the wrong death list")
        self.inner.access(guard).death_list.push_back(death)

    # --- refcounts (all with the owner's inner lock held) -------------------

    def _list_arc_for_push(self) -> DLArc:
        """`ListArc::try_from_arc(self.clone()).ok().unwrap()`: the node is not queued."""
        la = self.list_arc()
        if la is None:
            raise AssertionError(f"{self!r}: delivery state says not pushed, but it is queued")
        return la

    def _try_push_self(self, inner: NodeInner) -> DLArc | None:
        if inner.delivery_state.should_normal_push():
            la = self._list_arc_for_push()
            inner.delivery_state.did_normal_push()
            return la
        return None

    def inc_ref_done_locked(self, strong: bool, guard: InnerGuard) -> DLArc | None:
        """`BC_INCREFS_DONE`/`BC_ACQUIRE_DONE`: one active increment is acknowledged."""
        inner = self.inner.access(guard)
        if inner.active_inc_refs == 0:
            return None
        inner.active_inc_refs -= 1
        if inner.active_inc_refs != 0:
            return None
        strong_now = inner.strong.count > 0
        weak_now = strong_now or inner.weak.count > 0
        need_push = (not weak_now and inner.weak.has_count) or (
            not strong_now and inner.strong.has_count
        )
        return self._try_push_self(inner) if need_push else None

    def update_refcount_locked(
        self, inc: bool, strong: bool, count: int, guard: InnerGuard
    ) -> DLArc | None:
        """Change a count; returns the node if it must now be pushed as work."""
        is_dead = guard.data.is_dead
        inner = self.inner.access(guard)
        state = inner.strong if strong else inner.weak
        if inc:
            state.count += count
            need_push = not is_dead and not state.has_count
        else:
            if state.count < count:
                # pr_err!("Failure: refcount underflow!") upstream; the model makes it loud.
                raise RefcountError(
                    f"binder node {'strong' if strong else 'weak'} refcount underflow "
                    f"({state.count} - {count})",
                    rule="binder-node-underflow",
                    obj=repr(self),
                    site=here(),
                    origin=self.origin_site,
                    origin_label="the node was created",
                )
            state.count -= count
            need_push = not is_dead and state.count == 0 and state.has_count
        return self._try_push_self(inner) if need_push else None

    def incr_refcount_allow_zero2one(self, strong: bool, guard: InnerGuard) -> DLArc | None:
        """Increment, delivering a zero-to-one to the calling thread.

        Raises `CouldNotDeliverCriticalIncrement` when a strong zero-to-one cannot be
        scheduled through the node (it is already queued elsewhere): the caller
        allocates a `CritIncrWrapper` outside the lock and retries.
        """
        is_dead = guard.data.is_dead
        inner = self.inner.access(guard)
        state = inner.strong if strong else inner.weak
        state.count += 1
        if is_dead or state.has_count:
            return None
        ds = inner.delivery_state
        if not strong and ds.should_push_weak_zero2one():
            la = self._list_arc_for_push()
            ds.did_push_weak_zero2one()
            return la
        if strong and ds.should_push_strong_zero2one():
            if ds.can_push_strong_zero2one_normally():
                la = self._list_arc_for_push()
                ds.did_push_strong_zero2one()
                return la
            state.count -= 1
            raise CouldNotDeliverCriticalIncrement()
        return None

    def incr_refcount_allow_zero2one_with_wrapper(
        self, strong: bool, wrapper: CritIncrWrapper, guard: InnerGuard
    ) -> DLArc | None:
        try:
            return self.incr_refcount_allow_zero2one(strong, guard)
        except CouldNotDeliverCriticalIncrement:
            assert strong
            inner = self.inner.access(guard)
            inner.strong.count += 1
            inner.delivery_state.did_push_strong_zero2one_wrapper()
            return wrapper.init(self)

    def update_refcount(self, inc: bool, count: int, strong: bool) -> None:
        """Change a count, taking the owner's lock (and pushing work if needed)."""
        with self.owner.inner.lock() as guard:
            guard.data.update_node_refcount(guard, self, inc, strong, count, None)

    def force_has_count(self, guard: InnerGuard) -> None:
        """The context manager's node: never send it BR_INCREFS/BR_ACQUIRE."""
        inner = self.inner.access(guard)
        inner.strong.has_count = True
        inner.weak.has_count = True

    # --- oneway transactions ----------------------------------------------

    def submit_oneway(
        self, transaction: DLArc, guard: InnerGuard
    ) -> tuple[KernelError, DLArc] | None:
        """Queue a oneway transaction: to the owner, or behind the one in flight."""
        if guard.data.is_dead:
            return (BinderError.new_dead(), transaction)
        inner = self.inner.access(guard)
        if inner.has_oneway_transaction:
            inner.oneway_todo.push_back(transaction)
            return None
        inner.has_oneway_transaction = True
        return guard.data.push_work(transaction)

    @may_sleep
    def pending_oneway_finished(self) -> None:
        """The buffer of the oneway transaction in flight was freed: deliver the next."""
        undelivered: DLArc | None = None
        with self.owner.inner.lock() as guard:
            if guard.data.is_dead:
                # Cleanup happens in `Process.deferred_release`.
                return
            inner = self.inner.access(guard)
            transaction = inner.oneway_todo.pop_front()
            inner.has_oneway_transaction = transaction is not None
            if transaction is not None:
                res = guard.data.push_work(transaction)
                if res is not None:
                    undelivered = res[1]
        # The process died under us: drop the work after releasing the lock.
        if undelivered is not None:
            drop_work(undelivered)

    def take_outdated_transaction(self, new: Transaction, guard: InnerGuard) -> DLArc | None:
        """A queued oneway transaction that `new` supersedes (TF_UPDATE_TXN), removed."""
        inner = self.inner.access(guard)
        with inner.oneway_todo.cursor_front() as cursor:
            while (peek := cursor.peek_next()) is not None:
                if new.can_replace(cast("Transaction", peek.get())):
                    return peek.remove()
                cursor.move_next()
        return None

    @may_sleep
    def release(self) -> None:
        """The owner died: cancel queued oneway work, fire the death notifications."""
        guard = self.owner.inner.lock()
        try:
            while (work := self.inner.access(guard).oneway_todo.pop_front()) is not None:
                guard.drop()
                cancel_work(work)
                guard = self.owner.inner.lock()
            # Each death is popped off the node's own list under the lock, and handled
            # with the lock released (the fix of CVE-2025-68260: no `mem::take`).
            while (death := self.inner.access(guard).death_list.pop_front()) is not None:
                guard.drop()
                arc = death.into_arc()
                arc.get().set_dead()
                arc.drop()
                guard = self.owner.inner.lock()
        finally:
            if guard.is_held():
                guard.drop()

    # --- DeliverToRead ---------------------------------------------------------

    def do_work_locked(self, writer: BinderReturnWriter, guard: InnerGuard) -> bool:
        inner = self.inner.access(guard)
        strong = inner.strong.count > 0
        has_strong = inner.strong.has_count
        weak = strong or inner.weak.count > 0
        has_weak = inner.weak.has_count
        if weak and not has_weak:
            inner.weak.has_count = True
            inner.active_inc_refs += 1
        if strong and not has_strong:
            inner.strong.has_count = True
            inner.active_inc_refs += 1
        no_active = inner.active_inc_refs == 0
        should_drop_weak = no_active and (not weak and has_weak)
        should_drop_strong = no_active and (not strong and has_strong)
        if should_drop_weak:
            inner.weak.has_count = False
        if should_drop_strong:
            inner.strong.has_count = False
        forget = False
        if no_active and not weak:
            # Nobody references the node any more: forget it.
            forget = guard.data.nodes.get(self.ptr) is self
            guard.data.remove_node(self.ptr)
        guard.drop()
        if forget:
            # No NodeRef holds a count, so nothing queues the node again: its own count
            # (the stand-in for theirs) goes; the caller's keeps it alive until it returns.
            self.discard()
        # Writing to userspace may fault (and sleep): only after the spinlock is gone.
        payload = binder_ptr_cookie(self.ptr, self.cookie).pack()
        if weak and not has_weak:
            writer.write_code(BR_INCREFS)
            writer.write_payload(payload)
        if strong and not has_strong:
            writer.write_code(BR_ACQUIRE)
            writer.write_payload(payload)
        if should_drop_strong:
            writer.write_code(BR_RELEASE)
            writer.write_payload(payload)
        if should_drop_weak:
            writer.write_code(BR_DECREFS)
            writer.write_payload(payload)
        return True

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        guard = self.owner.inner.lock()
        try:
            ds = self.inner.access(guard).delivery_state
            assert ds.has_pushed_node
            if ds.has_pushed_wrapper:
                # The wrapper carries a strong zero-to-one and takes precedence.
                ds.has_pushed_node = False
                ds.has_weak_zero2one = False
                return True
            ds.has_pushed_node = False
            ds.has_weak_zero2one = False
            ds.has_strong_zero2one = False
            return self.do_work_locked(writer, guard)
        finally:
            if guard.is_held():
                guard.drop()


class NodeRef(Handle):
    """Counts held on a `Node` by one holder (a handle, a transaction's target).

    Invariants: `strong_node_count`/`weak_node_count` are the counts this object owns
    on the node (at most one of each after `absorb`); `strong_count`/`weak_count` are
    the counts userspace holds on it. Until `drop()`, the node counts are owned; a
    second `drop()` is a `RefcountError`.
    """

    __slots__ = (
        "node",
        "origin_site",
        "strong_count",
        "strong_node_count",
        "weak_count",
        "weak_node_count",
    )

    _drop_rules = DropRules(
        RefcountError,
        rule="noderef-use-after-drop",
        use_message="{use} of a NodeRef after it was dropped",
        dropped_label="the NodeRef was dropped",
        made_label="the NodeRef was made",
        double_message="double drop of a NodeRef",
        already_label="the NodeRef was already dropped",
    )

    def __init__(self, node: Node, strong_count: int, weak_count: int) -> None:
        self.node = node
        self.strong_node_count = strong_count
        self.weak_node_count = weak_count
        self.strong_count = strong_count
        self.weak_count = weak_count
        self._dropped_at = None
        self.origin_site = _caller(1) if STATE.on else None

    def __repr__(self) -> str:
        return f"NodeRef({self.node!r}, s {self.strong_count} w {self.weak_count})"

    def _handle_obj(self) -> str:
        return repr(self)

    def _made_at(self) -> Site | None:
        return self.origin_site

    def _check(self, use: str) -> None:
        # Binder is not internal to the model, so the site is the public method's caller.
        if self._dropped_at is not None and STATE.on:
            raise self._use_after_drop(use, _caller(2))

    def absorb(self, other: NodeRef) -> None:
        """Take over `other`'s counts (it is consumed), keeping one node count of each."""
        self._check("absorb into")
        other._check("absorb")
        if other.node is not self.node:
            raise KernelError(EINVAL, "absorb called with differing nodes")
        self.strong_node_count += other.strong_node_count
        self.weak_node_count += other.weak_node_count
        self.strong_count += other.strong_count
        self.weak_count += other.weak_count
        other.strong_count = other.weak_count = 0
        other.strong_node_count = other.weak_node_count = 0
        other._dropped_at = _caller(1)
        if self.strong_node_count >= 2 or self.weak_node_count >= 2:
            with self.node.owner.inner.lock() as guard:
                inner = self.node.inner.access(guard)
                if self.strong_node_count >= 2:
                    inner.strong.count -= self.strong_node_count - 1
                    self.strong_node_count = 1
                if self.weak_node_count >= 2:
                    inner.weak.count -= self.weak_node_count - 1
                    self.weak_node_count = 1

    def get_count(self) -> tuple[int, int]:
        return (self.strong_count, self.weak_count)

    def clone(self, strong: bool) -> NodeRef:
        """A new `NodeRef` with one count; `EINVAL` for a strong clone of a weak ref."""
        self._check("clone")
        if strong and self.strong_count == 0:
            raise KernelError(EINVAL, "tried to use weak ref as strong ref")
        with self.node.owner.inner.lock() as guard:
            return guard.data.new_node_ref(guard, self.node, strong, None)

    def update(self, inc: bool, strong: bool) -> bool:
        """BC_INCREFS ... BC_DECREFS on the handle; True when both counts reached zero."""
        self._check("update")
        if strong and self.strong_count == 0:
            return False
        if strong:
            count, node_count, other = self.strong_count, self.strong_node_count, self.weak_count
        else:
            count, node_count, other = self.weak_count, self.weak_node_count, self.strong_count
        if inc:
            if count == 0:
                node_count = 1
                self.node.update_refcount(True, 1, strong)
            count += 1
            removed = False
        else:
            if count == 0:
                return False
            count -= 1
            removed = False
            if count == 0:
                self.node.update_refcount(False, node_count, strong)
                node_count = 0
                removed = other == 0
        if strong:
            self.strong_count, self.strong_node_count = count, node_count
        else:
            self.weak_count, self.weak_node_count = count, node_count
        return removed

    def drop(self) -> None:
        """Give back the node counts this object owns."""
        if self._dropped_at is not None:
            self._double_drop(_caller(1))
            return
        self._dropped_at = _caller(1)
        if self.strong_node_count > 0:
            self.node.update_refcount(False, self.strong_node_count, True)
        if self.weak_node_count > 0:
            self.node.update_refcount(False, self.weak_node_count, False)
        self.strong_node_count = self.weak_node_count = 0


class NodeDeathInner:
    """The state of a death registration (behind `NodeDeath.inner`).

    Invariants: `dead` is never set after `cleared`; `aborted` implies `cleared`.
    """

    __slots__ = ("aborted", "cleared", "dead", "notification_done")

    def __init__(self) -> None:
        self.dead = False
        self.cleared = False
        self.notification_done = False
        # The handle was released with the registration still active: deliver nothing.
        self.aborted = False


@impl_send("all mutable state is behind the NodeDeath.inner spinlock")
@impl_sync("all mutable state is behind the NodeDeath.inner spinlock")
class NodeDeath(DeliverToRead):
    """A death-notification registration of `process` on `node` (node.rs `NodeDeath`).

    It lives in an `Arc` (`NodeDeath.new`) and is in up to three lists at once, one per
    id, as upstream: a todo list (id 0, `links`, tracked by `links_track`), its node's
    `death_list` (id 1, `death_links`, untracked: its one `ListArc<1>` is made with the
    allocation), and its process's `delivered_deaths` (id 2, `delivered_links`, tracked by
    `delivered_links_track`).

    The last count dropped frees it (`drop_arc`): any later use of the object is a
    `RefcountError` (rule `binder-death-use-after-free`), KASAN's report on a freed
    `NodeDeath`, instead of a silent read of a stale Python object.

    Invariants: `death_links` is only ever used with `node`'s death list, and
    `delivered_links` only with `process`'s delivered deaths; `_freed_at` is set once,
    when the last `Arc` count is dropped.
    """

    __slots__ = (
        "_freed_at",
        "cookie",
        "death_links",
        "delivered_links",
        "delivered_links_track",
        "inner",
        "node",
        "process",
    )

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {
        0: ("links", "links_track"),
        1: ("death_links", None),
        2: ("delivered_links", "delivered_links_track"),
    }

    def __init__(self, node: Node, process: Process, cookie: int) -> None:
        super().__init__()
        self.node = node
        self.process = process
        self.cookie = cookie
        self.death_links = ListLinks(1)
        self.delivered_links = ListLinks(2)
        self.delivered_links_track = AtomicTracker(2)
        self.inner: SpinLock[NodeDeathInner] = SpinLock(NodeDeathInner(), name="NodeDeath::inner")
        self._freed_at: Site | None = None

    def drop_arc(self) -> None:
        """The last `DArc<NodeDeath>` went: the registration is freed (and poisoned)."""
        self._freed_at = _caller(1)

    def _check_alive(self, use: str) -> None:
        if self._freed_at is not None and STATE.on:
            raise RefcountError(
                f"{use} of a NodeDeath after its last reference was dropped",
                rule="binder-death-use-after-free",
                obj=repr(self),
                site=_caller(2),
                origin=self._freed_at,
                origin_label="the last DArc<NodeDeath> was dropped (the registration freed)",
            )

    @classmethod
    def new(cls, node: Node, process: Process, cookie: int) -> ListArc[NodeDeath]:
        """Allocate a registration (may sleep; `ENOMEM`): its `ListArc` for the death list."""
        la: ListArc[NodeDeath] = ListArc.new(cls(node, process, cookie), GFP_KERNEL, id=1)
        la.get().set_arc(cast("Arc[DeliverToRead]", la.as_arc()))
        return la

    def __repr__(self) -> str:
        return f"NodeDeath(cookie={self.cookie:#x}, {self.node!r})"

    def delivered_list_arc(self) -> ListArc[NodeDeath] | None:
        """`ListArc::<_, 2>::try_from_arc_or_drop(self.clone())` for `delivered_deaths`."""
        self._check_alive("delivered_list_arc")
        sa = self.self_arc
        assert sa is not None
        arc = cast("Arc[NodeDeath]", sa.clone())
        la = ListArc.try_from_arc(arc, id=2)
        if la is None:
            arc.drop()
        return la

    def set_cleared(self, abort: bool) -> bool:
        """`BC_CLEAR_DEATH_NOTIFICATION` (or the handle went away): True to queue it."""
        self._check_alive("set_cleared")
        with self.inner.lock() as g:
            inner = g.data
            if abort:
                inner.aborted = True
            if inner.cleared:
                return False
            inner.cleared = True
            needs_removal = not inner.dead
            needs_queueing = not inner.dead or inner.notification_done
        removed: ListArc[NodeDeath] | None = None
        if needs_removal:
            with self.node.owner.inner.lock() as og:
                deaths = self.node.inner.access(og).death_list
                # SAFETY: A `NodeDeath` is never inserted into the death list of any node
                # other than its owner, so it is either in this death list or in no death
                # list.
                with unsafe(
                    "SAFETY: A NodeDeath is never inserted into the death list of any node "
                    "other than its owner, so it is either in this death list or in none"
                ):
                    removed = deaths.remove(self)
        if removed is not None:
            # The caller holds a count of the registration: this is not the last one.
            removed.drop()
        return needs_queueing

    def set_notification_done(self, thread: Thread) -> None:
        """`BC_DEAD_BINDER_DONE`: if already cleared, deliver the CLEAR_..._DONE now."""
        self._check_alive("set_notification_done")
        with self.inner.lock() as g:
            g.data.notification_done = True
            needs_queueing = g.data.cleared
        if needs_queueing:
            la = self.list_arc()
            if la is not None:
                try:
                    thread.push_work_if_looper(la)
                except KernelError:
                    # The process is dead: the work was dropped, nothing to deliver.
                    pass

    @may_sleep
    def set_dead(self) -> None:
        """The node's owner died: queue `BR_DEAD_BINDER` to the registered process."""
        self._check_alive("set_dead")
        with self.inner.lock() as g:
            if g.data.cleared:
                return
            g.data.dead = True
        la = self.list_arc()
        if la is not None:
            try:
                self.process.push_work(la)
            except KernelError:
                # The registered process is dead too: nothing to deliver.
                pass

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        self._check_alive("do_work")
        with self.inner.lock() as g:
            if g.data.aborted:
                return True
            done = g.data.cleared and (not g.data.dead or g.data.notification_done)
        if done:
            cmd = BR_CLEAR_DEATH_NOTIFICATION_DONE
        else:
            with self.process.inner.lock() as pg, self.inner.lock() as g:
                if g.data.aborted:
                    return True
                # Still under our own lock: it cannot be aborted while we record it.
                pg.data.death_delivered(self)
            cmd = BR_DEAD_BINDER
        writer.write_code(cmd)
        writer.write_payload(self.cookie.to_bytes(8, "little"))
        # A dead binder may make userspace start transactions: return to it now.
        return cmd != BR_DEAD_BINDER
