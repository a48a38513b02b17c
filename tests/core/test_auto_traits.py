"""Auto traits follow the fields: a plain struct is Send (Sync) iff every field is.

rustc derives `Send` and `Sync` of a struct from its fields; the model derives them from
the values a plain class instance holds (its `__slots__` and `__dict__`), at every level
of nesting, through lists, dicts and closures. A struct holding a guard, a `CurrentTask`
or any `!Send` value handed to `spawn` or `queue_work` is a `SendError` at the hand-off
that names the field path and where the `!Send` value was made. An explicit declaration
(`impl_send`, with its reason) overrides, as `unsafe impl Send` does. Annotated fields
whose declared type is proven Send are skipped without a walk, but only while the value
in them is of that type. All hand-offs run on real threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ownership.alloc import GFP_KERNEL, KBox
from ownership.bindings import Kernel
from ownership.bindings import Task as CTask
from ownership.errors import SendError, SyncError
from ownership.marker import impl_send, is_send, is_sync, not_sync, share
from ownership.sync import Arc, Mutex, MutexGuard, SpinLock
from ownership.task import CurrentTask, current, spawn
from ownership.workqueue import Workqueue
from tests.expect import assert_splat, line


@pytest.fixture
def proc() -> Iterator[CTask]:
    """A process of a fresh simulated kernel, with the test's thread running as it."""
    k = Kernel(pages_per_node=64)
    p = k.spawn_process("app")
    with p.as_current():
        yield p
    p.exit()
    assert not k.leaks(), k.leaks()


class Stats:
    """A plain nested struct."""

    def __init__(self) -> None:
        self.hits = 0
        self.guard: MutexGuard[int] | None = None


class Driver:
    """A plain driver struct: no declaration, so its fields decide."""

    def __init__(self, shared: Arc[Mutex[list[int]]]) -> None:
        self.name = "drv"
        self.shared = shared
        self.sizes = [1, 2, 3]
        self.stats = Stats()
        self.boxed = KBox.new(7, GFP_KERNEL)


def _driver() -> Driver:
    return Driver(Arc.new(Mutex([0], name="Driver::shared")))


def _release(d: Driver) -> None:
    d.boxed.drop()
    d.shared.drop()


def _run(d: Driver) -> int:
    with d.shared.get().lock() as g:
        g.data.append(len(d.sizes))
    return d.stats.hits + d.boxed.get()


def test_a_driver_struct_of_send_fields_is_handed_over_and_runs() -> None:
    d = _driver()
    assert is_send(d) and is_sync(d)
    assert spawn(_run, d).join() == 7
    with d.shared.get().lock() as g:
        assert g.data == [0, 3]
    _release(d)


def test_a_guard_two_structs_deep_makes_the_driver_not_send() -> None:
    d = _driver()
    lock = Mutex(0, name="Driver::stats lock")
    d.stats.guard = lock.lock()
    taken = line() - 1
    with pytest.raises(SendError) as ei:
        spawn(_run, d)
    handed = line() - 1
    assert_splat(
        ei,
        "send",
        cls=SendError,
        lines=[handed, taken],
        site="spawn(_run, d)",
        origin="d.stats.guard = lock.lock()",
        mentions=["MutexGuard is !Send", "in Driver.stats.guard", "Driver is !Send too"],
    )
    # The refusal handed nothing over: the guard is still this thread's, and usable.
    assert d.stats.guard.data == 0
    d.stats.guard.drop()
    d.stats.guard = None
    assert spawn(_run, d).join() == 7  # Once the field no longer holds it, it is Send.
    _release(d)


def test_a_not_send_value_in_a_list_field_or_a_captured_struct_is_found() -> None:
    d = _driver()
    spin = SpinLock(0, name="list member")
    g = spin.lock()
    taken = line() - 1
    d.sizes.append(g)  # type: ignore[arg-type]
    with pytest.raises(SendError) as ei:
        spawn(lambda: d.name)
    handed = line() - 1
    assert_splat(
        ei,
        "send",
        cls=SendError,
        lines=[handed, taken],
        mentions=["<lambda> captured 'd': Driver.sizes[3]"],
    )
    g.drop()
    d.sizes.pop()
    _release(d)


class Worker:
    """A work item whose struct records the task that queued it."""

    def __init__(self) -> None:
        self.done = False
        self.queued_by: CurrentTask | CTask | None = None

    @classmethod
    def run(cls, me: Arc[Worker]) -> None:
        me.get().done = True
        me.drop()


def test_a_work_item_holding_current_is_refused_at_queue_work(proc: CTask) -> None:
    wq = Workqueue("auto-traits")
    w = Worker()
    w.queued_by = current()
    made = line() - 1
    item = Arc.new(w)
    with pytest.raises(SendError) as ei:
        wq.queue_work(item)
    queued = line() - 1
    assert_splat(
        ei,
        "send",
        cls=SendError,
        lines=[queued, made],
        mentions=["CurrentTask is !Send", "queue_work()", "Worker.queued_by"],
    )
    w.queued_by = proc  # The task itself (refcounted, Send) may travel.
    assert wq.queue_work(item)
    wq.flush()
    assert w.done


@impl_send("the guard is released by the thread that receives the struct, in order")
class HandsOverAGuard:
    """An explicit declaration overrides the fields (`unsafe impl Send`)."""

    def __init__(self, guard: MutexGuard[int]) -> None:
        self.guard = guard


def test_an_explicit_declaration_overrides_the_fields() -> None:
    lock = Mutex(0, name="declared hand-over")
    h = HandsOverAGuard(lock.lock())
    assert is_send(h)
    spawn(lambda x: None, h).join()  # Accepted: the declaration's reason vouches for it.
    h.guard.drop()


@dataclass
class Annotated:
    """Declared fields: their types decide once per class, the values only if they differ."""

    count: int = 0
    names: list[str] = field(default_factory=list)
    extra: object = None


def test_annotated_fields_are_trusted_only_for_their_declared_types() -> None:
    a = Annotated(1, ["x"])
    assert spawn(lambda v: v.count, a).join() == 1
    lock = Mutex(0, name="mis-annotated")
    g = lock.lock()
    taken = line() - 1
    a.count = g  # type: ignore[assignment]  # A value of another type than declared.
    with pytest.raises(SendError) as ei:
        spawn(lambda v: v.count, a)
    assert_splat(ei, "send", cls=SendError, lines=[taken], mentions=["Annotated.count"])
    a.count = 0
    a.extra = g
    with pytest.raises(SendError) as ei:
        spawn(lambda v: v.count, a)
    assert_splat(ei, "send", cls=SendError, lines=[taken], mentions=["Annotated.extra"])
    a.extra = None
    g.drop()


class Node:
    """A struct that points back at itself, directly and through an `Arc`."""

    def __init__(self) -> None:
        self.me: Node | None = self
        self.peer: Arc[Node] | None = None


def test_cycles_are_send_and_terminate() -> None:
    n = Node()
    other = Node()
    other.peer = Arc.new(n)
    n.peer = Arc.new(other)
    assert is_send(n) and is_sync(n)
    assert spawn(lambda x: x is x.me, n).join()
    n.peer.drop()
    other.peer.drop()


@not_sync("a Cell-like counter: unsynchronised interior mutability")
class Cell:
    def __init__(self) -> None:
        self.value = 0


class HoldsACell:
    def __init__(self) -> None:
        self.cell = Cell()


def test_sync_follows_the_fields_too() -> None:
    h = HoldsACell()
    assert is_send(h) and not is_sync(h)
    with pytest.raises(SyncError) as ei:
        spawn(lambda r: None, share(h))
    shared = line() - 1
    assert_splat(ei, "sync", cls=SyncError, lines=[shared], mentions=["HoldsACell is !Sync"])
    assert spawn(lambda v: v.cell.value, h).join() == 0  # Moving it is fine.
