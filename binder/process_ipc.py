"""The IPC half of a binder `Process` (drivers/android/binder/process.rs).

Upstream `process.rs` is one file: the per-open-file `Process` with its mapping and
buffers *and* its threads, nodes, handles, todo list, death notifications, freezer
state and deferred release. In this model two layers are written and reviewed apart:
`binder.process` holds the memory layer (mapping, range allocator, pages, buffers) and
`Process` there inherits this module's `ProcessIpc` for everything else; likewise its
`ProcessInner` (the fields behind the one `Process.inner` spinlock) inherits
`ProcessIpcInner`. It is still one object and one lock, as upstream.

What lives here:

* `ProcessIpcInner`: threads, ready threads, nodes, the process todo list, delivered
  death notifications, the thread-pool counters, `defer_work`, the freezer state.
* `ProcessNodeRefs` (behind the separate `Process.node_refs` Mutex, "to avoid recursive
  acquisition when incrementing/decrementing a node in another process"): the handle
  table (`by_handle`, `by_node`, the id pool) with one `NodeRefInfo` per handle.
* `ProcessIpc`: the operations, each following upstream's "allocate outside the lock,
  then re-check" shape: `get_current_thread`, `get_node`, `insert_or_update_handle`;
  refcount commands; death notifications; `BINDER_FREEZE`; the ioctl dispatch; and
  release deferred to the system workqueue (`PROC_DEFER_FLUSH`/`PROC_DEFER_RELEASE`).

Ownership: upstream, nodes, threads, transactions and death registrations hold an
`Arc<Process>` count of the process they belong to or target. The model keeps plain
references for those (Python keeps the object alive) and takes `Arc` counts only where
the count decides when the process's memory is torn down: the open file, each
`Allocation`, and the queued deferred work. What such references read after the
teardown is limited to immutable data (`pid()`) and the locks; the checks would report
anything else (the task reference is dropped at teardown).

Lock order: `Context.manager` (Mutex) -> `Process.node_refs` (Mutex) ->
`Process.inner` (SpinLock; possibly of another process, a node's owner) ->
`Thread.inner` / `NodeDeath.inner` / `Transaction.allocation` (SpinLocks). Work items
that cannot be delivered are dropped only after `Process.inner` is released, because
their destructors take these locks again.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from typing import TYPE_CHECKING, Any

from ownership import sched
from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.aref import ARef
from ownership.context import may_sleep
from ownership.errors import EAGAIN, EINTR, EINVAL, ENOENT, EPERM, ESRCH, KernelError
from ownership.miscdevice import File
from ownership.rbtree import RBTree, RBTreeNodeReservation
from ownership.sync import Arc, CondVar, Mutex, SpinLock, SpinLockGuard
from ownership.task import Task

from .defs import PROC_DEFER_FLUSH, PROC_DEFER_RELEASE, next_debug_id
from .error import BinderError
from .node import CouldNotDeliverCriticalIncrement, Node, NodeDeath, NodeRef, NodeWrapper
from .thread import Registration, Thread
from .uapi import (
    BINDER_CURRENT_PROTOCOL_VERSION,
    BINDER_ENABLE_ONEWAY_SPAM_DETECTION,
    BINDER_FREEZE,
    BINDER_GET_EXTENDED_ERROR,
    BINDER_GET_FROZEN_INFO,
    BINDER_GET_NODE_DEBUG_INFO,
    BINDER_GET_NODE_INFO_FOR_REF,
    BINDER_SET_CONTEXT_MGR,
    BINDER_SET_CONTEXT_MGR_EXT,
    BINDER_SET_MAX_THREADS,
    BINDER_THREAD_EXIT,
    BINDER_VERSION,
    BINDER_WRITE_READ,
    BR_ERROR,
    IOC_READ,
    IOC_WRITE,
    binder_freeze_info,
    binder_frozen_status_info,
    binder_handle_cookie,
    binder_node_debug_info,
    binder_node_info_for_ref,
    binder_ptr_cookie,
    binder_version,
    flat_binder_object,
    ioc_dir,
    ioc_size,
)
from .work import DeliverToRead, ListTracker, UserReader

if TYPE_CHECKING:
    from .context import Context
    from .process import Process, ProcessInner

__all__ = ["IsFrozen", "NodeRefInfo", "ProcessIpc", "ProcessIpcInner", "ProcessNodeRefs"]

InnerGuard = SpinLockGuard["ProcessInner"]

O_NONBLOCK = 0o4000


class IsFrozen(enum.Enum):
    """The freezer state of a process (`IsFrozen`)."""

    YES = "yes"
    NO = "no"
    IN_PROGRESS = "in progress"

    def is_frozen(self) -> bool:
        """Whether incoming transactions are refused."""
        return self is not IsFrozen.NO

    def is_fully_frozen(self) -> bool:
        return self is IsFrozen.YES


class ProcessIpcInner:
    """The IPC fields of `ProcessInner`, protected by `Process.inner`.

    Invariants: every thread on `ready_threads` belongs to this process and has its
    `ready_tracker` claimed; `nodes` maps `ptr` to the node with that ptr;
    `requested_thread_count + started_thread_count <= max_threads` except after
    `BINDER_SET_MAX_THREADS` lowered the limit.
    """

    def __init__(self) -> None:
        self.is_manager = False
        self.is_dead = False
        self.threads: RBTree[int, Thread] = RBTree()
        self.ready_threads: deque[Thread] = deque()
        self.nodes: RBTree[int, Node] = RBTree()
        self.work: deque[DeliverToRead] = deque()
        self.delivered_deaths: list[NodeDeath] = []
        self.requested_thread_count = 0
        self.max_threads = 0
        self.started_thread_count = 0
        self.defer_work = 0
        self.outstanding_txns = 0
        self.is_frozen = IsFrozen.NO
        self.sync_recv = False
        self.async_recv = False
        self.oneway_spam_detection_enabled = False

    def push_work(self, work: DeliverToRead) -> tuple[KernelError, DeliverToRead] | None:
        """Give `work` to a ready thread, else queue it; on a dead process, hand it back.

        The caller drops returned work after releasing the lock.
        """
        if self.ready_threads:
            thread = self.ready_threads.popleft()
            thread.ready_tracker.release()
            # Pushed while holding the process lock, so the thread cannot give up meanwhile.
            back = thread.push_work(work)
            return (BinderError.new_dead(), back) if back is not None else None
        if self.is_dead:
            return (BinderError.new_dead(), work)
        self.work.append(work)
        return None

    def remove_node(self, ptr: int) -> None:
        self.nodes.remove(ptr)

    def update_node_refcount(
        self, guard: InnerGuard, node: Node, inc: bool, strong: bool, count: int, othread: Thread | None
    ) -> None:
        push = node.update_refcount_locked(inc, strong, count, guard)
        if push is not None:
            if othread is not None:
                othread.push_work_deferred(push)
            else:
                # Fails only if the process is dead, which then does not care.
                self.push_work(push)

    def new_node_ref(self, guard: InnerGuard, node: Node, strong: bool, thread: Thread | None) -> NodeRef:
        self.update_node_refcount(guard, node, True, strong, 1, thread)
        return NodeRef(node, 1 if strong else 0, 0 if strong else 1)

    def new_node_ref_with_thread(
        self, guard: InnerGuard, node: Node, strong: bool, thread: Thread, wrapper: NodeWrapper | None
    ) -> NodeRef:
        """As `new_node_ref`, delivering a zero-to-one to `thread` (may raise
        `CouldNotDeliverCriticalIncrement` when `wrapper` is None)."""
        if wrapper is None:
            push = node.incr_refcount_allow_zero2one(strong, guard)
        else:
            push = node.incr_refcount_allow_zero2one_with_wrapper(strong, wrapper, guard)
        if push is not None:
            thread.push_work_deferred(push)
        return NodeRef(node, 1 if strong else 0, 0 if strong else 1)

    def get_existing_node(self, ptr: int, cookie: int) -> Node | None:
        """The node with `ptr`; `EINVAL` if it exists with another cookie."""
        node = self.nodes.get(ptr)
        if node is None:
            return None
        if node.cookie != cookie:
            raise KernelError(EINVAL, f"node {ptr:#x} exists with another cookie")
        return node

    def register_thread(self) -> bool:
        if self.requested_thread_count == 0:
            return False
        self.requested_thread_count -= 1
        self.started_thread_count += 1
        return True

    def pull_delivered_death(self, cookie: int) -> NodeDeath | None:
        for i, death in enumerate(self.delivered_deaths):
            if death.cookie == cookie:
                del self.delivered_deaths[i]
                death.delivered_tracker.release()
                return death
        return None

    def death_delivered(self, death: NodeDeath) -> None:
        if death.delivered_tracker.try_claim():
            self.delivered_deaths.append(death)

    def add_outstanding_txn(self) -> None:
        self.outstanding_txns += 1

    def txns_pending_locked(self) -> bool:
        if self.outstanding_txns > 0:
            return True
        return any(t.has_current_transaction() for t in self.threads.values())


class _IdPool:
    """`kernel::id_pool::IdPool`: the lowest unused handle, with a capacity that grows.

    Invariants: `used` is the set of acquired ids; id 0 (the context manager's handle)
    is tracked by `used` alone; every id in `1..high` not in `used` is in the heap
    `free` (which may also hold stale, re-acquired entries, skipped lazily);
    `capacity` is the bitmap size, grown by an allocation made outside the lock.
    """

    BITS_PER_LONG = 64

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.free: list[int] = []
        self.high = 1
        self.capacity = self.BITS_PER_LONG

    def find_unused_id(self, start: int) -> int | None:
        if start == 0 and 0 not in self.used:
            return 0
        while self.free and self.free[0] in self.used:
            heapq.heappop(self.free)
        cand = self.free[0] if self.free else self.high
        return cand if cand < self.capacity else None

    def acquire(self, id_: int) -> None:
        self.used.add(id_)
        if id_ >= self.high:
            for i in range(self.high, id_):
                heapq.heappush(self.free, i)
            self.high = id_ + 1

    def release_id(self, id_: int) -> None:
        self.used.discard(id_)
        if id_ != 0:
            heapq.heappush(self.free, id_)

    def grow_request(self) -> int:
        return self.capacity * 2

    def grow(self, new_capacity: int) -> None:
        self.capacity = max(self.capacity, new_capacity)


class NodeRefInfo:
    """One handle of a process: its `NodeRef` and its death registration.

    Invariants: `node_ref` holds the process's user counts on the node (never both
    zero while the handle exists); `death` is at most one registration.
    """

    __slots__ = ("death", "debug_id", "handle", "node_ref", "process")

    def __init__(self, node_ref: NodeRef, handle: int, process: Process) -> None:
        self.debug_id = next_debug_id()
        self.node_ref = node_ref
        self.death: NodeDeath | None = None
        self.handle = handle
        self.process = process


class ProcessNodeRefs:
    """The handle table, behind `Process.node_refs`.

    Invariants: `by_node` and `by_handle` are inverse maps of the same handles, all of
    which are acquired in `handle_is_present`.
    """

    def __init__(self) -> None:
        self.by_handle: RBTree[int, NodeRefInfo] = RBTree()
        self.handle_is_present = _IdPool()
        self.by_node: RBTree[int, int] = RBTree()


class ProcessIpc:
    """The IPC operations of a binder `Process` (mixed into `binder.process.Process`).

    Invariants: `node_refs` holds every handle of the process; after
    `deferred_release` starts (`inner.is_dead`), no handle, node or thread is added.
    """

    if TYPE_CHECKING:
        inner: SpinLock[ProcessInner]
        ctx: Context
        task: ARef[Task]
        node_refs: Mutex[ProcessNodeRefs]
        freeze_wait: CondVar

        def buffer_alloc(self, debug_id: int, size: int, is_oneway: bool, from_pid: int) -> Any: ...

        def buffer_get(self, ptr: int) -> Any: ...

        def deferred_release_memory(self) -> None: ...

        def self_arc(self) -> Arc[Process]: ...

    def init_ipc(self) -> None:
        """Build the IPC-only members (called from `Process.__init__`)."""
        # The pid is read from the task once: nodes, threads and transactions of other
        # processes refer to this process by plain reference (not an `Arc` count, see
        # the module docstring), so they must not reach `task` after its teardown.
        self._pid = self.task.get().pid
        self.node_refs = Mutex(ProcessNodeRefs(), name="Process::node_refs")
        self.freeze_wait = CondVar(name="Process::freeze_wait")
        self.ready_tracker = ListTracker()

    # --- identity ---------------------------------------------------------------

    def pid(self) -> int:
        return self._pid

    def euid(self) -> int:
        """The opener's effective uid (the model has no credentials: root)."""
        return 0

    def _proc(self) -> Process:
        """This object as the `Process` it is part of (the mixin is never used alone)."""
        return self  # type: ignore[return-value]

    # --- work ---------------------------------------------------------------------

    def get_work(self) -> DeliverToRead | None:
        with self.inner.lock() as g:
            return g.data.work.popleft() if g.data.work else None

    def get_work_or_register(self, thread: Thread) -> DeliverToRead | Registration:
        with self.inner.lock() as g:
            if g.data.work:
                work: DeliverToRead = g.data.work.popleft()
                return work
            if g.data.is_dead:
                raise KernelError(EINTR, "binder process is being released")
            if thread.ready_tracker.try_claim():
                g.data.ready_threads.appendleft(thread)
            return Registration(thread)

    @may_sleep
    def push_work(self, work: DeliverToRead) -> None:
        """Queue work for the process; `BinderError(BR_DEAD_REPLY)` if it is dead."""
        with self.inner.lock() as g:
            res = g.data.push_work(work)
        if res is not None:
            # Dropped outside the lock: the destructor of a transaction takes locks.
            res[1].drop_undelivered()
            raise res[0]

    # --- threads -------------------------------------------------------------------

    @may_sleep
    def get_current_thread(self) -> Thread:
        """The calling thread's `Thread`, created on first use (allocated unlocked)."""
        tgid, tid, task = self.current_ids()
        if tgid != self.pid():
            raise KernelError(EINVAL, "get_current_thread was called from the wrong process")
        with self.inner.lock() as g:
            thread = g.data.threads.get(tid)
            if thread is not None:
                return thread
        # Allocate the new thread without holding any lock.
        reservation = RBTreeNodeReservation.new(GFP_KERNEL)
        ta = Thread.new(tid, self._proc(), task)
        with self.inner.lock() as g:
            if g.data.is_dead:
                # Upstream the ioctl's file reference keeps the process from being
                # released under it; in the model a late thread of a dead process is
                # turned away, as a killed thread would never get here.
                raise KernelError(ESRCH, "binder process is being released")
            if tid in g.data.threads:
                # Only this thread creates its own entry: a second one is a bug upstream.
                raise KernelError(EINVAL, "Cannot create two threads with the same id")
            g.data.threads.insert(reservation.into_node(tid, ta))
        return ta

    def current_ids(self) -> tuple[int, int, object]:
        """(process id, thread id, task) of the calling thread."""
        from ownership.task import current

        cur = current()
        # The simulated tasks are single-threaded: each model thread running as the
        # task is one userspace thread of it, identified by the seam's thread id (a
        # Python thread's ident under the default scheduler).
        return (cur.tgid, sched.current_id(), cur.task())

    def register_thread(self) -> bool:
        with self.inner.lock() as g:
            return bool(g.data.register_thread())

    def remove_thread(self, thread: Thread) -> None:
        with self.inner.lock() as g:
            g.data.threads.remove(thread.id)
        thread.release()

    def set_max_threads(self, max_threads: int) -> None:
        with self.inner.lock() as g:
            g.data.max_threads = max_threads

    def set_oneway_spam_detection_enabled(self, enabled: int) -> None:
        with self.inner.lock() as g:
            g.data.oneway_spam_detection_enabled = enabled != 0

    def is_oneway_spam_detection_enabled(self) -> bool:
        with self.inner.lock() as g:
            return bool(g.data.oneway_spam_detection_enabled)

    def needs_thread(self) -> bool:
        """Whether to ask userspace for one more looper (`BR_SPAWN_LOOPER`)."""
        with self.inner.lock() as g:
            i = g.data
            ret = (
                i.requested_thread_count == 0
                and not i.ready_threads
                and i.started_thread_count < i.max_threads
            )
            if ret:
                i.requested_thread_count += 1
            return bool(ret)

    # --- nodes ----------------------------------------------------------------------

    def _get_node_inner(
        self, ptr: int, cookie: int, flags: int, strong: bool, thread: Thread, wrapper: NodeWrapper | None
    ) -> NodeRef:
        with self.inner.lock() as g:
            node = g.data.get_existing_node(ptr, cookie)
            if node is not None:
                return g.data.new_node_ref_with_thread(g, node, strong, thread, wrapper)
        # Allocate the node and its tree slot before re-taking the lock.
        alloc_check(GFP_KERNEL, "Node::new")
        new = Node(ptr, cookie, flags, self._proc())
        reservation = RBTreeNodeReservation.new(GFP_KERNEL)
        with self.inner.lock() as g:
            node = g.data.get_existing_node(ptr, cookie)
            if node is not None:
                # Another thread won the race: use its node, discard ours.
                return g.data.new_node_ref_with_thread(g, node, strong, thread, wrapper)
            g.data.nodes.insert(reservation.into_node(ptr, new))
            # Cannot fail: nobody else has seen the node yet.
            return g.data.new_node_ref_with_thread(g, new, strong, thread, wrapper)

    @may_sleep
    def get_node(self, ptr: int, cookie: int, flags: int, strong: bool, thread: Thread) -> NodeRef:
        """A ref on this process's node `(ptr, cookie)`, creating the node if needed."""
        wrapper: NodeWrapper | None = None
        for _ in range(2):
            try:
                return self._get_node_inner(ptr, cookie, flags, strong, thread, wrapper)
            except CouldNotDeliverCriticalIncrement:
                wrapper = NodeWrapper.new()
        raise AssertionError("get_node: a wrapper was given, the retry cannot fail")

    @may_sleep
    def set_as_manager(self, info: flat_binder_object | None, thread: Thread) -> None:
        ptr, cookie, flags = (info.binder, info.cookie, info.flags) if info is not None else (0, 0, 0)
        node_ref = self.get_node(ptr, cookie, flags, True, thread)
        node = node_ref.node
        try:
            self.ctx.set_manager_node(node_ref, self.euid())
        except KernelError:
            node_ref.drop()
            raise
        with self.inner.lock() as g:
            g.data.is_manager = True
            # The manager's node never gets BR_INCREFS/BR_ACQUIRE.
            node.force_has_count(g)

    # --- handles -----------------------------------------------------------------------

    @may_sleep
    def insert_or_update_handle(self, node_ref: NodeRef, is_manager: bool) -> int:
        """The handle of `node_ref`'s node in this process, creating one (consumes `node_ref`)."""
        gid = node_ref.node.global_id()
        with self.node_refs.lock() as g:
            handle = g.data.by_node.get(gid)
            if handle is not None:
                info = g.data.by_handle.get(handle)
                assert info is not None
                info.node_ref.absorb(node_ref)
                return handle
        try:
            # Reserve the tree slots and the NodeRefInfo outside the lock.
            reserve1 = RBTreeNodeReservation.new(GFP_KERNEL)
            reserve2 = RBTreeNodeReservation.new(GFP_KERNEL)
            alloc_check(GFP_KERNEL, "NodeRefInfo")
        except KernelError:
            node_ref.drop()
            raise
        g = self.node_refs.lock()
        try:
            while True:
                start = 0 if is_manager else 1
                unused = g.data.handle_is_present.find_unused_id(start)
                if unused is not None:
                    if unused in g.data.by_handle:
                        raise KernelError(EINVAL, "mismatch between handle_is_present and by_handle")
                    break
                new_cap = g.data.handle_is_present.grow_request()
                g.drop()
                try:
                    alloc_check(GFP_KERNEL, "IdPool::grow")
                except KernelError:
                    node_ref.drop()
                    raise
                g = self.node_refs.lock()
                g.data.handle_is_present.grow(new_cap)
            # The node may have been inserted while the lock was dropped.
            handle = g.data.by_node.get(gid)
            if handle is not None:
                info = g.data.by_handle.get(handle)
                assert info is not None
                info.node_ref.absorb(node_ref)
                return handle
            with self.inner.lock() as ig:
                dead = ig.data.is_dead
            if dead:
                node_ref.drop()
                raise KernelError(ESRCH, "process is dead")
            new_info = NodeRefInfo(node_ref, unused, self._proc())
            node_ref.node.insert_node_info(new_info.debug_id, self._proc())
            g.data.by_node.insert(reserve1.into_node(gid, unused))
            g.data.by_handle.insert(reserve2.into_node(unused, new_info))
            g.data.handle_is_present.acquire(unused)
            return unused
        finally:
            if g.is_held():
                g.drop()

    @may_sleep
    def get_transaction_node(self, handle: int) -> NodeRef:
        """The target of a transaction: handle 0 is the context manager."""
        if handle == 0:
            return self.ctx.get_manager_node(True)
        try:
            return self.get_node_from_handle(handle, True)
        except BinderError:
            raise
        except KernelError as e:
            raise BinderError.of(e) from None

    @may_sleep
    def get_node_from_handle(self, handle: int, strong: bool) -> NodeRef:
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(handle)
            if info is None:
                raise KernelError(ENOENT, f"no handle {handle}")
            return info.node_ref.clone(strong)

    @may_sleep
    def handle_count(self) -> int:
        with self.node_refs.lock() as g:
            return len(g.data.by_handle)

    def remove_from_delivered_deaths(self, death: NodeDeath) -> None:
        with self.inner.lock() as g:
            if death in g.data.delivered_deaths:
                g.data.delivered_deaths.remove(death)
                death.delivered_tracker.release()

    @may_sleep
    def update_ref(self, handle: int, inc: bool, strong: bool) -> None:
        """BC_INCREFS/BC_ACQUIRE/BC_RELEASE/BC_DECREFS on a handle."""
        if inc and handle == 0:
            try:
                node_ref = self.ctx.get_manager_node(strong)
            except KernelError:
                node_ref = None
            if node_ref is not None:
                if node_ref.node.owner is self:
                    node_ref.drop()
                    raise KernelError(EINVAL, "the context manager cannot take a ref on itself")
                try:
                    self.insert_or_update_handle(node_ref, True)
                except KernelError:
                    pass
                return
        g = self.node_refs.lock()
        try:
            info = g.data.by_handle.get(handle)
            if info is None:
                return
            if not info.node_ref.update(inc, strong):
                return
            # Both counts are zero: the handle goes away, with its death registration.
            death, info.death = info.death, None
            if death is not None:
                death.set_cleared(True)
                self.remove_from_delivered_deaths(death)
            info.node_ref.node.remove_node_info(info.debug_id)
            gid = info.node_ref.node.global_id()
            g.data.by_handle.remove(handle)
            g.data.by_node.remove(gid)
            g.data.handle_is_present.release_id(handle)
        finally:
            g.drop()

    def update_node(self, ptr: int, cookie: int, strong: bool) -> None:
        """A buffer holding a user count on our node `(ptr, cookie)` was freed."""
        with self.inner.lock() as g:
            try:
                node = g.data.get_existing_node(ptr, cookie)
            except KernelError:
                return
            if node is not None:
                g.data.update_node_refcount(g, node, False, strong, 1, None)

    def inc_ref_done(self, reader: UserReader, strong: bool) -> None:
        pc = binder_ptr_cookie.unpack(reader.read(binder_ptr_cookie.SIZE))
        with self.inner.lock() as g:
            try:
                node = g.data.get_existing_node(pc.ptr, pc.cookie)
            except KernelError:
                return
            if node is not None:
                push = node.inc_ref_done_locked(strong, g)
                if push is not None:
                    g.data.push_work(push)

    # --- death notifications ----------------------------------------------------------

    @may_sleep
    def request_death(self, reader: UserReader, thread: Thread) -> None:
        hc = binder_handle_cookie.unpack(reader.read(binder_handle_cookie.SIZE))
        try:
            alloc_check(GFP_KERNEL, "NodeDeath")
        except KernelError:
            thread.push_return_work(BR_ERROR)
            raise
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(hc.handle)
            if info is None or info.death is not None:
                # Invalid handle, or already registered: upstream warns and carries on.
                return
            node = info.node_ref.node
            death = NodeDeath(node, self._proc(), hc.cookie)
            info.death = death
            owner = node.owner
            with owner.inner.lock() as og:
                owner_dead = og.data.is_dead
                if not owner_dead:
                    node.add_death(death, og)
            if owner_dead:
                death.set_dead()

    @may_sleep
    def clear_death(self, reader: UserReader, thread: Thread) -> None:
        hc = binder_handle_cookie.unpack(reader.read(binder_handle_cookie.SIZE))
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(hc.handle)
            if info is None or info.death is None:
                return
            death = info.death
            if death.cookie != hc.cookie:
                return
            info.death = None
            if death.set_cleared(False) and death.tracker.try_claim():
                try:
                    thread.push_work_if_looper(death)
                except KernelError:
                    death.tracker.release()

    def dead_binder_done(self, cookie: int, thread: Thread) -> None:
        with self.inner.lock() as g:
            death = g.data.pull_delivered_death(cookie)
        if death is not None:
            death.set_notification_done(thread)

    # --- teardown ------------------------------------------------------------------------

    def deferred_flush(self) -> None:
        with self.inner.lock() as g:
            threads = list(g.data.threads.values())
        for t in threads:
            t.exit_looper()

    @may_sleep
    def deferred_release(self) -> None:
        """Tear the process down (the workqueue's PROC_DEFER_RELEASE)."""
        with self.inner.lock() as g:
            g.data.is_dead = True
            g.data.is_frozen = IsFrozen.NO
            g.data.sync_recv = g.data.async_recv = False
            is_manager = g.data.is_manager
        if is_manager:
            self.ctx.unset_manager_node()
        self.ctx.deregister_process(self._proc())
        # Release threads.
        with self.inner.lock() as g:
            threads = list(g.data.threads.values())
            g.data.threads.clear()
            for t in g.data.ready_threads:
                t.ready_tracker.release()
            g.data.ready_threads.clear()
        for t in threads:
            t.release()
        # Release nodes, one at a time, each outside the lock.
        while True:
            with self.inner.lock() as g:
                first = g.data.nodes.first()
                if first is None:
                    break
                g.data.nodes.remove(first[0])
            first[1].release()
        # Deaths registered on other processes' nodes; our entries in their ref lists.
        with self.node_refs.lock() as g:
            infos = list(g.data.by_handle.values())
            for info in infos:
                info.node_ref.node.remove_node_info(info.debug_id)
                death, info.death = info.death, None
                if death is not None:
                    death.set_cleared(False)
            g.data.by_handle.clear()
            g.data.by_node.clear()
        # Release our refs on foreign nodes (takes their owners' locks, not ours).
        for info in infos:
            info.node_ref.drop()
        # Cancel pending work.
        while True:
            work = self.get_work()
            if work is None:
                break
            work.cancel()
        with self.inner.lock() as g:
            for d in g.data.delivered_deaths:
                d.delivered_tracker.release()
            g.data.delivered_deaths.clear()
        # Buffers still allocated: their destructors release what they hold.
        self.deferred_release_memory()

    def drop_outstanding_txn(self) -> None:
        with self.inner.lock() as g:
            if g.data.outstanding_txns == 0:
                return
            g.data.outstanding_txns -= 1
            wake = g.data.is_frozen.is_frozen() and g.data.outstanding_txns == 0
        if wake:
            self.freeze_wait.notify_all()

    # --- the freezer ------------------------------------------------------------------------

    @may_sleep
    def ioctl_freeze(self, info: binder_freeze_info) -> None:
        """Freeze (or thaw) this process; `EAGAIN` while transactions are in flight."""
        if info.enable == 0:
            with self.inner.lock() as g:
                g.data.sync_recv = g.data.async_recv = False
                g.data.is_frozen = IsFrozen.NO
            return
        with self.inner.lock() as g:
            g.data.sync_recv = g.data.async_recv = False
            g.data.is_frozen = IsFrozen.IN_PROGRESS
            if info.timeout_ms > 0:
                # The scheduler's clock: virtual time under the explorer.
                deadline = sched.monotonic() + info.timeout_ms / 1000.0
                while g.data.outstanding_txns > 0:
                    left = deadline - sched.monotonic()
                    if left <= 0:
                        break
                    self.freeze_wait.wait_timeout(g, left)
            if g.data.txns_pending_locked():
                g.data.is_frozen = IsFrozen.NO
                raise KernelError(EAGAIN, "transactions pending")
            g.data.is_frozen = IsFrozen.YES

    def frozen_status(self) -> tuple[int, int]:
        """(sync_recv with bit 1 = pending, async_recv) for BINDER_GET_FROZEN_INFO."""
        with self.inner.lock() as g:
            pending = g.data.txns_pending_locked()
            return (int(g.data.sync_recv) | (int(pending) << 1), int(g.data.async_recv))

    # --- ioctl ---------------------------------------------------------------------------

    @may_sleep
    def ioctl(self, file: File, cmd: int, arg: int) -> int:
        """The binder ioctl; returns 0 or raises `KernelError` (the errno)."""
        from ownership.uaccess import UserSlice

        if not isinstance(cmd, int) or not isinstance(arg, int) or isinstance(arg, bool):
            raise KernelError(EINVAL, "binder ioctl takes an int command and a user address")
        thread = self.get_current_thread()
        direction = ioc_dir(cmd)
        us = UserSlice(arg, ioc_size(cmd))
        if direction == IOC_WRITE:
            reader = us.reader()
            if cmd == BINDER_SET_MAX_THREADS:
                self.set_max_threads(int.from_bytes(reader.read(4), "little"))
            elif cmd == BINDER_THREAD_EXIT:
                self.remove_thread(thread)
            elif cmd == BINDER_SET_CONTEXT_MGR:
                self.set_as_manager(None, thread)
            elif cmd == BINDER_SET_CONTEXT_MGR_EXT:
                self.set_as_manager(flat_binder_object.unpack(reader.read(flat_binder_object.SIZE)), thread)
            elif cmd == BINDER_ENABLE_ONEWAY_SPAM_DETECTION:
                self.set_oneway_spam_detection_enabled(int.from_bytes(reader.read(4), "little"))
            elif cmd == BINDER_FREEZE:
                self._freeze_by_pid(binder_freeze_info.unpack(reader.read(binder_freeze_info.SIZE)))
            else:
                raise KernelError(EINVAL, f"unknown binder ioctl {cmd:#x}")
            return 0
        if direction == IOC_READ | IOC_WRITE:
            blocking = not (file.flags() & O_NONBLOCK)
            if cmd == BINDER_WRITE_READ:
                thread.write_read(arg, blocking)
            elif cmd == BINDER_VERSION:
                us.writer().write(binder_version(BINDER_CURRENT_PROTOCOL_VERSION).pack())
            elif cmd == BINDER_GET_FROZEN_INFO:
                req = binder_frozen_status_info.unpack(us.reader().read(binder_frozen_status_info.SIZE))
                procs = self._procs_with_pid(req.pid)
                if not procs:
                    raise KernelError(EINVAL, f"no binder process {req.pid}")
                sync = asyn = 0
                for p in procs:
                    s, a = p.frozen_status()
                    sync |= s
                    asyn |= a
                us.writer().write(binder_frozen_status_info(req.pid, sync, asyn).pack())
            elif cmd == BINDER_GET_EXTENDED_ERROR:
                us.writer().write(thread.take_extended_error().pack())
            elif cmd == BINDER_GET_NODE_INFO_FOR_REF:
                self._node_info_for_ref(us)
            elif cmd == BINDER_GET_NODE_DEBUG_INFO:
                self._node_debug_info(us)
            else:
                raise KernelError(EINVAL, f"unknown binder ioctl {cmd:#x}")
            return 0
        raise KernelError(EINVAL, f"binder ioctl {cmd:#x} has no direction")

    def _procs_with_pid(self, pid: int) -> list[Process]:
        procs: list[Process] = []
        for ctx in self.ctx.list.get_all_contexts():
            procs.extend(ctx.get_procs_with_pid(pid))
        return procs

    @may_sleep
    def _freeze_by_pid(self, info: binder_freeze_info) -> None:
        procs = self._procs_with_pid(info.pid)
        alloc_check(GFP_KERNEL, "ioctl_freeze procs")
        for p in procs:
            p.ioctl_freeze(info)

    @may_sleep
    def _node_info_for_ref(self, us: Any) -> None:
        req = binder_node_info_for_ref.unpack(us.reader().read(binder_node_info_for_ref.SIZE))
        if req.strong_count or req.weak_count or req.reserved1 or req.reserved2 or req.reserved3:
            raise KernelError(EINVAL, "binder_node_info_for_ref: counts must be zero")
        with self.inner.lock() as g:
            if not g.data.is_manager:
                raise KernelError(EPERM, "only the context manager may ask")
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(req.handle)
            if info is None:
                raise KernelError(ENOENT, f"no handle {req.handle}")
            node = info.node_ref.node
            with node.owner.inner.lock() as og:
                strong, weak, _, _ = node.counts(og)
        us.writer().write(binder_node_info_for_ref(req.handle, strong, weak).pack())

    def _node_debug_info(self, us: Any) -> None:
        req = binder_node_debug_info.unpack(us.reader().read(binder_node_debug_info.SIZE))
        out = binder_node_debug_info()
        with self.inner.lock() as g:
            nxt = g.data.nodes.next(req.ptr)
            if nxt is not None:
                node = nxt[1]
                _, _, hs, hw = node.counts(g)
                out = binder_node_debug_info(node.ptr, node.cookie, int(hs), int(hw))
        us.writer().write(out.pack())

    # --- file operations: release and flush are deferred to the workqueue -------------------------

    def defer(self, bit: int) -> None:
        """Set a `PROC_DEFER_*` bit and queue the process on the system workqueue."""
        from ownership.workqueue import queue_work

        with self.inner.lock() as g:
            should_schedule = g.data.defer_work == 0
            g.data.defer_work |= bit
        if should_schedule:
            # A failure to queue means it is already queued: nothing to do.
            queue_work(self.self_arc())

    def release_file(self) -> None:
        """`Process::release`: the file was closed."""
        self.defer(PROC_DEFER_RELEASE)

    def flush_file(self) -> None:
        """`Process::flush`: wake the loopers so they return to userspace."""
        self.defer(PROC_DEFER_FLUSH)

    @classmethod
    def run(cls, me: Arc[Process]) -> None:
        """`WorkItem::run`: do the deferred work, then give back the queued reference."""
        proc = me.get()
        with proc.inner.lock() as g:
            defer, g.data.defer_work = g.data.defer_work, 0
        try:
            if defer & PROC_DEFER_FLUSH:
                proc.deferred_flush()
            if defer & PROC_DEFER_RELEASE:
                proc.deferred_release()
        finally:
            me.drop()

