"""`Send` and `Sync`: which values may cross threads, and which may be shared.

Rust derives these auto traits from a type's fields, and so does the model: a plain
class (no declaration) is Send (Sync) iff every value it holds is, at every level of
nesting, through its `__slots__` and `__dict__`, tuples, lists, sets and dicts, and what a
function captures (its closure cells, bound `self`, `functools.partial` arguments). A
driver struct holding a guard two structs down is `!Send`, and `check_send` names the
field path (`Driver.stats.guard`) and where the `!Send` value was made. A value met again
while it is being examined (a cycle) is taken as having the trait, as rustc does; a walk
stops 12 levels down (deeper parts are taken as Send, a stated limit).

Types of the model declare the traits explicitly, each declaration carrying its reason
as the kernel's `// SAFETY:` comment on `unsafe impl Send` does, and a declaration
overrides the fields (a driver may declare its own struct the same way):

    @impl_send("mmput may be called from any thread")
    @impl_sync("all methods may be called in parallel")
    class MmWithUser: ...

`NotThreadSafe` (a base class, as the kernel's `PhantomData<*mut ()>` field) makes a
type `!Send + !Sync`; guards use it. `not_sync(reason)` makes a type `!Sync` only.
Containers with a hook decide per value: `ARef[T]` and `Arc[T]` are Send (and Sync) iff
`T` is Send and Sync, via `__ownership_is_send__`; a lock is Send and Sync iff its data
is Send.

Cost. How a type decides (scalar, declared, hook, container, callable, struct) is
computed once per type and cached. For a struct, fields whose annotation (dataclass
field, class-level annotation) proves the trait — `int`, `str | None`, `list[int]`, a
declared-Send class — are skipped without a walk as long as the value in them is of
the annotated type (the element types of an annotated container are trusted, as mypy
checks them); every other field is walked, since a plain instance's `__dict__` may hold
anything.

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

import collections
import functools
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import rule_catalogue as _rules  # noqa: F401  (installs each rule's fix hint in reports)
from . import sched
from .config import STATE
from .errors import SendError, SyncError
from .site import Site, here, is_model_type, site_of_frame

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


_SCALARS: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    type,
    Site,
    types.ModuleType,
    threading.Thread,
)
"""Types that are Send and Sync whatever they hold.

A `threading.Thread` is the model's scheduler's carrier of a task, not data a driver
hands over; its target is checked where it is spawned.
"""

_CALLABLES = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    functools.partial,
)
"""Callables decided by what they capture: their bound `self`, closure cells, arguments."""

_MAX_DEPTH = 12
"""How deep a value walk goes; a field nested deeper is taken as Send (stated limit)."""

# How a type decides an auto trait, computed once per (type, trait) and cached.
_K_SCALAR, _K_DECLARED, _K_HOOK, _K_SEQ, _K_DICT, _K_FUNC, _K_STRUCT = range(7)


class _Kind:
    """The cached verdict of one type for one auto trait.

    `kind` says how a value of the type is decided: always yes (scalars), by an explicit
    declaration (`declared`), by the type's `__ownership_is_<trait>__` hook, element by
    element (sequences, dicts), by what a function captures, or field by field (structs).
    For a struct, `proven` maps each field whose declared type (annotation) is proven to
    have the trait to the exact types a value of it may have for the proof to apply; a
    field holding a value of another type, and every undeclared field, is walked.
    """

    __slots__ = ("declared", "fields", "has_dict", "hook", "kind", "proven")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.declared = True
        self.hook: Callable[[object], bool] | None = None
        self.fields: tuple[str, ...] = ()
        self.has_dict = False
        self.proven: dict[str, frozenset[type]] = {}


_kinds: dict[str, dict[type, _Kind]] = {"send": {}, "sync": {}, "fields": {}}
_kinds_lock = threading.Lock()
_EXACT_SCALARS = frozenset((type(None), bool, int, float, str, bytes, Site))
"""The scalar types a field walk skips without a cache lookup."""


def _kind(cls: type, trait: str) -> _Kind:
    table = _kinds[trait]
    k = table.get(cls)
    if k is None:
        k = _classify(cls, trait)
        with _kinds_lock:
            k = table.setdefault(cls, k)
    return k


def _classify(cls: type, trait: str) -> _Kind:
    if issubclass(cls, _SCALARS):
        return _Kind(_K_SCALAR)
    hook = getattr(cls, f"__ownership_is_{trait}__", None)
    if hook is not None:
        k = _Kind(_K_HOOK)
        k.hook = hook
        return k
    declared = getattr(cls, f"__ownership_{trait}__", None)
    if declared is not None:
        k = _Kind(_K_DECLARED)
        k.declared = bool(declared)
        return k
    if issubclass(cls, (tuple, list, set, frozenset, collections.deque)):
        return _Kind(_K_SEQ)
    if issubclass(cls, dict):
        return _Kind(_K_DICT)
    if issubclass(cls, _CALLABLES):
        return _Kind(_K_FUNC)
    k = _struct_kind(cls)
    k.proven = _proven_fields(cls, trait)
    return k


def _proven_fields(cls: type, trait: str) -> dict[str, frozenset[type]]:
    """Fields of `cls` whose annotations prove the trait, with the types they allow."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # Unresolvable annotations (names only imported for type checking).
        return {}
    out: dict[str, frozenset[type]] = {}
    for name, tp in hints.items():
        allowed = _proven_type(tp, trait, 0)
        if allowed:
            out[name] = allowed
    return out


def _proven_type(tp: object, trait: str, depth: int) -> frozenset[type] | None:
    """The runtime types a value annotated `tp` may have, if all have the trait."""
    if depth > 4:
        return None
    if tp is None or tp is type(None):
        return frozenset((type(None),))
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        out: set[type] = set()
        for a in args:
            got = _proven_type(a, trait, depth + 1)
            if not got:
                return None
            out |= got
        return frozenset(out)
    if origin is typing.Literal:
        return frozenset(type(a) for a in args)
    if origin is typing.Annotated:
        return _proven_type(args[0], trait, depth + 1)
    if origin in (list, tuple, set, frozenset, dict):
        if not args:
            return None
        for a in args:
            if a is not Ellipsis and not _proven_type(a, trait, depth + 1):
                return None
        assert isinstance(origin, type)
        return frozenset((origin,))
    if isinstance(tp, type) and origin is None:
        k = _kind(tp, trait)
        if k.kind == _K_SCALAR or (k.kind == _K_DECLARED and k.declared):
            return frozenset((tp,))
    return None


class _Walk(threading.local):
    """The values (by id) the current check on this thread is examining, per trait.

    A value met again while it is being examined (a cycle, possibly through a hook such
    as `Arc`'s) is taken as having the trait, as rustc takes a cyclic auto-trait
    obligation to hold.
    """

    send: set[int] | None = None
    sync: set[int] | None = None


_walk = _Walk()

_Path = list[tuple[str, object]]


def _find(value: object, trait: str) -> _Path | None:
    """The path to the first part of `value` without the trait, or None if it has it.

    The path is a list of (how the part is reached from its container, the part); the
    last entry is the offending value.
    """
    cls = type(value)
    if cls in _EXACT_SCALARS:
        return None
    table = _kinds[trait]
    k = table.get(cls) or _kind(cls, trait)
    kind = k.kind
    if kind == _K_SCALAR:
        return None
    if kind == _K_DECLARED:
        return None if k.declared else [("", value)]
    walk = _walk.__dict__  # This thread's own dict: cheaper than attribute access.
    seen: set[int] | None = walk.get(trait)
    if seen is not None:
        return _find_in(value, trait, table, k, seen, 0)
    seen = walk[trait] = set()
    try:
        return _find_in(value, trait, table, k, seen, 0)
    finally:
        walk[trait] = None


def _find_in(
    value: object, trait: str, table: dict[type, _Kind], k: _Kind, seen: set[int], depth: int
) -> _Path | None:
    kind = k.kind
    if kind == _K_SCALAR:
        return None
    if kind == _K_DECLARED:
        return None if k.declared else [("", value)]
    key = id(value)
    if key in seen or depth > _MAX_DEPTH:
        return None
    seen.add(key)
    if kind == _K_STRUCT:
        return _find_fields(value, trait, table, k, seen, depth)
    if kind == _K_HOOK:
        assert k.hook is not None
        if k.hook(value):
            return None
        return [("", value), *(_explain(value, trait, depth) or [])]
    if kind == _K_SEQ:
        assert isinstance(value, (tuple, list, set, frozenset, collections.deque))
        items: tuple[object, ...] = tuple(value)
        for v in items:
            if type(v) not in _EXACT_SCALARS:
                break
        else:
            return None  # All scalars: the common case of a list of numbers or names.
        for i, v in enumerate(items):
            got = _find_part(v, trait, table, seen, depth)
            if got is not None:
                return [(f"[{i}]", value), *got]
        return None
    if kind == _K_DICT:
        assert isinstance(value, dict)
        for kk, v in list(value.items()):
            got = _find_part(kk, trait, table, seen, depth) or _find_part(
                v, trait, table, seen, depth
            )
            if got is not None:
                return [(f"[{kk!r}]", value), *got]
        return None
    if trait != "send":
        return None
    return _find_captures(value, trait, table, seen, depth)


def _explain(value: object, trait: str, depth: int) -> _Path | None:
    """Which part of `value` its hook objects to: its fields, walked structurally.

    Runs only on the way to a report. The walk starts afresh (the hook's own walk has
    marked every part as seen); a container that is Send iff its contents are Send and
    Sync (`Arc`) may object to a `!Sync` part, so that is looked for second.
    """
    walk = _walk.__dict__
    saved = walk.get(trait)
    try:
        for t in (trait, "sync") if trait == "send" else (trait,):
            fresh: set[int] = set()
            walk[trait] = fresh
            got = _find_fields(value, t, _kinds[t], _classify_struct(type(value)), fresh, depth)
            if got is not None:
                return got
        return None
    finally:
        walk[trait] = saved


def _find_part(
    v: object, trait: str, table: dict[type, _Kind], seen: set[int], depth: int
) -> _Path | None:
    """`_find_in` for a part of a container, one level down."""
    cls = type(v)
    if cls in _EXACT_SCALARS:
        return None
    k = table.get(cls) or _kind(cls, trait)
    return _find_in(v, trait, table, k, seen, depth + 1)


def _classify_struct(cls: type) -> _Kind:
    """`cls` decided field by field, ignoring its hook (to name what a hook objects to)."""
    table = _kinds["fields"]
    k = table.get(cls)
    if k is None:
        with _kinds_lock:
            k = table.setdefault(cls, _struct_kind(cls))
    return k


def _struct_kind(cls: type) -> _Kind:
    k = _Kind(_K_STRUCT)
    slots: list[str] = []
    for klass in cls.__mro__:
        for name in klass.__dict__.get("__slots__", ()):
            if isinstance(name, str) and name not in ("__dict__", "__weakref__"):
                slots.append(name)
    k.fields = tuple(dict.fromkeys(slots))
    k.has_dict = any("__dict__" in klass.__dict__ for klass in cls.__mro__)
    return k


def _find_fields(
    value: object, trait: str, table: dict[type, _Kind], k: _Kind, seen: set[int], depth: int
) -> _Path | None:
    proven = k.proven
    getattribute = object.__getattribute__
    for name in k.fields:
        try:
            v = getattribute(value, name)
        except AttributeError:
            continue
        cls = type(v)
        if cls in _EXACT_SCALARS:
            continue
        allowed = proven.get(name)
        if allowed is not None and cls in allowed:
            continue
        got = _find_in(v, trait, table, table.get(cls) or _kind(cls, trait), seen, depth + 1)
        if got is not None:
            return [(f".{name}", value), *got]
    if k.has_dict:
        d = getattr(value, "__dict__", None)
        if isinstance(d, dict):
            for name, v in list(d.items()):
                cls = type(v)
                if cls in _EXACT_SCALARS:
                    continue
                allowed = proven.get(name)
                if allowed is not None and cls in allowed:
                    continue
                got = _find_in(
                    v, trait, table, table.get(cls) or _kind(cls, trait), seen, depth + 1
                )
                if got is not None:
                    return [(f".{name}", value), *got]
    return None


def _find_captures(
    value: object, trait: str, table: dict[type, _Kind], seen: set[int], depth: int
) -> _Path | None:
    bound = getattr(value, "__self__", None)
    if bound is not None and not isinstance(bound, type):
        got = _find_part(bound, trait, table, seen, depth)
        if got is not None:
            return [(" (bound self)", value), *got]
    if isinstance(value, functools.partial):
        for i, a in enumerate((value.func, *value.args, *value.keywords.values())):
            got = _find_part(a, trait, table, seen, depth)
            if got is not None:
                return [(f" (bound argument {i})", value), *got]
        return None
    code = getattr(value, "__code__", None)
    names = code.co_freevars if code is not None else ()
    for name, c in zip(names, getattr(value, "__closure__", None) or (), strict=False):
        try:
            v = c.cell_contents
        except ValueError:
            continue
        got = _find_part(v, trait, table, seen, depth)
        if got is not None:
            return [(f" (captured '{name}')", value), *got]
    return None


def is_send(value: object) -> bool:
    """Whether `value` may be moved to another thread."""
    return _find(value, "send") is None


def is_sync(value: object) -> bool:
    """Whether `value` may be shared (by reference) between threads."""
    return _find(value, "sync") is None


def origin_site(value: object) -> Site | None:
    """Where a value was made, if it records it (guards record the lock site)."""
    s: Any = getattr(value, "origin_site", None)
    return s if isinstance(s, Site) else None


def _name(v: object) -> str:
    q = getattr(v, "__qualname__", None) if isinstance(v, _CALLABLES) else None
    return q.rsplit(".", 1)[-1] if isinstance(q, str) else type(v).__qualname__


def _internal(v: object) -> bool:
    return is_model_type(type(v))


def _path_text(path: _Path) -> str:
    """`Driver.inner.guard`: how the offending part is reached from the handed value.

    The internals of the model's own types are not named: a pointer such as an `Arc` or
    a `KBox` is followed to the struct it holds (`Arc<Worker>: Worker.queued_by`), and
    what a function captures starts a new path (`<lambda> captured 'd': Driver.x`).
    """
    root = path[0][1]
    out = _describe(root) if _internal(root) else _name(root)
    hidden = False
    for i, (step, container) in enumerate(path[:-1]):
        nxt = path[i + 1][1]
        if step.startswith(" ("):
            out += f" {step[2:-1]}"
            hidden = True
        elif _internal(container) and step:
            hidden = True
        elif step:
            out += step
        if hidden and not _internal(nxt) and i + 1 < len(path) - 1:
            out += f": {type(nxt).__qualname__}"
            hidden = False
    return out


def check_send(value: object, handoff: str, site: Site | None = None) -> None:
    """Raise `SendError` if `value` is `!Send`; `handoff` names the hand-off.

    A `Shared` reference to a `!Sync` value raises `SyncError` instead: what crosses
    the threads there is `&T`, which is Send iff `T` is Sync.
    """
    if not STATE.on:
        return
    path = _find(value, "send")
    if path is None:
        return
    bad = path[-1][1]
    for i, (_, part) in enumerate(path):
        if isinstance(part, Shared):
            bad, rest = part, path[i + 1 :]
            break
    if isinstance(bad, Shared):
        target = bad.target
        why = ""
        if len(rest) > 1:
            why = f" (in {_path_text(rest)}, {type(rest[-1][1]).__name__} is !Sync)"
        raise SyncError(
            f"{type(target).__name__} is !Sync{why} but a shared reference to it is handed "
            f"to another thread by {handoff}",
            obj=_describe(target),
            site=site or here(),
            origin=bad.site,
            origin_label="the reference was shared",
            notes=[("the !Sync value was made", origin_site(target))]
            if origin_site(target) is not None
            else [],
        )
    why = ""
    label = type(bad).__name__
    if is_send(bad):
        # The part is only !Sync: what is !Send is the pointer that shares it (`Arc<T>`
        # and `ARef<T>` need `T: Sync`), the innermost one on the path.
        for j in range(len(path) - 2, -1, -1):
            if _kind(type(path[j][1]), "send").kind == _K_HOOK:
                why = f" ({type(bad).__name__} is !Sync and it shares it)"
                bad = path[j][1]
                label = _describe(bad)
                first = next(i for i, e in enumerate(path) if e[1] is bad)
                path = [*path[:first], ("", bad)]
                break
    where = ""
    if len(path) > 1:
        root = path[0][1]
        name = _describe(root) if _internal(root) else _name(root)
        where = f" (in {_path_text(path)}, so {name} is !Send too)"
    raise SendError(
        f"{label} is !Send{why} but is handed to another thread by {handoff}{where}",
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
        self.tid: int | None = sched.current_id()
        self.site = site if site is not None else site_of_frame(sys._getframe(2))

    def check(self, use: str = "use", depth: int = 1) -> None:
        """Raise `SyncError` if the calling thread is not the one using the value.

        `depth` is how many frames above `check`'s caller the reported use site is
        (1: the caller of the method that calls `check`).
        """
        tid = self.tid
        me = sched.current_id()
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
        self.tid = sched.current_id()
        self.site = site if site is not None else here()


def _thread_name(tid: int) -> str:
    name = sched.thread_name(tid)
    return f"'{name}'" if name is not None else str(tid)


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
