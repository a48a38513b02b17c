"""Buffers of a process's mapping: allocation, page states, access, hand-off and free."""

from __future__ import annotations

import pytest

from binder.allocation import AllocationInfo
from binder.error import BinderError
from binder.range_alloc import TREE_THRESHOLD
from ownership.errors import EFAULT, ENOSPC, KernelError, LifetimeError, RefcountError, UnsafeError
from ownership.page import PAGE_SIZE
from ownership.unsafe import unsafe
from ownership.workqueue import flush

from ..binder_harness import KUNIT_MMAP_SIZE, BinderWorld


def test_allocated_pages_are_used_then_available_then_free(world: BinderWorld) -> None:
    o = world.open()
    lru = world.reg.shrinker.list_lru
    with o.current():
        a = o.proc.buffer_alloc(1, PAGE_SIZE + 8, False, o.task.pid)
        assert a.ptr == o.addr and a.size == PAGE_SIZE + 8
        assert o.proc.pages.page_states()[:3] == ["used", "used", "free"]
        assert lru.count() == 0
        a.drop()
        assert o.proc.pages.page_states()[:3] == ["available", "available", "free"]
        assert lru.count() == 2
        # Re-allocation takes the pages back off the LRU without allocating new ones.
        used = world.kernel.nr_used_pages()
        b = o.proc.buffer_alloc(2, 2 * PAGE_SIZE, False, o.task.pid)
        assert world.kernel.nr_used_pages() == used
        assert o.proc.pages.page_states()[:3] == ["used", "used", "free"] and lru.count() == 0
        b.drop()
    assert world.kernel.shrink(64) == 2
    assert set(o.proc.pages.page_states()) == {"free"}


def test_userspace_reads_what_the_kernel_wrote_but_cannot_write(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 3 * PAGE_SIZE, False, o.task.pid)
        payload = bytes(range(256)) * 40
        a.write(100, payload)
        assert a.read(100, len(payload)) == payload
        assert o.task.read_user(a.ptr + 100, len(payload)) == payload
        with pytest.raises(KernelError) as e:
            o.task.write_user(a.ptr + 100, b"forged")
        assert e.value.errno == EFAULT
        assert a.read(100, 6) == payload[:6]
        a.drop()


def test_buffer_access_is_bounds_checked(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 100, False, o.task.pid)
        for off, n in ((0, 101), (100, 1), (2**64 - 1, 2), (-1, 1)):
            with pytest.raises(KernelError) as e:
                a.read(off, n)
            assert e.value.errno == EFAULT
            with pytest.raises(KernelError) as e:
                a.write(off, b"x" * n if 0 <= n < 1000 else b"x")
            assert e.value.errno == EFAULT
        a.write(99, b"z")
        assert a.read(99, 1) == b"z"
        a.drop()


def test_buffer_handed_to_userspace_and_back(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(7, 512, False, o.task.pid).success()
        a.write(0, b"delivered")
        a.set_info_clear_on_drop()
        ptr = a.ptr
        a.keep_alive()
        # Userspace holds it: the pages stay Used, and it cannot be freed from the kernel.
        assert o.proc.pages.page_states()[0] == "used"
        assert o.task.read_user(ptr, 9) == b"delivered"
        # BC_FREE_BUFFER: the kernel takes it back (with its info) and frees it.
        back = o.proc.buffer_get(ptr)
        assert back is not None and back.size == 512 and back.debug_id == 7
        assert back.allocation_info is not None and back.allocation_info.clear_on_free
        assert o.proc.buffer_get(ptr) is None  # already taken back
        back.drop()
        # clear_on_free zeroed the payload before the page became Available.
        assert o.proc.pages.page_states()[0] == "available"
        assert o.proc.buffer_get(ptr) is None
        assert o.proc.buffer_get(ptr - 8) is None


def test_use_after_free_of_an_allocation_is_a_lifetime_error(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid)
        a.drop()  # The buffer is freed here.
        with pytest.raises(LifetimeError) as e:
            a.write(0, b"late")  # The bug: writing through the freed buffer.
    assert e.value.rule == "binder-allocation-use-after-free"
    assert str(e.value).count("test_buffers.py:") >= 2


def test_pages_of_a_freed_buffer_cannot_be_accessed(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, PAGE_SIZE, False, o.task.pid)
        a.drop()
        # The bug: reading the page range where no buffer keeps the page in use.
        with pytest.raises(UnsafeError) as e:
            with unsafe(
                "SAFETY: the page is in use (it is not: the buffer was freed; the model checks it)."
            ):
                o.proc.pages.read(0, 8)
    assert e.value.rule == "binder-page-not-in-use"
    report = str(e.value)
    assert "test_buffers.py:" in report and "process.py:" in report


def test_many_buffers_switch_to_the_tree_and_back(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        allocs = [o.proc.buffer_alloc(i, 100, False, o.task.pid) for i in range(TREE_THRESHOLD + 4)]
        with o.proc.inner.lock() as g:
            assert g.data.mapping is not None and g.data.mapping.alloc.kind == "tree"
        for i, a in enumerate(allocs):
            a.write(0, f"buf{i}".encode())
        for i, a in enumerate(allocs):
            assert o.task.read_user(a.ptr, len(f"buf{i}")) == f"buf{i}".encode()
        for a in allocs:
            a.drop()
        with o.proc.inner.lock() as g:
            assert g.data.mapping is not None and g.data.mapping.alloc.kind == "empty"


def test_full_mapping_is_enospc_and_oneway_is_half(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        one = o.proc.buffer_alloc(1, KUNIT_MMAP_SIZE // 2, True, o.task.pid)
        with pytest.raises(KernelError) as e:
            o.proc.buffer_alloc(2, 8, True, o.task.pid)
        assert e.value.errno == ENOSPC
        two = o.proc.buffer_alloc(3, KUNIT_MMAP_SIZE // 2, False, o.task.pid)
        with pytest.raises(KernelError) as e:
            o.proc.buffer_alloc(4, 8, False, o.task.pid)
        assert e.value.errno == ENOSPC
        one.drop()
        two.drop()


def test_no_mapping_is_a_dead_reply(world: BinderWorld) -> None:
    o = world.open(map_size=None)
    with o.current():
        with pytest.raises(BinderError) as e:
            o.proc.buffer_alloc(1, 8, False, o.task.pid)
    assert e.value.reply == BinderError.new_dead().reply


def test_commit_of_a_dead_process_drops_the_info_outside_the_lock(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid).success()
        a.set_info(AllocationInfo(clear_on_free=True))
        ptr = a.ptr
        a.keep_alive()
    world.close(o)
    # The release freed every buffer still allocated; nothing is left to take back.
    assert o.proc.buffer_get(ptr) is None
    flush()


def test_a_new_count_of_a_freed_process_is_a_refcount_error(world: BinderWorld) -> None:
    o = world.open()
    proc = o.proc
    with o.current():
        a = proc.buffer_alloc(1, 8, False, o.task.pid)
        a.drop()
    o.task.exit()  # Unmaps, closes the fd: the release frees the process.
    flush()
    with pytest.raises(RefcountError) as e:
        proc.self_arc()  # The bug: a stale pointer to a freed Process.
    assert e.value.rule == "refcount-inc-zero"
    # Where the count was taken, and where the last one was given back (the release).
    report = str(e.value)
    # The last count goes in the file's release or in the deferred work, whichever ends last.
    assert "Process.new.<locals>.self_arc()" in report
    assert "the count reached zero" in report and "drop()" in report
