"""Files and file descriptors of the current task (rust/kernel/fs/file.rs).

Binder moves open files between processes: the sender names a file by its fd
(`LocalFile::fget`), the driver keeps a counted reference (`ARef<File>`) while the
transaction is in flight, and the receiver gets a new fd for the same `struct file`,
reserved first (`FileDescriptorReservation::get_unused_fd_flags`) and installed only
once nothing can fail any more (`fd_install`), so that a failed transaction never
leaves a half-installed fd behind.

* `FileRef`: a counted reference to an open file (`ARef<File>`); `drop()` is `fput`.
  It is split from `ownership.miscdevice.File` (a driver's view of its *own* file
  during a file operation) because it may outlive any file operation and may be a
  file of any driver.
* `FileDescriptorReservation`: an fd number reserved in the current task's table;
  `fd_install(file)` consumes the reference, `drop()` gives the number back.

Both operate on the task the calling thread runs as (`current`), as upstream.

Lock order: none taken here (the file's `f_count` word is a leaf).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .bindings.task import Task as _CTask
from .context import ctx
from .errors import EBADF, EINVAL, ESRCH, KernelError, RefcountError
from .handle import DropRules, Handle
from .marker import impl_send, impl_sync
from .site import Site, here

if TYPE_CHECKING:
    from .bindings.fs import File as _CFile

__all__ = ["O_CLOEXEC", "FileDescriptorReservation", "FileRef", "close_fd"]

O_CLOEXEC = 0o2000000


def _current_task(what: str) -> _CTask:
    t = ctx.task
    if not isinstance(t, _CTask) or t.exited:
        raise KernelError(ESRCH, f"{what}: no live current task")
    return t


@impl_send("fget/fput may be called on any thread")
@impl_sync("a struct file may be used in parallel (its f_count is atomic)")
class FileRef(Handle):
    """One `f_count` reference to an open file (`ARef<File>`).

    Invariants: until `drop()` (or `fd_install`, which hands it to an fd table), this
    object owns one `f_count` of `_file`.
    """

    __slots__ = ("_file", "origin_site")

    _drop_rules = DropRules(
        RefcountError,
        rule="file-ref-use-after-drop",
        use_message="{use} of a file reference after it was dropped",
        dropped_label="the reference was dropped (fput)",
        made_label="the reference was taken (fget)",
        double_message="double fput of a file reference",
        already_label="the reference was already dropped",
    )

    def __init__(self, raw: _CFile, site: Site) -> None:
        self._file = raw
        self._dropped_at = None
        self.origin_site = site

    @classmethod
    def fget(cls, fd: int) -> FileRef:
        """The file behind `fd` in the current task, with a new reference (`EBADF`)."""
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise TypeError(f"fget takes an fd number, got {type(fd).__name__}")
        t = _current_task("fget")
        raw = t.files.get(fd)
        if raw is None:
            raise KernelError(EBADF, f"fget({fd}): not an open fd of {t.describe()}")
        raw.get_file()
        return cls(raw, here())

    def _handle_obj(self) -> str:
        return self._file.describe()

    def _made_at(self) -> Site:
        return self.origin_site

    def raw(self) -> _CFile:
        """The underlying `struct file` (for the simulated kernel and tests)."""
        self._check("use")
        return self._file

    def drop(self) -> None:
        """`fput`: give the reference back; a second drop is a `RefcountError`."""
        if self._dropped_at is not None:
            self._double_drop()
            return
        self._dropped_at = here()
        self._file.fput()

    def _consume(self) -> _CFile:
        self._check("install")
        self._dropped_at = here()
        return self._file


@impl_send("a reservation may be installed from any thread of the task")
@impl_sync("a reservation is used by one thread at a time")
class FileDescriptorReservation:
    """An fd number reserved in the current task (`get_unused_fd_flags`).

    Invariants: the number is not used by the task's fd table until `fd_install`;
    `_done` once installed or given back.
    """

    __slots__ = ("_done", "_task", "fd", "flags")

    def __init__(self, task: _CTask, fd: int, flags: int) -> None:
        self._task = task
        self.fd = fd
        self.flags = flags
        self._done = False

    @classmethod
    def get_unused_fd_flags(cls, flags: int) -> FileDescriptorReservation:
        if not isinstance(flags, int) or flags & ~O_CLOEXEC:
            raise KernelError(EINVAL, f"get_unused_fd_flags: unsupported flags {flags!r}")
        t = _current_task("get_unused_fd_flags")
        fd = t._next_fd
        t._next_fd += 1
        return cls(t, fd, flags)

    def reserved_fd(self) -> int:
        return self.fd

    def fd_install(self, file: FileRef) -> None:
        """Put `file` in the table at the reserved number (consumes the reference)."""
        if self._done:
            raise KernelError(EINVAL, f"fd {self.fd} reservation already used")
        raw = file._consume()
        self._done = True
        self._task.files[self.fd] = raw

    def drop(self) -> None:
        """`put_unused_fd`: the number was never installed."""
        self._done = True


def close_fd(fd: int) -> None:
    """Close `fd` of the current task (`DeferredFdCloser::close_fd`); `EBADF` if not open."""
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"close_fd takes an fd number, got {type(fd).__name__}")
    t = _current_task("close_fd")
    raw = t.files.pop(fd, None)
    if raw is None:
        raise KernelError(EBADF, f"close_fd({fd}): not an open fd of {t.describe()}")
    raw.fput()
