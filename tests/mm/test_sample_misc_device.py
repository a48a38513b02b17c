"""The sample misc device with mmap, driven from a simulated process."""

from __future__ import annotations

import pytest

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
from ownership.errors import EACCES, EFAULT, EINVAL, ENOTTY, EPERM
from ownership.samples.rust_misc_device_mmap import (
    MAX_PAGES,
    RUST_MISC_DEV_GET_VALUE,
    RUST_MISC_DEV_HELLO,
    RUST_MISC_DEV_REINSERT,
    RUST_MISC_DEV_SET_VALUE,
    RUST_MISC_DEV_ZAP,
    RustMiscDeviceMmap,
    page_header,
)
from tests.expect import raises_errno


@pytest.fixture
def device(kernel: Kernel) -> RustMiscDeviceMmap:
    dev = RustMiscDeviceMmap()
    kernel.register_miscdevice("rust-misc-device", dev)
    return dev


def test_the_userspace_program_of_the_sample(
    kernel: Kernel, proc: Task, device: RustMiscDeviceMmap
) -> None:
    baseline = kernel.nr_used_pages()
    f = proc.open("/dev/rust-misc-device")
    assert f.ioctl(RUST_MISC_DEV_HELLO) == 0
    scratch = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    f.ioctl(RUST_MISC_DEV_GET_VALUE, scratch)
    value = int.from_bytes(proc.read_user(scratch, 4), "little", signed=True)
    proc.write_user(scratch, (value + 1).to_bytes(4, "little", signed=True))
    f.ioctl(RUST_MISC_DEV_SET_VALUE, scratch)
    proc.write_user(scratch, bytes(4))
    f.ioctl(RUST_MISC_DEV_GET_VALUE, scratch)
    assert int.from_bytes(proc.read_user(scratch, 4), "little", signed=True) == value + 1
    with raises_errno(ENOTTY):
        f.ioctl(0x7C00)  # RUST_MISC_DEV_FAIL: _IO('|', 0)

    # The mmap part: open, mmap, read_user, write_user fails, mprotect(+W) fails, munmap, close.
    addr = proc.mmap(f, 3 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    for i in range(3):
        assert proc.read_user(addr + i * PAGE_SIZE, len(page_header(i))) == page_header(i)
    with raises_errno(EFAULT):
        proc.write_user(addr + PAGE_SIZE, b"scribble")
    with raises_errno(EACCES):
        proc.mprotect(addr, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE)
    proc.munmap(addr, 3 * PAGE_SIZE)
    f.close()
    proc.munmap(scratch, PAGE_SIZE)
    assert kernel.nr_used_pages() == baseline, "release freed every page of the mapping"


def test_a_writable_mapping_is_refused(
    kernel: Kernel, proc: Task, device: RustMiscDeviceMmap
) -> None:
    f = proc.open("rust-misc-device")
    with raises_errno(EPERM):
        proc.mmap(f, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED)
    with raises_errno(EINVAL):
        proc.mmap(f, (MAX_PAGES + 1) * PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.close()


def test_a_child_does_not_inherit_the_pages(
    kernel: Kernel, proc: Task, device: RustMiscDeviceMmap
) -> None:
    f = proc.open("rust-misc-device")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    child = proc.fork()
    with raises_errno(EFAULT):
        child.read_user(addr, 4)
    assert proc.read_user(addr, 4) == b"rust"
    child.exit()
    proc.munmap(addr, PAGE_SIZE)
    f.close()


def test_zap_and_reinsert_round_trip(
    kernel: Kernel, proc: Task, device: RustMiscDeviceMmap
) -> None:
    f = proc.open("rust-misc-device")
    addr = proc.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.ioctl(RUST_MISC_DEV_ZAP, 1)
    with raises_errno(EFAULT):
        proc.read_user(addr + PAGE_SIZE, 4)
    f.ioctl(RUST_MISC_DEV_REINSERT, 1)
    assert proc.read_user(addr + PAGE_SIZE, len(page_header(1))) == page_header(1)
    with raises_errno(EINVAL):
        f.ioctl(RUST_MISC_DEV_REINSERT, 2)
    proc.exit()
    assert device.vm_ops is not None
