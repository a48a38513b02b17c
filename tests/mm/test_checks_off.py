"""With the runtime checks off, correct programs behave exactly as with them on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ownership import config
from ownership.alloc import GFP_KERNEL, VBox
from ownership.aref import ARef
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
)
from ownership.errors import EACCES, EFAULT, KernelError
from ownership.samples.rust_misc_device_mmap import (
    RUST_MISC_DEV_REINSERT,
    RUST_MISC_DEV_ZAP,
    RustMiscDeviceMmap,
    page_header,
)
from ownership.task import current
from ownership.unsafe import unsafe


def _scenario() -> list[object]:
    """A driver, userspace and the mm API doing only correct things; what they observed."""
    seen: list[object] = []
    k = Kernel(pages_per_node=512)
    k.register_miscdevice("rust-misc-device", RustMiscDeviceMmap())
    p = k.spawn_process("app")
    with p.as_current():
        f = p.open("rust-misc-device")
        addr = p.mmap(f, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED)
        seen.append(p.read_user(addr + PAGE_SIZE, 24))
        refused: list[Callable[[], None]] = [
            lambda: p.write_user(addr, b"x"),
            lambda: p.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE),
        ]
        for call in refused:
            try:
                call()
            except KernelError as e:
                seen.append(e.errno)
        f.ioctl(RUST_MISC_DEV_ZAP, 1)
        f.ioctl(RUST_MISC_DEV_REINSERT, 1)
        seen.append(p.read_user(addr + PAGE_SIZE, len(page_header(1))))
        anon = p.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write_user(anon, b"parent")
        child = p.fork()
        child.write_user(anon, b"child!")
        seen.append((p.read_user(anon, 6), child.read_user(anon, 6)))
        child.exit()
        mm = current().mm()
        assert mm is not None
        user = ARef.from_ref(mm)
        with user.get().mmap_read_lock() as g:
            vma = g.vma_lookup(addr)
            assert vma is not None
            seen.append((vma.start() == addr, hex(vma.flags())))
        vg = user.get().lock_vma_under_rcu(anon)
        assert vg is not None
        seen.append(vg.end() - vg.start())
        vg.drop()
        user.drop()
        box = VBox.new(b"vmalloc", GFP_KERNEL)
        page = next(box.page_iter())
        with unsafe("SAFETY: nobody else touches the box while it is read."):
            seen.append(page.read_raw(0, 7))
        box.drop()
        p.munmap(addr, 2 * PAGE_SIZE)
        f.close()
        p.exit()
    seen.append(k.check_consistency())
    seen.append(k.leaks())
    return seen


def test_the_same_observations_with_checks_on_and_off() -> None:
    on = _scenario()
    with config.checking(False):
        off = _scenario()
    assert on == off
    assert on[1:3] == [EFAULT, EACCES]


@pytest.mark.parametrize("enabled", [True, False])
def test_checks_switch_only_what_is_checked(enabled: bool) -> None:
    with config.checking(enabled):
        assert _scenario()[-2:] == [[], []]
