"""Rule 7: `zap_page_range_single` with a wrapping or out-of-VMA range does nothing and
records a warning (upstream returns silently; C would hit a `BUG_ON`)."""

from __future__ import annotations

import pytest

from ownership import warn
from ownership.bindings import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Task
from ownership.errors import EFAULT, KernelError
from ownership.warn import KernelWarning

from .drivers import FaultingDevice, MixedMapDevice
from .helpers import current_mm

USIZE_MAX = (1 << 64) - 1


def _zap(addr: int, at: int, size: int) -> None:
    with current_mm().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        vma.zap_page_range_single(at, size)


@pytest.mark.parametrize(
    ("offset", "size"),
    [
        (0, USIZE_MAX),  # wraps around the address space
        (PAGE_SIZE, USIZE_MAX - PAGE_SIZE),  # wraps exactly to start
        (-PAGE_SIZE, PAGE_SIZE),  # begins below the VMA
        (0, 3 * PAGE_SIZE),  # ends beyond it
    ],
)
def test_bad_ranges_do_nothing_and_warn(kernel: Kernel, proc: Task, offset: int, size: int) -> None:
    dev = MixedMapDevice()
    kernel.register_miscdevice("dev", dev)
    f = proc.open("dev")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    with pytest.warns(KernelWarning, match="zap-out-of-range"):
        _zap(addr, addr + offset, size)
    assert [w.rule for w in warn.log()] == ["zap-out-of-range"]
    assert "test_rule07_zap.py" in str(warn.log()[0].site)
    assert proc.read_user(addr, 8) == bytes([0xA0]) * 8, "nothing was zapped"
    assert dev.pages[0].as_ptr().mapcount == 1
    proc.munmap(addr, 2 * PAGE_SIZE)
    f.close()
    dev.drop_pages()


def test_clean_zap_inside_the_vma_unmaps_the_pages(kernel: Kernel, proc: Task) -> None:
    dev = MixedMapDevice()
    kernel.register_miscdevice("dev", dev)
    f = proc.open("dev")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    _zap(addr, addr + PAGE_SIZE, PAGE_SIZE)
    assert not warn.log()
    assert proc.read_user(addr, 1) == b"\xa0"
    with pytest.raises(KernelError) as e:
        proc.read_user(addr + PAGE_SIZE, 1)
    assert e.value.errno == EFAULT, "no PTE and no fault handler: SIGBUS"
    assert dev.pages[1].as_ptr().mapcount == 0 and dev.pages[1].as_ptr().refcount == 1
    proc.munmap(addr, 2 * PAGE_SIZE)
    f.close()
    dev.drop_pages()


def test_zapped_pages_of_a_faulting_mapping_come_back_on_touch(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(2)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert proc.read_user(addr + PAGE_SIZE, 6) == b"page 1"
    _zap(addr, addr, 2 * PAGE_SIZE)
    assert dev.pages[1].as_ptr().mapcount == 0
    assert proc.read_user(addr + PAGE_SIZE, 6) == b"page 1"
    proc.munmap(addr, 2 * PAGE_SIZE)
    f.close()
    assert dev.ops.closed == 1
    dev.drop_pages()
