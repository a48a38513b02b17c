"""Rule 2: the mmap and VMA lock guards are `!Send` (Boqun Feng's review of v6).

An rw_semaphore has strict owner semantics: the thread that locked must unlock. A guard
released on another thread is a `SendError` naming where the lock was taken, and the
lock stays held, so the right thread can still release it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ownership.aref import ARef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Task
from ownership.errors import SendError
from ownership.marker import is_send
from ownership.mm import MmapReadGuard, MmapWriteGuard, MmWithUser, VmaReadGuard
from ownership.task import current, spawn
from tests.expect import assert_splat


def _setup(proc: Task) -> tuple[MmWithUser, int]:
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    mm = current().mm()
    assert mm is not None
    return mm, addr


def _on_other_thread(fn: Callable[[], None]) -> BaseException | None:
    """Run `fn` on a raw thread (bypassing the Send check, as unsafe code could)."""
    caught: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:
            caught.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join(10)
    return caught[0] if caught else None


def test_read_guard_released_on_another_thread(proc: Task) -> None:
    mm, _ = _setup(proc)
    guard = mm.mmap_read_lock()
    err = _on_other_thread(lambda: guard.drop())
    assert isinstance(err, SendError)
    assert_splat(err, "send", site="guard.drop()", origin="guard = mm.mmap_read_lock()")
    assert guard.is_held()
    guard.drop()
    with mm.mmap_write_lock():
        pass


def test_write_guard_released_on_another_thread(proc: Task) -> None:
    mm, _ = _setup(proc)
    wguard = mm.mmap_write_lock()
    err = _on_other_thread(lambda: wguard.drop())
    assert isinstance(err, SendError)
    assert_splat(err, "send", site="wguard.drop()", origin="wguard = mm.mmap_write_lock()")
    assert mm.mmap_read_trylock() is None, "the write lock is still held"
    wguard.drop()
    r = mm.mmap_read_trylock()
    assert r is not None
    r.drop()


def test_vma_read_guard_released_on_another_thread(proc: Task) -> None:
    mm, addr = _setup(proc)
    vguard = mm.lock_vma_under_rcu(addr)
    assert vguard is not None
    err = _on_other_thread(lambda: vguard.drop())
    assert isinstance(err, SendError)
    assert_splat(err, "send", site="vguard.drop()", origin="vguard = mm.lock_vma_under_rcu(addr)")
    assert vguard.is_held() and vguard.start() == addr
    vguard.drop()


def test_handing_a_guard_to_a_kthread_is_refused_at_the_hand_off(proc: Task) -> None:
    mm, _ = _setup(proc)
    with mm.mmap_read_lock() as guard:

        def unlock_later() -> None:
            guard.drop()

        with pytest.raises(SendError) as e:
            spawn(unlock_later)
        assert_splat(
            e, "send", site="spawn(unlock_later)", origin="with mm.mmap_read_lock() as guard:"
        )
        with pytest.raises(SendError):
            spawn(lambda g: g.drop(), guard)


@pytest.mark.parametrize("guard_type", [MmapReadGuard, MmapWriteGuard, VmaReadGuard])
def test_guards_are_declared_not_send_and_not_sync(guard_type: type) -> None:
    assert guard_type.__dict__["__ownership_send__"] is False
    assert guard_type.__dict__["__ownership_sync__"] is False


def test_clean_each_thread_takes_and_releases_its_own_locks(proc: Task) -> None:
    mm, addr = _setup(proc)
    user = ARef.from_ref(mm)
    assert is_send(user), "ARef<MmWithUser> may move to another thread"
    results: list[int] = []

    def worker(m: ARef[MmWithUser]) -> None:
        with m.get().mmap_read_lock() as g:
            vma = g.vma_lookup(addr)
            assert vma is not None
            results.append(vma.start())
        vg = m.get().lock_vma_under_rcu(addr)
        assert vg is not None
        results.append(vg.end())
        vg.drop()
        m.drop()

    with mm.mmap_read_lock():
        handles = [spawn(worker, user.clone()) for _ in range(4)]
        for h in handles:
            h.join()
    assert results.count(addr) == 4 and results.count(addr + PAGE_SIZE) == 4
    user.drop()
