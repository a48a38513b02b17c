"""Workqueue: `queue_work(arc)` runs `T::run(me)` on a real worker thread.

The slides' Binder example (`impl WorkItem for Process`: take the deferred work under
the lock, act on it outside), pending de-duplication, error propagation through
`flush()`, the Send check at the hand-off, and `flush()` being a sleeping call.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from ownership.bindings import workqueue as c_workqueue
from ownership.context import in_atomic
from ownership.errors import AtomicSleepError, SendError
from ownership.marker import impl_send, impl_sync, not_sync
from ownership.site import here
from ownership.sync import Arc, Mutex, SpinLock
from ownership.workqueue import Workqueue, flush, queue_work, system_wq
from tests.expect import assert_splat, line

PROC_DEFER_FLUSH = 1
PROC_DEFER_RELEASE = 2


class ProcessInner:
    def __init__(self) -> None:
        self.defer_work = 0


@impl_send("a Process is only reached through its locks")
@impl_sync("every field is behind a lock")
class Process:
    def __init__(self) -> None:
        self.inner = SpinLock(ProcessInner(), name="Process::inner (wq)")
        self.log: Mutex[list[str]] = Mutex([], name="Process::log")
        self.ran_on: list[str] = []

    def deferred_flush(self) -> None:
        with self.log.lock() as g:  # Sleeping is fine in a work item.
            g.data.append("flush")

    def deferred_release(self) -> None:
        with self.log.lock() as g:
            g.data.append("release")

    @classmethod
    def run(cls, me: Arc[Process]) -> None:
        """`impl workqueue::WorkItem for Process`."""
        this = me.get()
        this.ran_on.append(threading.current_thread().name)
        with this.inner.lock() as inner:
            defer = inner.data.defer_work
            inner.data.defer_work = 0
        if defer & PROC_DEFER_FLUSH:
            this.deferred_flush()
        if defer & PROC_DEFER_RELEASE:
            this.deferred_release()
        me.drop()


class Failing:
    @classmethod
    def run(cls, me: Arc[Failing]) -> None:
        me.drop()
        raise RuntimeError("work item failed")


class Blocker:
    """A work item that waits until the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()

    @classmethod
    def run(cls, me: Arc[Blocker]) -> None:
        me.get().started.set()
        me.get().go.wait(5)
        me.drop()


@not_sync("holds a per-thread cache")
class NotSyncItem:
    @classmethod
    def run(cls, me: Arc[NotSyncItem]) -> None:
        me.drop()


def test_binder_deferred_work_runs_on_a_worker() -> None:
    proc = Arc.new(Process())
    with proc.get().inner.lock() as g:
        g.data.defer_work = PROC_DEFER_FLUSH | PROC_DEFER_RELEASE
        assert queue_work(proc.clone())  # Queueing never sleeps: fine under a spinlock.
    flush()
    with proc.get().log.lock() as g:
        assert g.data == ["flush", "release"]
    assert proc.get().ran_on[0].startswith("kworker/")
    assert proc.refcount() == 1
    proc.drop()


def test_queueing_a_pending_item_is_a_no_op() -> None:
    wq = Workqueue("test-pending")
    blocker = Arc.new(Blocker())
    assert wq.queue_work(blocker.clone())
    blocker.get().started.wait(5)
    proc = Arc.new(Process())
    assert wq.queue_work(proc.clone())
    assert not wq.queue_work(proc.clone())  # Still pending: the extra count is dropped.
    assert proc.refcount() == 2
    blocker.get().go.set()
    wq.flush()
    assert proc.get().ran_on and len(proc.get().ran_on) == 1
    assert proc.refcount() == 1
    assert wq.queue_work(proc.clone())  # No longer pending: queued again.
    wq.flush()
    assert len(proc.get().ran_on) == 2
    proc.drop()
    blocker.drop()


def test_error_in_a_work_item_is_raised_by_flush() -> None:
    wq = Workqueue("test-errors")
    assert wq.queue_work(Arc.new(Failing()))
    with pytest.raises(RuntimeError, match="work item failed"):
        wq.flush()
    wq.flush()  # Reported once.
    proc = Arc.new(Process())
    wq.queue_work(proc.clone())  # The worker survived the error.
    wq.flush()
    assert proc.get().ran_on
    proc.drop()


def test_queue_work_of_a_not_send_arc() -> None:
    arc = Arc.new(NotSyncItem())
    made = line() - 1
    with pytest.raises(SendError) as ei:
        queue_work(arc)
    queued = line() - 1
    assert_splat(ei, "send", cls=SendError, lines=[queued, made])
    assert arc.refcount() == 1
    arc.drop()


def test_flush_is_a_sleeping_call() -> None:
    lock = SpinLock(0, name="flush under spin")
    with lock.lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            flush()
        flushed = line() - 1
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[flushed, taken])
    assert not in_atomic()


def test_flush_times_out_on_a_stuck_item() -> None:
    wq = Workqueue("test-stuck")
    blocker = Arc.new(Blocker())
    wq.queue_work(blocker.clone())
    blocker.get().started.wait(5)
    with pytest.raises(TimeoutError):
        wq.flush(timeout=0.05)
    blocker.get().go.set()
    wq.flush()
    blocker.drop()


def test_bad_work_items() -> None:
    with pytest.raises(TypeError):
        queue_work(Process())  # type: ignore[arg-type]
    arc = Arc.new(ProcessInner())
    with pytest.raises(TypeError):
        queue_work(arc)
    arc.drop()
    with pytest.raises(TypeError):
        Workqueue(3)  # type: ignore[arg-type]


def test_importing_the_workqueues_starts_no_thread() -> None:
    # The worker of a queue (system_wq included) is started by the first queued item, so
    # an import leaves the process single-threaded (a deterministic scheduler installed
    # later still controls every worker).
    code = (
        "import threading\n"
        "before = threading.active_count()\n"
        "import ownership.workqueue, ownership.bindings.workqueue, ownership.mm\n"
        "print(threading.active_count() - before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_the_rust_system_wq_wraps_the_c_one() -> None:
    # mmput_async queues on the C system_wq; `flush()` must wait for that work too.
    assert system_wq.raw is c_workqueue.system_wq
    assert system_wq.name == "events"
    done: list[str] = []
    assert c_workqueue.system_wq.enqueue(lambda: done.append("c"), object(), here())
    flush()
    assert done == ["c"]
