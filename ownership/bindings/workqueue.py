"""`struct workqueue_struct` (kernel/workqueue.c): deferred work run by a worker thread.

The C side of `kernel::workqueue`. A work item here is a plain callable with a key (the
`struct work_struct` it stands for): `queue_work_on` queues it unless that key is
already pending, a worker thread runs it in process context (it may sleep, and holds no
locks of the queuer), and `flush_workqueue` waits until everything queued so far has
run. An exception raised by a work item is kept and re-raised by the next `flush()`.
A work item must return with the context it was started with, as `process_one_work`
checks: one that returns holding a lock, with preemption disabled or inside an RCU read
section is a `LockError` (rule `workqueue-leak`, "workqueue leaked atomic, lock or RCU")
naming that item and where it was queued, kept for `flush()` like its other errors; the
worker's context is then restored, so the next item is not blamed for it.
Queueing never sleeps, so it is allowed in atomic context. The simulated kernel queues
on `system_wq` itself (`mmput_async`); the Rust side (`ownership.workqueue`) wraps these
queues with the `Arc`-based `WorkItem` API and its Send check.

The worker, the queue's lock and its two wait queues all come from the scheduling seam
(`ownership.sched`), so a deterministic scheduler controls the hand-off too. The worker
thread is started on the first `enqueue`, never at construction: importing this module
(which makes `system_wq`) starts no thread. The lock and wait queues are taken from the
scheduler active when the queue is made.

Lock order: the queue's internal lock is a leaf, never held while work runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .. import sched
from ..context import ContextMark, check_context_returned, context_mark, may_sleep
from ..errors import LockError, SafetyViolation
from ..site import Site

__all__ = ["WorkqueueStruct", "alloc_ordered_workqueue", "system_wq"]


class WorkqueueStruct:
    """`struct workqueue_struct` with one worker thread (as `alloc_ordered_workqueue`).

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
            fn, site, key = self._queue.popleft()
            self._pending.discard(id(key))
            self._running += 1
            lock.release()
            mark = context_mark()
            error: BaseException | None = None
            try:
                fn()
            except BaseException as e:
                error = e
            leak = self._leak(mark, fn, site)
            if leak is not None and not isinstance(error, SafetyViolation):
                # A work item's own violation stands; a plain error is the leak's cause.
                leak.__cause__ = error
                error = leak
            if error is not None:
                lock.acquire()
                self._errors.append(error)
                lock.release()
            lock.acquire()
            self._running -= 1
            idle = not self._queue and not self._running
            lock.release()
            if idle:
                self._idle.wake_all()

    def _leak(self, mark: ContextMark, fn: Callable[[], None], site: Site) -> LockError | None:
        """The `process_one_work` check after `fn` returned (the context is restored)."""
        name = getattr(fn, "__qualname__", None) or repr(fn)
        return check_context_returned(
            mark,
            f"workqueue leaked atomic, lock or RCU: {self.name} (workfn={name})",
            site,
            f"work item {name} queued on workqueue '{self.name}'",
            rule="workqueue-leak",
        )

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


def alloc_ordered_workqueue(name: str) -> WorkqueueStruct:
    """`alloc_ordered_workqueue(name, 0)`: a new queue that runs one item at a time."""
    return WorkqueueStruct(name)


system_wq = WorkqueueStruct("events")
"""`system_wq`: the queue `schedule_work()` and the simulated kernel's own deferrals use."""
