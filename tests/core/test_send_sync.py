"""Send and Sync: what may be moved to another thread, what may be shared.

Hand-off checks at `task.spawn` and `workqueue.queue_work` (arguments, closures,
`ARef`/`Arc` being Send iff the contents are Send + Sync), and the run-time `!Sync`
checks: a shared reference handed over (`share`) and a `!Sync` value's methods used
from a second thread (`ThreadAffinity`). All on real threads.
"""

from __future__ import annotations

import threading

import pytest

from ownership.aref import ARef
from ownership.errors import SendError, SyncError
from ownership.marker import (
    NotThreadSafe,
    ThreadAffinity,
    declarations,
    impl_send,
    impl_sync,
    is_send,
    is_sync,
    not_send,
    not_sync,
    share,
)
from ownership.sync import Arc, Mutex, SpinLock
from ownership.task import spawn
from ownership.workqueue import flush, queue_work
from tests.expect import assert_splat, line

# --- types with declared markers -------------------------------------------------------


@impl_send("the counter is only touched under its own lock")
@impl_sync("all methods take the internal lock")
class SharedCounter:
    def __init__(self) -> None:
        self.n = Mutex(0, name="SharedCounter::n")
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1

    @classmethod
    def run(cls, me: Arc[SharedCounter]) -> None:
        with me.get().n.lock() as g:
            g.data += 1
        me.drop()


@not_sync("a Cell-like counter: unsynchronised interior mutability")
class CellCounter:
    """Send but !Sync: may move to another thread, not be shared with it."""

    def __init__(self) -> None:
        self.__ownership_affinity__ = ThreadAffinity("CellCounter")
        self.value = 0
        self.refs = 1

    def bump(self) -> int:
        self.__ownership_affinity__.check("CellCounter.bump()")
        self.value += 1
        return self.value

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1

    @classmethod
    def run(cls, me: Arc[CellCounter]) -> None:
        me.drop()


@not_send("tied to the thread that made it (a per-CPU pointer)")
class PerCpu:
    def __init__(self) -> None:
        self.cpu = 0


class Local(NotThreadSafe):
    """!Send + !Sync through the NotThreadSafe base."""

    __slots__ = ("origin_site", "x")

    def __init__(self) -> None:
        self.x = 1


# --- spawn ---------------------------------------------------------------------------------


def test_spawn_with_a_guard_argument() -> None:
    lock = Mutex(0, name="spawn guard")
    g = lock.lock()
    taken = line() - 1
    with pytest.raises(SendError) as ei:
        spawn(lambda guard: guard.drop(), g)
    handed = line() - 1
    assert_splat(
        ei,
        "send",
        cls=SendError,
        lines=[handed, taken],
        mentions=["is handed to another thread by spawn()"],
    )
    g.drop()


def test_spawn_with_a_closure_capturing_not_send() -> None:
    pc = PerCpu()
    with pytest.raises(SendError) as ei:
        spawn(lambda: pc.cpu)
    handed = line() - 1
    assert_splat(ei, "send", cls=SendError, lines=[handed], mentions=["PerCpu is !Send"])


def test_spawn_with_a_bound_method_of_not_send() -> None:
    loc = Local()
    with pytest.raises(SendError):
        spawn(loc.__repr__)
    assert not is_send(loc) and not is_sync(loc)


def test_spawn_with_send_values_runs() -> None:
    counter = Arc.new(SharedCounter())

    def work(c: Arc[SharedCounter], times: int) -> int:
        for _ in range(times):
            with c.get().n.lock() as g:
                g.data += 1
        c.drop()
        return times

    hs = [spawn(work, counter.clone(), 50) for _ in range(4)]
    assert sum(h.join() for h in hs) == 200
    with counter.get().n.lock() as g:
        assert g.data == 200
    counter.drop()


# --- ARef / Arc are Send iff T is Send + Sync -----------------------------------------------


def test_aref_of_not_sync_is_not_send() -> None:
    obj = CellCounter()
    a = ARef.from_ref(obj)
    taken = line() - 1
    assert not is_send(a)
    with pytest.raises(SendError) as ei:
        spawn(lambda r: r.drop(), a)
    handed = line() - 1
    assert_splat(ei, "send", cls=SendError, lines=[handed, taken])
    a.drop()


def test_aref_of_send_sync_is_send() -> None:
    obj = SharedCounter()
    a = ARef.from_ref(obj)
    assert is_send(a) and is_sync(a)
    spawn(lambda r: r.drop(), a).join()
    assert obj.refs == 1


def test_arc_of_not_sync_cannot_be_queued() -> None:
    arc = Arc.new(CellCounter())
    made = line() - 1
    with pytest.raises(SendError) as ei:
        queue_work(arc)
    queued = line() - 1
    assert_splat(ei, "send", cls=SendError, lines=[queued, made], mentions=["queue_work()"])
    arc.drop()


def test_arc_of_send_sync_is_queued_and_runs() -> None:
    arc = Arc.new(SharedCounter())
    assert queue_work(arc.clone())
    flush()
    with arc.get().n.lock() as g:
        assert g.data == 1
    arc.drop()


def test_lock_is_send_and_sync_iff_its_data_is_send() -> None:
    assert is_send(Mutex(CellCounter(), name="cell in mutex"))
    assert is_sync(SpinLock(CellCounter(), name="cell in spin"))  # Mutex<T>: Sync iff T: Send.
    assert not is_sync(Mutex(PerCpu(), name="percpu in mutex"))


# --- Sync ----------------------------------------------------------------------------------


def test_sharing_a_not_sync_value_with_another_thread() -> None:
    cell = CellCounter()
    r = share(cell)
    shared = line() - 1
    with pytest.raises(SyncError) as ei:
        spawn(lambda ref: ref.get().bump(), r)
    handed = line() - 1
    assert_splat(
        ei,
        "sync",
        cls=SyncError,
        lines=[handed, shared],
        mentions=["a shared reference to it is handed to another thread"],
    )
    assert cell.value == 0


def test_sharing_a_sync_value_with_another_thread() -> None:
    counter = SharedCounter()
    r = share(counter)

    def work(ref: object) -> None:
        with counter.n.lock() as g:
            g.data += 1

    spawn(work, r).join()
    with counter.n.lock() as g:
        assert g.data == 1


def test_not_sync_methods_used_from_a_second_thread() -> None:
    cell = CellCounter()
    made = line() - 1
    cell.bump()
    errors: list[BaseException] = []
    at: list[int] = []

    def other() -> None:
        # A raw thread smuggles a reference past the hand-off checks.
        try:
            at.append(line() + 1)
            cell.bump()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert_splat(errors[0], "sync", cls=SyncError, lines=[at[0], made])
    assert cell.value == 1  # Refused before the racy update.
    assert cell.bump() == 2  # The owning thread goes on.


def test_not_sync_value_moved_to_another_thread() -> None:
    cell = CellCounter()
    cell.bump()

    def owner(c: CellCounter) -> int:
        c.bump()
        return c.bump()

    assert spawn(owner, cell).join() == 3
    moved = line() - 1
    # Moved away: the old thread using it is now the second thread.
    with pytest.raises(SyncError) as ei:
        cell.bump()
    used = line() - 1
    assert_splat(ei, "sync", cls=SyncError, lines=[used, moved])


# --- declarations --------------------------------------------------------------------------


def test_declarations_carry_their_reasons() -> None:
    decls = {(d.cls, d.trait): d for d in declarations()}
    d = decls[(f"{__name__}.SharedCounter", "Sync")]
    assert d.implemented and d.reason == "all methods take the internal lock"
    d = decls[(f"{__name__}.CellCounter", "Sync")]
    assert not d.implemented and "Cell-like" in d.reason


def test_a_declaration_needs_a_reason() -> None:
    with pytest.raises(TypeError):
        impl_send("")
    with pytest.raises(TypeError):
        not_send(None)  # type: ignore[arg-type]
