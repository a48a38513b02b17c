"""Tasks (rust/kernel/task.rs): `current()` and spawning threads of control.

`spawn(fn, *args)` runs `fn(*args)` on a new thread (a kthread in the model's terms),
through the scheduling seam. Everything handed over must be Send: the function (and
what its closure captures) and each argument; a `!Send` value raises `SendError` at
the hand-off, naming where the value was made. The handle's `join()` waits and
re-raises an exception from the thread.

`current()` returns the task the calling thread runs as (set by the simulated kernel
with `task.as_current()`): a `CurrentTask`, valid only while the thread still runs as
that task (`LifetimeError` otherwise) and only on that thread (`!Send`), whose `mm()` is
the task's address space without touching its refcount (it borrows from `current`).
`Task` is a refcounted task (`ARef[Task]` holds a `get_task_struct` count), for a driver
that must remember which process opened it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from . import sched
from .bindings.task import Task as _CTask
from .config import STATE
from .context import ctx, may_sleep
from .errors import KernelBug, LifetimeError, SendError
from .marker import NotThreadSafe, check_send, impl_send, impl_sync, not_send, not_sync, transfer
from .mm import MmWithUser
from .site import Site, here
from .view import CView

__all__ = ["CurrentTask", "JoinHandle", "Task", "current", "spawn"]

R = TypeVar("R")

_counter = 0
_counter_lock = threading.Lock()


class JoinHandle(Generic[R]):
    """A spawned thread: `join()` waits for it and returns its result."""

    def __init__(self) -> None:
        self._result: R | None = None
        self._error: BaseException | None = None
        self._handle: sched.ThreadHandle | None = None

    @may_sleep
    def join(self, timeout: float | None = 30.0) -> R:
        """Wait for the thread (it sleeps) and return its result, or re-raise its error."""
        assert self._handle is not None
        self._handle.join(timeout)
        if self._handle.is_alive():
            raise TimeoutError("spawned thread did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def is_finished(self) -> bool:
        return self._handle is not None and not self._handle.is_alive()


def spawn(fn: Callable[..., R], *args: Any, name: str | None = None) -> JoinHandle[R]:
    """Run `fn(*args)` on a new thread; every argument must be Send."""
    global _counter
    if not callable(fn):
        raise TypeError(f"spawn needs a callable, got {type(fn).__name__}")
    site = here()
    check_send(fn, "spawn()", site)
    for a in args:
        check_send(a, "spawn()", site)
    # The arguments are moved to the new thread: it takes over their `!Sync` affinity.
    claim = transfer(args, site)
    h: JoinHandle[R] = JoinHandle()

    def body() -> None:
        try:
            claim()
            h._result = fn(*args)
        except BaseException as e:
            h._error = e
            hook = sched.failure_hook
            if hook is not None:
                # An explorer ends the schedule at the first exception of any thread.
                hook(e)

    with _counter_lock:
        _counter += 1
        n = _counter
    h._handle = sched.active().spawn(body, name or f"kthread-{n}")
    return h


# ---------------------------------------------------------------------------------------
# current and tasks


@impl_send("get_task_struct/put_task_struct may be called on any thread")
@impl_sync("a Task's methods only read immutable fields")
class Task(CView[_CTask]):
    """A `struct task_struct`, refcounted with `get_task_struct`/`put_task_struct`.

    Invariants: values of this type are always refcounted; `_task` is the simulated task.
    """

    __slots__ = ("_task",)

    def __init__(self, raw: _CTask) -> None:
        self._task = raw

    @property
    def pid(self) -> int:
        return self._task.pid

    @property
    def tgid(self) -> int:
        return self._task.tgid

    @property
    def comm(self) -> str:
        return self._task.comm

    def as_ptr(self) -> _CTask:
        return self._task

    def signal_pending(self) -> bool:
        """Whether a signal is pending for this task (`Task::signal_pending`)."""
        return self._task.signal_pending()

    def inc_ref(self) -> None:
        """`get_task_struct`."""
        self._task.usage.inc()

    def dec_ref(self) -> None:
        """`put_task_struct` (never sleeps)."""
        self._task.usage.dec_and_test()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._task is self._task

    def __hash__(self) -> int:
        return id(self._task)

    def __repr__(self) -> str:
        return f"<Task {self._task.comm}:{self._task.pid}>"


@not_send("current is a property of the calling thread")
@not_sync("current is a property of the calling thread")
class CurrentTask(NotThreadSafe):
    """The task the calling thread runs as (`&CurrentTask`, from `current!()`).

    `pid` (and `tgid`) is the process id; `tid` is the calling thread's id within the
    process: every Python thread that runs as the process is one of its threads, and the
    first one's `tid` is the `pid` (the group leader).

    Invariants: valid while thread `_tid` runs as `_task` (`task.as_current()` still in
    force); every method checks it.
    """

    __slots__ = ("_task", "_tid", "origin_site")

    def __init__(self, raw: _CTask, site: Site) -> None:
        self._task = raw
        self._tid = sched.current_id()
        self.origin_site = site

    def _check(self, use: str) -> _CTask:
        if STATE.on:
            if sched.current_id() != self._tid:
                raise SendError(
                    f"CurrentTask.{use}() on another thread than the one it describes",
                    obj=f"current ({self._task.comm}:{self._task.pid})",
                    site=here(),
                    origin=self.origin_site,
                    origin_label="current() was read",
                )
            if ctx.task is not self._task:
                raise LifetimeError(
                    f"CurrentTask.{use}() after the thread stopped running as that task",
                    rule="current-task-expired",
                    obj=f"current ({self._task.comm}:{self._task.pid})",
                    site=here(),
                    origin=self.origin_site,
                    origin_label="current() was read",
                )
        return self._task

    @property
    def pid(self) -> int:
        return self._check("pid").pid

    @property
    def tgid(self) -> int:
        return self._check("tgid").tgid

    @property
    def tid(self) -> int:
        """The id of the calling thread within the process (the kernel's `current->pid`)."""
        return self._check("tid").thread_id()

    @property
    def comm(self) -> str:
        return self._check("comm").comm

    def mm(self) -> MmWithUser | None:
        """The address space of the current task, or None for a kernel thread.

        The refcount is not touched: the reference borrows from `current`, whose
        `mm_users` count keeps the address space alive. Take `ARef.from_ref(...)` to keep it.
        """
        t = self._check("mm")
        mm = t.mm
        if mm is None:
            return None
        # SAFETY: the current task holds an mm_users count of its mm while it runs.
        return MmWithUser._view(mm)

    def signal_pending(self) -> bool:
        """Whether a signal is pending for the current task (`signal_pending(current)`)."""
        return self._check("signal_pending").signal_pending()

    def group_leader(self) -> Task:
        """The thread-group leader (the process); in the model, the task itself."""
        return Task._view(self._check("group_leader"))

    def task(self) -> Task:
        """This task as a refcountable `Task` (take `ARef.from_ref(...)` to keep it)."""
        return Task._view(self._check("task"))

    def __repr__(self) -> str:
        return f"<CurrentTask {self._task.comm}:{self._task.pid}>"


def current() -> CurrentTask:
    """The task the calling thread runs as (`current!()`)."""
    t = ctx.task
    if not isinstance(t, _CTask):
        raise KernelBug(
            "no-current-task",
            "current() on a thread that runs as no task of the simulated kernel "
            "(use `with task.as_current():`)",
        )
    return CurrentTask(t, here())
