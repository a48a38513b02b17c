"""Rule 4: every VMA flag change by a driver is checked against the one rule table.

`VmAreaMut.set_flags` and the `VmAreaNew` setters compute the new flags with
`ownership.mm.vma_rules.apply`; a broken rule is a `VmaFlagError` whose `.rule` names it
and whose report names the driver line that made the change and the line that set the
conflicting bit (or mapped the VMA). A refused change leaves the flags as they were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Task,
)
from ownership.bindings.mm_types import VmAreaStruct
from ownership.errors import EINVAL, LifetimeError, SyncError, VmaFlagError
from ownership.miscdevice import File, MiscDevice
from ownership.mm import vma_rules
from ownership.mm.virt import VmAreaMut, VmAreaNew, flags
from ownership.task import current
from tests.expect import assert_splat, raises_errno


class SetupDevice(MiscDevice):
    """A driver whose mmap handler runs `setup` on the new VMA."""

    def __init__(self, setup: Callable[[VmAreaNew], object]) -> None:
        self.setup = setup
        self.kept: list[VmAreaNew] = []

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        self.kept.append(vma)
        self.setup(vma)


def _map_device(
    kernel: Kernel, proc: Task, setup: Callable[[VmAreaNew], object], prot: int = PROT_READ
) -> int:
    kernel.register_miscdevice("dev", SetupDevice(setup))
    f = proc.open("dev")
    try:
        return proc.mmap(f, PAGE_SIZE, prot, MAP_SHARED)
    finally:
        f.close()


def _with_vma_mut(addr: int, change: Callable[[VmAreaMut], None]) -> None:
    mm = current().mm()
    assert mm is not None
    with mm.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        assert isinstance(vma, VmAreaMut)
        before = vma.flags()
        change(vma)
        assert vma.flags() != before


def _flags_at(addr: int) -> int:
    mm = current().mm()
    assert mm is not None
    with mm.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None
        return vma.flags()


# --- VmAreaNew setters in the mmap handler --------------------------------------------------


def test_mixedmap_after_pfnmap(kernel: Kernel, proc: Task) -> None:
    def setup(vma: VmAreaNew) -> None:
        vma.set_pfnmap()
        vma.set_mixedmap()

    with pytest.raises(VmaFlagError) as e:
        _map_device(kernel, proc, setup)
    assert_splat(e, "mixedmap-pfnmap", site="vma.set_mixedmap()", origin="vma.set_pfnmap()")
    assert "VM_MIXEDMAP|VM_PFNMAP" in str(e.value) or "VM_PFNMAP|VM_MIXEDMAP" in str(e.value)


def test_pfnmap_after_mixedmap(kernel: Kernel, proc: Task) -> None:
    def setup(vma: VmAreaNew) -> None:
        vma.set_mixedmap()
        vma.set_pfnmap()

    with pytest.raises(VmaFlagError) as e:
        _map_device(kernel, proc, setup)
    assert_splat(e, "mixedmap-pfnmap", site="vma.set_pfnmap()", origin="vma.set_mixedmap()")


def test_refused_setter_leaves_the_flags_unchanged(kernel: Kernel, proc: Task) -> None:
    seen: list[int] = []

    def setup(vma: VmAreaNew) -> None:
        vma.set_pfnmap()
        before = vma.flags()
        with pytest.raises(VmaFlagError):
            vma.set_mixedmap()
        seen.append(before)
        seen.append(vma.flags())

    addr = _map_device(kernel, proc, setup)
    assert seen[0] == seen[1] and seen[1] & flags.PFNMAP and not seen[1] & flags.MIXEDMAP
    assert _flags_at(addr) == seen[1]
    proc.munmap(addr, PAGE_SIZE)


def test_clean_setters_of_upstream_vmanew(kernel: Kernel, proc: Task) -> None:
    def setup(vma: VmAreaNew) -> None:
        assert vma.readable() and not vma.writable() and not vma.executable()
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        vma.set_io()
        vma.set_dontexpand()
        vma.set_dontcopy()
        vma.set_dontdump()
        mixed = vma.set_mixedmap()
        assert mixed.flags() & flags.MIXEDMAP

    addr = _map_device(kernel, proc, setup)
    got = _flags_at(addr)
    want = flags.IO | flags.DONTEXPAND | flags.DONTCOPY | flags.DONTDUMP | flags.MIXEDMAP
    assert got & want == want
    assert not got & (flags.MAYWRITE | flags.MAYEXEC)
    proc.munmap(addr, PAGE_SIZE)


def test_pfnmap_alone_is_fine(kernel: Kernel, proc: Task) -> None:
    addr = _map_device(kernel, proc, lambda vma: vma.set_pfnmap())
    assert _flags_at(addr) & flags.PFNMAP
    proc.munmap(addr, PAGE_SIZE)


def test_vma_new_dies_when_the_handler_returns(kernel: Kernel, proc: Task) -> None:
    dev = SetupDevice(lambda vma: None)
    kernel.register_miscdevice("keeper", dev)
    f = proc.open("keeper")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    stale = dev.kept[0]
    with pytest.raises(LifetimeError) as e:
        stale.set_dontcopy()
    assert_splat(
        e,
        "lifetime",
        site="stale.set_dontcopy()",
        origin="addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)",
        mentions=["the mmap handler returned"],
    )
    proc.munmap(addr, PAGE_SIZE)
    f.close()


def test_vma_new_is_not_sync(kernel: Kernel, proc: Task) -> None:
    caught: list[BaseException] = []

    def setup(vma: VmAreaNew) -> None:
        def other() -> None:
            try:
                vma.set_dontcopy()
            except BaseException as e:
                caught.append(e)

        t = threading.Thread(target=other)
        t.start()
        t.join(10)

    addr = _map_device(kernel, proc, setup)
    assert_splat(caught[0], "sync", cls=SyncError, mentions=["vma.set_dontcopy()"])
    assert not _flags_at(addr) & flags.DONTCOPY
    proc.munmap(addr, PAGE_SIZE)


# --- VmAreaMut.set_flags on existing VMAs -----------------------------------------------------


ANON_MMAP = "proc.mmap(None, PAGE_SIZE, prot, kind | MAP_ANONYMOUS | extra)"


def _anon(proc: Task, prot: int, extra: int = 0, shared: bool = False) -> int:
    kind = MAP_SHARED if shared else MAP_PRIVATE
    return proc.mmap(None, PAGE_SIZE, prot, kind | MAP_ANONYMOUS | extra)


@pytest.mark.parametrize(
    ("rule", "prot", "bit"),
    [
        ("read-mayread", PROT_READ, flags.MAYREAD),
        ("write-maywrite", PROT_READ | PROT_WRITE, flags.MAYWRITE),
        ("exec-mayexec", PROT_READ | PROT_EXEC, flags.MAYEXEC),
    ],
)
def test_clearing_a_may_bit_under_its_access_bit(
    proc: Task, rule: str, prot: int, bit: int
) -> None:
    addr = _anon(proc, prot)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~bit))
    assert_splat(e, rule, site="vma.set_flags(vma.flags() & ~bit)", origin=ANON_MMAP)
    assert _flags_at(addr) & bit, "the refused change did not take effect"


def test_clearing_mayshare_of_a_shared_mapping(proc: Task) -> None:
    addr = _anon(proc, PROT_READ, shared=True)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.MAYSHARE))
    assert_splat(e, "shared-mayshare", site="vma.set_flags(", origin=ANON_MMAP)


def test_mixedmap_on_a_vma_with_a_userfaultfd(proc: Task) -> None:
    addr = _anon(proc, PROT_READ | PROT_WRITE)
    proc.userfaultfd_register(addr, PAGE_SIZE, flags.UFFD_MISSING)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.MIXEDMAP))
    assert_splat(
        e,
        "uffd-mixedmap",
        site="vma.set_flags(",
        origin="proc.userfaultfd_register(addr, PAGE_SIZE, flags.UFFD_MISSING)",
    )


def test_a_cleared_may_bit_is_never_set_again(kernel: Kernel, proc: Task) -> None:
    addr = _map_device(kernel, proc, lambda vma: vma.try_clear_maywrite())
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.MAYWRITE))
    assert_splat(
        e,
        "may-only-clear",
        site="vma.set_flags(",
        origin="return proc.mmap(f, PAGE_SIZE, prot, MAP_SHARED)",
    )


def test_mixedmap_is_sticky(kernel: Kernel, proc: Task) -> None:
    addr = _map_device(kernel, proc, lambda vma: vma.set_mixedmap())
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.MIXEDMAP))
    assert_splat(e, "mixedmap-sticky", site="vma.set_flags(", origin="vma.set_mixedmap()")


def test_pfnmap_is_sticky(kernel: Kernel, proc: Task) -> None:
    addr = _map_device(kernel, proc, lambda vma: vma.set_pfnmap())
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.PFNMAP))
    assert_splat(e, "pfnmap-sticky", site="vma.set_flags(", origin="vma.set_pfnmap()")


def test_hugetlb_is_never_touched(proc: Task) -> None:
    addr = _anon(proc, PROT_READ)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.HUGETLB))
    assert_splat(e, "hugetlb-untouchable", site="vma.set_flags(", origin=ANON_MMAP)


def test_pfnmap_after_ptes_were_installed(proc: Task) -> None:
    addr = _anon(proc, PROT_READ | PROT_WRITE)
    proc.write_user(addr, b"a PTE now exists")
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.PFNMAP))
    assert_splat(e, "pfnmap-no-ptes", site="vma.set_flags(", origin=ANON_MMAP)


def test_pfnmap_before_any_pte_is_fine(proc: Task) -> None:
    addr = _anon(proc, PROT_READ)
    _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.PFNMAP | flags.IO))
    assert _flags_at(addr) & flags.PFNMAP


def test_access_bits_of_an_in_use_vma_are_frozen(proc: Task) -> None:
    addr = _anon(proc, PROT_READ | PROT_WRITE)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.WRITE))
    assert_splat(e, "access-frozen", site="vma.set_flags(", origin=ANON_MMAP)


def test_bits_outside_the_set_allowlist(proc: Task) -> None:
    addr = _anon(proc, PROT_READ)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() | flags.LOCKED))
    assert_splat(e, "driver-set-allowlist", site="vma.set_flags(", origin=ANON_MMAP)


def test_bits_outside_the_clear_allowlist(proc: Task) -> None:
    addr = _anon(proc, PROT_READ, MAP_NORESERVE)
    with pytest.raises(VmaFlagError) as e:
        _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.NORESERVE))
    assert_splat(e, "driver-clear-allowlist", site="vma.set_flags(", origin=ANON_MMAP)


def test_clean_allowed_changes_of_an_existing_vma(proc: Task) -> None:
    addr = _anon(proc, PROT_READ)
    _with_vma_mut(
        addr, lambda vma: vma.set_flags(vma.flags() | flags.DONTCOPY | flags.DONTDUMP | flags.IO)
    )
    _with_vma_mut(addr, lambda vma: vma.set_flags(vma.flags() & ~flags.MAYEXEC))
    got = _flags_at(addr)
    assert got & flags.DONTCOPY and got & flags.IO and not got & flags.MAYEXEC


@pytest.mark.parametrize("value", [1 << 64, -1, 1 << 45, flags.KNOWN + (1 << 11)])
def test_unknown_or_impossible_bits_are_einval(proc: Task, value: int) -> None:
    addr = _anon(proc, PROT_READ)
    with raises_errno(EINVAL):
        _with_vma_mut(addr, lambda vma: vma.set_flags(value))


@pytest.mark.parametrize("value", ["0x10", 1.0, None, True])
def test_wrong_types_are_type_errors(proc: Task, value: object) -> None:
    addr = _anon(proc, PROT_READ)
    with pytest.raises(TypeError):
        _with_vma_mut(addr, lambda vma: vma.set_flags(value))  # type: ignore[arg-type]


def test_every_rule_of_the_table_is_exercised_here() -> None:
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    missing = [r.id for r in vma_rules.RULES if f'"{r.id}"' not in source]
    assert not missing, f"no test for {missing}"
    assert isinstance(VmAreaStruct, type)
