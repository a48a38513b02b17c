"""Synchronisation primitives (rust/kernel/sync): locks, condvars, `Arc`, `LockedBy`.

`Refcount` (`refcount_t`) and lockdep are C facilities the simulated kernel uses too, so
they live in the runtime core (`ownership.refcount`, `ownership.lockdep`); `Refcount`
and its limits are re-exported here, as `kernel::sync::Refcount` wraps `refcount_t`.

Lock order: this package takes no locks of its own beyond each primitive's.
"""

from ..refcount import REFCOUNT_MAX, REFCOUNT_SATURATED, Refcount
from .arc import Arc, ArcBorrow, live_arcs
from .condvar import CondVar
from .lock import Guard, Lock, Mutex, MutexGuard, SpinLock, SpinLockGuard
from .locked_by import LockedBy

__all__ = [
    "REFCOUNT_MAX",
    "REFCOUNT_SATURATED",
    "Arc",
    "ArcBorrow",
    "CondVar",
    "Guard",
    "Lock",
    "LockedBy",
    "Mutex",
    "MutexGuard",
    "Refcount",
    "SpinLock",
    "SpinLockGuard",
    "live_arcs",
]
