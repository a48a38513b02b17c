"""The upstream names of the mm views: `VmaRef`/`VmaMixedMap`/`VmaNew` and `zap_vma_range`.

Binder's `page_range.rs` zaps a page with `vma.zap_vma_range(addr, PAGE_SIZE)` on the
`VmaRef` that `mmap_read.vma_lookup(addr)` returns; the same lines work here, on the
same classes as the seeds' names, and the older `zap_page_range_single` is an alias.
"""

from __future__ import annotations

import pytest

from ownership import warn
from ownership.aref import ARef as OldARef
from ownership.bindings import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Task
from ownership.errors import KernelError
from ownership.mm.virt import (
    VmaMixedMap,
    VmaNew,
    VmAreaMixedMap,
    VmAreaNew,
    VmAreaRef,
    VmaRef,
)
from ownership.sync.aref import ARef
from ownership.warn import KernelWarning

from .drivers import MixedMapDevice
from .helpers import current_mm


def test_the_upstream_names_are_the_same_classes() -> None:
    assert (VmaRef, VmaMixedMap, VmaNew) == (VmAreaRef, VmAreaMixedMap, VmAreaNew)
    assert VmaRef.zap_page_range_single is VmaRef.zap_vma_range
    assert ARef is OldARef


def test_zap_vma_range_as_binder_uses_it(kernel: Kernel, proc: Task) -> None:
    dev = MixedMapDevice()
    kernel.register_miscdevice("dev", dev)
    f = proc.open("dev")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    with current_mm().mmap_read_lock() as mmap_read:
        vma = mmap_read.vma_lookup(addr)
        assert isinstance(vma, VmaRef)
        mixed = vma.as_mixedmap_vma()
        assert isinstance(mixed, VmaMixedMap)
        vma.zap_vma_range(addr + PAGE_SIZE, PAGE_SIZE)
        with pytest.warns(KernelWarning, match="zap-out-of-range"):
            vma.zap_vma_range(addr, 3 * PAGE_SIZE)
    assert "zap_vma_range(" in warn.log()[0].message
    assert proc.read_user(addr, 1) == b"\xa0"
    with pytest.raises(KernelError):
        proc.read_user(addr + PAGE_SIZE, 1)
    proc.munmap(addr, 2 * PAGE_SIZE)
    f.close()
    dev.drop_pages()
