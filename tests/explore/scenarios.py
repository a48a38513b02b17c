"""Scenarios for the explorer's tests (and for `python -m ownership explore MODULE:FN`).

Each is a zero-argument function that builds its own world, starts model threads with
`ownership.task.spawn` and joins them; the buggy ones fail only in some interleavings.
"""

from __future__ import annotations

from ownership import lockdep, sched
from ownership.bindings.rwsem import RwSemaphore
from ownership.borrow import Ref
from ownership.context import might_sleep
from ownership.marker import impl_send, impl_sync
from ownership.sync import Arc, CondVar, Mutex, SpinLock
from ownership.sync.lock import MutexGuard
from ownership.task import spawn
from ownership.workqueue import flush, queue_work


def lost_update() -> None:
    """Check-then-act: each thread reads the counter, then writes it back incremented,
    in two critical sections; one preemption between them loses an update."""
    lock = SpinLock(0, name="counter")

    def inc() -> None:
        with lock.lock() as g:
            v = g.data
        with lock.lock() as g:
            g.data = v + 1

    a = spawn(inc, name="inc-a")
    b = spawn(inc, name="inc-b")
    a.join()
    b.join()
    with lock.lock() as g:
        assert g.data == 2, f"lost update: counter is {g.data}, expected 2"


def atomic_update() -> None:
    """The correct version of `lost_update`: one critical section per increment."""
    lock = SpinLock(0, name="counter")

    def inc() -> None:
        with lock.lock() as g:
            g.data += 1

    a = spawn(inc, name="inc-a")
    b = spawn(inc, name="inc-b")
    a.join()
    b.join()
    with lock.lock() as g:
        assert g.data == 2


def two_preemptions() -> None:
    """Three threads; the assertion fails only when A's two steps are split by B's first
    step and B's two steps by A's second (a1 < b1 < a2 < b2): two preemptions. C is a
    bystander on its own lock: it makes the search space bigger, and its steps are
    independent of A's and B's (what the dfs pruning removes)."""
    lock: SpinLock[list[str]] = SpinLock([], name="log")
    other: SpinLock[list[str]] = SpinLock([], name="bystander")

    def steps(on: SpinLock[list[str]], tag: str, n: int) -> None:
        for i in range(1, n + 1):
            with on.lock() as g:
                g.data.append(f"{tag}{i}")

    a = spawn(steps, lock, "a", 2, name="A")
    b = spawn(steps, lock, "b", 2, name="B")
    c = spawn(steps, other, "c", 2, name="C")
    a.join()
    b.join()
    c.join()
    with lock.lock() as g:
        log: list[str] = g.data
    pos = {e: i for i, e in enumerate(log)}
    assert not (pos["a1"] < pos["b1"] < pos["a2"] < pos["b2"]), f"interleaved: {log}"


class _Flag:
    """A flag read and written without a lock (the bug of `lost_wakeup`)."""

    def __init__(self) -> None:
        self.set = False


impl_send("a test flag")(_Flag)
impl_sync("a test flag, racy on purpose")(_Flag)


def lost_wakeup() -> None:
    """The waker sets the flag and notifies without the waiter's lock: if it does so
    between the waiter's check and its wait, the wakeup is lost (a deadlock)."""
    lock = Mutex(None, name="waiter")
    cv = CondVar("ready")
    flag = _Flag()

    def waiter() -> None:
        with lock.lock() as g:
            while not flag.set:
                cv.wait(g)

    def waker() -> None:
        flag.set = True  # BUG: not under `lock`.
        cv.notify_all()

    w = spawn(waiter, name="waiter")
    k = spawn(waker, name="waker")
    k.join()
    w.join()


def ab_ba() -> None:
    """Two threads take two mutexes in opposite orders."""
    a = Mutex(0, name="A")
    b = Mutex(0, name="B")

    def one() -> None:
        with a.lock(), b.lock():
            pass

    def two() -> None:
        with b.lock(), a.lock():
            pass

    x = spawn(one, name="one")
    y = spawn(two, name="two")
    x.join()
    y.join()


def producer_consumer() -> None:
    """A bounded buffer of one slot over a Mutex and two CondVars (correct)."""
    lock: Mutex[list[int]] = Mutex([], name="buffer")
    not_empty = CondVar("not_empty")
    not_full = CondVar("not_full")
    items = 2

    def producer() -> None:
        for i in range(items):
            with lock.lock() as g:
                while len(g.data) >= 1:
                    not_full.wait(g)
                g.data.append(i)
                not_empty.notify_one()

    got: list[int] = []

    def consumer() -> None:
        for _ in range(items):
            with lock.lock() as g:
                while not g.data:
                    not_empty.wait(g)
                got.append(g.data.pop())
                not_full.notify_one()

    p = spawn(producer, name="producer")
    c = spawn(consumer, name="consumer")
    p.join()
    c.join()
    assert got == list(range(items)), got


@impl_send("the counter is behind a SpinLock")
@impl_sync("the counter is behind a SpinLock")
class Counter:
    """A work item that counts its runs under a lock (`impl WorkItem for Counter`)."""

    def __init__(self) -> None:
        self.runs = SpinLock(0, name="Counter::runs")

    @classmethod
    def run(cls, me: Arc[Counter]) -> None:
        with me.get().runs.lock() as g:
            g.data += 1
        me.drop()


def workqueue_arc() -> None:
    """A work item with an `Arc`, queued from another thread while the main thread also
    holds a clone; flushed, then both counts dropped (correct)."""
    item = Arc.new(Counter())
    other = item.clone()

    def queuer() -> None:
        queue_work(other)

    t = spawn(queuer, name="queuer")
    t.join()
    flush()
    with item.get().runs.lock() as g:
        assert g.data == 1
    item.drop()


class _State:
    """Shared state of `atomic_sleep_race` (read under `lock`)."""

    def __init__(self) -> None:
        self.slow = False


impl_send("test state")(_State)
impl_sync("test state, behind a SpinLock")(_State)


def atomic_sleep_race() -> None:
    """The fast path runs under a spinlock; it sleeps only if the other thread switched
    it to the slow mode first: a sleep in atomic context in some interleavings."""
    lock = SpinLock(_State(), name="mode")
    mutex = Mutex(0, name="slow path")

    def user() -> None:
        with lock.lock() as g:
            if g.data.slow:
                with mutex.lock():  # BUG: Mutex.lock may sleep, under a spinlock.
                    pass

    def switcher() -> None:
        with lock.lock() as g:
            g.data.slow = True

    u = spawn(user, name="user")
    s = spawn(switcher, name="switcher")
    s.join()
    u.join()


def send_race() -> None:
    """A guard parked in a shared slot is released by whichever thread finds it: on
    another thread than the one that locked it (`!Send`) when the finder runs first."""
    data = Mutex(0, name="data")
    slot: list[MutexGuard[int]] = []
    slot_lock = Mutex(None, name="slot")

    def parker() -> None:
        g = data.lock()
        with slot_lock.lock():
            slot.append(g)
        with slot_lock.lock():
            mine = slot.pop() if slot else None
        if mine is not None:
            mine.drop()

    def finder() -> None:
        with slot_lock.lock():
            found = slot.pop() if slot else None
        if found is not None:
            found.drop()  # BUG: released on another thread than the one that locked.

    p = spawn(parker, name="parker")
    f = spawn(finder, name="finder")
    p.join()
    f.join()


def order_race() -> None:
    """The inverted lock order is taken only when the checker runs while the flag is
    set, between the other thread's two critical sections."""
    a = Mutex(0, name="A")
    b = Mutex(0, name="B")
    flag = Mutex(False, name="flag")

    def setter() -> None:
        with flag.lock() as g:
            g.data = True
        with a.lock(), b.lock():
            pass
        with flag.lock() as g:
            g.data = False

    def checker() -> None:
        with flag.lock() as g:
            busy = g.data
        if busy:
            with b.lock(), a.lock():  # BUG: B then A, while the setter takes A then B.
                pass

    s = spawn(setter, name="setter")
    c = spawn(checker, name="checker")
    s.join()
    c.join()


def rwsem_hang() -> None:
    """A writer that never unlocks; the reader's hung-task poll runs on virtual time."""
    sem = RwSemaphore("sem", lockdep.lock_class("test_rwsem", "rw_semaphore"))
    taken = CondVar("taken")
    lock = Mutex(False, name="taken")

    def writer() -> None:
        sem.down_write()
        with lock.lock() as g:
            g.data = True
            taken.notify_all()

    def reader() -> None:
        with lock.lock() as g:
            while not g.data:
                taken.wait(g)
        sem.down_read()

    w = spawn(writer, name="writer")
    r = spawn(reader, name="reader")
    w.join()
    r.join()


def spin_forever() -> None:
    """Two threads poll a trylock for a flag nobody sets: a livelock."""
    lock = SpinLock(False, name="never")

    def poll() -> None:
        while True:
            g = lock.try_lock()
            if g is not None:
                done = g.data
                g.drop()
                if done:
                    return
            sched.preempt_point()

    a = spawn(poll, name="poll-a")
    b = spawn(poll, name="poll-b")
    a.join()
    b.join()


def sleeping_wait() -> None:
    """`might_sleep()` and a CondVar wait with a timeout: the clock is virtual."""
    lock = Mutex(None, name="timer")
    cv = CondVar("timer")
    might_sleep()
    with lock.lock() as g:
        woken = cv.wait_timeout(g, 5.0)
    assert not woken
    assert sched.monotonic() >= 5.0


def wait_without_loop() -> None:
    """A waiter that checks its condition once (`if`, not `while`): correct only
    without spurious wakeups, which the kernel's wait queues allow."""
    lock = Mutex(False, name="ready")
    cv = CondVar("ready")

    def waiter() -> None:
        with lock.lock() as g:
            if not g.data:
                cv.wait(g)  # BUG: a spurious wakeup returns with the flag still clear.
            assert g.data, "woke up without the flag set"

    def setter() -> None:
        with lock.lock() as g:
            g.data = True
            cv.notify_all()

    w = spawn(waiter, name="waiter")
    s = spawn(setter, name="setter")
    w.join()
    s.join()


def ref_outlives_guard() -> None:
    """A reference derived from a guard is parked for another thread, which uses it
    after the owner released the guard in some interleavings (a use after unlock)."""
    data = Mutex([1], name="data")
    slot_lock = Mutex(None, name="slot")
    slot: list[Ref[list[int]]] = []

    def owner() -> None:
        g = data.lock()
        with slot_lock.lock():
            slot.append(g.ref())
        g.drop()  # BUG: the parked reference dies with the guard.

    def user() -> None:
        with slot_lock.lock():
            r = slot[0] if slot else None
        if r is not None:
            assert r.get() == [1]

    u = spawn(user, name="user")
    o = spawn(owner, name="owner")
    u.join()
    o.join()
