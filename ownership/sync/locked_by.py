"""`LockedBy<T, U>` (rust/kernel/sync/locked_by.rs): data protected by *another* lock.

Binder keeps a `Node`'s state `LockedBy` its owner process's `inner` lock: the data
lives in the node, but only a guard of that one lock instance may reach it.
`access(guard)` checks that the guard belongs to the owner lock (the kernel asserts
`ptr::eq`) and is still held.

What `access`/`access_mut` return is a reference that dies with the guard (`&'a T` tied
to `&'a Guard`): a view of the data that forwards every attribute and item access to it
and checks, at each one, that the guard is still held; a use after the guard was released
is a `LifetimeError` naming where the reference was made and where the guard ended. The
view passes `isinstance` checks for the data's class. A value of an immutable builtin
type (an int, a str, a tuple, ...) is returned as it is: reading it is a copy, and
nothing can be reached through it after the guard ends.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from ..config import STATE
from ..errors import LifetimeError, LockError
from ..site import Site, here
from .lock import Guard, Lock

__all__ = ["LockedBy"]

T = TypeVar("T")
U = TypeVar("U")

_COPY_TYPES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)
"""Immutable builtin values: a reference to one is indistinguishable from a copy."""

_set = object.__setattr__
_get = object.__getattribute__


class _GuardedRef:
    """`&'a T` borrowed through a lock guard: every use checks the guard is still held.

    Invariants: `_lb_target` is the data, `_lb_guard` the guard whose critical section
    bounds the reference, `_lb_site` where the reference was made.
    """

    __slots__ = ("_lb_guard", "_lb_site", "_lb_target")

    def __init__(self, target: object, guard: Guard[Any], site: Site) -> None:
        _set(self, "_lb_target", target)
        _set(self, "_lb_guard", guard)
        _set(self, "_lb_site", site)

    def _lb_deref(self, use: str) -> Any:
        guard: Guard[Any] = _get(self, "_lb_guard")
        if not guard.is_held() and STATE.on:
            raise LifetimeError(
                f"{use} through a LockedBy reference after its guard was released",
                obj=guard.lock.describe(),
                site=here(),
                origin=guard._end_site,
                origin_label="the guard was released",
                notes=[
                    ("the reference was made (LockedBy.access)", _get(self, "_lb_site")),
                    ("the lock was taken", guard.origin_site),
                ],
            )
        return _get(self, "_lb_target")

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(_get(self, "_lb_target"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lb_deref(f"read of .{name}"), name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._lb_deref(f"write of .{name}"), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._lb_deref(f"delete of .{name}"), name)

    def __getitem__(self, key: object) -> Any:
        return self._lb_deref("index")[key]

    def __setitem__(self, key: object, value: object) -> None:
        self._lb_deref("index")[key] = value

    def __delitem__(self, key: object) -> None:
        del self._lb_deref("index")[key]

    def __len__(self) -> int:
        return len(self._lb_deref("len"))

    def __iter__(self) -> Any:
        return iter(self._lb_deref("iteration"))

    def __contains__(self, item: object) -> bool:
        return item in self._lb_deref("membership test")

    def __bool__(self) -> bool:
        return bool(self._lb_deref("truth test"))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _GuardedRef):
            other = other._lb_deref("comparison")
        return bool(self._lb_deref("comparison") == other)

    def __hash__(self) -> int:
        return hash(self._lb_deref("hash"))

    def __repr__(self) -> str:
        return repr(_get(self, "_lb_target"))


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

    def _ref(self, guard: Guard[U]) -> T:
        self._check(guard)
        data = self._data
        if isinstance(data, _COPY_TYPES) or not STATE.on:
            return data
        return cast(T, _GuardedRef(data, guard, here()))

    def access(self, guard: Guard[U]) -> T:
        """The data, given proof that the owner lock is held; valid while `guard` is."""
        return self._ref(guard)

    def access_mut(self, guard: Guard[U]) -> T:
        """As `access`, for writing (`&mut` owner guard)."""
        return self._ref(guard)

    def set(self, guard: Guard[U], value: T) -> None:
        self._check(guard)
        self._data = value
