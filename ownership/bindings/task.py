"""`struct task_struct` of a simulated process, and its userspace side (the syscalls).

A `Task` is a single-threaded process: a pid, a `comm`, an address space (`mm`), an fd
table and a home NUMA node. `with task.as_current():` runs the calling Python thread as
that task, which is what `current` means to the kernel code under it
(`ownership.context.ctx.task`, `ownership.task.current()`); violations name it.

The syscalls (`mmap`, `munmap`, `mprotect`, `madvise`, `read_user`, `write_user`, `fork`,
`exit`, `open`) run as the task on the calling thread, in process context: calling one
while holding a spinlock is a sleep in atomic context, as a real page fault would be.
Their errors are `KernelError`s with the errno the real syscall returns.

Signals: `send_signal(sig)` (`kill(pid, sig)` from another process) marks the signal
pending and wakes the task's threads that sleep interruptibly (`TASK_INTERRUPTIBLE`, a
`CondVar.wait_interruptible`), through the scheduling seam's `WaitQueue.wake`, so the
explorer orders the wake-up against the wait. `signal_pending()` is the C
`signal_pending(current)`; `flush_signals()` takes every pending signal away (the
signal delivered on the way back to userspace). The model does not run handlers.

Lock order: `_sig_lock` (the task's `siglock`) is a leaf, held for a few instructions,
never across a seam call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import sched
from ..context import TaskLike, ctx, might_sleep
from ..errors import EBADF, EINVAL, ENOENT, ESRCH, KernelError
from ..refcount import Refcount
from ..site import Site, here
from . import mm as mmops
from .consts import MAP_SHARED, O_RDWR
from .fops import file_operation
from .fs import File
from .mm_types import MmStruct

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["NSIG", "SIGINT", "SIGKILL", "SIGTERM", "SIGUSR1", "Task"]

NSIG = 64
"""Signals are numbered 1..NSIG (`_NSIG` on x86-64)."""
SIGINT = 2
SIGKILL = 9
SIGUSR1 = 10
SIGTERM = 15


class Task:
    """A process of the simulated kernel.

    Invariants: `mm` is None only for kernel threads and after `exit()`; while the task
    lives it owns one `mm_users` reference of `mm`; `files` holds one `f_count` per fd.
    """

    def __init__(self, kernel: Kernel, pid: int, comm: str, mm: MmStruct | None, nid: int) -> None:
        self.kernel = kernel
        self.pid = pid
        self.tgid = pid
        self.comm = comm
        self.mm = mm
        self.nid = nid
        self.files: dict[int, File] = {}
        self._next_fd = 3
        self.exited = False
        self.exited_at: Site | None = None
        self.wrappers: dict[type, object] = {}
        # `task_struct::usage` (get_task_struct/put_task_struct); the task holds one itself.
        self.usage = Refcount(f"task_struct {comm}:{pid}", 1)
        # The threads of the process: each Python thread that runs as the task is one
        # thread of it, with its own thread id (the first one's is the pid).
        self._tids: dict[int, int] = {}
        # The pending signals and the interruptible sleepers they wake; `_sig_lock` guards
        # both (`sighand->siglock`).
        self._sig_lock = threading.Lock()
        self._sigpending: set[int] = set()
        self._sig_waiters: list[tuple[sched.WaitQueue, sched.Waiter]] = []

    def describe(self) -> str:
        return f"task {self.comm}:{self.pid}"

    def __repr__(self) -> str:
        return f"<{self.describe()}{' (exited)' if self.exited else ''}>"

    def thread_id(self) -> int:
        """The thread id of the calling thread as a thread of this process (`current->pid`)."""
        ident = sched.current_id()
        tid = self._tids.get(ident)
        if tid is None:
            tid = self._tids.setdefault(
                ident, self.pid if not self._tids else self.kernel._alloc_pid()
            )
        return tid

    @contextmanager
    def as_current(self) -> Iterator[Task]:
        """Run the calling thread as this task (`current == task`) for the body."""
        prev: TaskLike | None = ctx.task
        ctx.task = self
        try:
            yield self
        finally:
            ctx.task = prev

    # --- signals ----------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """`kill(pid, sig)`: make `sig` pending and wake the task's interruptible sleepers."""
        if type(sig) is not int:
            raise TypeError(f"a signal is an int, got {type(sig).__name__}")
        if not 1 <= sig <= NSIG:
            raise KernelError(EINVAL, f"kill: invalid signal {sig}")
        if self.exited:
            raise KernelError(ESRCH, f"kill: {self.describe()} has exited")
        with self._sig_lock:
            self._sigpending.add(sig)
            waiters = list(self._sig_waiters)
        for wq, w in waiters:
            wq.wake(w)

    def signal_pending(self) -> bool:
        """`signal_pending(task)`: whether a signal waits to be delivered."""
        return bool(self._sigpending)

    def pending_signals(self) -> frozenset[int]:
        with self._sig_lock:
            return frozenset(self._sigpending)

    def flush_signals(self) -> None:
        """Take every pending signal away (delivered on the way back to userspace)."""
        with self._sig_lock:
            self._sigpending.clear()

    def add_signal_waiter(self, wq: sched.WaitQueue, w: sched.Waiter) -> bool:
        """Register an interruptible sleeper; False if a signal is already pending (then
        the sleeper must not sleep), as `schedule()` in `TASK_INTERRUPTIBLE` returns."""
        with self._sig_lock:
            self._sig_waiters.append((wq, w))
            return not self._sigpending

    def remove_signal_waiter(self, w: sched.Waiter) -> None:
        with self._sig_lock:
            self._sig_waiters = [(q, x) for q, x in self._sig_waiters if x is not w]

    def _alive_mm(self, what: str) -> MmStruct:
        if self.exited:
            raise KernelError(ESRCH, f"{what}: {self.describe()} has exited")
        mm = self.mm
        if mm is None:
            raise KernelError(ESRCH, f"{what}: {self.describe()} has no address space")
        return mm

    # --- memory syscalls --------------------------------------------------------------

    def mmap(
        self,
        file: File | None,
        length: int,
        prot: int,
        flags: int = MAP_SHARED,
        addr: int = 0,
        offset: int = 0,
    ) -> int:
        """`mmap(addr, length, prot, flags, fd, offset)`: the address of the new mapping."""
        mm = self._alive_mm("mmap")
        if file is not None and (
            not isinstance(file, File) or not file.fd_open or file not in self.files.values()
        ):
            if not isinstance(file, File):
                raise TypeError(f"mmap takes a File or None, got {type(file).__name__}")
            raise KernelError(
                EBADF, f"mmap: {file.describe()} is not an open fd of {self.describe()}"
            )
        with self.as_current():
            return mmops.do_mmap(mm, file, addr, length, prot, flags, offset)

    def munmap(self, addr: int, length: int) -> None:
        mm = self._alive_mm("munmap")
        with self.as_current():
            mmops.do_munmap(mm, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        mm = self._alive_mm("mprotect")
        with self.as_current():
            mmops.do_mprotect(mm, addr, length, prot)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        mm = self._alive_mm("madvise")
        with self.as_current():
            mmops.do_madvise(mm, addr, length, advice)

    def userfaultfd_register(self, addr: int, length: int, mode: int) -> None:
        """Register `[addr, addr + length)` with a userfaultfd (`UFFDIO_REGISTER`; `mode`
        holds VM_UFFD_* bits)."""
        mm = self._alive_mm("userfaultfd_register")
        with self.as_current():
            mmops.userfaultfd_register(mm, addr, length, mode)

    def read_user(self, addr: int, n: int) -> bytes:
        """Read `n` bytes of this process's memory, faulting pages in (`EFAULT` on failure)."""
        mm = self._alive_mm("read_user")
        with self.as_current():
            return mmops.access_user(mm, addr, n, None)

    def write_user(self, addr: int, data: bytes) -> None:
        """Write `data` into this process's memory (`EFAULT` through a read-only mapping)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_user takes bytes, got {type(data).__name__}")
        mm = self._alive_mm("write_user")
        with self.as_current():
            mmops.access_user(mm, addr, len(data), bytes(data))

    # --- files ------------------------------------------------------------------------

    def open(self, name: str, flags: int = O_RDWR) -> File:
        """`open("/dev/<name>", flags)`: calls the driver's `open`; its error reaches us."""
        if not isinstance(name, str):
            raise TypeError(f"open takes a device name, got {type(name).__name__}")
        if self.exited:
            raise KernelError(ESRCH, f"open: {self.describe()} has exited")
        fops = self.kernel.devices.get(name.removeprefix("/dev/"))
        if fops is None:
            raise KernelError(ENOENT, f"open: no device '{name}'")
        file = File(self.kernel, name.removeprefix("/dev/"), fops, flags, self)
        with self.as_current(), file_operation(file, "open"):
            fops.open(file)
            # The fd is installed before a context leak is reported (on the way out): the
            # file is open (the driver's open ran), so the task's exit releases it.
            fd = self._next_fd
            self._next_fd += 1
            self.files[fd] = file
        return file

    def _forget_file(self, file: File) -> None:
        for fd, f in list(self.files.items()):
            if f is file:
                del self.files[fd]
                return

    def close(self, file: File) -> None:
        """`close(fd)` of this task's fd for `file` (for files inherited across fork)."""
        if file.opener is self:
            file.close()
            return
        for fd, f in list(self.files.items()):
            if f is file:
                del self.files[fd]
                with self.as_current():
                    file.fput()
                return
        raise KernelError(EBADF, f"close: {file.describe()} is not open in {self.describe()}")

    # --- process lifecycle ------------------------------------------------------------

    def fork(self) -> Task:
        """`fork()`: a child with a copy of the address space (DONTCOPY VMAs excluded)."""
        mm = self._alive_mm("fork")
        child = self.kernel._new_task(self.comm)
        assert child.mm is not None
        with self.as_current():
            mmops.dup_mmap(mm, child.mm)
        for f in self.files.values():
            f.get_file()
            child.files[child._next_fd] = f
            child._next_fd += 1
        return child

    def exit(self) -> None:
        """`exit()`: close every fd and drop the address space (`mmput`, which may sleep)."""
        if self.exited:
            raise KernelError(ESRCH, f"exit: {self.describe()} has already exited")
        with self.as_current():
            # The teardown sleeps (mmput): refuse it in atomic context before any effect.
            might_sleep(what="exit()")
            files = list(self.files.values())
            self.files.clear()
            for f in files:
                if f.opener is self:
                    f.fd_open = False
                    f.closed_at = here()
                f.fput()
            mm, self.mm = self.mm, None
            self.exited = True
            self.exited_at = here()
            if mm is not None:
                mmops.mmput(mm)
