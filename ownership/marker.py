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

`!Sync` at run time. Python passes every value by reference, so the model makes the
two ways a value reaches another thread explicit:

* `share(value)` is `&value` crossing a thread boundary: a `Shared` is Send iff the
  value is Sync, so `spawn(fn, share(x))` with a `!Sync` `x` is a `SyncError` at the
  hand-off, as `thread::scope(|s| s.spawn(|| x.method()))` fails to compile.
* A `!Sync` type whose methods must not run on two threads keeps a `ThreadAffinity`
  (its `PhantomData<Cell<()>>`) and calls `check()` at the top of each method: a call
  from a thread other than the one using it is a `SyncError` naming where that thread
  used it. Moving the value to another thread (`spawn(fn, value)`, if it is Send) hands
  the affinity over to the new thread, so a moved value is usable there and a use left
  behind on the old thread is caught.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import rules as _rules  # noqa: F401  (installs each rule's fix hint in reports)
from .config import STATE
from .errors import SendError, SyncError
from .site import Site, here, site_of_frame

__all__ = [
    "MarkerDecl",
    "NotThreadSafe",
    "Shared",
    "ThreadAffinity",
    "affinity_of",
    "check_send",
    "declarations",
    "impl_send",
    "impl_sync",
    "is_send",
    "is_sync",
    "not_send",
    "not_sync",
    "share",
    "transfer",
]

C = TypeVar("C", bound=type)
T = TypeVar("T")


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
        _decls.append(
            MarkerDecl(f"{cls.__module__}.{cls.__qualname__}", trait, implemented, reason)
        )
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
        return all(
            _auto(k, trait, depth + 1) and _auto(v, trait, depth + 1) for k, v in value.items()
        )
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
    """Raise `SendError` if `value` is `!Send`; `handoff` names the hand-off.

    A `Shared` reference to a `!Sync` value raises `SyncError` instead: what crosses
    the threads there is `&T`, which is Send iff `T` is Sync.
    """
    if not STATE.on or is_send(value):
        return
    bad = _offender(value)
    if isinstance(bad, Shared):
        target = bad.target
        raise SyncError(
            f"{type(target).__name__} is !Sync but a shared reference to it is handed to "
            f"another thread by {handoff}",
            obj=_describe(target),
            site=site or here(),
            origin=bad.site,
            origin_label="the reference was shared",
            notes=[("the !Sync value was made", origin_site(target))]
            if origin_site(target) is not None
            else [],
        )
    raise SendError(
        f"{type(bad).__name__} is !Send but is handed to another thread by {handoff}",
        obj=_describe(bad),
        site=site or here(),
        origin=origin_site(bad),
        origin_label="the !Send value was made",
    )


class Shared(Generic[T]):
    """`&T` handed to another thread: Send iff `T` is Sync (`share(value)`).

    Invariants: `target` is the shared value; `site` is where it was shared.
    """

    __slots__ = ("site", "target")

    def __init__(self, target: T, site: Site) -> None:
        self.target = target
        self.site = site

    def get(self) -> T:
        """`&*r`."""
        return self.target

    def __ownership_is_send__(self) -> bool:
        return is_sync(self.target)

    def __ownership_is_sync__(self) -> bool:
        return is_sync(self.target)

    def describe(self) -> str:
        return f"&{_describe(self.target)}"


def share(value: T) -> Shared[T]:
    """A shared reference to `value`, for handing to another thread (`&value`)."""
    return Shared(value, here())


class ThreadAffinity:
    """The one thread a `!Sync` value is being used from: its `PhantomData<Cell<()>>`.

    A type declared `!Sync` builds one in its constructor and calls `check(use)` first
    thing in every method. The thread that made the value owns it; a checked move to
    another thread (`transfer`, done by `task.spawn` for its arguments) hands it over,
    and the receiving thread claims it. Reported sites are those of the *callers* of
    the constructor and of the checked method (`depth` frames up, then outwards past
    the model's own frames). Cost: one `get_ident()` and a compare per check.

    Invariants: `tid` is the owning thread (None between a hand-off and the claim);
    `site` is where the owner began using the value.
    """

    __slots__ = ("site", "tid", "what")

    def __init__(self, what: str, site: Site | None = None) -> None:
        self.what = what
        self.tid: int | None = threading.get_ident()
        self.site = site if site is not None else site_of_frame(sys._getframe(2))

    def check(self, use: str = "use", depth: int = 1) -> None:
        """Raise `SyncError` if the calling thread is not the one using the value.

        `depth` is how many frames above `check`'s caller the reported use site is
        (1: the caller of the method that calls `check`).
        """
        tid = self.tid
        me = threading.get_ident()
        if tid == me or not STATE.on:
            return
        site = site_of_frame(sys._getframe(1 + depth))
        if tid is None:
            # Handed off, not yet claimed: the first user after a move owns it.
            self.tid = me
            self.site = site
            return
        raise SyncError(
            f"{use} of a !Sync {self.what} from a second thread (it is not shareable)",
            obj=self.what,
            site=site,
            origin=self.site,
            origin_label=f"it is in use on thread {_thread_name(tid)}, since",
        )

    def hand_off(self) -> None:
        """The value is being moved to another thread; that thread claims it."""
        self.tid = None

    def claim(self, site: Site | None = None) -> None:
        """The calling thread takes the value over (the receiving end of a move)."""
        self.tid = threading.get_ident()
        self.site = site if site is not None else here()


def _thread_name(tid: int) -> str:
    for t in threading.enumerate():
        if t.ident == tid:
            return f"'{t.name}'"
    return str(tid)


def affinity_of(value: object) -> ThreadAffinity | None:
    """The `ThreadAffinity` a value keeps (attribute `__ownership_affinity__`), if any."""
    a = getattr(value, "__ownership_affinity__", None)
    return a if isinstance(a, ThreadAffinity) else None


def transfer(values: Iterable[object], site: Site | None = None) -> Callable[[], None]:
    """Hand the `!Sync` values among `values` to another thread; returns the claim.

    Call after `check_send` (only Send values may move). The returned function runs on
    the receiving thread before the values are used there.
    """
    moved = [a for a in (affinity_of(v) for v in values) if a is not None]
    if not moved:
        return _no_claim
    for a in moved:
        a.hand_off()

    def claim() -> None:
        for a in moved:
            a.claim(site)

    return claim


def _no_claim() -> None:
    return None


def _describe(v: object) -> str:
    d = getattr(v, "describe", None)
    if callable(d):
        try:
            return str(d())
        except Exception:  # pragma: no cover - a describe() bug must not hide the report
            pass
    return f"{type(v).__qualname__} object"
