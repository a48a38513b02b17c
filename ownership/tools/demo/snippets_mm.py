"""The mm/VMA rules of the seed review (seed 003), for `python -m ownership demo`.

Each snippet is driver code against `ownership.mm`, `ownership.mm.virt`, `ownership.page`
and `ownership.miscdevice`, once as a driver author would first write it and once fixed,
run in a simulated kernel of its own (`ownership.bindings` plays the machine and the
userspace process that opens, maps and pokes at the device). The rules are those of
`issues show 3`, tested in `tests/mm/test_rule*.py`:

* a `VmAreaRef` is valid only while its mmap read guard is held (`lifetime`);
* the mmap guards are `!Send`, released by the thread that took them (Boqun Feng);
* the VMA flag rules: never `VM_MIXEDMAP|VM_PFNMAP`, and `VM_WRITE` needs `VM_MAYWRITE`
  (Jann Horn);
* a driver that checks `VM_WRITE` but forgets `VM_MAYWRITE`, and one that inserts its page
  into whatever VMA now sits at a remembered address: two bugs no runtime check sees,
  shown by their damage, which the abstractions' API (`try_clear_maywrite`, comparing
  `vm_ops` and `vm_private_data`) avoids;
* `mmput` may sleep (`into_mmput_async` may not), the VMA lock nests inside the mmap
  lock, and a `BorrowedPage` dies with its owner.

The buggy lines that the static checker (`ownership.static`) also reports carry a
`# type: ignore[<code>]` for it; every other line is checked.

Lock order: mmap lock -> VMA lock -> the snippets' own locks (a `Mutex` taken in an mmap
handler nests inside the mmap write lock; the shrinker spinlock is taken with no mm lock
held). The buggy forms break exactly the orders they show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ... import workqueue
from ...alloc import GFP_KERNEL, GFP_ZERO, VBox
from ...aref import ARef
from ...bindings import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Kernel,
)
from ...bindings import Task as Process
from ...errors import (
    EACCES,
    EFAULT,
    EPERM,
    ESRCH,
    AtomicSleepError,
    KernelError,
    LifetimeError,
    LockError,
    SendError,
    VmaFlagError,
)
from ...miscdevice import File, MiscDevice
from ...mm import Mm, MmWithUser
from ...mm.virt import VmAreaNew, VmAreaRef, VmOperations, flags
from ...page import PAGE_SIZE, Page
from ...site import driver_module
from ...sync import Mutex, SpinLock
from ...task import current, spawn
from ...unsafe import unsafe
from .runner import snippet

driver_module(__file__)

__all__: list[str] = []

Pair = tuple[Callable[[], object], Callable[[], object]]


# ---------------------------------------------------------------------------------------
# The machine: one fresh kernel per run, with a process running as `current`.


@contextmanager
def _process(name: str) -> Iterator[Process]:
    """Run the body as a new process of a new kernel; exit it and check the kernel after.

    A body that completes must leave the kernel consistent and leak nothing (as the
    tests' `kernel` fixture checks); a body that raises is only cleaned up.
    """
    kernel = Kernel(pages_per_node=256, name=f"demo {name}")
    proc = kernel.spawn_process(name)
    completed = False
    try:
        with kernel.as_default(), proc.as_current():
            yield proc
        completed = True
    finally:
        with kernel.as_default():
            if not proc.exited:
                proc.exit()
            workqueue.flush()
    if completed:
        problems = kernel.check_consistency() + kernel.leaks()
        if problems:
            raise RuntimeError(f"the snippet left {kernel.name} inconsistent: {problems}")


def _mm() -> MmWithUser:
    mm = current().mm()
    assert mm is not None, "the snippets run as a process"
    return mm


def _anon(proc: Process, prot: int) -> int:
    return proc.mmap(None, PAGE_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS)


def _expect_errno(call: Callable[[], object], errno: int) -> None:
    """Userspace expects `call` to fail with `errno`."""
    try:
        call()
    except KernelError as e:
        assert e.errno == errno, f"{e} (expected errno {errno})"
    else:
        raise AssertionError(f"the call succeeded, expected errno {errno}")


# ---------------------------------------------------------------------------------------
# Rule 1: a VmAreaRef is usable only while the mmap read lock is held.


@snippet(
    "lifetime", "a VmAreaRef used after its mmap read guard was released", LifetimeError, layer="mm"
)
def make_vma_ref_lifetime() -> Pair:
    def vma_flags_buggy(mm: MmWithUser, addr: int) -> int:
        with mm.mmap_read_lock() as guard:
            vma = guard.vma_lookup(addr)
            if vma is None:
                raise KernelError(EFAULT, "no mapping")
        return vma.flags()  # The VMA may be gone: the mmap lock was released above.

    def vma_flags(mm: MmWithUser, addr: int) -> int:
        with mm.mmap_read_lock() as guard:
            vma = guard.vma_lookup(addr)
            if vma is None:
                raise KernelError(EFAULT, "no mapping")
            return vma.flags()

    def buggy() -> None:
        with _process("vma-lifetime") as proc:
            vma_flags_buggy(_mm(), _anon(proc, PROT_READ))

    def fixed() -> None:
        with _process("vma-lifetime") as proc:
            assert vma_flags(_mm(), _anon(proc, PROT_READ)) & flags.READ

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 2: MmapReadGuard is !Send (Boqun Feng: an rw_semaphore has strict owner semantics).


@snippet("send", "an MmapReadGuard released on another thread", SendError, layer="mm")
def make_guard_not_send() -> Pair:
    def buggy() -> None:
        with _process("guard-send"):
            guard = _mm().mmap_read_lock()
            try:
                spawn(lambda g: g.drop(), guard).join()  # type: ignore[send-handoff]  # Another thread unlocks our rwsem.
            finally:
                guard.drop()

    def is_mapped(mm: ARef[MmWithUser], addr: int) -> bool:
        # The worker takes the lock itself, so it releases it itself.
        with mm.get().mmap_read_lock() as guard:
            found = guard.vma_lookup(addr) is not None
        mm.drop()
        return found

    def fixed() -> None:
        with _process("guard-send") as proc:
            addr = _anon(proc, PROT_READ)
            assert spawn(is_mapped, ARef.from_ref(_mm()), addr).join()

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 4: the VMA flag rules (one table, `ownership.mm.vma_rules`).


class _SetupDevice(MiscDevice):
    """A device whose mmap handler is `setup`."""

    def __init__(self, setup: Callable[[VmAreaNew], None]) -> None:
        self.setup = setup

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        self.setup(vma)


def _map_device(proc: Process, setup: Callable[[VmAreaNew], None]) -> None:
    """Register a device with `setup` as mmap handler, map it once and unmap it."""
    proc.kernel.register_miscdevice("demo-dev", _SetupDevice(setup))
    f = proc.open("demo-dev")
    try:
        addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
        proc.munmap(addr, PAGE_SIZE)
    finally:
        f.close()


@snippet(
    "mixedmap-pfnmap",
    "set_pfnmap on a VM_MIXEDMAP VMA in an mmap handler",
    VmaFlagError,
    layer="mm",
)
def make_mixedmap_pfnmap() -> Pair:
    def mmap_buggy(vma: VmAreaNew) -> None:
        vma.set_mixedmap()  # For the pages of the control area.
        vma.set_pfnmap()  # And the registers, mapped as raw PFNs: VM_MIXEDMAP|VM_PFNMAP.

    def mmap(vma: VmAreaNew) -> None:
        vma.set_pfnmap()  # Registers only: a PFN mapping of I/O memory.
        vma.set_io()
        vma.set_dontexpand()
        vma.set_dontdump()

    def buggy() -> None:
        with _process("mixedmap-pfnmap") as proc:
            _map_device(proc, mmap_buggy)

    def fixed() -> None:
        with _process("mixedmap-pfnmap") as proc:
            _map_device(proc, mmap)

    return buggy, fixed


@snippet(
    "write-maywrite",
    "a v6-style set_flags leaving VM_WRITE without VM_MAYWRITE",
    VmaFlagError,
    layer="mm",
)
def make_v6_set_flags() -> Pair:
    def seal_buggy(mm: MmWithUser, addr: int) -> None:
        with mm.mmap_write_lock() as guard:
            vma = guard.vma_lookup(addr)
            if vma is None:
                raise KernelError(EFAULT, "no mapping")
            vma.set_flags(vma.flags() & ~flags.MAYWRITE)  # The mapping may be writable already.

    def seal(mm: MmWithUser, addr: int) -> None:
        with mm.mmap_write_lock() as guard:
            vma = guard.vma_lookup(addr)
            if vma is None:
                raise KernelError(EFAULT, "no mapping")
            if vma.flags() & flags.WRITE:
                raise KernelError(EPERM, "only a read-only mapping can be sealed")
            vma.set_flags(vma.flags() & ~flags.MAYWRITE)

    def buggy() -> None:
        with _process("v6-set-flags") as proc:
            seal_buggy(_mm(), _anon(proc, PROT_READ | PROT_WRITE))

    def fixed() -> None:
        with _process("v6-set-flags") as proc:
            writable = _anon(proc, PROT_READ | PROT_WRITE)
            _expect_errno(lambda: seal(_mm(), writable), EPERM)
            addr = _anon(proc, PROT_READ)
            seal(_mm(), addr)
            _expect_errno(lambda: proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE), EACCES)

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 6: refusing VM_WRITE is not enough; VM_MAYWRITE must go too (try_clear_maywrite).


class _StatusPage(MiscDevice):
    """Maps one read-only status page: userspace reads it, only the driver writes it."""

    STATUS = b"status: ok"

    def __init__(self, clear_maywrite: bool) -> None:
        self.clear_maywrite = clear_maywrite
        self.page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
        with unsafe("SAFETY: the page was just allocated; nobody else can reach it yet."):
            self.page.write_raw(self.STATUS, 0, len(self.STATUS))

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        if self.clear_maywrite:
            try:
                vma.try_clear_maywrite()  # Fails while VM_WRITE is set, and is permanent.
            except KernelError:
                raise KernelError(EPERM, "the status page is read-only") from None
        elif vma.writable():
            raise KernelError(EPERM, "the status page is read-only")  # VM_MAYWRITE stays set.
        mixed = vma.set_mixedmap()
        mixed.vm_insert_page(vma.start(), self.page)


def _attack_status_page(proc: Process, dev: _StatusPage) -> str:
    """Userspace maps the page read-only and asks for write access afterwards."""
    payload = b"status: pwned"
    proc.kernel.register_miscdevice("status", dev)
    f = proc.open("status")
    try:
        _expect_errno(lambda: proc.mmap(f, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED), EPERM)
        addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
        try:
            proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE)
        except KernelError as e:
            proc.munmap(addr, PAGE_SIZE)
            return f"mprotect(PROT_WRITE) failed: {e.name}"
        proc.write_user(addr, payload)
        proc.munmap(addr, PAGE_SIZE)
    finally:
        f.close()
    with unsafe("SAFETY: userspace unmapped the page above; only the driver can reach it now."):
        seen = dev.page.read_raw(0, len(payload))
    return f"mprotect(PROT_WRITE) succeeded; userspace wrote the driver's read-only page: {seen!r}"


@snippet(
    "maywrite-not-cleared",
    "an mmap handler refuses VM_WRITE but leaves VM_MAYWRITE set",
    None,
    layer="mm",
)
def make_maywrite_not_cleared() -> Pair:
    def buggy() -> str:
        with _process("status-reader") as proc:
            dev = _StatusPage(clear_maywrite=False)
            try:
                return _attack_status_page(proc, dev)
            finally:
                dev.page.drop()

    def fixed() -> None:
        with _process("status-reader") as proc:
            dev = _StatusPage(clear_maywrite=True)
            try:
                outcome = _attack_status_page(proc, dev)
            finally:
                dev.page.drop()
            assert outcome == "mprotect(PROT_WRITE) failed: EACCES", outcome

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# The review's cautionary case (Jann Horn): vm_insert_page through a stale address.


class _BufferOps(VmOperations):
    """The `vm_ops` of the buffer device: their identity marks the device's own VMAs."""


@dataclass
class _Mapping:
    """Where the buffer is mapped: the address and an `mmgrab` reference to the mm."""

    addr: int = 0
    mm: ARef[Mm] | None = None


class _BufferDevice(MiscDevice):
    """Maps a one-page buffer and installs it again on demand, as Rust Binder's
    `use_page_slow` does, at the address remembered from `mmap`."""

    def __init__(self, check_vma: bool) -> None:
        self.check_vma = check_vma
        self.ops = _BufferOps()
        self.page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
        self.mapping = Mutex(_Mapping(), name="demo buffer mapping")

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.try_clear_maywrite()
        mixed = vma.set_mixedmap()
        vma.set_vm_ops(self.ops)
        vma.set_private_data(self)
        mixed.vm_insert_page(vma.start(), self.page)
        grab = ARef.from_ref(_mm().as_mm())
        with self.mapping.lock() as g:
            old, g.data.mm = g.data.mm, grab
            g.data.addr = vma.start()
        if old is not None:
            old.drop()

    def _is_ours(self, vma: VmAreaRef) -> bool:
        """Binder's `check_vma`: is the VMA at our address still the one we set up?"""
        return vma.vm_ops() is self.ops and vma.vm_private_data() is self

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        """Any command installs the buffer page again (a new message arrived)."""
        with self.mapping.lock() as g:
            if g.data.mm is None:
                raise KernelError(ESRCH, "the buffer is not mapped")
            addr, grab = g.data.addr, g.data.mm.clone()
        try:
            user = grab.get().mmget_not_zero()
            if user is None:
                raise KernelError(ESRCH, "the address space is gone")
            try:
                with user.get().mmap_read_lock() as guard:
                    vma = guard.vma_lookup(addr)
                    if vma is None or (self.check_vma and not self._is_ours(vma)):
                        raise KernelError(ESRCH, "the buffer mapping is gone")
                    mixed = vma.as_mixedmap_vma()
                    if mixed is None:
                        raise KernelError(ESRCH, "not a VM_MIXEDMAP mapping")
                    mixed.vm_insert_page(addr, self.page)
            finally:
                user.drop()
        finally:
            grab.drop()
        return 0

    def teardown(self) -> None:
        with self.mapping.lock() as g:
            grab, g.data.mm = g.data.mm, None
        if grab is not None:
            grab.drop()
        self.page.drop()


class _ScratchDevice(MiscDevice):
    """Someone else's device: any mapping, writable included, as VM_MIXEDMAP."""

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.set_mixedmap()


def _replace_and_reinsert(proc: Process, dev: _BufferDevice) -> str:
    """Userspace unmaps the buffer, maps a writable stranger at the same address and
    makes the driver reinstall its page."""
    payload = b"owned by userspace"
    proc.kernel.register_miscdevice("buffer", dev)
    proc.kernel.register_miscdevice("scratch", _ScratchDevice())
    f = proc.open("buffer")
    g = proc.open("scratch")
    try:
        addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
        proc.munmap(addr, PAGE_SIZE)
        proc.mmap(g, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, addr=addr)
        try:
            f.ioctl(0, 0)
        except KernelError as e:
            proc.munmap(addr, PAGE_SIZE)
            return f"the driver refused the stranger's VMA: {e.name}"
        proc.write_user(addr, payload)
        proc.munmap(addr, PAGE_SIZE)
    finally:
        g.close()
        f.close()
    with unsafe(
        "SAFETY: the stranger's VMA was unmapped above; only the driver can reach the page."
    ):
        seen = dev.page.read_raw(0, len(payload))
    return f"the driver's page went into the stranger's writable VMA; userspace wrote {seen!r}"


@snippet(
    "stale-vma",
    "vm_insert_page into whatever VMA now sits at a remembered address",
    None,
    layer="mm",
)
def make_stale_vma() -> Pair:
    def buggy() -> str:
        with _process("stale-vma") as proc:
            dev = _BufferDevice(check_vma=False)
            try:
                return _replace_and_reinsert(proc, dev)
            finally:
                dev.teardown()

    def fixed() -> None:
        with _process("stale-vma") as proc:
            dev = _BufferDevice(check_vma=True)
            try:
                outcome = _replace_and_reinsert(proc, dev)
            finally:
                dev.teardown()
            assert outcome == "the driver refused the stranger's VMA: ESRCH", outcome

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 8: mmput may sleep; mmput_async may not.


@snippet(
    "atomic-sleep",
    "mmput (dropping ARef[MmWithUser]) under a SpinLock",
    AtomicSleepError,
    layer="mm",
)
def make_mmput_atomic() -> Pair:
    lru = SpinLock(0, name="demo shrinker lru lock")

    def shrink_one_buggy(grab: ARef[Mm]) -> None:
        with lru.lock() as g:
            user = grab.get().mmget_not_zero()
            if user is not None:
                g.data += 1
                user.drop()  # type: ignore[atomic-sleep]  # mmput may tear the address space down.

    def shrink_one(grab: ARef[Mm]) -> None:
        with lru.lock() as g:
            user = grab.get().mmget_not_zero()
            if user is not None:
                g.data += 1
                MmWithUser.into_mmput_async(user).drop()  # The teardown, if any, is deferred.

    def buggy() -> None:
        with _process("mmput-atomic"):
            grab = ARef.from_ref(_mm().as_mm())
            try:
                shrink_one_buggy(grab)
            finally:
                grab.drop()

    def fixed() -> None:
        with _process("mmput-atomic"):
            grab = ARef.from_ref(_mm().as_mm())
            shrink_one(grab)
            workqueue.flush()
            grab.drop()

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 11: the VMA read lock nests inside the mmap read lock, never the reverse.


@snippet("lock-order", "the VMA read lock taken before the mmap read lock", LockError, layer="mm")
def make_vma_lock_order() -> Pair:
    def can_grow_buggy(mm: MmWithUser, addr: int) -> bool:
        vma = mm.lock_vma_under_rcu(addr)
        if vma is None:
            raise KernelError(EFAULT, "no mapping")
        with vma, mm.mmap_read_lock() as guard:  # The mmap lock inside the VMA lock.
            return guard.vma_lookup(vma.end()) is None

    def can_grow(mm: MmWithUser, addr: int) -> bool:
        with mm.mmap_read_lock() as guard:
            vma = mm.lock_vma_under_rcu(addr)
            if vma is None:
                raise KernelError(EFAULT, "no mapping")
            with vma:
                return guard.vma_lookup(vma.end()) is None

    def buggy() -> None:
        with _process("vma-lock-order") as proc:
            can_grow_buggy(_mm(), _anon(proc, PROT_READ))

    def fixed() -> None:
        with _process("vma-lock-order") as proc:
            assert can_grow(_mm(), _anon(proc, PROT_READ))

    return buggy, fixed


# ---------------------------------------------------------------------------------------
# Rule 9: a BorrowedPage dies with its owner (seed 000).


@snippet(
    "borrowed-page-outlived-owner",
    "a BorrowedPage used after its VBox was dropped",
    LifetimeError,
    layer="mm",
)
def make_borrowed_page() -> Pair:
    def buggy() -> None:
        with _process("borrowed-page"):
            vbox = VBox.new_zeroed(2 * PAGE_SIZE, GFP_KERNEL)
            page = next(vbox.page_iter())
            vbox.drop()
            page.nid()  # The page went back to the allocator with the VBox.

    def fixed() -> None:
        with _process("borrowed-page"):
            vbox = VBox.new_zeroed(2 * PAGE_SIZE, GFP_KERNEL)
            page = next(vbox.page_iter())
            assert page.nid() >= 0
            page.drop()  # Ends the borrow; the page stays with the VBox.
            vbox.drop()

    return buggy, fixed
