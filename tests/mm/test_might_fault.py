"""`might_fault()`: every user copy is ordered before the current mm's mmap lock.

A copy to or from userspace may fault, and the fault path takes the mmap lock for read,
so lockdep is told `might_lock_read(&current->mm->mmap_lock)` at every copy, whether or
not it faults (`__might_fault`). A driver whose `mmap` handler takes its state lock
(under the mmap lock) and whose `ioctl` copies to userspace while holding that lock has
an AB-BA deadlock with a concurrent page fault: it is reported at the copy, on real
threads, even though every page is already mapped and nothing faults.
"""

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
from ownership.bindings.fs import File as UserFile
from ownership.errors import EFAULT, AtomicSleepError, LockError
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew
from ownership.sync import Mutex, SpinLock
from ownership.task import spawn
from ownership.uaccess import UserSlice
from tests.expect import assert_splat, raises_errno

STATS_UNDER_LOCK = 1
STATS_COPIED_OUT = 2
READ_CONFIG_IN_MMAP = 0x10


class StatsDevice(MiscDevice):
    """Maps with its state lock held; copies its statistics out by ioctl."""

    def __init__(self, name: str) -> None:
        self.state = Mutex(b"stats:42", name=name)
        self.config_ptr = 0

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        with self.state.lock() as g:
            g.data = b"mapped:1"
            vma.set_mixedmap()
        if self.config_ptr:
            # The mmap handler runs with the mmap lock held for write: a user copy here
            # could fault and take it again.
            UserSlice(self.config_ptr, 4).reader().read_raw(4)

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        assert isinstance(arg, int)
        if cmd == STATS_UNDER_LOCK:
            with self.state.lock() as g:
                UserSlice(arg, len(g.data)).writer().write_slice(g.data)  # the copy
            return 0
        if cmd == STATS_COPIED_OUT:
            with self.state.lock() as g:
                data = bytes(g.data)
            UserSlice(arg, len(data)).writer().write_slice(data)
            return 0
        return super().ioctl(file, cmd, arg)


def _setup(kernel: Kernel, name: str) -> tuple[StatsDevice, Task, UserFile, int]:
    dev = StatsDevice(name)
    kernel.register_miscdevice(name, dev)
    p = kernel.spawn_process("app")
    f = p.open(name)
    buf = p.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write_user(buf, b"\0" * 16)  # Faulted in: the copies below never fault.
    return dev, p, f, buf


def test_copy_to_user_under_a_lock_the_mmap_handler_takes_is_a_lock_order_report(
    kernel: Kernel,
) -> None:
    dev, p, f, buf = _setup(kernel, "mf-stats")
    mapper = spawn(lambda: p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED))
    mapper.join()
    reader = spawn(lambda: f.ioctl(STATS_UNDER_LOCK, buf))
    with pytest.raises(LockError) as ei:
        reader.join()
    assert_splat(
        ei,
        "lock-order",
        cls=LockError,
        site="write_slice(g.data)  # the copy",
        origin="with self.state.lock() as g:",
        mentions=["&mm->mmap_lock", "'mf-stats' taken while holding '&mm->mmap_lock'"],
    )
    # The refused copy wrote nothing, and the lock was released on the way out.
    assert p.read_user(buf, 8) == b"\0" * 8
    g = dev.state.try_lock()
    assert g is not None
    g.drop()


def test_the_other_order_is_reported_at_the_mmap_handler(kernel: Kernel) -> None:
    _dev, p, f, buf = _setup(kernel, "mf-stats-2")
    # No fault happens, yet the copy under the lock records 'state' -> mmap_lock.
    spawn(lambda: f.ioctl(STATS_UNDER_LOCK, buf)).join()
    assert p.read_user(buf, 8) == b"stats:42"
    mapper = spawn(lambda: p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED))
    with pytest.raises(LockError) as ei:
        mapper.join()
    assert_splat(
        ei,
        "lock-order",
        cls=LockError,
        site="with self.state.lock() as g:",
        mentions=["'&mm->mmap_lock' taken while holding 'mf-stats-2'"],
    )


def test_copying_outside_the_lock_runs_clean_on_concurrent_threads(kernel: Kernel) -> None:
    _dev, p, f, buf = _setup(kernel, "mf-clean")

    def map_many() -> None:
        for _ in range(20):
            addr = p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
            p.munmap(addr, PAGE_SIZE)

    def copy_many() -> None:
        for _ in range(20):
            f.ioctl(STATS_COPIED_OUT, buf)

    hs = [spawn(map_many), spawn(copy_many), spawn(copy_many)]
    for h in hs:
        h.join()
    assert p.read_user(buf, 8) in (b"stats:42", b"mapped:1")


def test_a_user_copy_with_the_mmap_lock_held_is_recursive_locking(kernel: Kernel) -> None:
    dev, p, f, buf = _setup(kernel, "mf-config")
    dev.config_ptr = buf
    with pytest.raises(LockError) as ei:
        p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    assert_splat(
        ei,
        "recursive-lock",
        cls=LockError,
        site="UserSlice(self.config_ptr, 4).reader().read_raw(4)",
        mentions=["&mm->mmap_lock"],
    )


def test_a_user_copy_under_a_spinlock_is_a_sleep_in_atomic_context(proc: Task) -> None:
    buf = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    proc.write_user(buf, b"\0")
    lock = SpinLock(0, name="mf spin")
    with lock.lock(), pytest.raises(AtomicSleepError) as ei:
        UserSlice(buf, 0).writer().write_slice(b"")  # Even a copy of nothing.
    assert_splat(
        ei, "atomic-sleep", cls=AtomicSleepError, site='write_slice(b"")', origin="with lock.lock()"
    )


def test_a_kernel_thread_has_no_mm_to_order(kernel: Kernel) -> None:
    lock = Mutex(0, name="mf kthread")
    kt = kernel.spawn_kthread("kworker")
    with kt.as_current(), lock.lock(), raises_errno(EFAULT):
        UserSlice(0x1000, 1).reader().read_raw(1)
