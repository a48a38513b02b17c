"""The review's cautionary cases: a driver reaching its mapping through a stale address.

Jann Horn (seed 003): looking a VMA up by address can find "a newly created VMA of a
different type that has appeared at the same address", and inserting the driver's page
there "could cause the page to inadvertently become writable by userspace", or put
refcounted pages into VM_PFNMAP regions. The fix (Rust Binder's `check_vma`, after
CVE-2026-43434) compares `vm_ops` and `vm_private_data`. These tests replay the attack on
the sample driver: the checking driver refuses, the unchecking one shows the damage.
"""

from __future__ import annotations

from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    File,
    Kernel,
    Task,
)
from ownership.errors import EFAULT, ESRCH
from ownership.miscdevice import File as DriverFile
from ownership.miscdevice import MiscDevice
from ownership.mm.virt import VmAreaNew
from ownership.samples.rust_misc_device_mmap import (
    RUST_MISC_DEV_REINSERT,
    RUST_MISC_DEV_ZAP,
    RustMiscDeviceMmap,
    page_header,
)
from ownership.unsafe import unsafe
from tests.expect import raises_errno

from .drivers import ScratchDevice


class PfnDevice(MiscDevice):
    """A stranger whose VMAs are VM_PFNMAP: only non-refcounted entries belong there."""

    def mmap(self, file: DriverFile, vma: VmAreaNew) -> None:
        vma.set_pfnmap()
        vma.set_io()


def _victim(kernel: Kernel, proc: Task, check_vma: bool) -> tuple[RustMiscDeviceMmap, File, int]:
    dev = RustMiscDeviceMmap(check_vma=check_vma)
    kernel.register_miscdevice("rust-misc-device", dev)
    kernel.register_miscdevice("scratch", ScratchDevice())
    kernel.register_miscdevice("pfn", PfnDevice())
    f = proc.open("rust-misc-device")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.ioctl(RUST_MISC_DEV_ZAP, 0)  # The page leaves the mapping, as after a shrinker run.
    return dev, f, addr


def _replace_with_writable_stranger(proc: Task, addr: int) -> tuple[File, int]:
    proc.munmap(addr, PAGE_SIZE)
    g = proc.open("scratch")
    again = proc.mmap(g, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, addr=addr)
    assert again == addr, "the attacker got the same address back"
    return g, again


def test_checking_driver_refuses_the_replaced_vma(kernel: Kernel, proc: Task) -> None:
    _dev, f, addr = _victim(kernel, proc, check_vma=True)
    g, _ = _replace_with_writable_stranger(proc, addr)
    with raises_errno(ESRCH):
        f.ioctl(RUST_MISC_DEV_REINSERT, 0)
    with raises_errno(EFAULT):
        proc.read_user(addr, 4)  # The stranger's VMA stays empty.
    proc.munmap(addr, PAGE_SIZE)
    g.close()
    f.close()


def test_unchecking_driver_hands_its_page_to_the_stranger(kernel: Kernel, proc: Task) -> None:
    dev, f, addr = _victim(kernel, proc, check_vma=False)
    g, _ = _replace_with_writable_stranger(proc, addr)
    f.ioctl(RUST_MISC_DEV_REINSERT, 0)  # Succeeds: the lookup found *a* MIXEDMAP VMA.
    assert proc.read_user(addr, len(page_header(0))) == page_header(0), "the driver page is mapped"
    proc.write_user(addr, b"owned by userspace")  # ... and writable: the damage.
    with dev._inner(DriverFile._view(f)).lock() as inner:
        page = inner.data.pages[0]
        with unsafe("SAFETY: the test is the only kernel-side user of the page at this point."):
            assert page.read_raw(0, 18) == b"owned by userspace"
    proc.munmap(addr, PAGE_SIZE)
    g.close()
    f.close()


def test_typestate_keeps_the_page_out_of_anonymous_and_pfnmap_vmas(
    kernel: Kernel, proc: Task
) -> None:
    _dev, f, addr = _victim(kernel, proc, check_vma=False)
    proc.munmap(addr, PAGE_SIZE)
    proc.mmap(
        None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, addr=addr
    )
    with raises_errno(ESRCH):
        f.ioctl(RUST_MISC_DEV_REINSERT, 0)  # No VM_MIXEDMAP: no VmAreaMixedMap, no insert.
    proc.munmap(addr, PAGE_SIZE)
    h = proc.open("pfn")
    proc.mmap(h, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, addr=addr)
    with raises_errno(ESRCH):
        f.ioctl(RUST_MISC_DEV_REINSERT, 0)
    proc.munmap(addr, PAGE_SIZE)
    h.close()
    f.close()


def test_clean_reinsert_into_the_drivers_own_vma(kernel: Kernel, proc: Task) -> None:
    _dev, f, addr = _victim(kernel, proc, check_vma=True)
    f.ioctl(RUST_MISC_DEV_REINSERT, 0)
    assert proc.read_user(addr, len(page_header(0))) == page_header(0)
    proc.munmap(addr, PAGE_SIZE)
    f.close()
