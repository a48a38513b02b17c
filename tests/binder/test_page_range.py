"""The shrinkable page range: the shrinker, and the review's and the CVE's bugs, each as a
failing-then-fixed pair.

* CVE-2026-43434: a binder VMA unmapped and replaced at the same address. Without the
  ownership check (`check_vma`), binder installs its pages into the replacement (which
  may be writable) and zaps the replacement's pages; with it, `ESRCH` and no zap.
* The shrinker dropping its `mm` reference with a plain `mmput` under the lru
  spinlock: `AtomicSleepError`; `mmput_async` is clean.
* Installing a page with a VMA reference cached from an earlier mmap lock:
  `LifetimeError`; looking the VMA up again under the new lock is clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from binder.page_range import (
    LRU_REMOVED_RETRY,
    LRU_SKIP,
    PageInfo,
    ShrinkablePageRange,
    rust_shrink_free_page,
)
from binder.process import Process
from ownership.aref import ARef
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
)
from ownership.context import preempt_disabled
from ownership.errors import EFAULT, ESRCH, AtomicSleepError, KernelBug, KernelError, LifetimeError
from ownership.miscdevice import File, MiscDevice
from ownership.mm import MmapReadGuard, MmWithUser
from ownership.mm.virt import VmAreaMixedMap, VmAreaNew, VmAreaRef
from ownership.page import PAGE_SHIFT, PAGE_SIZE, Page
from ownership.sync import SpinLockGuard
from ownership.task import current
from tests.expect import raises_errno

from ..binder_harness import KUNIT_MMAP_SIZE, BinderWorld


class Scratchpad(MiscDevice):
    """Another driver: writable shared VM_MIXEDMAP mappings (as a framebuffer's)."""

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.set_mixedmap()


# --- unfixed variants, as Rust Binder 6.18.0 had them --------------------------------------


class Binder618Range(ShrinkablePageRange):
    """6.18's page range: any VMA at the address is used, no ownership check."""

    def check_vma(self, vma: VmAreaRef) -> VmAreaMixedMap | None:
        # 6.18 `use_page_slow`: `vma_lookup(addr)?.as_mixedmap_vma()?.vm_insert_page(..)`.
        return vma.as_mixedmap_vma()

    def zap_page(self, mmap_read: MmapReadGuard, vma_addr: int, page_index: int) -> None:
        # 6.18 shrinker: `if let Some(vma) = mmap_read.vma_lookup(vma_addr) { vma.zap.. }`.
        vma = mmap_read.vma_lookup(vma_addr)
        if vma is not None:
            vma.zap_page_range_single(vma_addr + (page_index << PAGE_SHIFT), PAGE_SIZE)


class Binder618Process(Process):
    page_range_type = Binder618Range


class PlainMmputRange(ShrinkablePageRange):
    """A shrinker that keeps a plain `mmget` reference, dropped with `mmput`."""

    taken: list[ARef[MmWithUser]]

    def mmget_for_shrinker(self) -> ARef[MmWithUser] | None:  # type: ignore[override]
        mm = self.mm.get().mmget_not_zero()
        if mm is not None:
            self.taken.append(mm)
        return mm


class PlainMmputProcess(Process):
    page_range_type = PlainMmputRange


class CachedVmaRange(ShrinkablePageRange):
    """Caches the VMA found under the first mmap lock and reuses it later."""

    cached: VmAreaMixedMap | None = None

    def _insert_page(self, mm: MmWithUser, vma_addr: int, user_page_addr: int, page: Page) -> None:
        if self.cached is None:
            with mm.mmap_read_lock() as first:
                found = first.vma_lookup(vma_addr)
                assert found is not None
                self.cached = self.check_vma(found)
                assert self.cached is not None
                self.cached.vm_insert_page(user_page_addr, page)
            return
        with mm.mmap_read_lock():
            # The bug: the cached VMA belongs to a lock released long ago.
            self.cached.vm_insert_page(user_page_addr, page)


class CachedVmaProcess(Process):
    page_range_type = CachedVmaRange


def _world(process_type: type[Process]) -> Iterator[BinderWorld]:
    w = BinderWorld(process_type=process_type)
    yield w
    w.teardown()


@pytest.fixture
def world618() -> Iterator[BinderWorld]:
    yield from _world(Binder618Process)


@pytest.fixture
def world_plain_mmput() -> Iterator[BinderWorld]:
    yield from _world(PlainMmputProcess)


@pytest.fixture
def world_cached() -> Iterator[BinderWorld]:
    yield from _world(CachedVmaProcess)


def _replace_with_scratchpad(w: BinderWorld, addr: int) -> None:
    """Unmap the binder VMA; map a writable VM_MIXEDMAP one at the same address."""
    o = w.opened[0]
    w.kernel.register_miscdevice("scratchpad", Scratchpad())
    with o.current():
        o.task.munmap(addr, KUNIT_MMAP_SIZE)
        pad = o.task.open("scratchpad")
        got = o.task.mmap(
            pad, KUNIT_MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, addr=addr
        )
        assert got == addr


# --- CVE-2026-43434, install side -------------------------------------------------------------


def test_cve_unfixed_installs_binder_pages_into_a_writable_replacement(
    world618: BinderWorld,
) -> None:
    o = world618.open()
    _replace_with_scratchpad(world618, o.addr)
    with o.current():
        # The driver fills a buffer for this process, and maps its page into the
        # replacement VMA, which is writable: userspace can now write kernel buffers.
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid)
        a.write(0, b"offsets: 0x10")
        o.task.write_user(o.addr, b"offsets: 0x99")
        assert a.read(0, 13) == b"offsets: 0x99"  # The damage: the kernel reads forged data.
        a.drop()


def test_cve_fixed_refuses_a_replaced_vma_with_esrch(world: BinderWorld) -> None:
    o = world.open()
    _replace_with_scratchpad(world, o.addr)
    with o.current():
        with pytest.raises(KernelError) as e:
            o.proc.buffer_alloc(1, 64, False, o.task.pid)
        assert e.value.errno == ESRCH
        # Nothing was installed, and the range is free again.
        assert set(o.proc.pages.page_states()) == {"free"}
        with o.proc.inner.lock() as g:
            assert g.data.mapping is not None and g.data.mapping.alloc.count_buffers() == 0
        # The scratchpad VMA got no binder page: a user access finds nothing mapped.
        with raises_errno(EFAULT):
            o.task.read_user(o.addr, 8)


def test_cve_anonymous_replacement_is_refused_by_the_mixedmap_check_in_both(
    world618: BinderWorld,
) -> None:
    # An anonymous VMA has no VM_MIXEDMAP, so even 6.18 cannot insert into it: the
    # `VmAreaMixedMap` type needs the flag. The writable replacement must be a mixed map.
    o = world618.open()
    with o.current():
        o.task.munmap(o.addr, KUNIT_MMAP_SIZE)
        o.task.mmap(
            None,
            KUNIT_MMAP_SIZE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            addr=o.addr,
        )
        with pytest.raises(KernelError) as e:
            o.proc.buffer_alloc(1, 64, False, o.task.pid)
        assert e.value.errno == ESRCH


# --- CVE-2026-43434, shrinker side ------------------------------------------------------------


def _free_page_then_replace_with_anonymous_data(w: BinderWorld) -> bytes:
    o = w.opened[0]
    with o.current():
        a = o.proc.buffer_alloc(1, PAGE_SIZE, False, o.task.pid)
        a.drop()  # The page is Available, on the LRU.
        o.task.munmap(o.addr, KUNIT_MMAP_SIZE)
        o.task.mmap(
            None,
            KUNIT_MMAP_SIZE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            addr=o.addr,
        )
        data = b"the user's own data"
        o.task.write_user(o.addr, data)
    return data


def test_cve_unfixed_shrinker_zaps_the_replacement_losing_user_data(world618: BinderWorld) -> None:
    o = world618.open()
    data = _free_page_then_replace_with_anonymous_data(world618)
    assert world618.kernel.shrink(16) == 1
    with o.current():
        # The damage: binder zapped an anonymous page it does not own.
        assert o.task.read_user(o.addr, len(data)) == bytes(len(data))


def test_cve_fixed_shrinker_leaves_a_foreign_vma_alone(world: BinderWorld) -> None:
    o = world.open()
    data = _free_page_then_replace_with_anonymous_data(world)
    assert world.kernel.shrink(16) == 1
    assert set(o.proc.pages.page_states()) == {"free"}
    with o.current():
        assert o.task.read_user(o.addr, len(data)) == data


# --- mmput under the lru spinlock -------------------------------------------------------------


def _available_page(w: BinderWorld) -> None:
    o = w.opened[0]
    with o.current():
        a = o.proc.buffer_alloc(1, 8, False, o.task.pid)
        a.drop()


def test_plain_mmput_under_the_lru_lock_is_an_atomic_sleep(world_plain_mmput: BinderWorld) -> None:
    o = world_plain_mmput.open()
    pages = o.proc.pages
    assert isinstance(pages, PlainMmputRange)
    pages.taken = []
    _available_page(world_plain_mmput)
    # mm_lock is busy, so the shrinker skips the page: and drops its mm reference while
    # still holding the lru spinlock.
    with o.current(), pages.mm_lock.lock():
        with pytest.raises(AtomicSleepError) as e:
            world_plain_mmput.kernel.shrink(16)
    assert e.value.rule == "atomic-sleep"
    report = str(e.value)
    assert report.count("page_range.py:") >= 2 and "list_lru lock" in report
    # The refused mmput did not happen; the reference is still ours to give back.
    with o.current():
        for mm in pages.taken:
            mm.drop()
    assert pages.page_states()[0] == "available"


def test_mmput_async_under_the_lru_lock_is_clean(world: BinderWorld) -> None:
    o = world.open()
    _available_page(world)
    with o.current(), o.proc.pages.mm_lock.lock():
        assert world.kernel.shrink(16) == 0
    assert o.proc.pages.page_states()[0] == "available"
    assert world.kernel.shrink(16) == 1


# --- a cached VMA -------------------------------------------------------------------------------


def test_vma_cached_from_an_earlier_mmap_lock_is_a_lifetime_error(
    world_cached: BinderWorld,
) -> None:
    o = world_cached.open()
    with o.current():
        first = o.proc.buffer_alloc(1, 8, False, o.task.pid)  # Caches the VMA.
        with pytest.raises(LifetimeError) as e:
            o.proc.buffer_alloc(2, PAGE_SIZE, False, o.task.pid)  # Page 1 uses the stale VMA.
        first.drop()
    report = str(e.value)
    assert report.count("test_page_range.py:") >= 2
    assert "MmapReadGuard was released" in report


def test_vma_looked_up_under_each_lock_is_clean(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        first = o.proc.buffer_alloc(1, 8, False, o.task.pid)
        second = o.proc.buffer_alloc(2, PAGE_SIZE, False, o.task.pid)
        assert o.proc.pages.page_states()[:3] == ["used", "used", "free"]
        first.drop()
        second.drop()


# --- the shrinker's trylocks --------------------------------------------------------------------


def test_shrinker_skips_when_the_mmap_lock_is_write_held(world: BinderWorld) -> None:
    o = world.open()
    _available_page(world)
    with o.current():
        mm = current().mm()
        assert mm is not None
        with mm.mmap_write_lock():
            assert world.kernel.shrink(16) == 0
    assert world.kernel.shrink(16) == 1


def test_shrinker_skips_when_the_range_spinlock_is_held(world: BinderWorld) -> None:
    o = world.open()
    _available_page(world)
    with o.current(), o.proc.pages.lock.lock():
        assert world.reg.shrinker.scan_objects(16) == 0
    assert world.reg.shrinker.scan_objects(16) == 1
    assert set(o.proc.pages.page_states()) == {"free"}


def test_shrinker_scans_at_most_nr_to_scan(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 4 * PAGE_SIZE, False, o.task.pid)
        a.drop()
    assert world.reg.shrinker.count_objects() == 4
    assert world.kernel.shrink(3) == 3
    assert o.proc.pages.page_states()[:4].count("free") == 3
    assert world.kernel.shrink(3) == 1


# --- internal assertions (upstream's assert!/BUG) ---------------------------------------------


def test_use_range_beyond_the_mapping_is_a_kernel_bug(world: BinderWorld) -> None:
    o = world.open()
    n = o.proc.pages.num_pages()
    with o.current():
        with pytest.raises(KernelBug) as e:
            o.proc.pages.use_range(n - 1, n + 1)
        assert e.value.rule == "binder-use-range-bounds"
        # Nothing was touched; a range inside the mapping works.
        assert set(o.proc.pages.page_states()) == {"free"}
        o.proc.pages.use_range(n - 1, n)
        o.proc.pages.stop_using_range(n - 1, n)
        with pytest.raises(KernelBug):
            o.proc.pages.stop_using_range(0, n + 1)
    assert o.proc.pages.page_states()[-1] == "available"


def test_an_isolate_callback_breaking_the_lru_protocol_is_a_kernel_bug(world: BinderWorld) -> None:
    o = world.open()
    _available_page(world)
    lru = world.reg.shrinker.list_lru

    def skip_after_unlocking(item: PageInfo, guard: SpinLockGuard[Any]) -> int:
        guard.drop()
        return LRU_SKIP

    def removed_but_still_locked(item: PageInfo, guard: SpinLockGuard[Any]) -> int:
        return LRU_REMOVED_RETRY

    for bad, rule in (
        (skip_after_unlocking, "list-lru-skip-unlocked"),
        (removed_but_still_locked, "list-lru-removed-retry-locked"),
    ):
        with pytest.raises(KernelBug) as e:
            lru.walk(bad, 4)
        assert e.value.rule == rule
    # The walk released the lru lock either way; the real shrinker still works.
    assert lru.walk(rust_shrink_free_page, 4) == 1
    assert o.proc.pages.page_states()[0] == "free"


# --- without per-VMA locks: the mmap read lock fallback --------------------------------------


@pytest.fixture
def world_no_vma_lock() -> Iterator[BinderWorld]:
    w = BinderWorld(per_vma_lock=False)
    yield w
    w.teardown()


def test_install_and_zap_through_the_mmap_read_lock(world_no_vma_lock: BinderWorld) -> None:
    w = world_no_vma_lock
    o = w.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 2 * PAGE_SIZE, False, o.task.pid)
        a.write(PAGE_SIZE, b"fallback")
        assert o.task.read_user(a.ptr + PAGE_SIZE, 8) == b"fallback"
        a.drop()
    assert w.kernel.shrink(8) == 2
    assert set(o.proc.pages.page_states()) == {"free"}


def test_replaced_vma_is_refused_through_the_mmap_read_lock(world_no_vma_lock: BinderWorld) -> None:
    o = world_no_vma_lock.open()
    _replace_with_scratchpad(world_no_vma_lock, o.addr)
    with o.current():
        with pytest.raises(KernelError) as e:
            o.proc.buffer_alloc(1, 64, False, o.task.pid)
        assert e.value.errno == ESRCH


# --- atomic context ---------------------------------------------------------------------------


def test_use_range_in_atomic_context_is_an_atomic_sleep(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        with preempt_disabled():
            with pytest.raises(AtomicSleepError) as e:
                o.proc.pages.use_range(0, 1)  # The bug: it may allocate and sleep.
        assert set(o.proc.pages.page_states()) == {"free"}
        o.proc.pages.use_range(0, 1)
        assert o.proc.pages.page_states()[0] == "used"
        # stop_using_range is atomic-safe: under preempt_disable it is clean.
        with preempt_disabled():
            o.proc.pages.stop_using_range(0, 1)
    assert o.proc.pages.page_states()[0] == "available"
    assert str(e.value).count("test_page_range.py:") >= 2
