"""The scheduling seam: the one interface through which threads block, wake and yield.

Every place where a thread of the model may block, wake another thread or be
preempted goes through the `Scheduler` installed here:

* lock acquisition and release (`SpinLock`, `Mutex`, the mmap rwsem): `raw_lock()`;
* condition-variable waits and notifications (`CondVar`, rwsem waiters), and the
  wake-up of an interruptible waiter by a signal (`WaitQueue.wake(waiter)`):
  `wait_queue()`;
* hand-off to another thread (`task.spawn`, the workqueue workers): `spawn()`;
* preemption points (`might_sleep()`, every lock release): `preempt_point()`.

The default `ThreadScheduler` maps these onto real `threading` primitives. What it
promises, and what any replacement must keep: `raw_lock()` returns a non-reentrant
mutual-exclusion lock with `acquire(blocking=True, timeout=-1) -> bool` and
`release()`; a `WaitQueue` delivers no lost wakeups to a waiter registered (with
`prepare`) before the wake; `spawn()` starts the function on a new thread of control
and returns a handle whose `join()` waits for it. A deterministic scheduler in the
manner of loom or shuttle can take control of interleavings by installing itself with
`set_scheduler()` before the primitives are created, without touching them.

Where the seam is used: `ownership.sync.lock` (raw lock words; every release is a
preemption point), `ownership.sync.condvar` (wait queues), `ownership.context`
(`might_sleep()` and the end of every atomic section are preemption points),
`ownership.task.spawn` and `ownership.workqueue` (worker threads, the queue's lock and
its wait queues), and the simulated C side's rw-semaphores. The model's internal
bookkeeping locks (lockdep's graph, a refcount's atomic update, a borrow tracker's
list) are plain `threading.Lock`s: they are leaves held for a few instructions, never
across a seam call, so they are invisible to a scheduler that switches threads only at
seam calls.

Hot paths read `preempt_hook` (None while the default scheduler, whose preemption
point does nothing, is installed) instead of calling `active().preempt_point()`;
`set_scheduler()` keeps it in step, so an installed scheduler sees every point.

Thread identity and time also come from here, so that they follow the model thread
under a scheduler that runs several model threads on one OS thread (the explorer,
`ownership.explore`, runs them as greenlets):

* `current_id()` is the running model thread's id (`threading.get_ident` itself under
  the default scheduler, so the default path costs what it did);
* `current_name()` and `thread_name(tid)` name model threads in reports;
* `monotonic()` is the clock timed waits and hung-task polls read (virtual time under
  the explorer);
* `atomic_hook`, when set, is called before each atomic operation (refcount inc/dec)
  with the atomic object, making it a preemption point;
* `failure_hook`, when set, is told of every safety violation (and every exception a
  spawned thread dies of) as it is raised, so an explorer can end the schedule at once.

A scheduler provides these by defining methods of the same names (`current_id`,
`current_name`, `thread_name`, `monotonic`, `atomic_point`, `on_failure`); all are
optional, and `set_scheduler()` installs them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

__all__ = [
    "RawLock",
    "Scheduler",
    "ThreadHandle",
    "ThreadScheduler",
    "WaitQueue",
    "Waiter",
    "active",
    "atomic_hook",
    "current_id",
    "current_name",
    "failure_hook",
    "monotonic",
    "preempt_hook",
    "preempt_point",
    "set_scheduler",
    "thread_name",
]


class RawLock(Protocol):
    """The C-level lock word under every model lock (also a userspace mutex: `with`
    acquires and releases it, as `threading.Lock` does)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class Waiter(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


class WaitQueue(Protocol):
    """A wait queue (`wait_queue_head_t`): register, release your lock, then wait."""

    def prepare(self) -> Waiter: ...

    def cancel(self, waiter: Waiter) -> None: ...

    def wake_one(self) -> bool: ...

    def wake_all(self) -> int: ...

    def wake(self, waiter: Waiter) -> bool:
        """Wake one particular waiter, if it is still registered (a signal's wake-up)."""
        ...


class ThreadHandle(Protocol):
    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


class Scheduler(Protocol):
    def raw_lock(self) -> RawLock: ...

    def wait_queue(self) -> WaitQueue: ...

    def spawn(self, fn: Callable[[], None], name: str) -> ThreadHandle: ...

    def preempt_point(self) -> None: ...


class _EventWaiter:
    __slots__ = ("_ev",)

    def __init__(self) -> None:
        self._ev = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ev.wait(timeout)

    def set(self) -> None:
        self._ev.set()


class _ThreadWaitQueue:
    """FIFO wait queue on `threading.Event`s; a wake before the wait is not lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: deque[_EventWaiter] = deque()

    def prepare(self) -> Waiter:
        w = _EventWaiter()
        with self._lock:
            self._waiters.append(w)
        return w

    def cancel(self, waiter: Waiter) -> None:
        with self._lock:
            try:
                self._waiters.remove(waiter)  # type: ignore[arg-type]
            except ValueError:
                pass

    def wake_one(self) -> bool:
        with self._lock:
            if not self._waiters:
                return False
            w = self._waiters.popleft()
        w.set()
        return True

    def wake_all(self) -> int:
        with self._lock:
            ws = list(self._waiters)
            self._waiters.clear()
        for w in ws:
            w.set()
        return len(ws)

    def wake(self, waiter: Waiter) -> bool:
        with self._lock:
            try:
                self._waiters.remove(waiter)  # type: ignore[arg-type]
            except ValueError:
                return False
        assert isinstance(waiter, _EventWaiter)
        waiter.set()
        return True


class ThreadScheduler:
    """The default scheduler: real OS threads, real locks, the OS decides."""

    def raw_lock(self) -> RawLock:
        return threading.Lock()

    def wait_queue(self) -> WaitQueue:
        return _ThreadWaitQueue()

    def spawn(self, fn: Callable[[], None], name: str) -> ThreadHandle:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        return t

    def preempt_point(self) -> None:
        # Real threads are preempted by the interpreter; nothing to do.
        return None


_active: Scheduler = ThreadScheduler()

preempt_hook: Callable[[], None] | None = None
"""The installed scheduler's `preempt_point`, or None when it is the default no-op."""


current_id: Callable[[], int] = threading.get_ident
"""The running model thread's id (the OS thread's ident under the default scheduler)."""

monotonic: Callable[[], float] = time.monotonic
"""The clock of timed waits (the wall clock under the default scheduler)."""

atomic_hook: Callable[[object], None] | None = None
"""A scheduler's `atomic_point(obj)`, called before an atomic operation on `obj`
(refcount inc/dec); None unless a scheduler that defines it is installed."""

failure_hook: Callable[[BaseException], None] | None = None
"""Told of each violation as it is raised; None under the default scheduler."""

_name_hook: Callable[[], str] | None = None
_thread_name_hook: Callable[[int], str | None] | None = None


def current_name() -> str:
    """The running model thread's name, for reports."""
    hook = _name_hook
    return hook() if hook is not None else threading.current_thread().name


def thread_name(tid: int) -> str | None:
    """The name of model thread `tid` (an id from `current_id()`), if it still runs."""
    hook = _thread_name_hook
    if hook is not None:
        return hook(tid)
    for t in threading.enumerate():
        if t.ident == tid:
            return t.name
    return None


def active() -> Scheduler:
    """The scheduler in force."""
    return _active


def preempt_point() -> None:
    """A point where the running thread may be preempted."""
    hook = preempt_hook
    if hook is not None:
        hook()


def set_scheduler(s: Scheduler) -> Scheduler:
    """Install `s`, returning the previous one. Primitives made before keep theirs."""
    global _active, preempt_hook, current_id, monotonic, failure_hook, atomic_hook
    global _name_hook, _thread_name_hook
    prev, _active = _active, s
    noop = type(s) is ThreadScheduler
    preempt_hook = None if noop else s.preempt_point
    current_id = getattr(s, "current_id", threading.get_ident)
    monotonic = getattr(s, "monotonic", time.monotonic)
    failure_hook = getattr(s, "on_failure", None)
    atomic_hook = getattr(s, "atomic_point", None)
    _name_hook = getattr(s, "current_name", None)
    _thread_name_hook = getattr(s, "thread_name", None)
    return prev
