"""Tasks (rust/kernel/task.rs): `current()` and spawning threads of control.

`spawn(fn, *args)` runs `fn(*args)` on a new thread (a kthread in the model's terms),
through the scheduling seam. Everything handed over must be Send: the function (and
what its closure captures) and each argument; a `!Send` value raises `SendError` at
the hand-off, naming where the value was made. The handle's `join()` waits and
re-raises an exception from the thread.

`current()` returns the task the calling thread runs as (set by the simulated kernel
with `task.as_current()`); see `ownership.task.CurrentTask`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from . import sched
from .marker import check_send
from .site import here

__all__ = ["JoinHandle", "spawn"]

R = TypeVar("R")

_counter = 0
_counter_lock = threading.Lock()


class JoinHandle(Generic[R]):
    """A spawned thread: `join()` waits for it and returns its result."""

    def __init__(self) -> None:
        self._result: R | None = None
        self._error: BaseException | None = None
        self._handle: sched.ThreadHandle | None = None

    def join(self, timeout: float | None = 30.0) -> R:
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
    h: JoinHandle[R] = JoinHandle()

    def body() -> None:
        try:
            h._result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised by join()
            h._error = e

    with _counter_lock:
        _counter += 1
        n = _counter
    h._handle = sched.active().spawn(body, name or f"kthread-{n}")
    return h
