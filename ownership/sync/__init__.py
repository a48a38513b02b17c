"""Synchronisation primitives (rust/kernel/sync): locks, condvars, `Arc`, `LockedBy`.

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
