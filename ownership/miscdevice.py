"""Misc devices (rust/kernel/miscdevice.rs): `MiscDevice`, its registration, and `File`.

A driver subclasses `MiscDevice` and overrides any of `open`, `release`, `ioctl` and
`mmap`; `kernel.register_miscdevice(name, driver)` calls back `driver.misc_register`
(the C side names no Rust class), which builds the C `file_operations` vtable around
the driver and registers it as `/dev/<name>` (`misc_register()`: a name and a vtable).
The vtable turns each C call into the Rust abstractions: the `struct file *` becomes a
`File` (the driver's view: `private_data`, the open mode), and the `vm_area_struct *`
handed to `mmap` becomes a `VmAreaNew` whose lifetime ends when the handler returns
(seed 003, part 2: "rust: miscdevice: add mmap support"). A `KernelError` raised by a
handler is the error the userspace call gets.

A driver's `File` is valid only while the `struct file` is: one kept after its
`release` returned (the last `fput`) is `file-use-after-fput` at its next use, naming
where the last reference was put.

`File` is split from the userspace handle (`ownership.bindings.fs.File`) because a driver
must not act as userspace: it sees the file's state, not the fd operations.

Lock order: no lock is taken here; `mmap` handlers run under the mmap write lock, so a
driver lock taken in one nests inside the mmap lock.
"""

from __future__ import annotations

from .bindings.fs import File as _CFile
from .bindings.fs import FileOperations as _CFileOperations
from .bindings.kernel import Kernel
from .bindings.mm_types import VmAreaStruct
from .borrow import Lifetime
from .config import STATE
from .errors import ENODEV, ENOTTY, KernelError, LifetimeError
from .marker import impl_send, impl_sync
from .mm.virt import VmAreaNew
from .site import here
from .view import CView

__all__ = ["File", "MiscDevice", "MiscDeviceRegistration"]


@impl_send("a struct file is refcounted and may be used from any thread (fget/fput)")
@impl_sync("the file operations may run in parallel on several threads")
class File(CView[_CFile]):
    """An open file of a misc device, as its driver sees it (`kernel::fs::File`).

    Invariants: `_file` is a `struct file` of the device; every use checks it was not
    freed yet.
    """

    __slots__ = ("_file",)

    def __init__(self, raw: _CFile) -> None:
        self._file = raw

    def _live(self, use: str) -> _CFile:
        """The `struct file`, after checking it was not freed (its release returned)."""
        f = self._file
        if f.freed and STATE.on:
            raise LifetimeError(
                f"{use} of a File after its release (the struct file was freed)",
                rule="file-use-after-fput",
                obj=f.describe(),
                site=here(),
                origin=f.released_at,
                origin_label="the last reference was put (fput), and release ran",
                notes=[("the file was opened", f.opened_at)],
            )
        return f

    @property
    def private_data(self) -> object:
        """The driver's per-file data (`file->private_data`)."""
        return self._live("private_data").private_data

    @private_data.setter
    def private_data(self, value: object) -> None:
        self._live("private_data").private_data = value

    def flags(self) -> int:
        """The open flags (`O_RDONLY`, `O_WRONLY`, `O_RDWR`)."""
        return self._live("flags").f_flags

    def is_readable(self) -> bool:
        return self._live("is_readable").readable

    def is_writable(self) -> bool:
        return self._live("is_writable").writable

    def name(self) -> str:
        return self._live("name").name

    def as_ptr(self) -> _CFile:
        return self._live("as_ptr")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other._file is self._file

    def __hash__(self) -> int:
        return id(self._file)

    def __repr__(self) -> str:
        return f"<File {self._file.describe()}>"


class MiscDevice:
    """A misc-device driver (`trait MiscDevice`); every operation has a default.

    Invariants: one driver object serves every file of its registration, possibly on
    several threads at once (its state needs its own locks).

    Override `open(file)` to set up per-file state (e.g. in `file.private_data`),
    `release(file)` to tear it down, `ioctl(file, cmd, arg)` (default: `ENOTTY`) and
    `mmap(file, vma)` (default: the device cannot be mapped, `ENODEV`).
    """

    def open(self, file: File) -> None:
        return None

    def release(self, file: File) -> None:
        return None

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        raise KernelError(ENOTTY, f"ioctl {cmd:#x} not supported")

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        raise KernelError(ENODEV, "this device cannot be mapped")

    def misc_register(self, kernel: Kernel, name: str) -> MiscDeviceRegistration:
        """`kernel.register_miscdevice(name, self)` (the C side's `MiscDriver` protocol)."""
        return MiscDeviceRegistration.register(kernel, name, self)


class _MiscFileOperations(_CFileOperations):
    """The C `file_operations` built around a `MiscDevice` (the `#[vtable]`).

    Invariants: `driver` is the registered driver; the `VmAreaNew` given to its `mmap`
    lives only for that call.
    """

    def __init__(self, driver: MiscDevice, name: str) -> None:
        self.driver = driver
        self.name = name

    def open(self, file: _CFile) -> None:
        self.driver.open(File._view(file))

    def release(self, file: _CFile) -> None:
        self.driver.release(File._view(file))

    def unlocked_ioctl(self, file: _CFile, cmd: int, arg: object) -> object:
        return self.driver.ioctl(File._view(file), cmd, arg)

    def has_mmap(self) -> bool:
        return type(self.driver).mmap is not MiscDevice.mmap

    def mmap(self, file: _CFile, vma: VmAreaStruct) -> None:
        site = here()
        lt = Lifetime(f"VmAreaNew of an mmap of /dev/{self.name}", site)
        # INVARIANT: the VMA is undergoing initialisation in this f_op->mmap() call, for `lt`.
        new = VmAreaNew(vma, lt, site)
        try:
            self.driver.mmap(File._view(file), new)
        finally:
            lt.end(here(), "the mmap handler returned")


class MiscDeviceRegistration:
    """A registered misc device; `deregister()` removes `/dev/<name>`.

    Invariants: while `registered`, `/dev/<name>` of `kernel` dispatches to `driver`.
    """

    def __init__(self, kernel: Kernel, name: str, driver: MiscDevice) -> None:
        self.kernel = kernel
        self.name = name
        self.driver = driver
        self.registered = False

    @classmethod
    def register(cls, kernel: Kernel, name: str, driver: MiscDevice) -> MiscDeviceRegistration:
        """`misc_register()`: `EBUSY` if the name is taken."""
        if not isinstance(driver, MiscDevice):
            raise TypeError(f"register_miscdevice takes a MiscDevice, got {type(driver).__name__}")
        if not isinstance(kernel, Kernel):
            raise TypeError(f"register_miscdevice needs a Kernel, got {type(kernel).__name__}")
        reg = cls(kernel, name, driver)
        kernel.add_device(name, _MiscFileOperations(driver, name))
        reg.registered = True
        return reg

    def deregister(self) -> None:
        """`misc_deregister()`: new opens fail with `ENOENT`; open files keep working."""
        if self.registered:
            self.kernel.remove_device(self.name)
            self.registered = False

    drop = deregister
