"""`CondVar` (rust/kernel/sync/condvar.rs): wait for a condition with a lock released.

`wait(guard)` atomically releases the guard's lock, sleeps until notified, and takes
the lock again before returning; the guard stays valid across the wait. Waiting may
sleep, so it is an `AtomicSleepError` when the thread is in atomic context for any
reason *other than* the guard's own spinlock (which the wait releases): waiting while
holding another spinlock, or under `rcu_read_lock()`, is a sleep in atomic context.
Spurious wakeups are allowed, as in the kernel: callers wait in a loop.

`wait_interruptible(guard)` sleeps in `TASK_INTERRUPTIBLE`: a signal sent to the
current task (`task.send_signal(sig)`, the simulated `kill`) ends the wait too, and, as
upstream, it returns whether a signal is pending, so the caller returns `EINTR`
(`ERESTARTSYS`). A signal already pending when it is called ends it at once, after the
lock was released and re-taken. A thread that runs as no task (a kernel thread) is
never signalled. The signal's wake-up goes through the scheduling seam's wait queue
(`WaitQueue.wake`), so the explorer orders it against the wait and the notifications.

Lock order: the wait queue's internal lock is a leaf; the guard's lock is released
while the thread sleeps.
"""

from __future__ import annotations

from typing import Any

from .. import sched
from ..config import STATE
from ..context import ctx, might_sleep
from ..errors import LifetimeError
from ..pin import Pinned
from ..site import here
from .lock import Guard

__all__ = ["CondVar"]


class CondVar(Pinned):
    """A condition variable; pinned in place like every kernel wait queue.

    Invariants: a waiter is registered on `_wq` before its lock is released, so no
    notification between the release and the sleep is lost.
    """

    __slots__ = ("__ownership_pinned_at__", "_wq", "name")

    def __init__(self, name: str | None = None) -> None:
        site = here()
        self.name = name or f"CondVar@{site.short()}"
        self._wq = sched.active().wait_queue()
        # INVARIANT: pinned where built, as `new_condvar!` in `pin_init!`.
        self._pin_here(site)

    def wait(self, guard: Guard[Any]) -> None:
        """Release `guard`'s lock, sleep until notified, re-take it."""
        self.wait_timeout(guard, None)

    def wait_interruptible(self, guard: Guard[Any]) -> bool:
        """As `wait`, but a signal ends the wait too; returns whether a signal is pending."""
        task = ctx.task
        pending = getattr(task, "signal_pending", None)
        if pending is None:
            # A thread that runs as no task of the simulated kernel has no signals.
            self.wait_timeout(guard, None)
            return False
        self._wait(guard, None, task)
        return bool(pending())

    def wait_timeout(self, guard: Guard[Any], timeout: float | None) -> bool:
        """As `wait`, giving up after `timeout` seconds; False if it timed out."""
        return self._wait(guard, timeout, None)

    def _wait(self, guard: Guard[Any], timeout: float | None, task: Any) -> bool:
        """The wait; `task`, if given, is the current task and the sleep interruptible."""
        if not isinstance(guard, Guard):
            raise TypeError(f"CondVar.wait takes a lock guard, got {type(guard).__name__}")
        if not guard.is_held() and STATE.on:
            raise LifetimeError(
                "CondVar.wait on a guard that was already released",
                obj=guard.lock.describe(),
                site=here(),
                origin=guard.origin_site,
                origin_label="the lock was taken",
            )
        # The wait releases the guard's own spinlock before sleeping: only *other*
        # atomic sections make this a sleep in atomic context.
        might_sleep(what="CondVar.wait()", exclude=guard._sec)
        site = here()
        w = self._wq.prepare()
        # Registered before the lock drops, so a signal sent in between is not lost; with
        # a signal already pending the thread does not sleep (`schedule()` returns).
        sleep = task is None or task.add_signal_waiter(self._wq, w)
        guard._unlock_for_wait()
        try:
            woken = w.wait(timeout) if sleep else True
        finally:
            self._wq.cancel(w)
            if task is not None:
                task.remove_signal_waiter(w)
            guard._relock_after_wait(site)
        return woken

    def notify_one(self) -> None:
        self._wq.wake_one()

    def notify_all(self) -> None:
        self._wq.wake_all()
