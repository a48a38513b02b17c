"""`struct file`, `struct file_operations` and the misc-device table (fs/, drivers/char/misc.c).

A `File` is both the kernel's `struct file` (what a driver's file operations receive)
and the userspace handle of the process that opened it (`file.ioctl(...)`,
`file.close()`), as an fd would be. Its lifetime is the kernel's: `f_count` counts the
opener's fd and every VMA mapping it (`vma->vm_file`), so closing the fd of a file that is
still mapped does not release it; `f_op->release` runs when the last reference goes.

File operations are a vtable (`FileOperations`); the Rust side
(`ownership.miscdevice`) builds one around a driver. The file operations run on the
calling thread as the task that uses the file (`task.as_current()`), in process context.

Every file operation is dispatched through `file_operation(file, op)` (in
`ownership.bindings.fops`, which `mm` and `task` use too): the thread must
return to userspace with the context it entered with. A lock still held, preemption
still disabled or an RCU read section still open when `open`, `ioctl`, `mmap` or
`release` returns is `LockError` (rule `return-to-user-leak`, lockdep's
`lockdep_sys_exit`: "lock held when returning to user space!") at the userspace call,
naming where the leaked context began; the thread is put back in a clean state. The
model has no `read`, `write` or `poll` file operations; any added must dispatch through
`file_operation` too.

Lock order: `_lock` (the `f_count` word) is a leaf.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import sched
from ..context import ctx
from ..errors import EBADF, EINVAL, ENOTTY, KernelError
from ..site import Site, here
from ._raw import locked
from .consts import O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY
from .fops import file_operation

if TYPE_CHECKING:
    from .kernel import Kernel
    from .mm_types import VmAreaStruct
    from .task import Task

__all__ = ["File", "FileOperations"]


class FileOperations:
    """`struct file_operations`; every operation has the kernel's default behaviour.

    Invariants: a vtable is immutable once registered; `has_mmap()` says whether `mmap`
    is implemented (a NULL `->mmap` is `ENODEV` at `mmap(2)`).
    """

    name = "file_operations"

    def open(self, file: File) -> None:
        return None

    def release(self, file: File) -> None:
        return None

    def unlocked_ioctl(self, file: File, cmd: int, arg: object) -> object:
        raise KernelError(ENOTTY, f"{file.name}: no ioctl file operation")

    def has_mmap(self) -> bool:
        return False

    def mmap(self, file: File, vma: VmAreaStruct) -> None:
        raise KernelError(EINVAL, f"{file.name}: no mmap file operation")


class File:
    """One open file (`struct file`), with the opener's fd.

    Invariants: `f_count` >= 1 until `release` has run (then `released` is set and the
    file operations are never called again); `released_at` is where the last reference
    was put; `freed` once `release` returned (the struct file is gone: a driver that
    kept it has a dangling pointer); `fd_open` while the opener's fd is open.
    `private_data` belongs to the driver.
    """

    def __init__(
        self, kernel: Kernel, name: str, f_op: FileOperations, flags: int, opener: Task
    ) -> None:
        if flags & ~O_ACCMODE or flags & O_ACCMODE not in (O_RDONLY, O_WRONLY, O_RDWR):
            raise KernelError(EINVAL, f"open: unsupported flags {flags:#o}")
        self.kernel = kernel
        self.name = name
        self.f_op = f_op
        self.f_flags = flags
        self.opener = opener
        self.private_data: object = None
        self.wrappers: dict[type, object] = {}
        self._lock = sched.active().raw_lock()
        self.f_count = 1
        self.fd_open = True
        self.released = False
        self.released_at: Site | None = None
        self.freed = False
        self.opened_at: Site = here()
        self.closed_at: Site | None = None

    @property
    def readable(self) -> bool:
        return self.f_flags & O_ACCMODE in (O_RDONLY, O_RDWR)

    @property
    def writable(self) -> bool:
        return self.f_flags & O_ACCMODE in (O_WRONLY, O_RDWR)

    def has_mmap(self) -> bool:
        return self.f_op.has_mmap()

    def describe(self) -> str:
        return f"file '{self.name}' opened by {self.opener.comm}:{self.opener.pid}"

    def __repr__(self) -> str:
        return f"<{self.describe()}{' (released)' if self.released else ''}>"

    # --- references --------------------------------------------------------------

    def get_file(self) -> None:
        with locked(self._lock):
            if self.f_count <= 0:
                raise KernelError(EBADF, f"get_file() on a released {self.describe()}")
            self.f_count += 1

    def fput(self) -> None:
        """Drop a reference; the last one calls `f_op->release`."""
        with locked(self._lock):
            self.f_count -= 1
            last = self.f_count == 0
            if last:
                self.released = True
        if last:
            self.released_at = here()
            try:
                with file_operation(self, "release"):
                    self.f_op.release(self)
            finally:
                # `__fput` frees the struct file once `f_op->release` returned.
                self.freed = True

    # --- the userspace side ----------------------------------------------------------

    @contextlib.contextmanager
    def _as_user(self) -> Iterator[Task]:
        """Run a file operation as the task using the file (the opener by default)."""
        t = ctx.task
        # A call-time import: bindings.task imports this module (a task owns files), so
        # this one cannot import it at load time.
        from .task import Task

        user = (
            t if isinstance(t, Task) and t.kernel is self.kernel and not t.exited else self.opener
        )
        if user.exited:
            raise KernelError(EBADF, f"{self.describe()}: the process has exited")
        with user.as_current():
            yield user

    def ioctl(self, cmd: int, arg: object = None) -> object:
        """`ioctl(fd, cmd, arg)`; the driver's `KernelError` reaches the caller."""
        if not isinstance(cmd, int) or isinstance(cmd, bool):
            raise TypeError(f"ioctl cmd must be an int, got {type(cmd).__name__}")
        if not 0 <= cmd <= 0xFFFF_FFFF:
            raise KernelError(EINVAL, f"ioctl cmd {cmd:#x} is not an unsigned int")
        if not self.fd_open:
            raise KernelError(EBADF, f"ioctl on a closed fd of {self.describe()}")
        with self._as_user(), file_operation(self, "ioctl"):
            return self.f_op.unlocked_ioctl(self, cmd, arg)

    def close(self) -> None:
        """`close(fd)`: drop the fd's reference (release runs once no VMA maps the file)."""
        if not self.fd_open:
            raise KernelError(EBADF, f"close of an fd that is already closed ({self.describe()})")
        self.fd_open = False
        self.closed_at = here()
        self.opener._forget_file(self)
        with self._as_user():
            self.fput()
