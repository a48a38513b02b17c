"""`Send` and `Sync`: which values may cross threads, and which may be shared.

Rust derives these auto traits from a type's fields; Python cannot, so types of the
model declare them explicitly, each declaration carrying its reason as the kernel's
`// SAFETY:` comment on `unsafe impl Send` does:

    @impl_send("mmput may be called from any thread")
    @impl_sync("all methods may be called in parallel")
    class MmWithUser: ...

`NotThreadSafe` (a base class, as the kernel's `PhantomData<*mut ()>` field) makes a
type `!Send + !Sync`; guards use it. `not_sync(reason)` makes a type `!Sync` only.
Undeclared plain classes are treated as Send and Sync, as Rust derives the auto traits
for plain data. Containers decide per value: `ARef[T]` and `Arc[T]` are Send (and
Sync) iff `T` is Send and Sync, via `__ownership_is_send__`; tuples, lists and dicts
are Send iff their elements are, and a function is Send iff what it captures is.

`check_send(value, ...)` is the hand-off check used by `task.spawn` and
`workqueue.queue_work`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import STATE
from .errors import SendError
from .site import Site, here

__all__ = [
    "MarkerDecl",
    "NotThreadSafe",
    "check_send",
    "declarations",
    "impl_send",
    "impl_sync",
    "is_send",
    "is_sync",
    "not_send",
    "not_sync",
]

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class MarkerDecl:
    """One explicit Send/Sync declaration and its reason."""

    cls: str
    trait: str
    implemented: bool
    reason: str


_decls: list[MarkerDecl] = []


def declarations() -> list[MarkerDecl]:
    return list(_decls)


def _declare(trait: str, implemented: bool, reason: str) -> Callable[[C], C]:
    if not isinstance(reason, str) or not reason.strip():
        raise TypeError(f"a {trait} declaration needs a reason")

    def deco(cls: C) -> C:
        setattr(cls, f"__ownership_{trait.lower()}__", implemented)
        _decls.append(MarkerDecl(f"{cls.__module__}.{cls.__qualname__}", trait, implemented, reason))
        return cls

    return deco


def impl_send(reason: str) -> Callable[[C], C]:
    """`unsafe impl Send for T {}` with its SAFETY reason."""
    return _declare("Send", True, reason)


def impl_sync(reason: str) -> Callable[[C], C]:
    """`unsafe impl Sync for T {}` with its SAFETY reason."""
    return _declare("Sync", True, reason)


def not_send(reason: str) -> Callable[[C], C]:
    """`impl !Send for T {}`: the value must stay on the thread that made it."""
    return _declare("Send", False, reason)


def not_sync(reason: str) -> Callable[[C], C]:
    """`impl !Sync for T {}`: the value must not be shared between threads."""
    return _declare("Sync", False, reason)


class NotThreadSafe:
    """Base class making a type `!Send + !Sync` (the kernel's `NotThreadSafe` field)."""

    __slots__ = ()
    __ownership_send__ = False
    __ownership_sync__ = False


_SCALARS = (type(None), bool, int, float, complex, str, bytes, range, type)


def _auto(value: object, trait: str, depth: int) -> bool:
    if isinstance(value, _SCALARS):
        return True
    hook = getattr(type(value), f"__ownership_is_{trait}__", None)
    if hook is not None:
        return bool(hook(value))
    declared = getattr(type(value), f"__ownership_{trait}__", None)
    if declared is not None:
        return bool(declared)
    if depth > 4:
        return True
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_auto(v, trait, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_auto(k, trait, depth + 1) and _auto(v, trait, depth + 1) for k, v in value.items())
    if trait == "send":
        bound = getattr(value, "__self__", None)
        if bound is not None and not isinstance(bound, type) and not _auto(bound, trait, depth + 1):
            return False
        cells = getattr(value, "__closure__", None)
        if cells:
            for c in cells:
                try:
                    v = c.cell_contents
                except ValueError:
                    continue
                if not _auto(v, trait, depth + 1):
                    return False
    return True


def is_send(value: object) -> bool:
    """Whether `value` may be moved to another thread."""
    return _auto(value, "send", 0)


def is_sync(value: object) -> bool:
    """Whether `value` may be shared (by reference) between threads."""
    return _auto(value, "sync", 0)


def origin_site(value: object) -> Site | None:
    """Where a value was made, if it records it (guards record the lock site)."""
    s: Any = getattr(value, "origin_site", None)
    return s if isinstance(s, Site) else None


def _offender(value: object) -> object:
    """The first !Send part of a value, for the report."""
    if isinstance(value, (tuple, list, set, frozenset)):
        for v in value:
            if not is_send(v):
                return _offender(v)
    bound = getattr(value, "__self__", None)
    if bound is not None and not is_send(bound):
        return _offender(bound)
    for c in getattr(value, "__closure__", None) or ():
        try:
            v = c.cell_contents
        except ValueError:
            continue
        if not is_send(v):
            return _offender(v)
    return value


def check_send(value: object, handoff: str, site: Site | None = None) -> None:
    """Raise `SendError` if `value` is `!Send`; `handoff` names the hand-off."""
    if not STATE.on or is_send(value):
        return
    bad = _offender(value)
    raise SendError(
        f"{type(bad).__name__} is !Send but is handed to another thread by {handoff}",
        obj=_describe(bad),
        site=site or here(),
        origin=origin_site(bad),
        origin_label="the !Send value was made",
    )


def _describe(v: object) -> str:
    d = getattr(v, "describe", None)
    if callable(d):
        try:
            return str(d())
        except Exception:  # pragma: no cover - a describe() bug must not hide the report
            pass
    return f"{type(v).__qualname__} object"
