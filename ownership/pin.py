"""Pinning: values that must never move once in place (`Pin`, `pin_init`, `PhantomPinned`).

Kernel C types (spinlocks, mutexes, wait queues, list heads) hold pointers to
themselves or are pointed at from elsewhere, so the kernel requires them to be pinned
*immediately*, in place, by `pin_init!` (slides: "Pinning is not enough"). The model
treats every `Pinned` value (locks, condvars, `Arc` contents) as pinned from the
moment it is built, recording where. Python cannot move an object's address, so a
"move" is what the model's `mem` helpers do: `mem.replace`, `mem.swap`, `mem.take`
and `move(value)` (the model's `let b = a;`), plus `copy.copy`/`deepcopy`/pickling,
which would duplicate it. Each of these on a pinned value, or on a struct that holds
one inline at any depth (a struct holding a struct holding a lock, a tuple field),
raises `PinError` naming the field path (`mid.inner.lock`) and where the value was
pinned, before anything moves.

Pinning is structural, and a pointer move is not a pointee move. A plain (driver)
class moves its fields and a tuple its elements; the model's own types hold what they
own behind a pointer (a `KBox`/`KVec`/`VBox` allocation, an `Arc`, an `ARef`, a `Pin`,
the lock a guard borrows), so moving one, or a struct holding one, moves the pointer
and is legal; a `list`/`dict`/`set` is a heap container in the same way, and types of the
standard library and of installed packages hold no value of the model inline. A model type
that does hold driver data inline may say so with `__ownership_inline__ = True`
(`LockedBy` does not: its data is reached only through its owner's guard, a stated
limit). Cloning a pinned pointee (`copy.deepcopy` of a struct with a `KBox[Mutex]`
field) is refused, since `Mutex` is not `Clone`. A shallow copy calls nothing on the
fields, so the model replaces `copy.copy` and `copy.deepcopy` by checked versions when
it is imported. How a type moves (free, pinned, tuple, struct, and which annotated
fields cannot hold a pinned value) is decided once per type and cached; a struct's
other fields are walked per move, 12 levels deep at most, each value once (cycles).

`pin_init(cls, **fields)` builds a struct in place and returns `Pin[T]`; `Arc.pin_init`
does the same behind an `Arc` (all kernel `Arc`s are pinned).
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .config import STATE
from .errors import PinError
from .site import Site, here, is_model_type

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
        top = _copying.top
        if top is not None and top is not self:
            # Reached by the copy of a value that holds this one behind a pointer (a
            # `KBox` or `Arc` field): cloning the pointer would clone the pinned pointee.
            _refuse_move(
                self,
                f"copy.deepcopy() of the {type(top).__name__} that holds it",
                [("the value being copied", _copying.site)],
            )
        _refuse_move(self, "copy.deepcopy()")

    def __reduce_ex__(self, protocol: Any) -> Any:
        _refuse_move(self, "pickling")


def pinned_site(value: object) -> Site | None:
    """Where `value` was pinned, or None if it is not pinned."""
    s = getattr(value, "__ownership_pinned_at__", None)
    return s if isinstance(s, Site) else None


# How a type is moved, computed once per type and cached: a value of a type that cannot
# hold a pinned value inline is moved freely; a `Pinned` value is checked for its pin;
# a tuple moves its elements, a struct its fields.
_P_FREE, _P_PINNED, _P_TUPLE, _P_STRUCT = range(4)
_MAX_DEPTH = 12
"""How deep a move walk goes; a field nested deeper is taken as movable (stated limit)."""

_FREE_TYPES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    type,
    list,
    dict,
    set,
    frozenset,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.ModuleType,
    Site,
)
"""Types whose values never hold a pinned value inline.

`list`, `dict` and `set` are the model's heap containers (`KVec`, `BTreeMap`): moving
one moves a pointer to its elements, which stay where they are.
"""


class _MoveKind:
    """The cached move kind of one type, and the fields a struct move must look at."""

    __slots__ = ("fields", "has_dict", "kind", "skip")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: tuple[str, ...] = ()
        self.has_dict = False
        self.skip: dict[str, frozenset[type]] = {}


_move_kinds: dict[type, _MoveKind] = {}
_move_kinds_lock = threading.Lock()


def _move_kind(cls: type) -> _MoveKind:
    k = _move_kinds.get(cls)
    if k is None:
        k = _classify(cls)
        with _move_kinds_lock:
            k = _move_kinds.setdefault(cls, k)
    return k


def _classify(cls: type) -> _MoveKind:
    if issubclass(cls, Pinned):
        return _MoveKind(_P_PINNED)
    if issubclass(cls, _FREE_TYPES) or issubclass(cls, BaseException):
        return _MoveKind(_P_FREE)
    if issubclass(cls, tuple):
        return _MoveKind(_P_TUPLE)
    inline = getattr(cls, "__ownership_inline__", None)
    if inline is None:
        # The model's own types hold what they own behind a pointer (a heap allocation,
        # a refcounted C object, the lock a guard borrows) unless they are pinned
        # themselves or say otherwise: moving a `KBox[Mutex]`, a `Pin`, an `Arc` or a
        # guard moves the pointer, and the pointee stays where it is.
        inline = not is_model_type(cls) and not _installed(cls)
    if not inline:
        return _MoveKind(_P_FREE)
    k = _MoveKind(_P_STRUCT)
    slots: list[str] = []
    for klass in cls.__mro__:
        for name in klass.__dict__.get("__slots__", ()):
            if isinstance(name, str) and name not in ("__dict__", "__weakref__"):
                slots.append(name)
    k.fields = tuple(dict.fromkeys(slots))
    k.has_dict = any("__dict__" in klass.__dict__ for klass in cls.__mro__)
    k.skip = _unpin_fields(cls)
    return k


_INSTALLED = tuple(
    {os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
)


def _installed(cls: type) -> bool:
    """Whether `cls` comes from the standard library or an installed package.

    Those types hold no value of the model inline, and `copy.copy` of them (by pytest,
    hypothesis, any library) must not walk their object graphs.
    """
    fn = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if not isinstance(fn, str):
        return cls.__module__ == "builtins"
    return os.path.abspath(fn).startswith(_INSTALLED)


def _unpin_fields(cls: type) -> dict[str, frozenset[type]]:
    """Fields whose annotation is a type that cannot hold a pinned value inline."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # Unresolvable annotations (names only imported for type checking).
        return {}
    out: dict[str, frozenset[type]] = {}
    for name, tp in hints.items():
        options = typing.get_args(tp) if _is_union(tp) else (tp,)
        allowed: set[type] = set()
        for o in options:
            o = type(None) if o is None else (typing.get_origin(o) or o)
            if not isinstance(o, type) or _move_kind(o).kind != _P_FREE:
                break
            allowed.add(o)
        else:
            out[name] = frozenset(allowed)
    return out


def _is_union(tp: object) -> bool:
    origin = typing.get_origin(tp)
    return origin is typing.Union or origin is types.UnionType


def _pinned_path(value: object) -> tuple[str, object, Site] | None:
    """The first pinned value a move of `value` would move: (field path, value, pin site).

    The path is dotted (`inner.lock`; `pair[1]` for a tuple element); empty when `value`
    itself is pinned. A value met twice (a cycle) is looked at once.
    """
    k = _move_kind(type(value))
    if k.kind == _P_FREE:
        return None
    return _walk_pinned(value, k, set(), 0)


def _walk_pinned(
    value: object, k: _MoveKind, seen: set[int], depth: int
) -> tuple[str, object, Site] | None:
    kind = k.kind
    if kind == _P_PINNED:
        s = pinned_site(value)
        return ("", value, s) if s is not None else None
    if kind == _P_FREE or depth > _MAX_DEPTH or id(value) in seen:
        return None
    seen.add(id(value))
    if kind == _P_TUPLE:
        assert isinstance(value, tuple)
        for i, v in enumerate(value):
            got = _walk_pinned(v, _move_kind(type(v)), seen, depth + 1)
            if got is not None:
                return (f"[{i}]" + _dot(got[0]), got[1], got[2])
        return None
    items: list[tuple[str, object]] = []
    getattribute = object.__getattribute__
    for name in k.fields:
        try:
            items.append((name, getattribute(value, name)))
        except AttributeError:
            continue
    if k.has_dict:
        d = getattr(value, "__dict__", None)
        if isinstance(d, dict):
            items.extend(d.items())
    skip = k.skip
    for name, v in items:
        cls = type(v)
        allowed = skip.get(name)
        if allowed is not None and cls in allowed:
            continue
        got = _walk_pinned(v, _move_kind(cls), seen, depth + 1)
        if got is not None:
            return (name + _dot(got[0]), got[1], got[2])
    return None


def _dot(rest: str) -> str:
    return rest if not rest or rest.startswith("[") else "." + rest


def _refuse_move(
    value: object, how: str, notes: list[tuple[str, Site | None]] | None = None
) -> None:
    if not STATE.on:
        return
    found = _pinned_path(value)
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


class _Copying(threading.local):
    """The value a `copy.deepcopy` call on this thread started from, and where."""

    top: object | None = None
    site: Site | None = None


_copying = _Copying()
_stdlib_copy = copy.copy
_stdlib_deepcopy = copy.deepcopy


def _checked_copy(x: T) -> T:
    """`copy.copy` with the pin check: a shallow copy moves the value's inline fields."""
    if STATE.on and _move_kind(type(x)).kind != _P_FREE:
        _refuse_move(x, "copy.copy()")
    return _stdlib_copy(x)


def _checked_deepcopy(x: T, memo: dict[int, Any] | None = None, _nil: Any = None) -> T:
    """`copy.deepcopy` with the pin check at the top; pinned values met deeper refuse."""
    if memo is not None or not STATE.on:
        return _stdlib_deepcopy(x, memo)
    _refuse_move(x, "copy.deepcopy()")
    saved = _copying.top, _copying.site
    _copying.top, _copying.site = x, here()
    try:
        return _stdlib_deepcopy(x)
    finally:
        _copying.top, _copying.site = saved


# A shallow copy of a plain struct calls nothing on its fields, so the check has to be
# where the copy is made: `copy.copy` and `copy.deepcopy` are replaced by checked
# versions when the model is imported (code that bound them with `from copy import
# copy` earlier keeps the unchecked ones).
copy.copy = _checked_copy
copy.deepcopy = _checked_deepcopy


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
