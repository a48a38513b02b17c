"""Workqueues (rust/kernel/workqueue.rs): run a work item later on a worker thread.

`queue_work(item)` hands an `Arc` of a `WorkItem` to the system workqueue; a real
worker thread calls `type(item).run(item)` in process context (it may sleep, and holds
no locks of the queuer). The hand-off requires the `Arc` to be Send, so a `!Send`
value queued is a `SendError` at the `queue_work` call, naming both sites.

As in the kernel, a work item is queued at most once at a time: queueing one that is
already pending returns False and does nothing. `flush()` waits until everything
queued so far has run (for tests and teardown); an exception raised by a work item is
kept and re-raised by the next `flush()`.

Lock order: the queue's internal lock is a leaf, never held while work runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from . import sched
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

    Invariants: `_pending` holds the identities of queued, not yet started items.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queue: deque[tuple[Callable[[], None], Site, object]] = deque()
        self._pending: set[int] = set()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._errors: list[BaseException] = []
        self._worker: sched.ThreadHandle | None = None

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = sched.active().spawn(self._work_loop, f"kworker/{self.name}")

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                fn, _site, key = self._queue.popleft()
                self._pending.discard(id(key))
                self._running += 1
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - kept for flush() to re-raise
                with self._lock:
                    self._errors.append(e)
            finally:
                with self._lock:
                    self._running -= 1
                    if not self._queue and not self._running:
                        self._idle.notify_all()

    def enqueue(self, fn: Callable[[], None], key: object, site: Site) -> bool:
        """Queue `fn` unless `key` is already pending (the model's `queue_work_on`)."""
        with self._lock:
            if id(key) in self._pending:
                return False
            self._pending.add(id(key))
            self._queue.append((fn, site, key))
            self._ensure_worker()
            self._wake.notify()
        sched.active().preempt_point()
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

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until all queued work has run; re-raise the first error of a work item."""
        with self._lock:
            if self._queue or self._running:
                self._idle.wait_for(lambda: not self._queue and not self._running, timeout)
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]


system_wq = Workqueue("events")


def queue_work(item: Arc[W]) -> bool:
    """Queue on the system workqueue (`workqueue::system().enqueue(item)`)."""
    return system_wq.queue_work(item)


def flush() -> None:
    """`flush_workqueue(system_wq)`."""
    system_wq.flush()
