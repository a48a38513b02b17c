"""Workqueues (rust/kernel/workqueue.rs): run a work item later on a worker thread.

`queue_work(item)` hands an `Arc` of a `WorkItem` to the system workqueue; a real
worker thread calls `type(item).run(item)` in process context (it may sleep, and holds
no locks of the queuer). The hand-off requires the `Arc` to be Send, so a `!Send`
value queued is a `SendError` at the `queue_work` call, naming both sites.

As in the kernel, a work item is queued at most once at a time: queueing one that is
already pending returns False and does nothing. `flush()` waits until everything
queued so far has run (for tests and teardown; it may sleep); an exception raised by a
work item is kept and re-raised by the next `flush()`. Queueing never sleeps, so it is
allowed in atomic context.

The worker, the queue's lock and its two wait queues all come from the scheduling seam
(`ownership.sched`), so a deterministic scheduler controls the hand-off too.

Lock order: the queue's internal lock is a leaf, never held while work runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from . import sched
from .context import may_sleep
from .marker import check_send
from .site import Site, here
from .sync.arc import Arc

__all__ = ["WorkItem", "Workqueue", "flush", "queue_work", "system_wq"]


class WorkItem(Protocol):
    """`impl WorkItem for T { type Pointer = Arc<T>; fn run(me: Arc<T>) }`."""

    @classmethod
    def run(cls, me: Arc[Any]) -> None: ...


W = TypeVar("W")


class Workqueue:
    """A workqueue with one worker thread (ordered, like `alloc_ordered_workqueue`).

    Everything that blocks or wakes goes through the scheduling seam: the queue's lock
    is a seam raw lock, the worker sleeps on one seam wait queue (`_more`) and flushers
    on another (`_idle`), and the worker is started with the seam's `spawn`.

    Invariants: `_pending` holds the identities of queued, not yet started items;
    `_running` counts items being run; `_lock` guards both, the queue and `_errors`,
    and is never held while a work item runs or while anyone sleeps.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"workqueue name must be a str, got {type(name).__name__}")
        s = sched.active()
        self.name = name
        self._lock = s.raw_lock()
        self._more = s.wait_queue()
        self._idle = s.wait_queue()
        self._queue: deque[tuple[Callable[[], None], Site, object]] = deque()
        self._pending: set[int] = set()
        self._running = 0
        self._errors: list[BaseException] = []
        self._worker: sched.ThreadHandle | None = None

    def _work_loop(self) -> None:
        lock = self._lock
        while True:
            lock.acquire()
            while not self._queue:
                # Register before releasing the lock: a wake in between is not lost.
                w = self._more.prepare()
                lock.release()
                w.wait(None)
                self._more.cancel(w)
                lock.acquire()
            fn, _site, key = self._queue.popleft()
            self._pending.discard(id(key))
            self._running += 1
            lock.release()
            try:
                fn()
            except BaseException as e:
                lock.acquire()
                self._errors.append(e)
                lock.release()
            lock.acquire()
            self._running -= 1
            idle = not self._queue and not self._running
            lock.release()
            if idle:
                self._idle.wake_all()

    def enqueue(self, fn: Callable[[], None], key: object, site: Site) -> bool:
        """Queue `fn` unless `key` is already pending (the model's `queue_work_on`)."""
        if not callable(fn):
            raise TypeError(f"enqueue needs a callable, got {type(fn).__name__}")
        lock = self._lock
        lock.acquire()
        if id(key) in self._pending:
            lock.release()
            return False
        self._pending.add(id(key))
        self._queue.append((fn, site, key))
        start = self._worker is None or not self._worker.is_alive()
        if start:
            # Marked before the lock drops, so one worker is started, not two.
            self._worker = _STARTING
        lock.release()
        if start:
            self._worker = sched.active().spawn(self._work_loop, f"kworker/{self.name}")
        self._more.wake_one()
        sched.preempt_point()
        return True

    def queue_work(self, item: Arc[W]) -> bool:
        """Queue `item`; `SendError` if `Arc[T]` is not Send. False if already pending."""
        if not isinstance(item, Arc):
            raise TypeError(f"queue_work takes an Arc of a WorkItem, got {type(item).__name__}")
        site = here()
        check_send(item, "queue_work()", site)
        value = item.get()
        run = getattr(type(value), "run", None)
        if run is None:
            raise TypeError(f"{type(value).__name__} is not a WorkItem (no run(me))")
        queued = self.enqueue(lambda: run(item), value, site)
        if not queued:
            item.drop()
        return queued

    @may_sleep
    def flush(self, timeout: float = 30.0) -> None:
        """Wait until all queued work has run; re-raise the first error of a work item.

        `TimeoutError` if the work has not finished after `timeout` seconds (a work item
        that never returns).
        """
        deadline = sched.monotonic() + timeout
        lock = self._lock
        lock.acquire()
        while self._queue or self._running:
            w = self._idle.prepare()
            lock.release()
            remaining = deadline - sched.monotonic()
            finished = remaining > 0 and w.wait(remaining)
            self._idle.cancel(w)
            lock.acquire()
            if not finished and (self._queue or self._running):
                lock.release()
                raise TimeoutError(f"workqueue {self.name}: work still running after {timeout}s")
        errors, self._errors = self._errors, []
        lock.release()
        if errors:
            raise errors[0]


class _Starting:
    """A worker handle placeholder while the worker thread is being started."""

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return True


_STARTING = _Starting()

system_wq = Workqueue("events")


def queue_work(item: Arc[W]) -> bool:
    """Queue on the system workqueue (`workqueue::system().enqueue(item)`)."""
    return system_wq.queue_work(item)


@may_sleep
def flush() -> None:
    """`flush_workqueue(system_wq)`."""
    system_wq.flush()
