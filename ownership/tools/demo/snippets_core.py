"""The demo's core snippets: one buggy and one correct driver snippet per core rule.

Each snippet is a few lines of driver-like code written against the model, in the
form a driver author would first write it and in the fixed form; each `make_*` returns
the pair, registered with the runner (`ownership.tools.demo.runner`) by the `snippet`
decorator when this module is imported. This module is driver code for the model
(`driver_module`), so the sites in the splats point here.

Lock order: each snippet has its own locks. The fixed forms take `proc_lock` before
`node_lock`, and the `todo` mutex before (never under) the `stats` spinlock; the buggy
forms break exactly those rules, which is what they show.
"""

from __future__ import annotations

from collections.abc import Callable

from ...alloc import GFP_ATOMIC, GFP_KERNEL, KBox
from ...aref import ARef
from ...borrow import Ref
from ...context import rcu_read_lock
from ...errors import (
    AtomicSleepError,
    LifetimeError,
    LockError,
    PinError,
    RefcountError,
    SendError,
    SyncError,
    UnsafeError,
)
from ...marker import ThreadAffinity, impl_send, impl_sync, not_sync, share
from ...pin import mem
from ...rbtree import RBTree, RBTreeNodeReservation
from ...site import driver_module
from ...sync import Arc, ArcBorrow, CondVar, LockedBy, Mutex, Refcount, SpinLock
from ...task import spawn
from ...unsafe import unsafe, unsafe_fn
from ...workqueue import Workqueue
from .runner import snippet

driver_module(__file__)

__all__: list[str] = []


# ---------------------------------------------------------------------------------------
# Snippets. Each `make_*` returns (buggy, fixed); lock names are unique per snippet so
# the lock-order graph of one cannot affect another.


class ThreadT:
    def __init__(self, tid: int) -> None:
        self.id = tid


class ProcessInner:
    def __init__(self) -> None:
        self.threads: RBTree[int, Arc[ThreadT]] = RBTree()


class Process:
    def __init__(self) -> None:
        self.inner = SpinLock(ProcessInner(), name="Process::inner")


@snippet("atomic-sleep", "get_thread: GFP_KERNEL allocation under a SpinLock", AtomicSleepError)
def make_get_thread() -> tuple[Callable[[], object], Callable[[], object]]:
    def get_thread_buggy(this: ArcBorrow[Process], tid: int) -> Arc[ThreadT]:
        with this.get().inner.lock() as inner:
            found = inner.data.threads.get(tid)
            if found is not None:
                return found.clone()
            ta = Arc.new(ThreadT(tid), GFP_KERNEL)  # type: ignore[atomic-sleep]  # Sleeps under the spinlock.
            inner.data.threads.try_create_and_insert(tid, ta.clone(), GFP_KERNEL)  # type: ignore[atomic-sleep]
            return ta

    def get_thread(this: ArcBorrow[Process], tid: int) -> Arc[ThreadT]:
        with this.get().inner.lock() as inner:
            found = inner.data.threads.get(tid)
            if found is not None:
                return found.clone()
        # Allocate a new `Thread` without holding any locks.
        ta = Arc.new(ThreadT(tid), GFP_KERNEL)
        node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(tid, ta.clone())
        with this.get().inner.lock() as inner:
            # Recheck. It's possible the thread was created while we were not holding the lock.
            found = inner.data.threads.get(tid)
            if found is None:
                inner.data.threads.insert(node)
                return ta
            result = found.clone()
        node.value.drop()
        ta.drop()
        return result

    def teardown(p: Arc[Process]) -> None:
        with p.get().inner.lock() as inner:
            threads = list(inner.data.threads.values())
            inner.data.threads.clear()
        for t in threads:
            t.drop()
        p.drop()

    def buggy() -> None:
        p = Arc.new(Process())
        try:
            get_thread_buggy(p.as_arc_borrow(), 1).drop()
        finally:
            teardown(p)

    def fixed() -> None:
        p = Arc.new(Process())
        a = get_thread(p.as_arc_borrow(), 1)
        b = get_thread(p.as_arc_borrow(), 1)
        assert Arc.ptr_eq(a, b)
        a.drop()
        b.drop()
        teardown(p)

    return buggy, fixed


@snippet("atomic-sleep", "Mutex::lock inside an RCU read-side section", AtomicSleepError)
def make_mutex_under_rcu() -> tuple[Callable[[], object], Callable[[], object]]:
    config = Mutex({"debug": False}, name="demo config mutex")

    def buggy() -> None:
        with rcu_read_lock(), config.lock() as g:  # type: ignore[atomic-sleep]  # A Mutex may sleep.
            g.data["debug"] = True

    def fixed() -> None:
        with config.lock() as g:
            g.data["debug"] = True
        with rcu_read_lock():
            pass

    return buggy, fixed


@snippet("lock-order", "AB-BA across two threads, caught without a deadlock", LockError)
def make_abba() -> tuple[Callable[[], object], Callable[[], object]]:
    def pair(tag: str) -> tuple[Mutex[int], Mutex[int]]:
        return Mutex(0, name=f"demo {tag} node_lock"), Mutex(0, name=f"demo {tag} proc_lock")

    def buggy() -> None:
        node, proc = pair("abba")

        def release_node() -> None:
            with proc.lock(), node.lock() as n:
                n.data += 1

        def inc_refs() -> None:
            with node.lock(), proc.lock() as p:
                p.data += 1

        spawn(release_node).join()
        spawn(inc_refs).join()  # Runs after the first thread: no deadlock, still a bug.

    def fixed() -> None:
        node, proc = pair("ordered")

        def work() -> None:
            with proc.lock(), node.lock() as n:
                n.data += 1

        for h in [spawn(work), spawn(work)]:
            h.join()

    return buggy, fixed


@snippet("recursive-lock", "re-taking a spinlock in a helper", LockError)
def make_recursive() -> tuple[Callable[[], object], Callable[[], object]]:
    stats = SpinLock({"tx": 0}, name="demo stats lock")

    def bump_locked() -> None:
        with stats.lock() as g:
            g.data["tx"] += 1

    def buggy() -> None:
        with stats.lock() as g:
            g.data["tx"] += 1
            bump_locked()

    def bump(g_data: dict[str, int]) -> None:
        g_data["tx"] += 1

    def fixed() -> None:
        with stats.lock() as g:
            bump(g.data)

    return buggy, fixed


@snippet("double-unlock", "dropping a guard twice", LockError)
def make_double_unlock() -> tuple[Callable[[], object], Callable[[], object]]:
    lock = SpinLock(0, name="demo double unlock")

    def buggy() -> None:
        g = lock.lock()
        g.data = 1
        g.drop()
        g.drop()

    def fixed() -> None:
        g = lock.lock()
        g.data = 1
        g.drop()

    return buggy, fixed


@snippet("send", "a lock guard handed to another thread", SendError)
def make_send_guard() -> tuple[Callable[[], object], Callable[[], object]]:
    lock = Mutex([0], name="demo send guard")

    def buggy() -> None:
        g = lock.lock()
        try:
            spawn(lambda guard: guard.data.append(1), g).join()  # type: ignore[send-handoff]
        finally:
            g.drop()

    def fixed() -> None:
        def worker(m: Mutex[list[int]]) -> None:
            with m.lock() as g:
                g.data.append(1)

        spawn(worker, lock).join()

    return buggy, fixed


@not_sync("a Cell-like statistics block: unsynchronised interior mutability")
class Stats:
    def __init__(self) -> None:
        self.__ownership_affinity__ = ThreadAffinity("Stats")
        self.count = 0

    def record(self) -> None:
        self.__ownership_affinity__.check("Stats.record()")
        self.count += 1


@snippet("sync", "a !Sync value shared with another thread", SyncError)
def make_sync() -> tuple[Callable[[], object], Callable[[], object]]:
    def buggy() -> None:
        stats = Stats()
        shared = share(stats)
        spawn(lambda r: r.get().record(), shared).join()

    def fixed() -> None:
        stats = Stats()

        def owner(s: Stats) -> int:
            s.record()
            return s.count

        assert spawn(owner, stats).join() == 1  # Moved, not shared.

    return buggy, fixed


@snippet("lifetime", "a reference used after its guard was released", LifetimeError)
def make_lifetime() -> tuple[Callable[[], object], Callable[[], object]]:
    lock = SpinLock([1, 2, 3], name="demo lifetime")

    def buggy() -> None:
        with lock.lock() as g:
            items: Ref[list[int]] = g.ref()
        items.get().append(4)

    def fixed() -> None:
        with lock.lock() as g:
            g.ref().get().append(4)
            snapshot = list(g.data)
        assert snapshot[-1] == 4

    return buggy, fixed


@snippet("locked-by-owner", "LockedBy reached through another process's lock", LockError)
def make_locked_by() -> tuple[Callable[[], object], Callable[[], object]]:
    owner = Mutex(0, name="demo ProcessInner")
    other = Mutex(0, name="demo ProcessInner")
    node_refs = LockedBy(owner, 0)

    def buggy() -> None:
        with other.lock() as g:
            node_refs.set(g, node_refs.access(g) + 1)

    def fixed() -> None:
        with owner.lock() as g:
            node_refs.set(g, node_refs.access(g) + 1)

    return buggy, fixed


@impl_send("the count is a C-side atomic")
@impl_sync("inc_ref/dec_ref are atomic")
class File:
    def __init__(self) -> None:
        self.refs = Refcount("struct file", 1)

    def inc_ref(self) -> None:
        self.refs.inc()

    def dec_ref(self) -> None:
        self.refs.dec_and_test()


@snippet("double-drop", "an ARef dropped twice", RefcountError)
def make_double_drop() -> tuple[Callable[[], object], Callable[[], object]]:
    def buggy() -> None:
        f = File()
        a = ARef.from_ref(f)
        b = a.clone()
        a.drop()
        b.drop()
        a.drop()

    def fixed() -> None:
        f = File()
        a = ARef.from_ref(f)
        b = a.clone()
        a.drop()
        b.drop()

    return buggy, fixed


@snippet("refcount-underflow", "one put too many on a refcount_t", RefcountError)
def make_underflow() -> tuple[Callable[[], object], Callable[[], object]]:
    def buggy() -> None:
        rc = Refcount("struct binder_node", 1)
        rc.inc()
        for _ in range(3):
            rc.dec_and_test()

    def fixed() -> None:
        rc = Refcount("struct binder_node", 1)
        rc.inc()
        for _ in range(2):
            rc.dec_and_test()

    return buggy, fixed


class Queue:
    def __init__(self) -> None:
        self.lock = SpinLock(0, name="demo Queue::lock")
        self.len = 0


class Device:
    def __init__(self) -> None:
        self.queue = Queue()
        self.name = "binder"


@snippet("pin", "moving a struct that contains a lock", PinError)
def make_pin() -> tuple[Callable[[], object], Callable[[], object]]:
    def buggy() -> None:
        dev = Device()
        mem.replace(dev, "queue", Queue())

    def fixed() -> None:
        dev = Device()
        mem.replace(dev, "name", "hwbinder")  # Unpin fields move freely.
        with dev.queue.lock.lock() as g:
            g.data = 0

    return buggy, fixed


class RawRing:
    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)

    @unsafe_fn(safety="`at + len(data)` is within the ring.", checked="IndexError (Python bounds)")
    def write_unchecked(self, at: int, data: bytes) -> None:
        self.buf[at : at + len(data)] = data


@snippet("unsafe-call", "an unsafe function called outside `unsafe`", UnsafeError)
def make_unsafe_call() -> tuple[Callable[[], object], Callable[[], object]]:
    ring = RawRing(16)

    def buggy() -> None:
        ring.write_unchecked(0, b"hi")  # type: ignore[unsafe-call]

    def fixed() -> None:
        with unsafe("SAFETY: 0 + 2 <= len(ring.buf) == 16"):
            ring.write_unchecked(0, b"hi")

    return buggy, fixed


@snippet("undocumented-unsafe", "an unsafe call justified by nothing", UnsafeError)
def make_undocumented() -> tuple[Callable[[], object], Callable[[], object]]:
    ring = RawRing(4)

    def buggy() -> None:
        # Deliberately undocumented: this missing justification is the bug shown here.
        with unsafe(""):  # type: ignore[undocumented-unsafe]
            ring.write_unchecked(0, b"x")

    def fixed() -> None:
        with unsafe("SAFETY: one byte at offset 0 of a 4-byte ring: 0 + 1 <= 4."):
            ring.write_unchecked(0, b"x")

    return buggy, fixed


@snippet("lifetime", "a KBox used after it was dropped", LifetimeError)
def make_kbox() -> tuple[Callable[[], object], Callable[[], object]]:
    def buggy() -> None:
        b = KBox.new(bytearray(8), GFP_KERNEL)
        b.drop()
        b.get()[0] = 1

    def fixed() -> None:
        b = KBox.new(bytearray(8), GFP_KERNEL)
        b.get()[0] = 1
        b.drop()

    return buggy, fixed


@snippet("send", "queue_work with an Arc of a !Sync work item", SendError)
def make_queue_work() -> tuple[Callable[[], object], Callable[[], object]]:
    wq = Workqueue("demo")

    @not_sync("caches the last result without a lock")
    class Cached:
        @classmethod
        def run(cls, me: Arc[Cached]) -> None:
            me.drop()

    @impl_send("all state behind a SpinLock")
    @impl_sync("all state behind a SpinLock")
    class Deferred:
        def __init__(self) -> None:
            self.done = SpinLock(False, name="demo Deferred::done")

        @classmethod
        def run(cls, me: Arc[Deferred]) -> None:
            with me.get().done.lock() as g:
                g.data = True
            me.drop()

    def buggy() -> None:
        item = Arc.new(Cached(), GFP_ATOMIC)
        try:
            wq.queue_work(item)
        except SendError:
            item.drop()
            raise

    def fixed() -> None:
        item = Arc.new(Deferred(), GFP_ATOMIC)
        wq.queue_work(item.clone())
        wq.flush()
        with item.get().done.lock() as g:
            assert g.data
        item.drop()

    return buggy, fixed


@snippet("atomic-sleep", "CondVar::wait while another spinlock is held", AtomicSleepError)
def make_condvar() -> tuple[Callable[[], object], Callable[[], object]]:
    todo: Mutex[list[int]] = Mutex([], name="demo todo")
    stats = SpinLock(0, name="demo todo stats")
    more = CondVar("demo more work")

    def producer() -> None:
        with todo.lock() as g:
            g.data.append(1)
            more.notify_all()

    def buggy() -> None:
        with todo.lock() as g, stats.lock() as s:
            s.data += 1
            while not g.data:
                more.wait(g)  # type: ignore[atomic-sleep]  # Sleeps with `stats` still held.
            g.data.pop()

    def fixed() -> None:
        with stats.lock() as s:
            s.data += 1
        with todo.lock() as g:
            h = spawn(producer)
            while not g.data:
                more.wait(g)  # Only the mutex is held, and the wait releases it.
            g.data.pop()
        h.join()

    return buggy, fixed
