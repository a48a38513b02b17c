"""The binder device and its registration (drivers/android/binder/rust_binder_main.rs).

`BinderDevice` is the `/dev/binder` misc device: each `open` makes a `Process` (kept in
the file's private data as an `Arc`), `mmap` sets up its mapping, `ioctl` goes to the
IPC layer, and `release` hands the process to the workqueue for teardown. The device
is split from `Process` as upstream splits the file operations from the per-file state.

`register(kernel)` is the module init: it registers the "android-binder" shrinker (with
its `list_lru`, shared by every process of the device) and the device, with one binder
`Context`. Upstream keeps the shrinker in a `static`; the model keeps one per
registration, so that independent simulated kernels never share pages.

Lock order: none taken here (see `binder.process`).
"""

from __future__ import annotations

from typing import Protocol

from ownership.errors import EINVAL, KernelError
from ownership.marker import impl_send, impl_sync
from ownership.miscdevice import File, MiscDevice, MiscDeviceRegistration
from ownership.mm.virt import VmAreaNew
from ownership.sync import Arc

from .device_context import Context
from .page_range import Shrinker, ShrinkerHost
from .process import Process

__all__ = ["BinderDevice", "BinderRegistration", "register"]

BINDER_SHRINKER_NAME = "android-binder"


class _MiscHost(ShrinkerHost, Protocol):
    """The simulated kernel, as the module init sees it."""

    def register_miscdevice(self, name: str, driver: MiscDevice) -> MiscDeviceRegistration: ...


@impl_send("the device's state is immutable; per-file state lives in each Process")
@impl_sync("the device's state is immutable; per-file state lives in each Process")
class BinderDevice(MiscDevice):
    """`/dev/binder`: the file operations of one binder context.

    Invariants: every open file's private data is an `Arc[Process]` (until release).
    """

    def __init__(
        self, ctx: Context, shrinker: Shrinker, process_type: type[Process] = Process
    ) -> None:
        self.ctx = ctx
        self.shrinker = shrinker
        self.process_type = process_type

    @staticmethod
    def process_of(file: File) -> Process:
        """The `Process` of an open binder file (`EINVAL` after release)."""
        arc = file.private_data
        if not isinstance(arc, Arc):
            raise KernelError(EINVAL, "binder file has no process (released?)")
        proc = arc.get()
        assert isinstance(proc, Process)
        return proc

    def open(self, file: File) -> None:
        file.private_data = self.process_type.new(self.ctx, self.shrinker)

    def release(self, file: File) -> None:
        arc = file.private_data
        if not isinstance(arc, Arc):
            return
        file.private_data = None
        proc = arc.get()
        assert isinstance(proc, Process)
        # The teardown runs later on the workqueue, with its own count of the process.
        proc.release_file()
        arc.drop()

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        proc = self.process_of(file)
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise KernelError(EINVAL, "binder ioctls take a user address")
        return proc.ioctl(file, cmd, arg)

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        self.process_of(file).mmap(vma)


class BinderRegistration:
    """What `register(kernel)` set up: the context, the shrinker and the device.

    Invariants: while registered, `/dev/binder` of the kernel dispatches to `device`
    and the kernel's reclaim calls `shrinker`.
    """

    def __init__(
        self, ctx: Context, shrinker: Shrinker, device: BinderDevice, misc: MiscDeviceRegistration
    ) -> None:
        self.ctx = ctx
        self.shrinker = shrinker
        self.device = device
        self.misc = misc

    def unregister(self) -> None:
        """Module exit: remove the device and the shrinker (open files keep working)."""
        self.misc.deregister()
        self.shrinker.unregister()
        self.ctx.deregister()


def register(
    kernel: _MiscHost, name: str = "binder", process_type: type[Process] = Process
) -> BinderRegistration:
    """Register the binder shrinker and `/dev/<name>` with `kernel`."""
    shrinker = Shrinker(
        BINDER_SHRINKER_NAME if name == "binder" else f"{BINDER_SHRINKER_NAME}-{name}"
    )
    shrinker.register(kernel)
    ctx = Context(name)
    device = BinderDevice(ctx, shrinker, process_type)
    try:
        misc = kernel.register_miscdevice(name, device)
    except BaseException:
        shrinker.unregister()
        ctx.deregister()
        raise
    return BinderRegistration(ctx, shrinker, device, misc)
