"""The simulated kernel's mm: what userspace sees of mmap, munmap, mprotect, madvise and fork."""

from __future__ import annotations

from ownership.bindings import (
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDONLY,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.bindings import mm as mmops
from ownership.errors import (
    EACCES,
    EBADF,
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOMEM,
)
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew, flags
from tests.expect import raises_errno

from .drivers import FaultingDevice, MixedMapDevice

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _vmas(proc: Task) -> list[tuple[int, int, int]]:
    assert proc.mm is not None
    return [(v.vm_start, v.vm_end, v.vm_flags) for v in proc.mm.vmas]


def test_mmap_computes_the_kernels_flags(proc: Task) -> None:
    a = proc.mmap(None, PAGE_SIZE, RW, ANON)
    b = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_ANONYMOUS)
    got = {start: fl for start, _, fl in _vmas(proc)}
    assert got[a] == flags.READ | flags.WRITE | flags.MAYREAD | flags.MAYWRITE | flags.MAYEXEC
    assert got[b] == flags.READ | flags.SHARED | flags.MAY_MASK | flags.MAYSHARE


def test_read_only_file_mappings(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(1, refuse_writable=False)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy", O_RDONLY)
    with raises_errno(EACCES):
        proc.mmap(f, PAGE_SIZE, RW, MAP_SHARED)
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    ((_, _, fl),) = _vmas(proc)
    assert not fl & (flags.MAYWRITE | flags.SHARED) and fl & flags.MAYSHARE
    with raises_errno(EACCES):
        proc.mprotect(addr, PAGE_SIZE, RW)
    proc.munmap(addr, PAGE_SIZE)
    f.close()
    dev.drop_pages()


def test_munmap_splits_and_calls_open_and_close(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(4)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy")
    addr = proc.mmap(f, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert proc.read_user(addr + 3 * PAGE_SIZE, 6) == b"page 3"
    proc.munmap(addr + PAGE_SIZE, 2 * PAGE_SIZE)
    assert [(s - addr, e - addr) for s, e, _ in _vmas(proc)] == [
        (0, PAGE_SIZE),
        (3 * PAGE_SIZE, 4 * PAGE_SIZE),
    ]
    assert (dev.ops.opened, dev.ops.closed) == (2, 1), "two splits opened pieces; the middle closed"
    assert proc.read_user(addr, 6) == b"page 0"
    assert proc.read_user(addr + 3 * PAGE_SIZE, 6) == b"page 3", (
        "the split piece kept its file offset"
    )
    with raises_errno(EFAULT):
        proc.read_user(addr + PAGE_SIZE, 1)
    f.close()
    assert not dev.ops.closed == 3
    proc.munmap(addr, 4 * PAGE_SIZE)
    assert dev.ops.closed == 3
    dev.drop_pages()


def test_mprotect_splits_and_merges_back(proc: Task) -> None:
    addr = proc.mmap(None, 4 * PAGE_SIZE, RW, ANON)
    proc.write_user(addr, b"x" * (4 * PAGE_SIZE))
    proc.mprotect(addr + PAGE_SIZE, PAGE_SIZE, PROT_READ)
    assert len(_vmas(proc)) == 3
    with raises_errno(EFAULT):
        proc.write_user(addr + PAGE_SIZE + 5, b"y")
    proc.mprotect(addr + PAGE_SIZE, PAGE_SIZE, RW)
    assert len(_vmas(proc)) == 1, "equal flags merge again"
    proc.write_user(addr + PAGE_SIZE + 5, b"y")
    assert proc.read_user(addr + PAGE_SIZE + 4, 3) == b"xyx"
    proc.mprotect(addr, PAGE_SIZE, PROT_NONE)
    with raises_errno(EFAULT):
        proc.read_user(addr, 1)
    with raises_errno(ENOMEM):
        proc.mprotect(addr, 8 * PAGE_SIZE, PROT_READ)


def test_adjacent_anonymous_mappings_merge(proc: Task) -> None:
    a = proc.mmap(None, PAGE_SIZE, RW, ANON)
    b = proc.mmap(None, PAGE_SIZE, RW, ANON)
    assert abs(a - b) == PAGE_SIZE
    assert len(_vmas(proc)) == 1
    proc.mmap(None, PAGE_SIZE, RW, ANON | MAP_NORESERVE)
    assert len(_vmas(proc)) == 2, "different flags do not merge"


def test_fixed_mappings(proc: Task) -> None:
    addr = proc.mmap(None, 2 * PAGE_SIZE, RW, ANON)
    proc.write_user(addr, b"old")
    with raises_errno(EEXIST):
        proc.mmap(None, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE, addr=addr)
    assert proc.mmap(None, PAGE_SIZE, PROT_READ, ANON | MAP_FIXED, addr=addr) == addr
    assert proc.read_user(addr, 3) == bytes(3), "MAP_FIXED replaced the old page"
    with raises_errno(EINVAL):
        proc.mmap(None, PAGE_SIZE, RW, ANON | MAP_FIXED, addr=addr + 1)


def test_madvise_dontfork_dofork_and_dontneed(proc: Task) -> None:
    keep = proc.mmap(None, PAGE_SIZE, RW, ANON)
    private = proc.mmap(None, PAGE_SIZE, RW, ANON | MAP_NORESERVE)
    proc.write_user(keep, b"kept")
    proc.write_user(private, b"secret")
    proc.madvise(private, PAGE_SIZE, MADV_DONTFORK)
    child = proc.fork()
    assert child.read_user(keep, 4) == b"kept"
    with raises_errno(EFAULT):
        child.read_user(private, 6)
    proc.madvise(private, PAGE_SIZE, MADV_DOFORK)
    child2 = proc.fork()
    assert child2.read_user(private, 6) == b"secret"
    proc.madvise(keep, PAGE_SIZE, MADV_DONTNEED)
    assert proc.read_user(keep, 4) == bytes(4)
    assert child.read_user(keep, 4) == b"kept"
    with raises_errno(EINVAL):
        proc.madvise(keep, PAGE_SIZE, 12345)
    child.exit()
    child2.exit()


class IoDevice(MiscDevice):
    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.set_io()
        vma.set_dontcopy()
        vma.set_dontdump()
        vma.set_mixedmap()


def test_dontcopy_and_dontdump_are_permanent_with_vm_io(kernel: Kernel, proc: Task) -> None:
    kernel.register_miscdevice("io", IoDevice())
    f = proc.open("io")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    for advice in (MADV_DOFORK, MADV_DODUMP):
        with raises_errno(EINVAL):
            proc.madvise(addr, PAGE_SIZE, advice)
    proc.munmap(addr, PAGE_SIZE)
    f.close()


def test_fork_is_copy_on_write(proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, RW, ANON)
    proc.write_user(addr, b"parent")
    child = proc.fork()
    assert proc.mm is not None and child.mm is not None
    page = proc.mm.ptes[addr].page
    assert (page.mapcount, page.refcount) == (2, 2)
    child.write_user(addr, b"child!")
    assert proc.read_user(addr, 6) == b"parent" and child.read_user(addr, 6) == b"child!"
    assert page.mapcount == 1
    proc.write_user(addr, b"again!")
    assert proc.mm.ptes[addr].page is page, "the last mapper reuses the page"
    child.exit()


def test_shared_anonymous_memory_is_shared_across_fork(proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
    child = proc.fork()
    child.write_user(addr, b"from the child")
    assert proc.read_user(addr, 14) == b"from the child"
    child.exit()


def test_files_live_while_mapped(kernel: Kernel, proc: Task) -> None:
    released: list[str] = []

    class Tracking(MixedMapDevice):
        def release(self, file: File) -> None:
            released.append(file.name())

    dev = Tracking()
    kernel.register_miscdevice("tracked", dev)
    f = proc.open("tracked")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.close()
    assert released == [] and proc.read_user(addr, 1) == b"\xa0"
    proc.munmap(addr, PAGE_SIZE)
    assert released == ["tracked"]
    dev.drop_pages()


def test_devices_without_mmap_and_unknown_devices(kernel: Kernel, proc: Task) -> None:
    class NoMmap(MiscDevice):
        pass

    kernel.register_miscdevice("plain", NoMmap())
    f = proc.open("plain")
    with raises_errno(ENODEV):
        proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.close()
    with raises_errno(EBADF):
        f.ioctl(1)
    with raises_errno(ENOENT):
        proc.open("missing")
    with raises_errno(EBUSY):
        kernel.register_miscdevice("plain", NoMmap())


def test_remap_pfn_range_sets_the_pfnmap_bits(kernel: Kernel, proc: Task) -> None:
    class Raw(MiscDevice):
        def mmap(self, file: File, vma: VmAreaNew) -> None:
            mmops.remap_pfn_range(vma.as_ptr(), vma.start(), 5, PAGE_SIZE)

    kernel.register_miscdevice("raw", Raw())
    f = proc.open("raw")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    ((_, _, fl),) = _vmas(proc)
    want = flags.PFNMAP | flags.IO | flags.DONTEXPAND | flags.DONTDUMP
    assert fl & want == want
    assert proc.read_user(addr, 1) in (b"\0", bytes(1))
    proc.munmap(addr, PAGE_SIZE)
    f.close()

    class MixedThenRaw(MiscDevice):
        def mmap(self, file: File, vma: VmAreaNew) -> None:
            vma.set_mixedmap()
            mmops.remap_pfn_range(vma.as_ptr(), vma.start(), 5, PAGE_SIZE)

    kernel.register_miscdevice("bad", MixedThenRaw())
    g = proc.open("bad")
    with raises_errno(EINVAL):
        proc.mmap(g, PAGE_SIZE, PROT_READ, MAP_SHARED)
    g.close()


def test_pages_come_from_two_numa_nodes(kernel: Kernel) -> None:
    a, b = kernel.spawn_process("on-node-0"), kernel.spawn_process("on-node-1")
    nids = set()
    for p in (a, b):
        addr = p.mmap(None, PAGE_SIZE, RW, ANON)
        p.write_user(addr, b"x")
        assert p.mm is not None
        nids.add(p.mm.ptes[addr].page.nid)
        p.exit()
    assert nids == {0, 1}


def test_fork_opens_the_childs_vma_and_exit_closes_it(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(2)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert proc.read_user(addr, 6) == b"page 0"
    child = proc.fork()
    assert (dev.ops.opened, dev.ops.closed) == (1, 0)
    assert child.read_user(addr + PAGE_SIZE, 6) == b"page 1", "the child faults through vm_ops too"
    page = dev.pages[1].as_ptr()
    assert page.mapcount == 1
    child.exit()
    assert dev.ops.closed == 1 and page.mapcount == 0
    proc.munmap(addr, 2 * PAGE_SIZE)
    assert dev.ops.closed == 2
    f.close()
    dev.drop_pages()
