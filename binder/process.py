"""A process using binder (drivers/android/binder/process.rs).

There is one `Process` per open binder file, with one `inner` spinlock, as upstream.
It holds:

* the mapping: `mmap` (refusing foreign processes, writable and zero-address
  mappings), `create_mapping` (the `RangeAllocator` and the registration of the VMA
  with the `ShrinkablePageRange`), and the buffer operations transactions build on:
  `buffer_alloc` (reserve a range with the "NeedAlloc" retry loop, so that nothing is
  allocated under the spinlock, then make its pages Used), `buffer_get` (take back a
  buffer userspace frees), `buffer_raw_free` (abort the reservation and make the pages
  Available, before releasing the lock) and `buffer_make_freeable` (commit a buffer
  handed to userspace);
* `ProcessInner` (the fields behind `Process.inner`): the mapping, threads, ready
  threads, nodes, the process todo list, delivered death notifications, the
  thread-pool counters, `defer_work`, the freezer state;
* `ProcessNodeRefs` (behind the separate `Process.node_refs` Mutex, "to avoid recursive
  acquisition when incrementing/decrementing a node in another process"): the handle
  table (`by_handle`, `by_node`, the id pool) with one `NodeRefInfo` per handle;
* the operations, each following upstream's "allocate outside the lock, then re-check"
  shape: `get_current_thread`, `get_node`, `insert_or_update_handle`; refcount
  commands; death notifications; the ioctl dispatch; and release deferred to the
  system workqueue (`PROC_DEFER_FLUSH`/`PROC_DEFER_RELEASE`).

As upstream, the freezer (`BINDER_FREEZE`, `BINDER_GET_FROZEN_INFO`) lives in
`binder.freeze`, and the node's critical-increment work item in `binder.node.wrapper`.

The process's todo list (`work`), `ready_threads` and `delivered_deaths` (id 2) are
`ownership.list` `List`s of `ListArc`s, as upstream.

Ownership: `Process` lives in an `Arc` (`Process.new`); the open file, each
`Allocation` and the queued deferred work hold a count of it. Dropping the last count
frees the page range (all pages) and the `mm` reference. Upstream, nodes, threads,
transactions and death registrations also hold an `Arc<Process>` count of the process
they belong to or target. The model keeps plain references for those (Python keeps the
object alive) and takes `Arc` counts only where the count decides when the process's
memory is torn down. What such references read after the teardown is limited to
immutable data (`pid()`) and the locks; the checks would report anything else (the task
reference is dropped at teardown).

Lock order (upstream), IPC: `Context.manager` (Mutex) -> `Process.node_refs` (Mutex)
-> `Process.inner` (SpinLock; possibly of another process, a node's owner) ->
`Thread.inner` / `NodeDeath.inner` / `Transaction.allocation` (SpinLocks). Memory:
`ShrinkablePageRange::mm` (Mutex) -> the mmap lock -> `Process.inner` ->
`ShrinkablePageRange` (SpinLock) -> the lru spinlock. `buffer_raw_free` calls
`stop_using_range` with `Process::inner` held; `use_range` runs with no lock held;
`mmap` runs with the mmap write lock held. Work items that cannot be delivered are
dropped only after `Process.inner` is released, because their
destructors take these locks again.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import ClassVar

from ownership import sched
from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.aref import ARef
from ownership.context import may_sleep
from ownership.errors import EINTR, EINVAL, ENOENT, EPERM, ESRCH, KernelError
from ownership.list import HasListLinks, List, ListArc, ListLinks
from ownership.marker import impl_send, impl_sync
from ownership.miscdevice import File
from ownership.mm.virt import VmAreaNew
from ownership.page import PAGE_SIZE
from ownership.rbtree import RBTree, RBTreeNodeReservation
from ownership.sync import Arc, CondVar, Mutex, SpinLock, SpinLockGuard
from ownership.task import Task, current
from ownership.uaccess import UserSlice
from ownership.unsafe import unsafe
from ownership.warn import warn
from ownership.workqueue import queue_work

from .allocation import Allocation, AllocationInfo, NewAllocation
from .defs import PROC_DEFER_FLUSH, PROC_DEFER_RELEASE, next_debug_id
from .device_context import Context
from .error import BinderError
from .freeze import IsFrozen, get_frozen_info, ioctl_freeze_by_pid
from .node import CouldNotDeliverCriticalIncrement, CritIncrWrapper, Node, NodeDeath, NodeRef
from .page_range import SZ_4M, ShrinkablePageRange, Shrinker
from .range_alloc import RangeAllocator, ReserveNewArgs, ReserveNewSuccess
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
    binder_handle_cookie,
    binder_node_debug_info,
    binder_node_info_for_ref,
    binder_ptr_cookie,
    binder_version,
    flat_binder_object,
    ioc_dir,
    ioc_size,
)
from .work import DeliverToRead, DLArc, UserReader, cancel_work, drop_work

__all__ = ["Mapping", "NodeRefInfo", "Process", "ProcessInner", "ProcessNodeRefs"]

InnerGuard = SpinLockGuard["ProcessInner"]

O_NONBLOCK = 0o4000


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


class ProcessInner:
    """The fields of `Process` behind `Process.inner`.

    Invariants: `mapping` is None until the first successful `mmap`, and again after
    the process was released; every thread on `ready_threads` belongs to this process
    (a thread is never pushed to any other list); `nodes` maps `ptr` to the node with that ptr;
    `requested_thread_count + started_thread_count <= max_threads` except after
    `BINDER_SET_MAX_THREADS` lowered the limit.
    """

    def __init__(self) -> None:
        self.mapping: Mapping | None = None
        self.is_manager = False
        self.is_dead = False
        self.threads: RBTree[int, Thread] = RBTree()
        self.ready_threads: List[Thread] = List(0, name="Process::ready_threads")
        self.nodes: RBTree[int, Node] = RBTree()
        self.work: List[DeliverToRead] = List(0, name="Process::work")
        # The deaths sent as BR_DEAD_BINDER and not yet acknowledged (list id 2).
        self.delivered_deaths: List[NodeDeath] = List(2, name="Process::delivered_deaths")
        self.requested_thread_count = 0
        self.max_threads = 0
        self.started_thread_count = 0
        self.defer_work = 0
        self.outstanding_txns = 0
        self.is_frozen = IsFrozen.NO
        self.sync_recv = False
        self.async_recv = False
        self.oneway_spam_detection_enabled = False

    def push_work(self, work: DLArc) -> tuple[KernelError, DLArc] | None:
        """Give `work` to a ready thread, else queue it; on a dead process, hand it back.

        The caller drops returned work after releasing the lock.
        """
        ready = self.ready_threads.pop_front()
        if ready is not None:
            thread = ready.get()
            # Pushed while holding the process lock, so the thread cannot give up meanwhile.
            back = thread.push_work(work)
            # The thread keeps a count of its own until its process gives it back after
            # releasing it (`discard`): not the last one.
            ready.drop()
            return (BinderError.new_dead(), back) if back is not None else None
        if self.is_dead:
            return (BinderError.new_dead(), work)
        self.work.push_back(work)
        return None

    def remove_node(self, ptr: int) -> None:
        self.nodes.remove(ptr)

    def update_node_refcount(
        self,
        guard: InnerGuard,
        node: Node,
        inc: bool,
        strong: bool,
        count: int,
        othread: Thread | None,
    ) -> None:
        push = node.update_refcount_locked(inc, strong, count, guard)
        if push is not None:
            if othread is not None:
                othread.push_work_deferred(push)
            else:
                # Fails only if the process is dead, which then does not care: the node's
                # list right is given back (the node keeps a count of its own, so this
                # is never the last one and frees nothing under the lock).
                res = self.push_work(push)
                if res is not None:
                    res[1].drop()

    def new_node_ref(
        self, guard: InnerGuard, node: Node, strong: bool, thread: Thread | None
    ) -> NodeRef:
        self.update_node_refcount(guard, node, True, strong, 1, thread)
        return NodeRef(node, 1 if strong else 0, 0 if strong else 1)

    def new_node_ref_with_thread(
        self,
        guard: InnerGuard,
        node: Node,
        strong: bool,
        thread: Thread,
        wrapper: CritIncrWrapper | None,
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

    def pull_delivered_death(self, cookie: int) -> ListArc[NodeDeath] | None:
        """Take the delivered death with `cookie` off `delivered_deaths` (drop it unlocked)."""
        with self.delivered_deaths.cursor_front() as cursor:
            while (peek := cursor.peek_next()) is not None:
                if peek.get().cookie == cookie:
                    return peek.remove()
                cursor.move_next()
        return None

    def death_delivered(self, death: NodeDeath) -> None:
        """Record a BR_DEAD_BINDER sent: `ListArc::try_from_arc_or_drop` into the list."""
        la = death.delivered_list_arc()
        if la is not None:
            self.delivered_deaths.push_back(la)

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


class NodeRefInfo(HasListLinks):
    """One handle of a process: its `NodeRef` and its death registration.

    It lives in an `Arc` whose `ListArc` of id `LIST_NODE` is in its node's `refs`
    list (upstream's `List<NodeRefInfo, { NodeRefInfo::LIST_NODE }>`, untracked: the
    one `ListArc` is made with the allocation).

    Invariants: `node_ref` holds the process's user counts on the node (never both
    zero while the handle exists); `death` is at most one registration, of which this
    holds an `Arc` count (`Option<DArc<NodeDeath>>`); `links` is only ever used with
    the `refs` list of `node_ref.node`.
    """

    LIST_NODE: ClassVar[int] = 0x2

    __slots__ = ("death", "debug_id", "handle", "links", "node_ref", "process")

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {0x2: ("links", None)}

    @classmethod
    def new(cls, node_ref: NodeRef, process: Process) -> ListArc[NodeRefInfo]:
        """Allocate the handle's info (may sleep; `ENOMEM`); its handle is set later."""
        return ListArc.new(cls(node_ref, 0, process), GFP_KERNEL, id=cls.LIST_NODE)

    def __init__(self, node_ref: NodeRef, handle: int, process: Process) -> None:
        self.links = ListLinks(self.LIST_NODE)
        self.debug_id = next_debug_id()
        self.node_ref = node_ref
        self.death: Arc[NodeDeath] | None = None
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


@impl_send("every mutable field is behind Process.inner, node_refs or the page range's locks")
@impl_sync("every mutable field is behind Process.inner, node_refs or the page range's locks")
class Process:
    """A process that opened a binder device (one per open file).

    Invariants: `task` holds a reference to the opener's thread-group leader; `pages`
    is bound to the opener's address space; `inner.mapping` is set once, by the first
    successful `mmap`, and taken at release; `node_refs` holds every handle of the
    process; after `deferred_release` starts (`inner.is_dead`), no handle, node or
    thread is added; the object lives in an `Arc` made by `new`.
    """

    page_range_type: ClassVar[type[ShrinkablePageRange]] = ShrinkablePageRange
    """The page range class (a test substitutes an unfixed variant to show a bug)."""

    node_type: ClassVar[type[Node]] = Node
    """The node class (a test substitutes an unfixed variant to show a bug)."""

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
        # The pid is read from the task once: nodes, threads and transactions of other
        # processes refer to this process by plain reference (not an `Arc` count, see
        # the module docstring), so they must not reach `task` after its teardown.
        self._pid = self.task.get().pid
        self.node_refs = Mutex(ProcessNodeRefs(), name="Process::node_refs")
        self.freeze_wait = CondVar(name="Process::freeze_wait")
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

    # --- identity ---------------------------------------------------------------

    def pid(self) -> int:
        return self._pid

    def euid(self) -> int:
        """The opener's effective uid (the model has no credentials: root)."""
        return 0

    # --- work ---------------------------------------------------------------------

    def get_work(self) -> DLArc | None:
        with self.inner.lock() as g:
            return g.data.work.pop_front()

    def get_work_or_register(self, thread: Thread) -> DLArc | Registration:
        with self.inner.lock() as g:
            work = g.data.work.pop_front()
            if work is not None:
                return work
            if g.data.is_dead:
                raise KernelError(EINTR, "binder process is being released")
            # INVARIANT: the thread is pushed to its own process's ready list only.
            la = thread.list_arc()
            if isinstance(la, ListArc):
                g.data.ready_threads.push_front(la)
                refused = None
            else:
                refused = la
                warn("binder-ready-twice", "Same thread registered with `ready_threads` twice.")
        if refused is not None:
            # Given back with the lock released: the thread's drop may sleep (the thread
            # holds a count of its own while it runs, so this is not the last one).
            refused.drop()
        return Registration(thread)

    @may_sleep
    def push_work(self, work: DLArc) -> None:
        """Queue work for the process; `BinderError(BR_DEAD_REPLY)` if it is dead."""
        with self.inner.lock() as g:
            res = g.data.push_work(work)
        if res is not None:
            # Dropped outside the lock: the destructor of a transaction takes locks.
            drop_work(res[1])
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
        ta = Thread.new(tid, self, task)
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
        # The tree's `Arc<Thread>` goes: the last count drops the work left on its list.
        thread.discard()

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
                and i.ready_threads.is_empty()
                and i.started_thread_count < i.max_threads
            )
            if ret:
                i.requested_thread_count += 1
            return bool(ret)

    # --- nodes ----------------------------------------------------------------------

    def _get_node_inner(
        self,
        ptr: int,
        cookie: int,
        flags: int,
        strong: bool,
        thread: Thread,
        wrapper: CritIncrWrapper | None,
    ) -> NodeRef:
        with self.inner.lock() as g:
            node = g.data.get_existing_node(ptr, cookie)
            if node is not None:
                return g.data.new_node_ref_with_thread(g, node, strong, thread, wrapper)
        # Allocate the node and its tree slot before re-taking the lock.
        new = self.node_type.new(ptr, cookie, flags, self)
        try:
            reservation = RBTreeNodeReservation.new(GFP_KERNEL)
        except KernelError:
            new.discard()
            raise
        with self.inner.lock() as g:
            node = g.data.get_existing_node(ptr, cookie)
            if node is not None:
                # Another thread won the race: use its node, discard ours (giving back its
                # only count frees nothing that sleeps, so it may be done here).
                new.discard()
                return g.data.new_node_ref_with_thread(g, node, strong, thread, wrapper)
            g.data.nodes.insert(reservation.into_node(ptr, new))
            # Cannot fail: nobody else has seen the node yet.
            return g.data.new_node_ref_with_thread(g, new, strong, thread, wrapper)

    @may_sleep
    def get_node(self, ptr: int, cookie: int, flags: int, strong: bool, thread: Thread) -> NodeRef:
        """A ref on this process's node `(ptr, cookie)`, creating the node if needed."""
        wrapper: CritIncrWrapper | None = None
        for _ in range(2):
            try:
                return self._get_node_inner(ptr, cookie, flags, strong, thread, wrapper)
            except CouldNotDeliverCriticalIncrement:
                wrapper = CritIncrWrapper.new()
        raise AssertionError("get_node: a wrapper was given, the retry cannot fail")

    @may_sleep
    def set_as_manager(self, info: flat_binder_object | None, thread: Thread) -> None:
        ptr, cookie, flags = (
            (info.binder, info.cookie, info.flags) if info is not None else (0, 0, 0)
        )
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
            info_la = NodeRefInfo.new(node_ref, self)
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
                        raise KernelError(
                            EINVAL, "mismatch between handle_is_present and by_handle"
                        )
                    break
                new_cap = g.data.handle_is_present.grow_request()
                g.drop()
                try:
                    alloc_check(GFP_KERNEL, "IdPool::grow")
                except KernelError:
                    info_la.drop()
                    node_ref.drop()
                    raise
                g = self.node_refs.lock()
                g.data.handle_is_present.grow(new_cap)
            # The node may have been inserted while the lock was dropped.
            handle = g.data.by_node.get(gid)
            if handle is not None:
                info = g.data.by_handle.get(handle)
                assert info is not None
                info_la.drop()
                info.node_ref.absorb(node_ref)
                return handle
            with self.inner.lock() as ig:
                dead = ig.data.is_dead
            if dead:
                info_la.drop()
                node_ref.drop()
                raise KernelError(ESRCH, "process is dead")
            new_info = info_la.get()
            new_info.handle = unused
            node_ref.node.insert_node_info(info_la)
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
            # SAFETY: a NodeDeath is only ever put in the `delivered_deaths` of its own
            # process (`death.process`, which is this one), so it is in this list or none.
            with unsafe("SAFETY: a NodeDeath is in its own process's delivered_deaths or in none"):
                removed = g.data.delivered_deaths.remove(death)
        if removed is not None:
            removed.drop()

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
                death.get().set_cleared(True)
                self.remove_from_delivered_deaths(death.get())
                death.drop()
            info.node_ref.node.remove_node_info(info)
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
                    res = g.data.push_work(push)
                    if res is not None:
                        # The node keeps a count of its own: this frees nothing.
                        res[1].drop()

    # --- death notifications ----------------------------------------------------------

    @may_sleep
    def request_death(self, reader: UserReader, thread: Thread) -> None:
        hc = binder_handle_cookie.unpack(reader.read(binder_handle_cookie.SIZE))
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(hc.handle)
            if info is None or info.death is not None:
                # Invalid handle, or already registered: upstream warns and carries on.
                return
            node = info.node_ref.node
            # Allocated under the node_refs Mutex (may sleep), before the owner's spinlock.
            try:
                death = NodeDeath.new(node, self, hc.cookie)
            except KernelError:
                thread.push_return_work(BR_ERROR)
                raise
            info.death = death.clone_arc()
            owner = node.owner
            with owner.inner.lock() as og:
                owner_dead = og.data.is_dead
                if not owner_dead:
                    node.add_death(death, og)
            if owner_dead:
                arc = death.into_arc()
                arc.get().set_dead()
                arc.drop()

    @may_sleep
    def clear_death(self, reader: UserReader, thread: Thread) -> None:
        hc = binder_handle_cookie.unpack(reader.read(binder_handle_cookie.SIZE))
        with self.node_refs.lock() as g:
            info = g.data.by_handle.get(hc.handle)
            if info is None or info.death is None:
                return
            death = info.death
            if death.get().cookie != hc.cookie:
                return
            info.death = None
            try:
                if death.get().set_cleared(False):
                    la = death.get().list_arc()
                    if la is not None:
                        try:
                            thread.push_work_if_looper(la)
                        except KernelError:
                            # The process is dead: the work was dropped, nothing to deliver.
                            pass
            finally:
                death.drop()

    def dead_binder_done(self, cookie: int, thread: Thread) -> None:
        with self.inner.lock() as g:
            death = g.data.pull_delivered_death(cookie)
        if death is not None:
            arc = death.into_arc()
            try:
                arc.get().set_notification_done(thread)
            finally:
                arc.drop()

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
        self.ctx.deregister_process(self)
        # Release threads.
        with self.inner.lock() as g:
            threads = list(g.data.threads.values())
            g.data.threads.clear()
            ready = g.data.ready_threads.take("deferred_release ready threads")
        # Each thread keeps a count of its own until `discard`: these are not the last.
        ready.drop()
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
            # The node's own count (the stand-in for its holders' `DArc`s) goes: the
            # process is dead, so the node is never queued again.
            first[1].discard()
        # Deaths registered on other processes' nodes; our entries in their ref lists.
        with self.node_refs.lock() as g:
            infos = list(g.data.by_handle.values())
            for info in infos:
                info.node_ref.node.remove_node_info(info)
                death, info.death = info.death, None
                if death is not None:
                    death.get().set_cleared(False)
                    death.drop()
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
            cancel_work(work)
        # Clear delivered_deaths, one at a time: each is dropped with the lock released
        # (upstream "avoid mem::take on delivered_deaths").
        while True:
            with self.inner.lock() as g:
                delivered = g.data.delivered_deaths.pop_front()
            if delivered is None:
                break
            delivered.drop()
        # Buffers still allocated: their destructors release what they hold.
        self.deferred_release_memory()
        # Last, the threads' counts (upstream `drop(threads)`): a released thread still
        # holds the deferred work `release` left on its list, which goes with it.
        for t in threads:
            t.discard()

    def drop_outstanding_txn(self) -> None:
        with self.inner.lock() as g:
            if g.data.outstanding_txns == 0:
                return
            g.data.outstanding_txns -= 1
            wake = g.data.is_frozen.is_frozen() and g.data.outstanding_txns == 0
        if wake:
            self.freeze_wait.notify_all()

    # --- ioctl ---------------------------------------------------------------------------

    @may_sleep
    def ioctl(self, file: File, cmd: int, arg: int) -> int:
        """The binder ioctl; returns 0 or raises `KernelError` (the errno)."""
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
                self.set_as_manager(
                    flat_binder_object.unpack(reader.read(flat_binder_object.SIZE)), thread
                )
            elif cmd == BINDER_ENABLE_ONEWAY_SPAM_DETECTION:
                self.set_oneway_spam_detection_enabled(int.from_bytes(reader.read(4), "little"))
            elif cmd == BINDER_FREEZE:
                ioctl_freeze_by_pid(
                    self, binder_freeze_info.unpack(reader.read(binder_freeze_info.SIZE))
                )
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
                get_frozen_info(self, us)
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

    def procs_with_pid(self, pid: int) -> list[Process]:
        """Every binder process of `pid`, in every context (for the freezer ioctls)."""
        procs: list[Process] = []
        for ctx in self.ctx.list.get_all_contexts():
            procs.extend(ctx.get_procs_with_pid(pid))
        return procs

    @may_sleep
    def _node_info_for_ref(self, us: UserSlice) -> None:
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

    def _node_debug_info(self, us: UserSlice) -> None:
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
    def buffer_alloc(
        self, debug_id: int, size: int, is_oneway: bool, from_pid: int
    ) -> NewAllocation:
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
            self.self_arc(),
            debug_id,
            res.offset,
            size,
            address + res.offset,
            res.oneway_spam_detected,
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
            warn(
                "binder-buffer-free",
                f"pointer {ptr:#x} failed to free, base = {failed[0]:#x}: {failed[1]}",
            )

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
        mapping.alloc.take_for_each(
            lambda off, size, debug_id, data: taken.append((off, size, debug_id, data))
        )
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
