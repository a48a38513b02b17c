"""Driver-side definitions (drivers/android/binder/defs.rs).

Upstream `defs.rs` re-exports the UAPI constants without their C enum prefixes and
wraps the UAPI structs in `MaybeUninit` newtypes so padding is preserved. The model's
structs (`binder.uapi`) are already exact byte layouts, so this module keeps only what
the driver adds on top: the constants the driver code names, `ptr_align`, the
looper-state flags of a thread (thread.rs `LooperFlag`), the deferred-work bits of a
process (process.rs `PROC_DEFER_*`), and the driver-wide debug id counter
(`next_debug_id` in rust_binder_main.rs). It is split from `binder.uapi` because the
UAPI is what userspace sees, while these are the driver's own definitions.
"""

from __future__ import annotations

import enum
import itertools
import threading

from .uapi import (
    BINDER_TYPE_BINDER,
    BINDER_TYPE_FD,
    BINDER_TYPE_FDA,
    BINDER_TYPE_HANDLE,
    BINDER_TYPE_PTR,
    BINDER_TYPE_WEAK_BINDER,
    BINDER_TYPE_WEAK_HANDLE,
    FLAT_BINDER_FLAG_ACCEPTS_FDS,
    FLAT_BINDER_FLAG_TXN_SECURITY_CTX,
    TF_ACCEPT_FDS,
    TF_CLEAR_BUF,
    TF_ONE_WAY,
    TF_UPDATE_TXN,
)

__all__ = [
    "BINDER_TYPE_BINDER",
    "BINDER_TYPE_FD",
    "BINDER_TYPE_FDA",
    "BINDER_TYPE_HANDLE",
    "BINDER_TYPE_PTR",
    "BINDER_TYPE_WEAK_BINDER",
    "BINDER_TYPE_WEAK_HANDLE",
    "FLAT_BINDER_FLAG_ACCEPTS_FDS",
    "FLAT_BINDER_FLAG_TXN_SECURITY_CTX",
    "PROC_DEFER_FLUSH",
    "PROC_DEFER_RELEASE",
    "SZ_4M",
    "TF_ACCEPT_FDS",
    "TF_CLEAR_BUF",
    "TF_ONE_WAY",
    "TF_UPDATE_TXN",
    "U32_MAX",
    "U64_MAX",
    "LooperFlag",
    "next_debug_id",
    "ptr_align",
]

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
SZ_4M = 4 << 20

# Bits of `ProcessInner::defer_work` (process.rs): what the deferred work item must do.
PROC_DEFER_FLUSH = 1
PROC_DEFER_RELEASE = 2


class LooperFlag(enum.IntFlag):
    """`LooperFlag` of thread.rs: the looper state of a binder thread."""

    REGISTERED = 1 << 0
    ENTERED = 1 << 1
    EXITED = 1 << 2
    INVALID = 1 << 3
    WAITING = 1 << 4
    WAITING_PROC = 1 << 5
    POLL = 1 << 6


def ptr_align(value: int) -> int | None:
    """Round up to a multiple of 8 (`size_of::<usize>()`); None if that overflows a u64."""
    aligned = (value + 7) & ~7
    return aligned if aligned <= U64_MAX else None


_debug_ids = itertools.count()
_debug_lock = threading.Lock()


def next_debug_id() -> int:
    """A driver-wide unique id for transactions, nodes and refs (for traces and errors)."""
    with _debug_lock:
        return next(_debug_ids)
