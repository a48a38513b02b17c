"""Pinning: values that must never move once in place (`Pin`, `pin_init`, `PhantomPinned`).

Kernel C types (spinlocks, mutexes, wait queues, list heads) hold pointers to
themselves or are pointed at from elsewhere, so the kernel requires them to be pinned
*immediately*, in place, by `pin_init!` (slides: "Pinning is not enough"). The model
treats every `Pinned` value (locks, condvars, `Arc` contents) as pinned from the
moment it is built, recording where. Python cannot move an object's address, so a
"move" is what the model's `mem` helpers do: `mem.replace`, `mem.swap`, `mem.take`
and `move(value)` (the model's `let b = a;`), plus `copy.copy`/`deepcopy`/pickling,
which would duplicate it. Each of these on a pinned value, or on a struct with a
pinned field, raises `PinError` naming where the value was pinned.

`pin_init(cls, **fields)` builds a struct in place and returns `Pin[T]`; `Arc.pin_init`
does the same behind an `Arc` (all kernel `Arc`s are pinned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .config import STATE
from .errors import PinError
from .site import Site, here

__all__ = ["Pin", "Pinned", "mem", "move", "pin_init", "pinned_site"]

T = TypeVar("T")


class Pinned:
    """Base class of `!Unpin` values, pinned where they are constructed.

    Invariants: `__ownership_pinned_at__` is the site where the value was pinned; the
    value is never moved or duplicated afterwards.
    """

    __slots__ = ()
    __ownership_pinned_at__: Site | None = None

    def _pin_here(self, site: Site | None = None) -> None:
        object.__setattr__(self, "__ownership_pinned_at__", site if site is not None else here())

    def __copy__(self) -> Any:
        _refuse_move(self, "copy.copy()")

    def __deepcopy__(self, memo: object) -> Any:
        _refuse_move(self, "copy.deepcopy()")

    def __reduce_ex__(self, protocol: Any) -> Any:
        _refuse_move(self, "pickling")


def pinned_site(value: object) -> Site | None:
    """Where `value` was pinned, or None if it is not pinned."""
    s = getattr(value, "__ownership_pinned_at__", None)
    return s if isinstance(s, Site) else None


def _pinned_field(value: object) -> tuple[str, object, Site] | None:
    if pinned_site(value) is not None:
        return ("", value, pinned_site(value))  # type: ignore[return-value]
    fields: dict[str, Any] = {}
    try:
        fields.update(vars(value))
    except TypeError:
        pass
    for klass in type(value).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if isinstance(name, str) and hasattr(value, name):
                fields[name] = getattr(value, name)
    for name, v in fields.items():
        s = pinned_site(v)
        if s is not None:
            return (name, v, s)
    return None


def _refuse_move(
    value: object, how: str, notes: list[tuple[str, Site | None]] | None = None
) -> None:
    if not STATE.on:
        return
    found = _pinned_field(value)
    if found is None:
        return
    name, inner, site = found
    what = type(inner).__name__ + (f" in field '{name}' of {type(value).__name__}" if name else "")
    raise PinError(
        f"{how} would move a pinned value",
        obj=what,
        site=here(),
        origin=site,
        origin_label="the value was pinned",
        notes=notes or [],
    )


def move(value: T) -> T:
    """Rust's move (`let b = a;`): allowed for `Unpin` values, a `PinError` otherwise."""
    _refuse_move(value, "move")
    return value


class _Mem:
    """`core::mem`: the ways to move a value out of a place."""

    @staticmethod
    def replace(obj: object, attr: str, new: T) -> T:
        old: T = getattr(obj, attr)
        _refuse_move(old, "mem::replace")
        setattr(obj, attr, new)
        return old

    @staticmethod
    def swap(a: object, attr_a: str, b: object, attr_b: str) -> None:
        va, vb = getattr(a, attr_a), getattr(b, attr_b)
        _refuse_move(va, "mem::swap")
        _refuse_move(vb, "mem::swap")
        setattr(a, attr_a, vb)
        setattr(b, attr_b, va)

    @staticmethod
    def take(obj: object, attr: str, default: T) -> T:
        return _Mem.replace(obj, attr, default)


mem = _Mem()


class Pin(Generic[T]):
    """`Pin<KBox<T>>`: a pointer to a value that will not move again.

    Invariants: the pointee is pinned (its fields that are `Pinned` were pinned in
    place when it was built) until the `Pin` is dropped.
    """

    __slots__ = ("_site", "_value")

    def __init__(self, value: T, site: Site | None = None) -> None:
        self._value = value
        self._site = site if site is not None else here()
        if isinstance(value, Pinned) and value.__ownership_pinned_at__ is None:
            value._pin_here(self._site)

    def get(self) -> T:
        """`&*pin`: a shared reference to the pinned value."""
        return self._value

    def into_inner(self) -> T:
        """`Pin::into_inner`: only for `Unpin` values; a pinned value stays put."""
        _refuse_move(self._value, "Pin::into_inner", [("the Pin was made", self._site)])
        return self._value

    def set(self, value: T) -> None:
        """`Pin::set`: drop the old value in place and put a new one there."""
        self._value = value
        if isinstance(value, Pinned):
            value._pin_here(here())


def pin_init(factory: Callable[..., T], /, *args: Any, **fields: Any) -> Pin[T]:
    """Build a value directly in its pinned place (`pin_init!`)."""
    site = here()
    value = factory(*args, **fields)
    if isinstance(value, Pinned):
        value._pin_here(site)
    return Pin(value, site)
