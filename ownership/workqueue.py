"""Workqueues (rust/kernel/workqueue.rs): run a work item later on a worker thread.

`queue_work(item)` hands an `Arc` of a `WorkItem` to the system workqueue; a real
worker thread calls `type(item).run(item)` in process context (it may sleep, and holds
no locks of the queuer). The hand-off requires the `Arc` to be Send, so a `!Send`
value queued is a `SendError` at the `queue_work` call, naming both sites.

As in the kernel, a work item is queued at most once at a time: queueing one that is
already pending returns False and does nothing. `flush()` waits until everything
queued so far has run (for tests and teardown; it may sleep); an exception raised by a
work item is kept and re-raised by the next `flush()`. A `run` that returns holding a
lock, atomic or inside RCU is a `workqueue-leak` report for that item (see the C
queue). Queueing never sleeps, so it is allowed in atomic context.

The queue itself (worker thread, lock, wait queues, the pending set) is the C
`workqueue_struct` of `ownership.bindings.workqueue`; `system_wq` wraps the C
`system_wq`, so `flush()` also waits for the simulated kernel's own deferred work
(`mmput_async`). The worker is started on the first queued item, not at import.

Lock order: the C queue's internal lock is a leaf, never held while work runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .bindings import workqueue as _c
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
    """A workqueue (`kernel::workqueue::Queue`): the Rust API over a C `workqueue_struct`.

    Invariants: `raw` is the C queue every item of this wrapper is queued on; the
    wrapper holds no state of its own, so two wrappers of one queue are the same queue.
    """

    __slots__ = ("raw",)

    def __init__(self, name: str) -> None:
        self.raw = _c.alloc_ordered_workqueue(name)

    @classmethod
    def from_raw(cls, raw: _c.WorkqueueStruct) -> Workqueue:
        """The Rust view of an existing C queue (`Queue::from_raw`)."""
        wq = cls.__new__(cls)
        wq.raw = raw
        return wq

    @property
    def name(self) -> str:
        return self.raw.name

    def enqueue(self, fn: Callable[[], None], key: object, site: Site) -> bool:
        """Queue `fn` unless `key` is already pending (the C `queue_work_on`)."""
        return self.raw.enqueue(fn, key, site)

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

        def work() -> None:
            run(item)

        # The name the worker's reports give the item (`workfn=`, as `%ps` prints it).
        work.__qualname__ = f"{type(value).__qualname__}.run"
        queued = self.enqueue(work, value, site)
        if not queued:
            item.drop()
        return queued

    @may_sleep
    def flush(self, timeout: float = 30.0) -> None:
        """Wait until all queued work has run; re-raise the first error of a work item.

        `TimeoutError` if the work has not finished after `timeout` seconds (a work item
        that never returns).
        """
        self.raw.flush(timeout)


system_wq = Workqueue.from_raw(_c.system_wq)


def queue_work(item: Arc[W]) -> bool:
    """Queue on the system workqueue (`workqueue::system().enqueue(item)`)."""
    return system_wq.queue_work(item)


@may_sleep
def flush() -> None:
    """`flush_workqueue(system_wq)`."""
    system_wq.flush()
