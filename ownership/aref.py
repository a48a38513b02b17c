"""`ARef<T>` and `AlwaysRefCounted` (rust/kernel/sync/aref.rs).

`AlwaysRefCounted` types keep their own count in the C object (`mmgrab`/`mmdrop` on
an `mm_struct`, `get_task_struct`/`put_task_struct`, ...): every instance is
refcounted, and `inc_ref`/`dec_ref` are the type's own functions. An `ARef[T]` owns
one increment. Because `dec_ref` is the type's, dropping an `ARef` may sleep when the
type's `dec_ref` does (`ARef[MmWithUser]` runs `mmput`), and the check runs before any
effect: a refused drop has not dropped.

`ARef[T]` is Send and Sync iff `T` is Send and Sync.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .config import STATE
from .drop import sleeps_when_called
from .errors import RefcountError
from .handle import DropRules, Handle
from .marker import is_send, is_sync
from .site import UNKNOWN, Site, here, last_code, site_of_frame
from .unsafe import unsafe_fn

__all__ = ["ARef", "AlwaysRefCounted"]


class AlwaysRefCounted(Protocol):
    """Types whose every instance is refcounted by the C side."""

    def inc_ref(self) -> None: ...

    def dec_ref(self) -> None: ...


T = TypeVar("T", bound=AlwaysRefCounted)

_new = object.__new__
_getframe = sys._getframe


class ARef(Handle, Generic[T]):
    """An owned reference (one increment) to an `AlwaysRefCounted` object.

    Invariants: until `drop()` or `into_raw()`, this handle owns one increment of
    `_obj`'s count, so `_obj` is alive.
    """

    __slots__ = ("_obj", "origin_site")

    _drop_rules = DropRules(
        RefcountError,
        rule="aref-use-after-drop",
        use_message="{use} of an ARef after it was dropped",
        dropped_label="the ARef was dropped",
        made_label="the reference was taken",
        double_message="double drop of an ARef",
        already_label="the ARef was already dropped",
    )

    def __init__(self, obj: T, site: Site) -> None:
        self._obj = obj
        self._dropped_at = None
        self.origin_site = site

    @classmethod
    def from_ref(cls, obj: T) -> ARef[T]:
        """`ARef::from(&obj)`: take a new reference through `type(obj).inc_ref`."""
        inc = getattr(type(obj), "inc_ref", None)
        if inc is None or getattr(type(obj), "dec_ref", None) is None:
            raise TypeError(f"{type(obj).__name__} is not AlwaysRefCounted (no inc_ref/dec_ref)")
        inc(obj)
        return cls(obj, here())

    @classmethod
    @unsafe_fn(
        safety="`obj` carries one increment that the caller gives up to the new ARef "
        "(from `into_raw` or a C function returning a counted reference).",
    )
    def from_raw(cls, obj: T) -> ARef[T]:
        """Take over one increment owned by the caller."""
        return cls(obj, here())

    def _handle_obj(self) -> str:
        return self.describe()

    def _made_at(self) -> Site:
        return self.origin_site

    def get(self) -> T:
        """`&*aref`."""
        if self._dropped_at is not None:
            self._check("dereference")
        return self._obj

    def clone(self) -> ARef[T]:
        """Take another increment (`ARef::clone`)."""
        if self._dropped_at is not None:
            self._check("clone")
        obj = self._obj
        type(obj).inc_ref(obj)
        # INVARIANT: the new handle owns the increment just taken (built without a
        # Python-level __init__: clone+drop is a hot path).
        a: ARef[T] = _new(type(self))
        a._obj = obj
        a._dropped_at = None
        if STATE.on:
            # The call site, interned (the fast path of `site_of_frame`, inlined).
            f = _getframe(1)
            lc = last_code[0]
            site = lc[1].get(f.f_lasti) if lc[0] is f.f_code else None
            a.origin_site = site if site is not None else site_of_frame(f)
        else:
            a.origin_site = UNKNOWN
        return a

    def drop(self) -> None:
        """Give back the increment via `type(obj).dec_ref` (may sleep if that does)."""
        if self._dropped_at is not None:
            self._double_drop()
            return
        # `dec_ref` raises (e.g. AtomicSleepError) before any effect; only then mark.
        obj = self._obj
        type(obj).dec_ref(obj)
        if STATE.on:
            f = _getframe(1)
            lc = last_code[0]
            site = lc[1].get(f.f_lasti) if lc[0] is f.f_code else None
            self._dropped_at = site if site is not None else site_of_frame(f)
        else:
            self._dropped_at = UNKNOWN

    def into_raw(self) -> T:
        """Give up the handle, keeping the increment (`ARef::into_raw`)."""
        self._check("into_raw")
        self._dropped_at = here()
        return self._obj

    def __ownership_is_send__(self) -> bool:
        return is_send(self._obj) and is_sync(self._obj)

    __ownership_is_sync__ = __ownership_is_send__

    def __ownership_drop_sleeps__(self) -> str | None:
        """Drop glue: a live `ARef` gives its count back with `dec_ref`, which may sleep."""
        if self._dropped_at is None and sleeps_when_called(type(self._obj).dec_ref):
            return f"{self.describe()} ({type(self._obj).__name__}.dec_ref may sleep)"
        return None

    def describe(self) -> str:
        return f"ARef<{type(self._obj).__name__}>"

    def __repr__(self) -> str:
        state = " (dropped)" if self._dropped_at is not None else ""
        return f"<ARef<{type(self._obj).__name__}>{state}>"

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Deref: `aref.method()` reaches the object (typed code uses `.get()`).
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self.get(), name)
