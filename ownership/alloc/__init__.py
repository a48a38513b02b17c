"""Allocation (rust/kernel/alloc): GFP flags, fallible allocation, `KBox`, `KVec`.

Every allocation of the model goes through `alloc_check(gfp, what)`: it validates the
flags, calls `might_sleep()` when the flags allow direct reclaim (so `GFP_KERNEL`
under a spinlock is an `AtomicSleepError`), and consults the failure injector, so
that a failed allocation surfaces as `KernelError(ENOMEM)` exactly where the kernel
would return `-ENOMEM`:

    with fail_after(3):        # three allocations succeed, then every one fails
        ...
    with fail_nth(5):          # only the fifth allocation fails
        ...
    with fail_probability(0.1, seed=7):
        ...

`allocation_count()` counts allocations, so a test can inject a failure at every
allocation point of an operation in turn. `VBox`/`VVec` (vmalloc, page-backed) live in
`ownership.alloc.vmalloc` and are re-exported here.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..borrow import Lifetime
from ..config import STATE
from ..context import may_sleep, might_sleep
from ..errors import EINVAL, ENOMEM, KernelError, LifetimeError
from ..site import Site, here
from .flags import (
    __GFP_DIRECT_RECLAIM,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_NOWARN,
    __GFP_ZERO,
    GFP_ATOMIC,
    GFP_HIGHMEM,
    GFP_KERNEL,
    GFP_NOWAIT,
    GFP_NOWARN,
    GFP_ZERO,
    Flags,
)

if TYPE_CHECKING:
    from .vmalloc import VBox, VVec

__all__ = [
    "GFP_ATOMIC",
    "GFP_HIGHMEM",
    "GFP_KERNEL",
    "GFP_NOWAIT",
    "GFP_NOWARN",
    "GFP_ZERO",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_HIGH",
    "__GFP_HIGHMEM",
    "__GFP_NOWARN",
    "__GFP_ZERO",
    "Flags",
    "KBox",
    "KVec",
    "VBox",
    "VVec",
    "alloc_check",
    "allocation_count",
    "fail_after",
    "fail_nth",
    "fail_probability",
]

T = TypeVar("T")


class _Injector:
    """Failure injection state, shared by all threads (as the kernel's fail_page_alloc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.fail_after: int | None = None
        self.fail_nth: int | None = None
        self.prob = 0.0
        self.rng = random.Random(0)
        self.failures = 0


_inj = _Injector()
_KNOWN_GFP = 0
for _f in Flags:
    _KNOWN_GFP |= int(_f)


def allocation_count() -> int:
    """How many allocations the model has attempted since start."""
    return _inj.count


def injected_failures() -> int:
    return _inj.failures


@may_sleep(gfp="gfp")
def alloc_check(gfp: Flags, what: str) -> None:
    """The common entry of every allocation; raises `KernelError(ENOMEM)` on failure.

    Declared `@may_sleep(gfp="gfp")`: the static checker reads this declaration and
    infers that every allocator passing its own GFP flags here (`KBox.new`,
    `KVec.push`, `Arc.new`, ...) sleeps exactly when those flags allow reclaim.
    """
    if not isinstance(gfp, Flags):
        raise TypeError(f"{what}: gfp flags must be ownership.alloc.Flags, got {type(gfp).__name__}")
    if int(gfp) & ~_KNOWN_GFP:
        # Rust's `Flags` can only be built from the named constants.
        raise TypeError(f"{what}: unknown GFP bits {int(gfp) & ~_KNOWN_GFP:#x}")
    if gfp & Flags.DIRECT_RECLAIM:
        might_sleep()
    inj = _inj
    with inj.lock:
        inj.count += 1
        fail = False
        if inj.fail_after is not None:
            if inj.fail_after <= 0:
                fail = True
            else:
                inj.fail_after -= 1
        if inj.fail_nth is not None:
            inj.fail_nth -= 1
            if inj.fail_nth == 0:
                fail = True
                inj.fail_nth = None
        if inj.prob and inj.rng.random() < inj.prob:
            fail = True
        if fail:
            inj.failures += 1
    if fail:
        raise KernelError(ENOMEM, f"{what}: allocation failure injected")


def _count_arg(fn: str, n: object, least: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{fn} needs an int, got {type(n).__name__}")
    if n < least:
        raise ValueError(f"{fn} needs a value >= {least}, got {n!r}")


@contextmanager
def fail_after(n: int) -> Iterator[None]:
    """Let `n` allocations succeed, then fail every one until the block ends."""
    _count_arg("fail_after", n, 0)
    with _inj.lock:
        prev, _inj.fail_after = _inj.fail_after, n
    try:
        yield
    finally:
        with _inj.lock:
            _inj.fail_after = prev


@contextmanager
def fail_nth(n: int) -> Iterator[None]:
    """Fail only the `n`-th allocation (1-based) made inside the block."""
    _count_arg("fail_nth", n, 1)
    with _inj.lock:
        prev, _inj.fail_nth = _inj.fail_nth, n
    try:
        yield
    finally:
        with _inj.lock:
            _inj.fail_nth = prev


@contextmanager
def fail_probability(p: float, seed: int = 0) -> Iterator[None]:
    """Fail each allocation with probability `p` (reproducible with `seed`)."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        raise TypeError(f"fail_probability needs a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"fail_probability seed must be an int, got {type(seed).__name__}")
    with _inj.lock:
        prev, prev_rng = _inj.prob, _inj.rng
        _inj.prob, _inj.rng = p, random.Random(seed)
    try:
        yield
    finally:
        with _inj.lock:
            _inj.prob, _inj.rng = prev, prev_rng


class _Owned:
    """Common part of owned allocations: dropped once, unusable after."""

    __slots__ = ("_freed_at", "_lt", "_site")

    def __init__(self, site: Site) -> None:
        self._site = site
        self._freed_at: Site | None = None
        self._lt: Lifetime | None = None

    def _alive(self, use: str) -> None:
        if self._freed_at is not None and STATE.on:
            raise LifetimeError(
                f"{use} after drop",
                obj=type(self).__name__,
                site=here(),
                origin=self._freed_at,
                origin_label="it was dropped",
                notes=[("it was allocated", self._site)],
            )

    @property
    def lifetime(self) -> Lifetime:
        """The owner's life, for references borrowed from it."""
        lt = self._lt
        if lt is None:
            lt = self._lt = Lifetime(type(self).__name__, self._site)
            if self._freed_at is not None:
                lt.end(self._freed_at, "the owner was dropped")
        return lt

    def _drop(self) -> None:
        self._alive("drop")
        self._freed_at = here()
        if self._lt is not None:
            self._lt.end(self._freed_at, "the owner was dropped")


class KBox(_Owned, Generic[T]):
    """`KBox<T>`: a kmalloc'd, owned value.

    Invariants: until dropped, `_value` is the owned value; after, nothing reaches it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T, site: Site) -> None:
        super().__init__(site)
        self._value = value

    @classmethod
    def new(cls, value: T, gfp: Flags) -> KBox[T]:
        """Allocate; may sleep with `GFP_KERNEL`; `KernelError(ENOMEM)` on failure."""
        alloc_check(gfp, "KBox::new")
        return cls(value, here())

    def get(self) -> T:
        self._alive("use")
        return self._value

    def set(self, value: T) -> None:
        self._alive("write")
        self._value = value

    def into_inner(self) -> T:
        v = self.get()
        self._drop()
        return v

    def drop(self) -> None:
        self._drop()


_MAX_ITEMS = (1 << 63) - 1
"""`isize::MAX`: a `Vec` never holds more (`reserve` reports a capacity overflow)."""


class KVec(_Owned, Generic[T]):
    """`KVec<T>`: a growable array whose growth is a fallible allocation.

    Invariants: `len(_items) <= _cap`; growing beyond `_cap` allocates.
    """

    __slots__ = ("_cap", "_items")

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self._items: list[T] = []
        self._cap = 0

    @classmethod
    def new(cls) -> KVec[T]:
        return cls(here())

    @classmethod
    def with_capacity(cls, cap: int, gfp: Flags) -> KVec[T]:
        v: KVec[T] = cls(here())
        v.reserve(cap, gfp)
        return v

    def capacity(self) -> int:
        return self._cap

    def __len__(self) -> int:
        self._alive("len")
        return len(self._items)

    def reserve(self, additional: int, gfp: Flags) -> None:
        """Make room for `additional` more items (may allocate)."""
        self._alive("reserve")
        if not isinstance(additional, int) or isinstance(additional, bool):
            raise TypeError(f"KVec::reserve needs an int, got {type(additional).__name__}")
        if additional < 0 or additional > _MAX_ITEMS:
            raise KernelError(EINVAL, f"KVec::reserve({additional!r}): capacity overflow")
        need = len(self._items) + additional
        if need > self._cap:
            alloc_check(gfp, "KVec::reserve")
            self._cap = max(need, 2 * self._cap)

    def push(self, item: T, gfp: Flags) -> None:
        self.reserve(1, gfp)
        self._items.append(item)

    def push_within_capacity(self, item: T) -> bool:
        """Push without allocating; False if there is no room (`Err(item)`)."""
        self._alive("push")
        if len(self._items) >= self._cap:
            return False
        self._items.append(item)
        return True

    def pop(self) -> T | None:
        self._alive("pop")
        return self._items.pop() if self._items else None

    def __getitem__(self, i: int) -> T:
        self._alive("index")
        return self._items[i]

    def __setitem__(self, i: int, v: T) -> None:
        self._alive("index")
        self._items[i] = v

    def __iter__(self) -> Iterator[T]:
        self._alive("iter")
        return iter(list(self._items))

    def clear(self) -> None:
        self._alive("clear")
        self._items.clear()

    def drop(self) -> None:
        self._drop()
        self._items = []


def __getattr__(name: str) -> Any:
    # VBox/VVec are page-backed and live beside the page allocator; import lazily to
    # keep `ownership.alloc` importable by `ownership.page` itself.
    if name in ("VBox", "VVec"):
        from . import vmalloc

        return getattr(vmalloc, name)
    raise AttributeError(f"module 'ownership.alloc' has no attribute {name!r}")
