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

Upstream's safe API is here too. A struct declares its `work_struct` fields with
`Work` (`new_work("MyStruct::work", id=1)`) and registers them with the
`impl_has_work` class decorator (`impl_has_work! { impl HasWork<Self, 1> for MyStruct {
self.work_1 } }` is `@impl_has_work(work_1=1)`); its `WorkItem<ID>` impls are static
methods marked `@work_item(ID)` (`run` itself is `WorkItem<0>`). `system().enqueue(arc,
id)` queues the `Arc` through the field of that id: each field is its own `work_struct`,
so two fields of one struct are queued independently. As upstream's `Result<(),
Arc<T>>`, an enqueue returns None when the item was queued (the queue owns the `Arc`
until `run` takes it) and hands the `Arc` back when that field is already queued: the
caller still owns it and must drop it (the older `queue_work` drops it itself and
returns False). Python has no const generics or macros, so the id is an argument and
the registration a decorator; what `impl_has_work!`'s `unsafe` promise says (the named
field is a `Work` of that id) is checked at each enqueue.

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

__all__ = [
    "HasWork",
    "Queue",
    "Work",
    "WorkItem",
    "Workqueue",
    "flush",
    "impl_has_work",
    "new_work",
    "queue_work",
    "system",
    "system_wq",
    "work_item",
]


class WorkItem(Protocol):
    """`impl WorkItem for T { type Pointer = Arc<T>; fn run(me: Arc<T>) }`."""

    @classmethod
    def run(cls, me: Arc[Any]) -> None: ...


W = TypeVar("W")
C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


class Work:
    """`Work<T, ID>`: one `work_struct` field of a work item (`new_work!(name)`).

    Invariants: `id` is the const `ID` of the field; the object itself is the
    `work_struct`, the key the C queue knows it by while it is pending.
    """

    __slots__ = ("id", "name")

    def __init__(self, name: str | None = None, id: int = 0) -> None:
        if type(id) is not int or id < 0:
            raise TypeError(f"a Work id is an int >= 0 (a u64), got {id!r}")
        self.name = name if name is not None else f"work@{here().short()}"
        self.id = id

    @classmethod
    def new(cls, name: str | None = None, id: int = 0) -> Work:
        """`Work::new(name, key)`."""
        return cls(name, id)

    def __repr__(self) -> str:
        return f"<Work {self.name!r} id={self.id}>"


def new_work(name: str | None = None, id: int = 0) -> Work:
    """`new_work!("MyStruct::work")`: a `Work` initialiser (here, the field itself)."""
    return Work(name, id)


class HasWork(Protocol):
    """`HasWork<T, ID>`: a class registered by `impl_has_work` (`{id: field name}`)."""

    __ownership_has_work__: dict[int, str]


def impl_has_work(*fields: str, **with_ids: int) -> Callable[[C], C]:
    """`impl_has_work! { impl HasWork<Self, ID> for T { self.field } }` as a decorator.

    `@impl_has_work("work")` registers the field `work` as `Work<T, 0>`;
    `@impl_has_work(work_1=1, work_2=2)` registers two fields with ids 1 and 2.
    """
    table: dict[int, str] = {}
    for name, id_ in [(f, 0) for f in fields] + list(with_ids.items()):
        if not isinstance(name, str) or type(id_) is not int or id_ < 0:
            raise TypeError(f"impl_has_work takes field names and int ids, got {name!r}={id_!r}")
        if id_ in table:
            raise TypeError(f"impl_has_work: fields {table[id_]!r} and {name!r} share id {id_}")
        table[id_] = name

    def register(cls: C) -> C:
        have: dict[int, str] = dict(getattr(cls, "__ownership_has_work__", {}))
        have.update(table)
        setattr(cls, "__ownership_has_work__", have)  # noqa: B010
        return cls

    return register


def work_item(id: int) -> Callable[[F], F]:
    """Mark a static method `run(this: Arc[T])` as `impl WorkItem<ID> for T`."""
    if type(id) is not int or id < 0:
        raise TypeError(f"a WorkItem id is an int >= 0, got {id!r}")

    def mark(fn: F) -> F:
        target = fn.__func__ if isinstance(fn, staticmethod) else fn
        setattr(target, "__ownership_work_item_id__", id)  # noqa: B010
        return fn

    return mark


def _run_for(cls: type, id_: int) -> Callable[[Arc[Any]], None] | None:
    """The `WorkItem<id_>::run` of `cls`: a method marked `@work_item(id_)`, or `run`
    for id 0."""
    for klass in cls.__mro__:
        for attr in vars(klass).values():
            fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
            if getattr(fn, "__ownership_work_item_id__", None) == id_:
                bound: Callable[[Arc[Any]], None] = getattr(cls, fn.__name__)
                return bound
    if id_ == 0:
        run: Callable[[Arc[Any]], None] | None = getattr(cls, "run", None)
        return run
    return None


def _work_field(value: object, id_: int) -> Work:
    """The `Work<T, id_>` field of `value`, as its `impl_has_work` registration names."""
    table: dict[int, str] | None = getattr(type(value), "__ownership_has_work__", None)
    name = table.get(id_) if table is not None else None
    if name is None:
        raise TypeError(
            f"{type(value).__name__} has no HasWork<_, {id_}> (register its Work field "
            "with @impl_has_work)"
        )
    work = getattr(value, name, None)
    if not isinstance(work, Work) or work.id != id_:
        raise TypeError(
            f"impl_has_work of {type(value).__name__}: field {name!r} is not a Work of id "
            f"{id_} (got {work!r})"
        )
    return work


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

    def _queue_work_on(self, fn: Callable[[], None], key: object, site: Site) -> bool:
        """Queue `fn` unless `key` is already pending (the C `queue_work_on`)."""
        return self.raw.enqueue(fn, key, site)

    def enqueue(self, item: Arc[W], id: int = 0) -> Arc[W] | None:
        """`Queue::enqueue::<Arc<T>, ID>(item)`: queue `item` through its `Work` field of
        that id. None if queued; the `Arc` itself, back to the caller, if that field was
        already queued. `SendError` if `Arc[T]` is not Send."""
        if not isinstance(item, Arc):
            raise TypeError(f"enqueue takes an Arc of a work item, got {type(item).__name__}")
        site = here()
        check_send(item, "enqueue()", site)
        value = item.get()
        work = _work_field(value, id)
        run = _run_for(type(value), id)
        if run is None:
            raise TypeError(f"{type(value).__name__} has no WorkItem<{id}> (no run for id {id})")
        if self._queue_work_on(lambda: run(item), work, site):
            return None
        # INVARIANT: not queued, so the queue took nothing: the caller keeps its count.
        return item

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
        queued = self._queue_work_on(work, value, site)
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


Queue = Workqueue
"""`kernel::workqueue::Queue`, the upstream name of `Workqueue`."""

system_wq = Workqueue.from_raw(_c.system_wq)


def system() -> Workqueue:
    """`workqueue::system()`: the system workqueue."""
    return system_wq


def queue_work(item: Arc[W]) -> bool:
    """Queue on the system workqueue (`workqueue::system().enqueue(item)`)."""
    return system_wq.queue_work(item)


@may_sleep
def flush() -> None:
    """`flush_workqueue(system_wq)`."""
    system_wq.flush()
