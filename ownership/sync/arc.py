"""`Arc<T>` and `ArcBorrow<'a, T>` (rust/kernel/sync/arc.rs).

The kernel's `Arc` differs from the standard library's, and the model keeps the
differences (slides, "Custom Arc"): the count is a `refcount_t` (saturates at
overflow with a warning and leaks instead of aborting; underflow is a
`RefcountError`), there are no weak references, and every `Arc` is pinned: its
contents never move (`Arc.pin_init`).

Each `Arc` object is one handle that owns one count: `clone()` makes another,
`drop()` gives the count back, and a handle used after its `drop()` is a
`RefcountError`. A handle whose allocation was freed under it (two handles made by
`from_raw` from one count: the first drop frees the value) is a `LifetimeError` at its
next dereference (rule `arc-use-after-free`, KASAN). When the last count goes, the
value's `drop_arc()` hook (the model of `Drop`/`PinnedDrop`) runs on the dropping
thread, so a destructor that may sleep makes the last `drop()` a may-sleep call, as in
the kernel.

`ArcBorrow` is `&Arc<T>` without a count: valid while the handle it came from lives.
It is also how a method takes `self: ArcBorrow<'_, Self>` (or `self: &Arc<Self>`):
Python has no custom receivers, so such a method is a static method
`def f(this: ArcBorrow[Example])`, called `Example.f(arc.as_arc_borrow())`; `self:
Arc<Self>` is `def f(this: Arc[Example])`, which takes over the caller's handle.
`Arc[T]` is Send and Sync iff `T` is Send and Sync.

`UniqueArc` is an `Arc` known to hold the only count: its contents may be changed
(`set`, or through `get()`), and `into_arc()` (upstream's `From<UniqueArc<T>> for
Arc<T>`, `x.into()`) shares it. `UniqueArc.new_uninit(gfp)` allocates now and is filled
later with `write(value)`, which never allocates (allocate where sleeping is allowed,
initialise under a spinlock); Python cannot say `UniqueArc<MaybeUninit<T>>`, so the
not-yet-written form is its own class, `UniqueArcUninit`, whose contents cannot be read.
`Arc.into_unique_or_drop()` gives back the `UniqueArc` if this handle held the last
count, and otherwise drops the handle's count and returns None (atomically:
`refcount_dec_not_one`).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..alloc import GFP_KERNEL, Flags, alloc_check
from ..borrow import Lifetime
from ..config import STATE
from ..context import in_atomic, might_sleep, refuse_sleep_in_atomic
from ..drop import drop_sleeps, shared, sleeps_when_called, unshared
from ..errors import LifetimeError, RefcountError
from ..handle import DropRules, Handle
from ..marker import is_send, is_sync
from ..pin import Pinned
from ..refcount import Refcount
from ..site import Site, here
from ..unsafe import unsafe_fn

__all__ = ["Arc", "ArcBorrow", "UniqueArc", "UniqueArcUninit", "live_arcs"]

T = TypeVar("T")

_live_lock = threading.Lock()
_live: Counter[str] = Counter()


def live_arcs() -> dict[str, int]:
    """How many `Arc` allocations are live, per contained type (for leak checks)."""
    with _live_lock:
        return {k: v for k, v in _live.items() if v}


class _ArcInner(Generic[T]):
    __slots__ = ("__weakref__", "freed", "freed_at", "refcount", "site", "value")

    def __init__(self, value: T, site: Site) -> None:
        self.value = value
        self.site = site
        self.refcount = Refcount(f"Arc<{type(value).__name__}>", 1)
        self.freed = False
        self.freed_at: Site | None = None


class Arc(Handle, Generic[T]):
    """A handle owning one count of a shared, pinned `T`.

    Invariants: until `drop()`, this handle owns one increment of `_inner.refcount`,
    so `_inner.value` is alive.
    """

    __slots__ = ("_inner", "_lt", "origin_site")

    _drop_rules = DropRules(
        RefcountError,
        rule="arc-use-after-drop",
        use_message="{use} of an Arc handle after it was dropped",
        dropped_label="this handle was dropped",
        made_label="the Arc was allocated",
        double_message="double drop of an Arc handle",
        already_label="this handle was already dropped",
        double_notes=False,
    )

    def __init__(self, inner: _ArcInner[T], site: Site) -> None:
        self._inner = inner
        self._dropped_at = None
        self._lt: Lifetime | None = None
        self.origin_site = site

    @classmethod
    def new(cls, value: T, gfp: Flags = GFP_KERNEL) -> Arc[T]:
        """Allocate an `Arc` (may sleep with `GFP_KERNEL`; `ENOMEM` on failure)."""
        alloc_check(gfp, "Arc::new")
        return cls._fill(value, here())

    @classmethod
    def _fill(cls, value: T, site: Site) -> Arc[T]:
        """Put `value` into memory already allocated: the new handle owns the one count."""
        if isinstance(value, Pinned) and value.__ownership_pinned_at__ is None:
            # INVARIANT: every kernel Arc is pinned; its contents never move.
            value._pin_here(site)
        with _live_lock:
            _live[type(value).__name__] += 1
        inner = _ArcInner(value, site)
        shared(value, inner)
        return cls(inner, site)

    pin_init = new

    def _handle_obj(self) -> str:
        return self.describe()

    def _made_at(self) -> Site:
        return self._inner.site

    def get(self) -> T:
        """`&*arc`; a `LifetimeError` if the allocation was freed under this handle."""
        if self._dropped_at is not None:
            self._check("dereference")
        inner = self._inner
        if inner.freed and STATE.on:
            raise LifetimeError(
                "dereference of an Arc whose allocation was already freed",
                rule="arc-use-after-free",
                obj=f"Arc<{type(inner.value).__name__}>",
                site=here(),
                origin=inner.freed_at,
                origin_label="the last count was dropped and the value freed",
                notes=[
                    ("this handle was made", self.origin_site),
                    ("the Arc was allocated", inner.site),
                ],
            )
        return inner.value

    def clone(self) -> Arc[T]:
        self._check("clone")
        self._inner.refcount.inc()
        return Arc(self._inner, here())

    def as_arc_borrow(self) -> ArcBorrow[T]:
        """Borrow without a count; valid while this handle lives."""
        self._check("borrow")
        lt = self._lt
        if lt is None:
            lt = self._lt = Lifetime(
                f"Arc<{type(self._inner.value).__name__}> handle", self.origin_site
            )
        return ArcBorrow(self._inner, lt)

    def drop(self) -> None:
        """Give back this handle's count; the last one frees the value."""
        if self._dropped_at is not None:
            self._double_drop()
            return
        inner = self._inner
        hook = getattr(inner.value, "drop_arc", None)
        if STATE.on and inner.refcount.read() == 1:
            # The destructor, and the drop glue of everything the value owns, run on this
            # thread: check its context before any effect (no count has changed yet).
            if hook is not None and sleeps_when_called(hook):
                might_sleep()
            elif in_atomic():
                why = self.__ownership_drop_sleeps__()
                if why is not None:
                    refuse_sleep_in_atomic(f"dropping {why}")
        last = inner.refcount.dec_and_test()
        self._dropped_at = here()
        if self._lt is not None:
            self._lt.end(self._dropped_at, "the Arc handle was dropped")
        if last:
            inner.freed = True
            inner.freed_at = self._dropped_at
            with _live_lock:
                _live[type(inner.value).__name__] -= 1
            unshared(inner.value)
            if hook is not None:
                hook()

    def into_raw(self) -> _ArcInner[T]:
        """Give up the handle without dropping its count (`Arc::into_raw`)."""
        self._check("into_raw")
        self._dropped_at = here()
        return self._inner

    @classmethod
    @unsafe_fn(
        safety="`inner` came from `Arc::into_raw` of an `Arc<T>` and the caller gives the "
        "new handle one count it owns (or forgets the handle with `into_raw` without "
        "dropping it); the allocation is alive for as long as the handle is used.",
        checked="refcount_t: a handle whose allocation was freed fails on its first "
        "clone (addition on 0) or drop (underflow)",
    )
    def from_raw(cls, inner: _ArcInner[T]) -> Arc[T]:
        """Take back a count given up by `into_raw` (`Arc::from_raw`)."""
        return cls(inner, here())

    @staticmethod
    def ptr_eq(a: Arc[Any] | ArcBorrow[Any], b: Arc[Any] | ArcBorrow[Any]) -> bool:
        return a._inner is b._inner

    def refcount(self) -> int:
        return self._inner.refcount.read()

    def into_unique_or_drop(self) -> UniqueArc[T] | None:
        """The `UniqueArc` if this handle held the last count; else drop it and return None."""
        self._check("into_unique_or_drop")
        if self._inner.refcount.dec_not_one():
            self._dropped_at = here()
            if self._lt is not None:
                self._lt.end(self._dropped_at, "the Arc handle was dropped")
            return None
        # INVARIANT: the count is 1 and this handle owns it: it passes to the UniqueArc.
        site = here()
        self._dropped_at = site
        if self._lt is not None:
            self._lt.end(site, "the Arc handle became a UniqueArc")
        return UniqueArc(Arc(self._inner, site), site)

    def __ownership_is_send__(self) -> bool:
        v = self._inner.value
        return is_send(v) and is_sync(v)

    __ownership_is_sync__ = __ownership_is_send__

    def __ownership_drop_sleeps__(self) -> str | None:
        """Drop glue: the last live handle drops the value (its `drop_arc`, then its fields)."""
        inner = self._inner
        if self._dropped_at is not None or inner.refcount.read() != 1:
            return None
        hook = getattr(inner.value, "drop_arc", None)
        name = type(inner.value).__name__
        if hook is not None and sleeps_when_called(hook):
            return f"the last Arc<{name}> ({name}.drop_arc may sleep)"
        got = drop_sleeps(inner.value, owned=True)
        return f"the last Arc<{name}>, which drops {got}" if got is not None else None

    def describe(self) -> str:
        return f"Arc<{type(self._inner.value).__name__}>"

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Deref: `arc.method()` reaches the contents (typed code uses `.get()`).
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self.get(), name)


class ArcBorrow(Generic[T]):
    """`ArcBorrow<'a, T>`: a count-free borrow of an `Arc`, tied to its handle.

    Invariants: `_lt` is the lifetime of the handle it was borrowed from; while it is
    alive the value is kept alive by that handle's count.
    """

    __slots__ = ("_inner", "_lt")

    def __init__(self, inner: _ArcInner[T], lt: Lifetime) -> None:
        self._inner = inner
        self._lt = lt

    def get(self) -> T:
        lt = self._lt
        if not lt.alive and STATE.on:
            lt.expired("dereference of an ArcBorrow")
        return self._inner.value

    def clone_arc(self) -> Arc[T]:
        """`Arc::from(borrow)`: take a new count."""
        self.get()
        self._inner.refcount.inc()
        return Arc(self._inner, here())

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self.get(), name)


class UniqueArc(Handle, Generic[T]):
    """`UniqueArc<T>`: an `Arc` known to hold the only count, so its contents may change.

    Invariants: until consumed (`into_arc`, `drop`), `_arc` is a live handle whose count
    is 1, and no other handle of its allocation exists.
    """

    __slots__ = ("_arc", "origin_site")

    _drop_rules = DropRules(
        RefcountError,
        rule="arc-use-after-drop",
        use_message="{use} of a UniqueArc after it was consumed",
        dropped_label="the UniqueArc was consumed (into_arc or drop)",
        made_label="the UniqueArc was allocated",
        double_message="double drop of a UniqueArc",
        already_label="the UniqueArc was already consumed",
        double_notes=False,
    )

    def __init__(self, arc: Arc[T], site: Site) -> None:
        self._arc = arc
        self._dropped_at = None
        self.origin_site = site

    @classmethod
    def new(cls, value: T, gfp: Flags = GFP_KERNEL) -> UniqueArc[T]:
        """Allocate a `UniqueArc` (may sleep with `GFP_KERNEL`; `ENOMEM` on failure)."""
        alloc_check(gfp, "UniqueArc::new")
        site = here()
        return cls(Arc._fill(value, site), site)

    @staticmethod
    def new_uninit(gfp: Flags = GFP_KERNEL) -> UniqueArcUninit[Any]:
        """Allocate the memory now; `write(value)` fills it later without allocating."""
        alloc_check(gfp, "UniqueArc::new_uninit")
        return UniqueArcUninit(here())

    def _handle_obj(self) -> str:
        return f"UniqueArc<{type(self._arc._inner.value).__name__}>"

    def _made_at(self) -> Site:
        return self.origin_site

    def get(self) -> T:
        """`&*x` / `&mut *x`: the contents (change them in place)."""
        if self._dropped_at is not None:
            self._check("dereference")
        return self._arc._inner.value

    def set(self, value: T) -> None:
        """`*x = value`: replace the contents (the old ones are dropped)."""
        self._check("write")
        self._arc._inner.value = value

    def into_arc(self) -> Arc[T]:
        """Share it: `Arc::from(unique)` (`unique.into()`), which cannot fail."""
        self._check("into_arc")
        self._dropped_at = here()
        return self._arc

    def drop(self) -> None:
        """Free the allocation, running the contents' `drop_arc` hook."""
        if self._dropped_at is not None:
            self._double_drop()
            return
        self._dropped_at = here()
        self._arc.drop()

    def __ownership_is_send__(self) -> bool:
        return self._arc.__ownership_is_send__()

    __ownership_is_sync__ = __ownership_is_send__

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Deref: `x.field` reaches the contents (typed code uses `.get()`).
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self.get(), name)


class UniqueArcUninit(Handle, Generic[T]):
    """`UniqueArc<MaybeUninit<T>>`: allocated, not yet written; its contents cannot be read.

    Invariants: until consumed (`write`, `drop`), the allocation is reserved for one `T`.
    """

    __slots__ = ("origin_site",)

    _drop_rules = DropRules(
        RefcountError,
        rule="arc-use-after-drop",
        use_message="{use} of an uninitialised UniqueArc after it was consumed",
        dropped_label="it was consumed (write or drop)",
        made_label="the UniqueArc was allocated",
        double_message="double drop of an uninitialised UniqueArc",
        already_label="it was already consumed",
        double_notes=False,
    )

    def __init__(self, site: Site) -> None:
        self._dropped_at = None
        self.origin_site = site

    def _handle_obj(self) -> str:
        return "UniqueArc<MaybeUninit<T>>"

    def _made_at(self) -> Site:
        return self.origin_site

    def write(self, value: T) -> UniqueArc[T]:
        """Initialise the reserved memory with `value`; never allocates, never sleeps."""
        self._check("write")
        site = here()
        self._dropped_at = site
        return UniqueArc(Arc._fill(value, site), site)

    def drop(self) -> None:
        """Free the memory without ever writing it."""
        if self._dropped_at is not None:
            self._double_drop()
            return
        self._dropped_at = here()
