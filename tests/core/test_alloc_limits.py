"""Sizes the kernel refuses: kmalloc beyond `KMALLOC_MAX_SIZE`, vmalloc beyond its space.

The limits are the real ones of x86-64: `KMALLOC_MAX_SIZE = 1 << (MAX_PAGE_ORDER +
PAGE_SHIFT)` (4 MiB) and the 32 TiB vmalloc space. A refused size is
`KernelError(ENOMEM)`, as the kernel's NULL, and nothing was allocated.
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, KBox, KVec, VBox, VVec, allocation_count
from ownership.bindings import Kernel
from ownership.bindings.consts import KMALLOC_MAX_SIZE, MAX_PAGE_ORDER, PAGE_SHIFT, VMALLOC_SIZE
from ownership.errors import ENOMEM
from ownership.sync import SpinLock
from tests.expect import raises_errno


def test_the_limits_are_the_kernels() -> None:
    assert MAX_PAGE_ORDER == 10 and KMALLOC_MAX_SIZE == 1 << (MAX_PAGE_ORDER + PAGE_SHIFT)
    assert KMALLOC_MAX_SIZE == 4 * 1024 * 1024 and VMALLOC_SIZE == 32 << 40


def test_a_kvec_of_2_62_elements_is_refused() -> None:
    v: KVec[int] = KVec.new()
    before = allocation_count()
    with raises_errno(ENOMEM):
        v.reserve(2**62, GFP_KERNEL)
    assert v.capacity() == 0 and allocation_count() == before
    with raises_errno(ENOMEM):
        KVec.with_capacity(KMALLOC_MAX_SIZE + 1, GFP_KERNEL)
    v.drop()


def test_a_kvec_that_doubles_past_the_limit_is_refused_and_keeps_its_items() -> None:
    v: KVec[int] = KVec.with_capacity(3 * 1024 * 1024, GFP_KERNEL)
    v.push(7, GFP_KERNEL)
    with raises_errno(ENOMEM):
        v.reserve(v.capacity(), GFP_KERNEL)  # Doubling asks for 6 MiB.
    assert v.capacity() == 3 * 1024 * 1024 and list(v) == [7]
    v.drop()


def test_a_kvec_at_the_limit_is_granted() -> None:
    v: KVec[int] = KVec.with_capacity(KMALLOC_MAX_SIZE, GFP_KERNEL)
    assert v.capacity() == KMALLOC_MAX_SIZE
    v.drop()


def test_a_kbox_of_more_bytes_than_kmalloc_gives_is_refused() -> None:
    with raises_errno(ENOMEM):
        KBox.new(bytes(KMALLOC_MAX_SIZE + 1), GFP_KERNEL)
    b = KBox.new(bytes(KMALLOC_MAX_SIZE), GFP_KERNEL)
    assert len(b.get()) == KMALLOC_MAX_SIZE
    b.drop()


def test_a_refused_size_is_enomem_even_in_atomic_context() -> None:
    # The page allocator refuses an order above MAX_PAGE_ORDER before its sleep check.
    lock = SpinLock(0, name="alloc limits spin")
    with lock.lock(), raises_errno(ENOMEM):
        KVec.with_capacity(2**62, GFP_ATOMIC)


def test_vmalloc_beyond_its_space_or_the_machine_is_refused() -> None:
    k = Kernel(pages_per_node=64)
    with k.as_default():
        with raises_errno(ENOMEM):
            VBox.new_zeroed(VMALLOC_SIZE, GFP_KERNEL)
        with raises_errno(ENOMEM):
            VVec.with_capacity(2**62, GFP_KERNEL)
        v = VVec.new()
        with raises_errno(ENOMEM):
            v.reserve(VMALLOC_SIZE, GFP_KERNEL)
        assert v.capacity() == 0
        with raises_errno(ENOMEM):
            VBox.new_zeroed(129 * 4096, GFP_KERNEL)  # More pages than the machine has.
        assert k.nr_used_pages() == 0
        box = VBox.new_zeroed(4 * 4096, GFP_KERNEL)
        assert len(box) == 4 * 4096
        box.drop()
        v.drop()


@pytest.mark.parametrize("n", [0, 1, 4096])
def test_small_sizes_are_granted(n: int) -> None:
    v: KVec[int] = KVec.with_capacity(n, GFP_KERNEL)
    assert v.capacity() == n
    v.drop()
