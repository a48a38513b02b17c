"""Rule 8: what may sleep is refused in atomic context, before it takes effect.

`mmput` (dropping an `ARef[MmWithUser]`), `mmdrop`, `mmap_read_lock`, `mmap_write_lock`,
`vm_insert_page`, `zap_page_range_single`, `alloc_page(GFP_KERNEL)`,
`copy_from_user_slice_raw` and user accesses are `AtomicSleepError`s under a spinlock;
`mmput_async`, `mmap_read_trylock`, `lock_vma_under_rcu` and `alloc_page(GFP_ATOMIC)`
are fine there.
"""

from __future__ import annotations

import threading

import pytest

from ownership import workqueue
from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, GFP_ZERO
from ownership.aref import ARef
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.context import preempt_disabled, rcu_read_lock
from ownership.errors import AtomicSleepError
from ownership.mm import MmWithUser
from ownership.page import Page
from ownership.sync import SpinLock
from ownership.uaccess import UserSlice
from ownership.unsafe import unsafe
from tests.expect import assert_splat

from .drivers import FaultingDevice, ScratchDevice
from .helpers import current_mm


def _anon(proc: Task) -> int:
    return proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)


def test_mmput_under_a_spinlock_is_refused_and_has_not_dropped(proc: Task) -> None:
    user = ARef.from_ref(current_mm())
    lock = SpinLock(0, name="driver lock")
    with lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            user.drop()
    assert_splat(e, "atomic-sleep", site="user.drop()", origin="with lock.lock():")
    assert "mmput" in str(e.value) or "dec_ref" in str(e.value)
    assert not user.is_dropped()
    assert user.get().as_raw().mm_users.read() == 2
    user.drop()


def test_mmdrop_under_a_spinlock_is_refused(proc: Task) -> None:
    grab = ARef.from_ref(current_mm().as_mm())
    lock = SpinLock(0, name="driver lock")
    with lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            grab.drop()
    assert_splat(e, "atomic-sleep", site="grab.drop()", origin="with lock.lock():")
    grab.drop()


def test_mmap_locks_under_a_spinlock_are_refused(proc: Task) -> None:
    mm = current_mm()
    lock = SpinLock(0, name="driver lock")
    with lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            mm.mmap_read_lock()
        assert_splat(e, "atomic-sleep", site="mm.mmap_read_lock()", origin="with lock.lock():")
        with pytest.raises(AtomicSleepError) as e:
            mm.mmap_write_lock()
        assert_splat(e, "atomic-sleep", site="mm.mmap_write_lock()", origin="with lock.lock():")
    assert not mm.as_raw().mmap_lock.is_locked(), "the refused locks were not taken"


@pytest.mark.parametrize("section", ["rcu", "preempt"])
def test_mmap_read_lock_in_other_atomic_sections(proc: Task, section: str) -> None:
    mm = current_mm()
    with rcu_read_lock() if section == "rcu" else preempt_disabled():
        with pytest.raises(AtomicSleepError) as e:
            mm.mmap_read_lock()
    err = assert_splat(e, "atomic-sleep")
    assert err.origin is not None and "test_rule08_may_sleep.py" in str(err.origin)


def test_vm_insert_page_and_zap_under_a_spinlock_are_refused(kernel: Kernel, proc: Task) -> None:
    kernel.register_miscdevice("scratch", ScratchDevice())
    f = proc.open("scratch")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    lock = SpinLock(0, name="pages lock")
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        mixed = vma.as_mixedmap_vma()
        assert mixed is not None
        with lock.lock():
            with pytest.raises(AtomicSleepError) as e:
                mixed.vm_insert_page(addr, page)
            assert_splat(
                e,
                "atomic-sleep",
                site="mixed.vm_insert_page(addr, page)",
                origin="with lock.lock():",
            )
            with pytest.raises(AtomicSleepError) as e:
                mixed.zap_page_range_single(addr, PAGE_SIZE)
            assert_splat(
                e,
                "atomic-sleep",
                site="mixed.zap_page_range_single(addr, PAGE_SIZE)",
                origin="with lock.lock():",
            )
        mixed.vm_insert_page(addr, page)  # Outside the spinlock: fine.
    assert page.as_ptr().mapcount == 1
    proc.munmap(addr, PAGE_SIZE)
    f.close()
    page.drop()


def test_alloc_page_depends_on_the_gfp_flags(proc: Task) -> None:
    lock = SpinLock(0, name="alloc lock")
    with lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            Page.alloc_page(GFP_KERNEL)
        assert_splat(
            e, "atomic-sleep", site="Page.alloc_page(GFP_KERNEL)", origin="with lock.lock():"
        )
        page = Page.alloc_page(GFP_ATOMIC)
        page.drop()  # __free_pages never sleeps.


def test_user_copies_under_a_spinlock_are_refused(kernel: Kernel, proc: Task) -> None:
    addr = _anon(proc)
    proc.write_user(addr, b"user data")
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    lock = SpinLock(0, name="copy lock")
    with lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            with unsafe("SAFETY: nobody else accesses this freshly allocated page."):
                page.copy_from_user_slice_raw(UserSlice(addr, 9).reader(), 0, 9)
        assert_splat(
            e, "atomic-sleep", site="page.copy_from_user_slice_raw(", origin="with lock.lock():"
        )
        with pytest.raises(AtomicSleepError):
            proc.read_user(addr, 4)
    with unsafe("SAFETY: nobody else accesses this freshly allocated page."):
        page.copy_from_user_slice_raw(UserSlice(addr, 9).reader(), 0, 9)
        assert page.read_raw(0, 9) == b"user data"
    page.drop()


def test_clean_atomic_safe_calls_under_a_spinlock(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(1)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert proc.read_user(addr, 6) == b"page 0"
    f.close()
    mm = current_mm()
    lock = SpinLock(0, name="shrinker lock")
    with lock.lock():
        guard = mm.mmap_read_trylock()
        assert guard is not None
        guard.drop()
        vguard = mm.lock_vma_under_rcu(addr)
        assert vguard is not None
        vguard.drop()
        got = mm.mmget_not_zero()
        assert got is not None
        async_user = MmWithUser.into_mmput_async(got)
        async_user.drop()
    # The last reference going through mmput_async defers the teardown to a worker.
    last = ARef.from_ref(mm)
    async_last = MmWithUser.into_mmput_async(last)
    proc.exit()
    assert dev.ops.closed == 0, "the address space is still held by the async reference"
    closers: list[str] = []
    dev.ops.close = lambda vma: closers.append(threading.current_thread().name)  # type: ignore[method-assign]
    with lock.lock():
        async_last.drop()
    workqueue.flush()
    assert closers and closers[0].startswith("kworker"), closers
    dev.drop_pages()
