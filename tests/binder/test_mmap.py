"""`mmap` of /dev/binder, and the KUnit `binder_alloc_test_mmap` / `init_freelist` cases."""

from __future__ import annotations

from typing import cast

import pytest

from binder.page_range import BINDER_VM_OPS, SZ_4M, ShrinkablePageRange
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from ownership.errors import EBUSY, EFAULT, EINVAL, EPERM, KernelError
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew, flags
from ownership.page import PAGE_SIZE
from ownership.task import current

from ..binder_harness import KUNIT_MMAP_SIZE, BinderWorld, process_of


def test_kunit_init_freelist(world: BinderWorld) -> None:
    # binder_alloc_test_init_freelist: the process's pages use the device's LRU.
    o = world.open()
    assert o.proc.pages.shrinker is world.reg.shrinker
    assert o.proc.pages.shrinker.list_lru.count() == 0


def test_kunit_mmap(world: BinderWorld) -> None:
    # binder_alloc_test_mmap: mapped, 128K, no allocated buffer, one free 128K range.
    o = world.open()
    assert o.proc.mapping_info() == (o.addr, KUNIT_MMAP_SIZE)
    with o.proc.inner.lock() as g:
        mapping = g.data.mapping
        assert mapping is not None
        assert mapping.alloc.count_buffers() == 0
        assert mapping.alloc.free_ranges() == [(0, KUNIT_MMAP_SIZE)]
    assert o.proc.pages.num_pages() == KUNIT_MMAP_SIZE // PAGE_SIZE
    assert set(o.proc.pages.page_states()) == {"free"}


def test_mmap_flags_ops_and_private_data(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        mm = current().mm()
        assert mm is not None
        with mm.mmap_read_lock() as guard:
            vma = guard.vma_lookup(o.addr)
            assert vma is not None
            f = vma.flags()
            assert f & flags.MIXEDMAP and f & flags.DONTCOPY
            assert not f & (flags.WRITE | flags.MAYWRITE)
            # The driver can recognise its own VMA later.
            assert vma.vm_ops() is BINDER_VM_OPS
            assert vma.vm_private_data() is o.proc.pages
            assert o.proc.pages.check_vma(vma) is not None


def test_mapping_is_capped_at_4m(world: BinderWorld) -> None:
    o = world.open(map_size=2 * SZ_4M)
    assert o.proc.mapping_info() == (o.addr, SZ_4M)
    assert o.proc.pages.num_pages() == SZ_4M // PAGE_SIZE


def test_writable_mapping_is_eperm(world: BinderWorld) -> None:
    task = world.kernel.spawn_process("writer")
    with task.as_current():
        f = task.open("binder")
        with pytest.raises(KernelError) as e:
            task.mmap(f, KUNIT_MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED)
        assert e.value.errno == EPERM
        # Nothing was registered: a correct read-only mapping still works afterwards.
        addr = task.mmap(f, KUNIT_MMAP_SIZE, PROT_READ, MAP_PRIVATE)
        assert process_of(f).mapping_info() == (addr, KUNIT_MMAP_SIZE)
        f.close()
    task.exit()


def test_read_only_mapping_can_never_become_writable(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        with pytest.raises(KernelError) as e:
            o.task.mprotect(o.addr, PAGE_SIZE, PROT_READ | PROT_WRITE)
        assert e.value.errno != 0
        with pytest.raises(KernelError) as e:
            o.task.write_user(o.addr, b"x")
        assert e.value.errno == EFAULT


def test_mapping_from_a_foreign_process_is_einval(world: BinderWorld) -> None:
    parent = world.kernel.spawn_process("parent")
    with parent.as_current():
        f = parent.open("binder")
    child = parent.fork()
    with child.as_current():
        child_file = next(iter(child.files.values()))
        with pytest.raises(KernelError) as e:
            child.mmap(child_file, KUNIT_MMAP_SIZE, PROT_READ, MAP_PRIVATE)
        assert e.value.errno == EINVAL
    with parent.as_current():
        addr = parent.mmap(f, KUNIT_MMAP_SIZE, PROT_READ, MAP_PRIVATE)
        assert process_of(f).mapping_info() == (addr, KUNIT_MMAP_SIZE)
    child.exit()
    parent.exit()


def test_second_mapping_is_ebusy(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        with pytest.raises(KernelError) as e:
            o.task.mmap(o.file, KUNIT_MMAP_SIZE, PROT_READ, MAP_PRIVATE)
        assert e.value.errno == EBUSY
    assert o.proc.mapping_info() == (o.addr, KUNIT_MMAP_SIZE)


def test_mapping_is_not_copied_on_fork(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        alloc = o.proc.buffer_alloc(1, 64, False, o.task.pid)
        alloc.write(0, b"parent")
    child = o.task.fork()
    with child.as_current():
        with pytest.raises(KernelError) as e:
            child.read_user(o.addr, 6)
        assert e.value.errno == EFAULT
        # The child may map anonymous memory where the binder VMA was in its parent.
        anon = child.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        child.write_user(anon, b"ok")
    child.exit()
    with o.current():
        assert o.task.read_user(o.addr, 6) == b"parent"
        alloc.drop()


def test_shrinker_is_registered_as_android_binder(world: BinderWorld) -> None:
    assert "android-binder" in world.kernel.shrinkers.names()
    world.reg.unregister()
    assert "android-binder" not in world.kernel.shrinkers.names()
    # The world's teardown unregisters again: harmless.


def test_mapping_at_address_zero_is_einval(world: BinderWorld) -> None:
    class VmaAtZero:
        """A VMA at address 0, as a kernel with mmap_min_addr = 0 would hand over."""

        def start(self) -> int:
            return 0

    o = world.open(map_size=None)
    with o.current():
        with pytest.raises(KernelError) as e:
            o.proc.mmap(cast(VmAreaNew, VmaAtZero()))
        assert e.value.errno == EINVAL
    assert o.proc.mapping_info() is None


class Forwarder(MiscDevice):
    """A driver that hands the VMA of its own mmap to someone else's page range."""

    def __init__(self, pages: ShrinkablePageRange) -> None:
        self.pages = pages

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        self.pages.register_with_vma(vma)


def test_vma_of_another_address_space_is_einval(world: BinderWorld) -> None:
    victim = world.open("victim", map_size=None)
    world.kernel.register_miscdevice("forwarder", Forwarder(victim.proc.pages))
    other = world.kernel.spawn_process("other")
    world.tasks.append(other)
    with other.as_current():
        f = other.open("forwarder")
        with pytest.raises(KernelError) as e:
            other.mmap(f, KUNIT_MMAP_SIZE, PROT_READ, MAP_PRIVATE)
        assert e.value.errno == EINVAL
        f.close()
    assert victim.proc.pages.num_pages() == 0
