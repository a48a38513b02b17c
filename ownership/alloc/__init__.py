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
allocation point of an operation in turn. The GFP values, `alloc_check` and the injector
are C facilities (`ownership.bindings.gfp`, which the simulated kernel's own allocations
use too) and are re-exported here. `VBox`/`VVec` (vmalloc, page-backed) live in
`ownership.alloc.vmalloc` and are re-exported here.

Sizes the kernel refuses are refused here, with the real limits: kmalloc gives nothing
larger than `KMALLOC_MAX_SIZE` (4 MiB: 2**MAX_PAGE_ORDER pages), so a `KBox` of more bytes
or a `KVec` whose new capacity is more bytes fails with `KernelError(ENOMEM)`, before
the allocation's sleep check, as the page allocator returns NULL for an order above
`MAX_PAGE_ORDER` first. Python values have no `size_of`: a `KBox` of bytes counts its
length (other values are small structs), and a `KVec` counts one byte per element, the
least any non-zero-sized `T` takes, so what is refused here is refused for every `T`.

Lock order: no lock of its own; the injector's lock (in `ownership.bindings.gfp`) is a leaf.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ..bindings.consts import KMALLOC_MAX_SIZE
from ..bindings.gfp import (
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
    alloc_check,
    allocation_count,
    fail_after,
    fail_nth,
    fail_probability,
    injected_failures,
)
from ..config import STATE
from ..context import in_atomic, refuse_sleep_in_atomic
from ..drop import drop_sleeps
from ..errors import EINVAL, ENOMEM, KernelError
from ..site import Site, here
from .owned import _Owned
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
    "injected_failures",
]

T = TypeVar("T")


def _kmalloc_size(size: int, what: str) -> None:
    """`ENOMEM` for a kmalloc of more than `KMALLOC_MAX_SIZE` bytes (the kernel's NULL)."""
    if size > KMALLOC_MAX_SIZE:
        raise KernelError(
            ENOMEM,
            f"{what}: {size} bytes is more than kmalloc gives (KMALLOC_MAX_SIZE "
            f"{KMALLOC_MAX_SIZE})",
        )


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
        """Allocate; may sleep with `GFP_KERNEL`; `KernelError(ENOMEM)` on failure.

        A bytes-like value of more than `KMALLOC_MAX_SIZE` bytes is `ENOMEM`.
        """
        if isinstance(value, (bytes, bytearray, memoryview)):
            _kmalloc_size(len(value), "KBox::new")
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

    def __ownership_drop_sleeps__(self) -> str | None:
        """Drop glue: a live box drops its value."""
        if self._dropped_at is not None:
            return None
        got = drop_sleeps(self._value)
        return f"KBox<{type(self._value).__name__}> holding {got}" if got is not None else None

    def drop(self) -> None:
        """Free the box, and (Rust's drop glue) the value in it: refused before any effect
        in atomic context when that value's drop may sleep."""
        if STATE.on and self._dropped_at is None and in_atomic():
            why = self.__ownership_drop_sleeps__()
            if why is not None:
                refuse_sleep_in_atomic(f"dropping {why}")
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
            # The new capacity as upstream's `reserve` computes it: at least double.
            cap = max(need, 2 * self._cap)
            _kmalloc_size(cap, "KVec::reserve")
            alloc_check(gfp, "KVec::reserve")
            self._cap = cap

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

    def __ownership_drop_sleeps__(self) -> str | None:
        """Drop glue: a live vector drops its items."""
        if self._dropped_at is not None:
            return None
        got = drop_sleeps(self._items)
        return f"KVec holding {got}" if got is not None else None

    def drop(self) -> None:
        """Free the vector and (drop glue) its items; refused first like `KBox.drop`."""
        if STATE.on and self._dropped_at is None and in_atomic():
            why = self.__ownership_drop_sleeps__()
            if why is not None:
                refuse_sleep_in_atomic(f"dropping {why}")
        self._drop()
        self._items = []
