"""The scheduling seam: every block, wake and preemption point goes through `sched`.

A recording scheduler (the default one, counting) is installed before the primitives
are built; then locks, condvars, `might_sleep`, `task.spawn` and the workqueue are
exercised and each must have used the seam for the part it is responsible for.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from ownership import sched
from ownership.context import might_sleep, preempt_disabled
from ownership.sync import Arc, CondVar, Mutex, SpinLock
from ownership.task import spawn
from ownership.workqueue import Workqueue


class RecordingScheduler(sched.ThreadScheduler):
    """The real-thread scheduler, counting every call through the seam."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._lock:
            self.calls[what] += 1

    def raw_lock(self) -> sched.RawLock:
        self._count("raw_lock")
        return super().raw_lock()

    def wait_queue(self) -> sched.WaitQueue:
        self._count("wait_queue")
        return super().wait_queue()

    def spawn(self, fn: Callable[[], None], name: str) -> sched.ThreadHandle:
        self._count("spawn")
        return super().spawn(fn, name)

    def preempt_point(self) -> None:
        self._count("preempt_point")


@pytest.fixture
def recorder() -> Iterator[RecordingScheduler]:
    rec = RecordingScheduler()
    prev = sched.set_scheduler(rec)
    assert sched.preempt_hook is not None
    try:
        yield rec
    finally:
        sched.set_scheduler(prev)
    assert installed_hook() is None and sched.active() is prev


def installed_hook() -> object:
    return sched.preempt_hook


def test_locks_take_their_lock_word_from_the_seam(recorder: RecordingScheduler) -> None:
    SpinLock(0, name="seam spin")
    Mutex(0, name="seam mutex")
    assert recorder.calls["raw_lock"] == 2


def test_every_release_is_a_preemption_point(recorder: RecordingScheduler) -> None:
    spin = SpinLock(0, name="seam spin rel")
    mutex = Mutex(0, name="seam mutex rel")
    for _ in range(3):
        with spin.lock():
            pass
    before = recorder.calls["preempt_point"]
    for _ in range(3):
        with mutex.lock():
            pass
    # A mutex acquisition may sleep (a preemption point) and so does its release.
    assert recorder.calls["preempt_point"] - before == 6
    assert recorder.calls["preempt_point"] >= 9


def test_might_sleep_and_atomic_exit_are_preemption_points(recorder: RecordingScheduler) -> None:
    might_sleep()
    assert recorder.calls["preempt_point"] == 1
    with preempt_disabled():
        pass
    assert recorder.calls["preempt_point"] == 2


def test_condvar_waits_on_a_seam_wait_queue(recorder: RecordingScheduler) -> None:
    cv = CondVar("seam cv")
    lock = Mutex(False, name="seam cv lock")
    assert recorder.calls["wait_queue"] == 1

    def wake() -> None:
        with lock.lock() as g:
            g.data = True
            cv.notify_all()

    with lock.lock() as g:
        h = spawn(wake)
        while not g.data:
            cv.wait(g)
    h.join()
    assert recorder.calls["spawn"] == 1


def test_workqueue_uses_only_the_seam(recorder: RecordingScheduler) -> None:
    wq = Workqueue("seam-wq")
    assert recorder.calls["raw_lock"] == 1 and recorder.calls["wait_queue"] == 2

    class Item:
        ran = threading.Event()

        @classmethod
        def run(cls, me: Arc[Item]) -> None:
            cls.ran.set()
            me.drop()

    before = recorder.calls["preempt_point"]
    assert wq.queue_work(Arc.new(Item()))
    wq.flush()
    assert Item.ran.is_set()
    assert recorder.calls["spawn"] == 1  # The worker thread.
    assert recorder.calls["preempt_point"] > before  # The hand-off and flush().


def test_wait_queue_does_not_lose_a_wake_before_the_wait() -> None:
    wq = sched.ThreadScheduler().wait_queue()
    w = wq.prepare()
    assert wq.wake_one()
    assert w.wait(0) is True  # Woken before it slept: not lost.
    w2 = wq.prepare()
    wq.cancel(w2)
    assert not wq.wake_one() and wq.wake_all() == 0
