"""Rule 11: a VMA read lock nests inside the mmap lock; the reverse order is flagged.

Documentation/mm/process_addrs.rst: taking a VMA read lock while holding the mmap read
lock is fine, the reverse is invalid. The order is declared to lockdep, so the inversion
is reported the first time it is attempted, before anything blocks.
"""

from __future__ import annotations

import pytest

from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Task
from ownership.errors import LockError
from ownership.mm import MmWithUser
from ownership.sync import Mutex
from ownership.task import current
from tests.expect import assert_splat


def _setup(proc: Task) -> tuple[MmWithUser, int]:
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    mm = current().mm()
    assert mm is not None
    return mm, addr


def test_mmap_read_lock_inside_a_vma_read_lock_is_an_inversion(proc: Task) -> None:
    mm, addr = _setup(proc)
    vguard = mm.lock_vma_under_rcu(addr)
    assert vguard is not None
    with pytest.raises(LockError) as e:
        mm.mmap_read_lock()
    assert_splat(
        e, "lock-order", site="mm.mmap_read_lock()", origin="vguard = mm.lock_vma_under_rcu(addr)"
    )
    assert "process_addrs.rst" in str(e.value), "the report cites the declared order"
    assert not mm.as_raw().mmap_lock.is_locked(), "nothing was taken"
    vguard.drop()


def test_mmap_write_lock_inside_a_vma_read_lock_is_an_inversion(proc: Task) -> None:
    mm, addr = _setup(proc)
    vguard = mm.lock_vma_under_rcu(addr)
    assert vguard is not None
    with vguard:
        with pytest.raises(LockError) as e:
            mm.mmap_write_lock()
    assert_splat(
        e, "lock-order", site="mm.mmap_write_lock()", origin="vguard = mm.lock_vma_under_rcu(addr)"
    )


def test_recursive_mmap_read_lock_is_reported(proc: Task) -> None:
    mm, _ = _setup(proc)
    with mm.mmap_read_lock():
        with pytest.raises(LockError) as e:
            mm.mmap_read_lock()
    assert_splat(
        e, "recursive-lock", site="mm.mmap_read_lock()", origin="with mm.mmap_read_lock():"
    )


def test_driver_lock_orders_are_learned_across_the_mmap_lock(proc: Task) -> None:
    mm, _ = _setup(proc)
    driver_lock = Mutex(0, name="driver mm_lock")
    with driver_lock.lock():
        with mm.mmap_read_lock():
            pass
    with mm.mmap_read_lock():
        with pytest.raises(LockError) as e:
            driver_lock.lock()
    assert_splat(e, "lock-order", site="driver_lock.lock()", origin="with mm.mmap_read_lock():")


def test_clean_vma_lock_inside_the_mmap_lock(proc: Task) -> None:
    mm, addr = _setup(proc)
    for _ in range(2):
        with mm.mmap_read_lock() as guard:
            vguard = mm.lock_vma_under_rcu(addr)
            assert vguard is not None
            assert guard.vma_lookup(addr) is not None and vguard.start() == addr
            vguard.drop()
    with mm.mmap_write_lock() as wguard:
        vma = wguard.vma_lookup(addr)
        assert vma is not None
        assert mm.lock_vma_under_rcu(addr) is None, "the VMA is write-locked"
