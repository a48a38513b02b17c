"""Workqueue's safe API as upstream's doc examples use it: `Work` fields with ids,
`impl_has_work`, `system().enqueue(arc)`, and a failed enqueue handing the `Arc` back.
"""

from __future__ import annotations

import threading

import pytest

from ownership.errors import SendError
from ownership.marker import impl_send, impl_sync, not_sync
from ownership.sync import Arc, Mutex
from ownership.sync.arc import live_arcs
from ownership.workqueue import (
    Queue,
    Work,
    Workqueue,
    impl_has_work,
    new_work,
    system,
    work_item,
)


@impl_send("its fields are a Mutex and work_structs")
@impl_sync("its fields are a Mutex and work_structs")
@impl_has_work("work")
class MyStruct:
    """`struct MyStruct { value: i32, #[pin] work: Work<MyStruct> }`."""

    def __init__(self, value: int, log: Mutex[list[str]]) -> None:
        self.value = value
        self.log = log
        self.work = new_work("MyStruct::work")

    @staticmethod
    def run(this: Arc[MyStruct]) -> None:
        """`impl WorkItem for MyStruct`."""
        with this.get().log.lock() as g:
            g.data.append(f"The value is: {this.get().value}")
        this.drop()


@impl_send("its fields are a Mutex and work_structs")
@impl_sync("its fields are a Mutex and work_structs")
@impl_has_work(work_1=1, work_2=2)
class TwoWorks:
    """`struct MyStruct { value_1, value_2, work_1: Work<MyStruct, 1>,
    work_2: Work<MyStruct, 2> }`."""

    def __init__(self, value_1: int, value_2: int, log: Mutex[list[str]]) -> None:
        self.value_1 = value_1
        self.value_2 = value_2
        self.log = log
        self.work_1 = new_work("MyStruct::work_1", id=1)
        self.work_2 = Work.new("MyStruct::work_2", id=2)

    @work_item(1)
    @staticmethod
    def run_1(this: Arc[TwoWorks]) -> None:
        with this.get().log.lock() as g:
            g.data.append(f"The value is: {this.get().value_1}")
        this.drop()

    @work_item(2)
    @staticmethod
    def run_2(this: Arc[TwoWorks]) -> None:
        with this.get().log.lock() as g:
            g.data.append(f"The second value is: {this.get().value_2}")
        this.drop()


@impl_send("events only")
@impl_sync("events only")
@impl_has_work("work")
class Blocker:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.work = new_work("Blocker::work")

    @staticmethod
    def run(this: Arc[Blocker]) -> None:
        this.get().started.set()
        this.get().go.wait(5)
        this.drop()


def _log(wq_log: Mutex[list[str]]) -> list[str]:
    with wq_log.lock() as g:
        return list(g.data)


def _block(wq: Workqueue) -> Blocker:
    """Keep `wq`'s worker busy (so what is queued next stays pending) until `go` is set."""
    blk = Blocker()
    assert wq.enqueue(Arc.new(blk)) is None
    assert blk.started.wait(5)
    return blk


def test_print_later_on_the_system_queue() -> None:
    log: Mutex[list[str]] = Mutex([], name="print_later log")
    val = Arc.new(MyStruct(42, log))
    assert system().enqueue(val) is None
    system().flush()
    assert _log(log) == ["The value is: 42"]
    assert "MyStruct" not in live_arcs()


def test_two_work_fields_enqueue_each() -> None:
    log: Mutex[list[str]] = Mutex([], name="two works log")
    wq = Queue("two works")
    blk = _block(wq)
    val = Arc.new(TwoWorks(1, 2, log))
    # Both fields are pending at once: each is its own work_struct.
    assert wq.enqueue(val.clone(), 1) is None
    assert wq.enqueue(val.clone(), 2) is None
    val.drop()
    blk.go.set()
    wq.flush()
    assert sorted(_log(log)) == ["The second value is: 2", "The value is: 1"]
    assert "TwoWorks" not in live_arcs()


def test_a_work_item_enqueued_twice_is_handed_back() -> None:
    log: Mutex[list[str]] = Mutex([], name="twice log")
    wq = Workqueue("twice")
    blk = _block(wq)
    val = Arc.new(MyStruct(7, log))
    assert wq.enqueue(val.clone()) is None
    again = val.clone()
    back = wq.enqueue(again)
    # Already queued: the Arc comes back, with its count, and was not dropped.
    assert back is again and not back.is_dropped() and val.refcount() == 3
    back.drop()
    val.drop()
    blk.go.set()
    wq.flush()
    assert _log(log) == ["The value is: 7"]
    assert "MyStruct" not in live_arcs()


def test_the_has_work_contract_is_checked() -> None:
    class Unregistered:
        def __init__(self) -> None:
            self.work = new_work()

        @staticmethod
        def run(this: Arc[Unregistered]) -> None:
            this.drop()

    @impl_has_work(work=3)
    class WrongId:
        def __init__(self) -> None:
            self.work = new_work(id=1)

    a = Arc.new(Unregistered())
    with pytest.raises(TypeError, match="no HasWork"):
        system().enqueue(a)
    b = Arc.new(WrongId())
    with pytest.raises(TypeError, match="not a Work of id 3"):
        system().enqueue(b, 3)
    c = Arc.new(MyStruct(1, Mutex([], name="no run 5 log")))
    with pytest.raises(TypeError):
        system().enqueue(c, 5)
    for x in (a, b, c):
        x.drop()
    with pytest.raises(TypeError, match="share id"):
        impl_has_work("a", b=0)


@not_sync("holds a per-thread cache")
@impl_has_work("work")
class NotSyncItem:
    def __init__(self) -> None:
        self.work = new_work()

    @staticmethod
    def run(this: Arc[NotSyncItem]) -> None:
        this.drop()


def test_enqueue_checks_send() -> None:
    item = Arc.new(NotSyncItem())
    with pytest.raises(SendError):
        system().enqueue(item)
    item.drop()
