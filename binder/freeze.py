"""The binder freezer (drivers/android/binder/freeze.rs and the freeze half of process.rs).

`BINDER_FREEZE` freezes (or thaws) every binder process of a pid: a frozen process
refuses incoming transactions (sync ones fail with `BR_FROZEN_REPLY`, oneway ones are
queued and recorded in `async_recv`), and the freeze itself fails with `EAGAIN` while
transactions are in flight, after waiting up to `timeout_ms` for them to finish.
`BINDER_GET_FROZEN_INFO` reports, for a pid, whether sync or async transactions arrived
while it was frozen (bit 1 of `sync_recv`: transactions are still pending).

Upstream keeps these as `impl Process` blocks next to the freeze notifications in
freeze.rs; this model has no freeze notifications (`BC_REQUEST_FREEZE_NOTIFICATION`),
so the module holds the state enum and the ioctl handling, as functions of the
`Process` they act on. The state lives in `ProcessInner` (`is_frozen`, `sync_recv`,
`async_recv`, `outstanding_txns`); the waiter is `Process.freeze_wait`, woken by
`Process.drop_outstanding_txn` when the last in-flight transaction of a freezing
process finishes.

Lock order: `Process.inner` (SpinLock) only; `freeze_wait` waits with it held and
releases it while sleeping, as `CondVar::wait_interruptible_timeout` does.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ownership import sched
from ownership.alloc import GFP_KERNEL, alloc_check
from ownership.context import may_sleep
from ownership.errors import EAGAIN, EINVAL, KernelError
from ownership.uaccess import UserSlice

from .uapi import binder_freeze_info, binder_frozen_status_info

if TYPE_CHECKING:
    from .process import Process

__all__ = ["IsFrozen", "frozen_status", "get_frozen_info", "ioctl_freeze", "ioctl_freeze_by_pid"]


class IsFrozen(enum.Enum):
    """The freezer state of a process (`IsFrozen`)."""

    YES = "yes"
    NO = "no"
    IN_PROGRESS = "in progress"

    def is_frozen(self) -> bool:
        """Whether incoming transactions are refused."""
        return self is not IsFrozen.NO

    def is_fully_frozen(self) -> bool:
        return self is IsFrozen.YES


@may_sleep
def ioctl_freeze(proc: Process, info: binder_freeze_info) -> None:
    """Freeze (or thaw) `proc`; `EAGAIN` while transactions are in flight."""
    if info.enable == 0:
        with proc.inner.lock() as g:
            g.data.sync_recv = g.data.async_recv = False
            g.data.is_frozen = IsFrozen.NO
        return
    with proc.inner.lock() as g:
        g.data.sync_recv = g.data.async_recv = False
        g.data.is_frozen = IsFrozen.IN_PROGRESS
        if info.timeout_ms > 0:
            deadline = sched.monotonic() + info.timeout_ms / 1000.0
            while g.data.outstanding_txns > 0:
                left = deadline - sched.monotonic()
                if left <= 0:
                    break
                proc.freeze_wait.wait_timeout(g, left)
        if g.data.txns_pending_locked():
            g.data.is_frozen = IsFrozen.NO
            raise KernelError(EAGAIN, "transactions pending")
        g.data.is_frozen = IsFrozen.YES


def frozen_status(proc: Process) -> tuple[int, int]:
    """(sync_recv with bit 1 = pending, async_recv) of `proc`, for BINDER_GET_FROZEN_INFO."""
    with proc.inner.lock() as g:
        pending = g.data.txns_pending_locked()
        return (int(g.data.sync_recv) | (int(pending) << 1), int(g.data.async_recv))


@may_sleep
def ioctl_freeze_by_pid(caller: Process, info: binder_freeze_info) -> None:
    """`BINDER_FREEZE`: freeze (or thaw) every binder process of `info.pid`."""
    procs = caller.procs_with_pid(info.pid)
    alloc_check(GFP_KERNEL, "ioctl_freeze procs")
    for p in procs:
        ioctl_freeze(p, info)


def get_frozen_info(caller: Process, us: UserSlice) -> None:
    """`BINDER_GET_FROZEN_INFO`: the frozen status of every binder process of a pid."""
    req = binder_frozen_status_info.unpack(us.reader().read(binder_frozen_status_info.SIZE))
    procs = caller.procs_with_pid(req.pid)
    if not procs:
        raise KernelError(EINVAL, f"no binder process {req.pid}")
    sync = asyn = 0
    for p in procs:
        s, a = frozen_status(p)
        sync |= s
        asyn |= a
    us.writer().write(binder_frozen_status_info(req.pid, sync, asyn).pack())
