"""Rule 6: `try_clear_may{read,write,exec}` fail with `EINVAL` while the access bit is set,
and once a MAY bit is cleared, `mprotect` cannot grant the access (`EACCES`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ownership.bindings import (
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.errors import EACCES, EINVAL
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew
from tests.expect import raises_errno

CASES: list[tuple[str, int, int, Callable[[VmAreaNew], None]]] = [
    # (name, prot that makes the clear fail, prot that lets it succeed, the clear)
    ("mayread", PROT_READ, PROT_NONE, lambda v: v.try_clear_mayread()),
    ("maywrite", PROT_READ | PROT_WRITE, PROT_READ, lambda v: v.try_clear_maywrite()),
    ("mayexec", PROT_READ | PROT_EXEC, PROT_READ, lambda v: v.try_clear_mayexec()),
]
GRANT = {"mayread": PROT_READ, "maywrite": PROT_READ | PROT_WRITE, "mayexec": PROT_READ | PROT_EXEC}


class ClearingDevice(MiscDevice):
    """Clears one MAY bit in its mmap handler, passing the error on to userspace."""

    def __init__(self, clear: Callable[[VmAreaNew], None]) -> None:
        self.clear = clear

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        self.clear(vma)


@pytest.mark.parametrize(("name", "bad_prot", "ok_prot", "clear"), CASES, ids=[c[0] for c in CASES])
def test_clear_fails_while_the_access_bit_is_set(
    kernel: Kernel,
    proc: Task,
    name: str,
    bad_prot: int,
    ok_prot: int,
    clear: Callable[[VmAreaNew], None],
) -> None:
    kernel.register_miscdevice("dev", ClearingDevice(clear))
    f = proc.open("dev")
    with raises_errno(EINVAL):
        proc.mmap(f, PAGE_SIZE, bad_prot, MAP_SHARED)
    f.close()


@pytest.mark.parametrize(("name", "bad_prot", "ok_prot", "clear"), CASES, ids=[c[0] for c in CASES])
def test_once_cleared_mprotect_cannot_grant_it(
    kernel: Kernel,
    proc: Task,
    name: str,
    bad_prot: int,
    ok_prot: int,
    clear: Callable[[VmAreaNew], None],
) -> None:
    kernel.register_miscdevice("dev", ClearingDevice(clear))
    f = proc.open("dev")
    addr = proc.mmap(f, 2 * PAGE_SIZE, ok_prot, MAP_PRIVATE)
    with raises_errno(EACCES):
        proc.mprotect(addr, PAGE_SIZE, GRANT[name])
    proc.mprotect(addr, 2 * PAGE_SIZE, ok_prot)  # Re-asking for what was mapped is fine.
    proc.munmap(addr, 2 * PAGE_SIZE)
    f.close()


def test_clean_without_clearing_mprotect_grants_write_on_a_private_mapping(
    kernel: Kernel, proc: Task
) -> None:
    kernel.register_miscdevice("dev", ClearingDevice(lambda v: None))
    f = proc.open("dev")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_PRIVATE)
    proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)
    proc.munmap(addr, PAGE_SIZE)
    f.close()
