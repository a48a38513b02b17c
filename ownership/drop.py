"""Drop glue: whether dropping a value may sleep, through everything it owns.

Rust drops a value's fields after its `Drop::drop` (the compiler's drop glue), so the
last `Arc<T>` dropping `T` drops every `ARef`, `KBox` and `Arc` inside `T` too; one of
them may run a sleeping destructor (`ARef<MmWithUser>` runs `mmput`). Python has no drop
glue, so the model asks before the drop: `drop_sleeps(value)` walks what `value` owns
and returns how the first may-sleep destructor is reached (`Binder.mm: ARef<MmWithUser>
(MmWithUser.dec_ref may sleep)`), or None. The owning handles of the model answer for
themselves through `__ownership_drop_sleeps__()` (an `ARef` whose `dec_ref` is declared
`@may_sleep`, the last `Arc` of a value that does, a live `KBox` of one, a lock's data);
plain driver structs, tuples, lists and dicts are walked field by field, 8 levels deep
at most and each value once. A handle that is not the last (an `Arc` with other counts)
drops nothing. Callers (`Arc.drop`, `KBox.drop`) ask only in atomic context, where the
answer turns the drop into an `AtomicSleepError` before any count changes.

Upstream counterpart: the drop glue rustc generates (`core::ptr::drop_in_place`).
Lock order: no locks.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import Any

from .site import is_model_type

__all__ = ["drop_sleeps", "shared", "sleeps_when_called", "unshared"]

_MAX_DEPTH = 8

# The walk in progress on this thread of control (a ContextVar: greenlets, the explorer's
# model threads, each have their own): a handle's `__ownership_drop_sleeps__` that asks
# `drop_sleeps` about what it owns continues the same walk, with its depth and the values
# already seen, so a cycle through a lock's data or an Arc's value ends.
_walk: ContextVar[tuple[set[int], int] | None] = ContextVar("drop_walk", default=None)


# The values that live inside an `Arc`, while they do: id -> a weak reference to the Arc's
# allocation, which names the value (so an id reused by another object after a leaked
# Arc was collected is not mistaken for it). A plain reference to one of these values,
# met while walking another value, is a borrow of shared data (Rust's `&T` or an
# `ArcBorrow`, or a back-reference standing in for an `Arc` that is not the last):
# dropping the walked value does not drop it. Only the Arc's own drop glue (its last
# handle) walks the value, with `owned=True`.
_shared: dict[int, weakref.ref[Any]] = {}


def shared(value: object, allocation: object) -> None:
    """`value` was put into the `Arc` allocation `allocation` (called by `Arc`)."""
    _shared[id(value)] = weakref.ref(allocation)


def unshared(value: object) -> None:
    """The last `Arc` of `value` was dropped (called by `Arc`)."""
    _shared.pop(id(value), None)


def _is_shared(value: object) -> bool:
    r = _shared.get(id(value))
    if r is None:
        return False
    alloc = r()
    return alloc is not None and getattr(alloc, "value", None) is value


def sleeps_when_called(fn: object) -> bool:
    """Whether `fn` is declared `@may_sleep` unconditionally."""
    return getattr(fn, "__ownership_may_sleep__", None) is True


def drop_sleeps(
    value: object, _seen: set[int] | None = None, _depth: int = 0, *, owned: bool = False
) -> str | None:
    """How dropping `value` reaches a destructor that may sleep, or None.

    `owned` says the caller owns `value` even if it lives in an `Arc` (the Arc's own
    drop glue); otherwise a value inside an Arc is borrowed, and dropping it is nothing.
    """
    if not owned and _is_shared(value):
        return None
    if _seen is None:
        outer = _walk.get()
        if outer is not None:
            _seen, _depth = outer
    if isinstance(value, (str, bytes, int, float, type(None))) or _depth > _MAX_DEPTH:
        return None
    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return None
    seen.add(id(value))
    hook = getattr(type(value), "__ownership_drop_sleeps__", None)
    if hook is not None:
        token = _walk.set((seen, _depth + 1))
        try:
            got = hook(value)
        finally:
            _walk.reset(token)
        return got if isinstance(got, str) else None
    parts: list[tuple[str, object]]
    if isinstance(value, (tuple, list, set, frozenset)):
        parts = [(f"[{i}]", v) for i, v in enumerate(list(value))]
    elif isinstance(value, dict):
        parts = [(f"[{k!r}]", v) for k, v in list(value.items())]
    elif is_model_type(type(value)) or isinstance(value, type):
        return None  # The model's other types own no value whose drop may sleep.
    else:
        if sleeps_when_called(getattr(type(value), "drop", None)):
            return f"{type(value).__qualname__}.drop may sleep"
        parts = list(getattr(value, "__dict__", {}).items())
        for klass in type(value).__mro__:
            for name in klass.__dict__.get("__slots__", ()):
                if isinstance(name, str) and hasattr(value, name):
                    parts.append((name, getattr(value, name)))
        parts = [(f".{n}", v) for n, v in parts]
    for step, v in parts:
        got = drop_sleeps(v, seen, _depth + 1)
        if got is not None:
            prefix = type(value).__qualname__ if step.startswith(".") else ""
            return f"{prefix}{step}: {got}"
    return None
