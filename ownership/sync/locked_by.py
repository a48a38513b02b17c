"""`LockedBy<T, U>` (rust/kernel/sync/locked_by.rs): data protected by *another* lock.

Binder keeps a `Node`'s state `LockedBy` its owner process's `inner` lock: the data
lives in the node, but only a guard of that one lock instance may reach it.
`access(guard)` checks that the guard belongs to the owner lock (the kernel asserts
`ptr::eq`) and is still held.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..config import STATE
from ..errors import LifetimeError, LockError
from ..site import here
from .lock import Guard, Lock

__all__ = ["LockedBy"]

T = TypeVar("T")
U = TypeVar("U")


class LockedBy(Generic[T, U]):
    """A `T` reachable only through a guard of the one `Lock[U]` given at creation.

    Invariants: `_owner` is the lock whose guards grant access.
    """

    __slots__ = ("_data", "_owner", "_site")

    def __init__(self, owner: Lock[U], data: T) -> None:
        if not isinstance(owner, Lock):
            raise TypeError(f"LockedBy needs the owner lock, got {type(owner).__name__}")
        self._owner = owner
        self._data = data
        self._site = here()

    def _check(self, guard: Guard[Any]) -> None:
        if not STATE.on:
            return
        if not isinstance(guard, Guard):
            raise TypeError(f"LockedBy.access takes a lock guard, got {type(guard).__name__}")
        if guard.lock is not self._owner:
            raise LockError(
                f"LockedBy accessed with a guard of {guard.lock.describe()}, "
                f"not of its owner {self._owner.describe()}",
                rule="locked-by-owner",
                obj=f"LockedBy[{type(self._data).__name__}]",
                site=here(),
                origin=self._site,
                origin_label="the LockedBy was made with its owner",
                notes=[("the wrong lock was taken", guard.origin_site)],
            )
        if not guard.is_held():
            raise LifetimeError(
                "LockedBy accessed through a released guard",
                obj=self._owner.describe(),
                site=here(),
                origin=guard._end_site,
                origin_label="the guard was released",
            )

    def access(self, guard: Guard[U]) -> T:
        """The data, given proof that the owner lock is held."""
        self._check(guard)
        return self._data

    def access_mut(self, guard: Guard[U]) -> T:
        """As `access`, for writing (`&mut` owner guard)."""
        self._check(guard)
        return self._data

    def set(self, guard: Guard[U], value: T) -> None:
        self._check(guard)
        self._data = value
