"""Rule 3: `VmAreaMut` needs the mmap write lock and the VMA write lock, and is `!Sync`."""

from __future__ import annotations

import threading

import pytest

from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Task
from ownership.errors import LifetimeError, SyncError, UnsafeError
from ownership.mm import MmWithUser
from ownership.mm.virt import VmAreaMut, flags
from ownership.task import current
from ownership.unsafe import unsafe
from tests.expect import assert_splat


def _setup(proc: Task) -> tuple[MmWithUser, int]:
    addr = proc.mmap(None, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    mm = current().mm()
    assert mm is not None
    return mm, addr


def test_vma_mut_used_from_another_thread_is_a_sync_error(proc: Task) -> None:
    mm, addr = _setup(proc)
    with mm.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        caught: list[BaseException] = []

        def peek() -> None:
            try:
                vma.flags()
            except BaseException as e:
                caught.append(e)

        t = threading.Thread(target=peek)
        t.start()
        t.join(10)
        assert isinstance(caught[0], SyncError)
        assert_splat(caught[0], "sync", site="vma.flags()", origin="vma = guard.vma_lookup(addr)")
        vma.set_flags(vma.flags() | flags.DONTCOPY)  # The owning thread goes on.


def test_vma_mut_dies_with_the_write_guard(proc: Task) -> None:
    mm, addr = _setup(proc)
    guard = mm.mmap_write_lock()
    vma = guard.vma_lookup(addr)
    assert vma is not None
    guard.drop()
    with pytest.raises(LifetimeError) as e:
        vma.set_flags(vma.flags() | flags.DONTDUMP)
    assert_splat(e, "lifetime", site="vma.set_flags(", origin="guard.drop()")


def test_vma_mut_from_raw_with_only_the_read_lock_is_refused(proc: Task) -> None:
    mm, addr = _setup(proc)
    with mm.mmap_read_lock() as guard:
        ref = guard.vma_lookup(addr)
        assert ref is not None
        with unsafe("SAFETY: deliberately wrong: only the mmap read lock is held"):
            with pytest.raises(UnsafeError) as e:
                VmAreaMut.from_raw(ref.as_ptr(), guard.lifetime)
    assert_splat(
        e,
        "vma-from-raw-unlocked",
        site="VmAreaMut.from_raw(",
        origin="with mm.mmap_read_lock() as guard:",
    )


def test_write_lookup_write_locks_the_vma_until_the_guard_goes(proc: Task) -> None:
    mm, addr = _setup(proc)
    seen: list[bool] = []

    def try_vma_lock() -> None:
        g = mm.lock_vma_under_rcu(addr)
        seen.append(g is not None)
        if g is not None:
            g.drop()

    with mm.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        t = threading.Thread(target=try_vma_lock)
        t.start()
        t.join(10)
        vma.set_flags(vma.flags() | flags.DONTCOPY | flags.DONTDUMP)
        assert vma.flags() & flags.DONTCOPY
    t = threading.Thread(target=try_vma_lock)
    t.start()
    t.join(10)
    assert seen == [False, True], "the VMA is write-locked exactly while the write guard lives"
    with mm.mmap_read_lock() as rguard:
        ref = rguard.vma_lookup(addr)
        assert ref is not None and ref.flags() & flags.DONTDUMP


def test_vma_mut_from_raw_under_the_write_locks_is_accepted(proc: Task) -> None:
    mm, addr = _setup(proc)
    with mm.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        with unsafe(
            "SAFETY: the write guard holds the mmap write lock, and vma_lookup write-locked the "
            "VMA."
        ):
            again = VmAreaMut.from_raw(vma.as_ptr(), guard.lifetime)
        again.set_flags(again.flags() | flags.DONTCOPY)
        assert vma.flags() & flags.DONTCOPY
