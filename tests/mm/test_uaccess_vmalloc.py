"""`UserSlice` readers and writers over a process's memory, and the vmalloc owners."""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL, VBox, VVec, fail_after, fail_nth
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.errors import EFAULT, EINVAL, ENOMEM, KernelError, LifetimeError
from ownership.marker import is_send
from ownership.mm import MmWithUser
from ownership.task import current
from ownership.uaccess import UserSlice
from tests.expect import raises_errno


def _buffer(proc: Task, data: bytes) -> int:
    addr = proc.mmap(None, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    proc.write_user(addr, data)
    return addr


def test_reader_consumes_the_slice_from_the_front(proc: Task) -> None:
    addr = _buffer(proc, b"0123456789")
    reader = UserSlice(addr, 10).reader()
    assert reader.read_raw(3) == b"012"
    reader.skip(2)
    assert reader.len() == 5 and reader.read_all() == b"56789" and reader.is_empty()
    with raises_errno(EFAULT):
        reader.read_raw(1)


def test_writer_crosses_page_boundaries(proc: Task) -> None:
    addr = _buffer(proc, b"")
    writer = UserSlice(addr + PAGE_SIZE - 3, 6).writer()
    writer.write_slice(b"abcdef")
    assert proc.read_user(addr + PAGE_SIZE - 3, 6) == b"abcdef"
    with raises_errno(EFAULT):
        writer.write_slice(b"!")


def test_user_pointers_into_nothing_fault(proc: Task) -> None:
    with raises_errno(EFAULT):
        UserSlice(0x1000, 4).reader().read_raw(4)
    with pytest.raises(TypeError):
        UserSlice(-1, 4)


def test_user_access_without_a_process_faults(kernel: Kernel) -> None:
    kt = kernel.spawn_kthread("kworker")
    with kt.as_current(), raises_errno(EFAULT):
        UserSlice(0x1000, 1).reader().read_raw(1)
    assert kt.mm is None


def test_vbox_contents_bounds_and_failure_injection(kernel: Kernel, proc: Task) -> None:
    box = VBox.new(b"abc" * 2000, GFP_KERNEL)
    assert len(box) == 6000 and box.read(5998, 2) == b"bc"
    box.write(4095, b"XY")
    assert box.read(4094, 4) == b"cXYc"
    with raises_errno(EINVAL):
        box.read(5999, 2)
    used = kernel.nr_used_pages()
    with fail_nth(1), pytest.raises(KernelError) as e:
        VBox.new_zeroed(3 * PAGE_SIZE, GFP_KERNEL)
    assert e.value.errno == ENOMEM and kernel.nr_used_pages() == used
    assert list(VBox.new_zeroed(0, GFP_KERNEL).page_iter()) == []
    box.drop()
    with pytest.raises(LifetimeError):
        box.read(0, 1)


def test_vvec_growth_failure_keeps_the_old_contents(proc: Task) -> None:
    vec = VVec.with_capacity(8, GFP_KERNEL)
    vec.extend_from_slice(b"12345678", GFP_KERNEL)
    with fail_after(0), raises_errno(ENOMEM):
        vec.push(9, GFP_KERNEL)
    assert vec.as_bytes() == b"12345678" and len(vec) == 8
    vec.push(ord("9"), GFP_KERNEL)
    assert vec.as_bytes() == b"123456789"
    vec.drop()


def test_mm_types_are_send_and_sync(proc: Task) -> None:
    mm = current().mm()
    assert isinstance(mm, MmWithUser)
    from ownership.aref import ARef

    user = ARef.from_ref(mm)
    async_user = MmWithUser.into_mmput_async(user)
    assert is_send(async_user) and is_send(mm.as_mm())
    with pytest.raises(TypeError):
        MmWithUser.into_mmput_async(mm)  # type: ignore[arg-type]
    async_user.drop()
    grab = ARef.from_ref(mm.as_mm())
    grab.drop()
