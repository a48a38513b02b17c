"""A refused drop has not happened: every drop path checks before it takes effect.

A drop whose destructor may sleep, directly or through what the value owns (the last
`Arc` of a struct holding an `ARef<MmWithUser>`, whose drop runs `mmput`; a `KBox` or
`KVec` of one), is an `AtomicSleepError` in atomic context before any count changes.
Dropping an owner while a borrow of it lives (a `VBox`, `Page` or `BorrowedPage` while a
kmap of the page is live; the last mm reference while its mmap guard lives) is
`drop-while-borrowed`, before anything is torn down. A guard released on the wrong
thread stays held. After each refusal the object is exactly as it was, and doing it
right afterwards (outside the atomic section, after the borrow ends) succeeds and
leaves nothing leaked (the `kernel` fixture checks `kernel.leaks()`).
"""

from __future__ import annotations

import threading

import pytest

from ownership.alloc import GFP_KERNEL, KBox, KVec, VBox
from ownership.aref import ARef
from ownership.bindings import Kernel, Task
from ownership.errors import AtomicSleepError, LifetimeError, SendError
from ownership.mm import MmapReadGuard, MmWithUser
from ownership.page import PAGE_SIZE, KmapLocal, Page
from ownership.sync import Arc, SpinLock
from ownership.task import current
from tests.expect import assert_splat, line


def _mm_ref() -> ARef[MmWithUser]:
    mm = current().mm()
    assert mm is not None
    a = mm.mmget_not_zero()
    assert a is not None
    return a


def _users(a: ARef[MmWithUser]) -> int:
    return a.get().as_raw().mm_users.read()


class Ctx:
    """A driver context that owns an mm reference; its `drop_arc` gives it back."""

    def __init__(self, mm: ARef[MmWithUser]) -> None:
        self.mm = mm

    def drop_arc(self) -> None:
        self.mm.drop()


def test_last_arc_whose_value_owns_an_mm_reference_is_refused_in_atomic(proc: Task) -> None:
    a = Arc.new(Ctx(_mm_ref()))
    users = _users(a.get().mm)
    lock = SpinLock(0, name="ctx lock")
    with lock.lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            a.drop()
        dropped = line() - 1
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[dropped, taken],
        site="a.drop()",
        origin="with lock.lock():",
        mentions=["the last Arc<Ctx>, which drops Ctx.mm: ARef<MmWithUser>"],
    )
    # Nothing happened: the handle, its count and the mm reference are as they were.
    assert a.refcount() == 1 and a.get().mm.get() is not None
    assert _users(a.get().mm) == users
    a.drop()  # Outside the spinlock: the value's drop puts the mm reference.
    assert _users_of(proc) == users - 1


def _users_of(proc: Task) -> int:
    assert proc.mm is not None
    return proc.mm.mm_users.read()


def test_an_arc_that_is_not_the_last_drops_fine_in_atomic(proc: Task) -> None:
    a = Arc.new(Ctx(_mm_ref()))
    b = a.clone()
    with SpinLock(0, name="ctx lock 2").lock():
        b.drop()  # Only a count goes: no destructor runs.
    a.drop()


class Child:
    """A driver object that refers to its parent, which lives in its own `Arc` (as a
    Binder node refers to its process): a plain reference, not ownership."""

    def __init__(self, parent: Ctx) -> None:
        self.parent = parent


def test_a_plain_reference_into_another_arc_is_not_dropped_with_its_holder(proc: Task) -> None:
    # The child's last Arc goes under a spinlock; the parent (whose drop would put an mm
    # reference, and may sleep) lives in an Arc of its own, so nothing sleeping runs.
    parent = Arc.new(Ctx(_mm_ref()))
    child = Arc.new(Child(parent.get()))
    with SpinLock(0, name="child lock").lock():
        child.drop()
    # The parent is still owned by its own Arc, whose last drop is what would sleep.
    with SpinLock(0, name="parent lock").lock(), pytest.raises(AtomicSleepError) as ei:
        parent.drop()
    assert_splat(ei, "atomic-sleep", mentions=["the last Arc<Ctx>, which drops Ctx.mm"])
    parent.drop()


def test_aref_of_mm_dropped_in_atomic_is_refused_and_kept(proc: Task) -> None:
    mm = _mm_ref()
    users = _users(mm)
    with SpinLock(0, name="aref lock").lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            mm.drop()
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[taken], site="mm.drop()")
    assert not mm.is_dropped() and _users(mm) == users
    mm.drop()
    assert _users_of(proc) == users - 1


@pytest.mark.parametrize("kind", ["KBox", "KVec"])
def test_a_box_or_vec_owning_an_mm_reference_is_refused_in_atomic(proc: Task, kind: str) -> None:
    mm = _mm_ref()
    users = _users(mm)
    owner: KBox[ARef[MmWithUser]] | KVec[ARef[MmWithUser]]
    if kind == "KBox":
        owner = KBox.new(mm, GFP_KERNEL)
    else:
        owner = KVec.with_capacity(1, GFP_KERNEL)
        owner.push(mm, GFP_KERNEL)
    with SpinLock(0, name="box lock").lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            owner.drop()
    assert_splat(
        ei,
        "atomic-sleep",
        cls=AtomicSleepError,
        lines=[taken],
        site="owner.drop()",
        mentions=[f"dropping {kind}", "ARef<MmWithUser>"],
    )
    # Still alive and still owning the reference.
    held = owner.get() if isinstance(owner, KBox) else owner[0]
    assert held is mm and _users(mm) == users
    owner.drop()  # Outside atomic context (the model has no drop glue: put it by hand).
    mm.drop()
    assert _users_of(proc) == users - 1


def test_vbox_dropped_while_a_kmap_of_its_page_lives(proc: Task) -> None:
    vbox = VBox.new(b"v" * PAGE_SIZE, GFP_KERNEL)
    page = next(vbox.page_iter())
    caught: list[LifetimeError] = []

    def while_mapped(m: KmapLocal) -> None:
        with pytest.raises(LifetimeError) as ei:
            vbox.drop()
        caught.append(ei.value)
        assert m.read(0, 1) == b"v"  # The mapping, and the page under it, still work.

    page.with_page_mapped(while_mapped)
    mapped = line() - 1
    assert_splat(
        caught[0],
        "drop-while-borrowed",
        cls=LifetimeError,
        lines=[mapped],
        site="vbox.drop()",
        origin="page.with_page_mapped(while_mapped)",
        mentions=["drop of a VBox while a kmap_local mapping of its page is live"],
    )
    assert vbox.read(0, 2) == b"vv"  # Not freed.
    page.drop()
    vbox.drop()  # The mapping ended: the drop goes through.


def test_page_and_borrowed_page_dropped_while_mapped(proc: Task) -> None:
    p = Page.alloc_page(GFP_KERNEL)
    errors: list[LifetimeError] = []

    def drop_inside(m: KmapLocal) -> None:
        try:
            p.drop()
        except LifetimeError as e:
            errors.append(e)
        m.write(0, b"ok")

    p.with_page_mapped(drop_inside)
    mapped = line() - 1
    assert_splat(errors[0], "drop-while-borrowed", cls=LifetimeError, lines=[mapped])
    assert p.with_page_mapped(lambda m: m.read(0, 2)) == b"ok"  # Still this handle's page.
    p.drop()

    vbox = VBox.new(b"w" * PAGE_SIZE, GFP_KERNEL)
    bp = next(vbox.page_iter())
    with pytest.raises(LifetimeError) as ei:
        bp.with_page_mapped(lambda m: bp.drop())
    assert_splat(ei, "drop-while-borrowed", cls=LifetimeError, mentions=["a BorrowedPage"])
    assert bp.with_page_mapped(lambda m: m.read(0, 1)) == b"w"  # The borrow still lives.
    bp.drop()
    vbox.drop()


def test_last_mm_reference_dropped_while_its_mmap_guard_lives(kernel: Kernel) -> None:
    other = kernel.spawn_process("mm-owner")
    with other.as_current():
        mm = _mm_ref()
    other.exit()  # Now `mm` is the last mm_users reference.
    assert _users(mm) == 1
    guard: MmapReadGuard = mm.get().mmap_read_lock()
    locked = line() - 1
    with pytest.raises(LifetimeError) as ei:
        mm.drop()
    assert_splat(
        ei,
        "drop-while-borrowed",
        cls=LifetimeError,
        lines=[locked],
        site="mm.drop()",
        origin="guard: MmapReadGuard = mm.get().mmap_read_lock()",
    )
    assert not mm.is_dropped() and _users(mm) == 1 and guard.is_held()
    assert guard.vma_lookup(0) is None  # The address space is intact under the guard.
    guard.drop()
    mm.drop()  # The guard was released: the teardown runs.


def test_non_last_mm_reference_may_go_while_a_guard_lives(proc: Task) -> None:
    mm = _mm_ref()
    guard = mm.get().mmap_read_lock()
    mm.drop()  # The task still holds the address space: only a count goes.
    guard.drop()


def test_guard_released_on_another_thread_stays_held(proc: Task) -> None:
    mm = current().mm()
    assert mm is not None
    guard = mm.mmap_read_lock()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            guard.drop()
        except SendError as e:
            errors.append(e)

    t = threading.Thread(target=release)  # Bypasses spawn()'s Send check on purpose.
    t.start()
    t.join()
    assert isinstance(errors[0], SendError) and errors[0].rule == "send"
    assert guard.is_held()
    guard.drop()  # The owning thread releases it.


def test_mmgrab_reference_dropped_in_atomic_is_refused_and_kept(proc: Task) -> None:
    mm = current().mm()
    assert mm is not None
    grab = ARef.from_ref(mm.as_mm())
    count = mm.as_raw().mm_count.read()
    with SpinLock(0, name="mmgrab lock").lock():
        taken = line() - 1
        with pytest.raises(AtomicSleepError) as ei:
            grab.drop()
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, lines=[taken], site="grab.drop()")
    assert not grab.is_dropped() and mm.as_raw().mm_count.read() == count
    grab.drop()  # `mmdrop` outside the spinlock.
    assert mm.as_raw().mm_count.read() == count - 1


def test_spinlock_guard_released_on_another_thread_stays_held() -> None:
    lock = SpinLock(1, name="wrong-thread release")
    guard = lock.lock()
    errors: list[BaseException] = []

    def release() -> None:
        try:
            guard.drop()
        except SendError as e:
            errors.append(e)

    t = threading.Thread(target=release)  # Bypasses spawn()'s Send check on purpose.
    t.start()
    t.join()
    assert isinstance(errors[0], SendError)
    assert guard.data == 1  # Still held by this thread, and usable.
    guard.drop()
    with lock.lock() as g:  # Released exactly once: the lock is free again.
        assert g.data == 1
