"""Lock-order validation in the manner of the kernel's lockdep.

Every lock belongs to a *lock class* (its name; unnamed locks get their construction
site, as lockdep keys a `new_spinlock!()` by its call site). When a thread acquires a
lock of class B while holding one of class A, the dependency A -> B is recorded in a
graph shared by all threads. If B ->* A is already in the graph, the new order closes
a cycle: `LockError` (rule `lock-order`) is raised the first time the inverted order
is *attempted*, before blocking, whether or not the run would have deadlocked.

Cost: like lockdep's chain cache, the sequence of held classes is hashed into a chain
key kept per thread; a chain that was validated once is never walked again, so an
acquisition along a known chain costs one hash and one set lookup (`acquire`), or, on
the lock fast path of `ownership.sync.lock`, one lookup in the class's `chains` map.
A validated chain stays valid: a dependency is only ever added after checking that it
closes no cycle, so the cycle is reported when its last edge is attempted. Trylocks
add no dependency (they cannot block) but are part of the chain, as in lockdep.

Held-lock entries are `HeldLock`s; a spinlock's entry is also the atomic section its
holder runs in (`ownership.context`), so one object sits on both per-thread stacks.

`might_lock` validates an acquisition that a path only *may* make, as lockdep's
`might_lock_read()` does for the mmap lock in `__might_fault()` (`ownership.uaccess`).

The graph lives as long as the process, as lockdep's lives as long as the boot: two code
paths that take A then B and B then A are an inversion even when they never run at once
(the pytest plugin keeps it for the whole session). `private_graph()` runs code that
breaks lock order on purpose against an empty graph and puts the previous one back.

The model's own ordering facts ("the VMA read lock nests inside the mmap lock",
Documentation/mm/process_addrs.rst) are seeded with `declare_order`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import sched
from .context import AtomicSection, ThreadState, ctx
from .errors import LockError
from .site import Site, here

__all__ = [
    "HeldLock",
    "LockClass",
    "acquire",
    "acquire_in",
    "chain_key",
    "declare_order",
    "dependency_count",
    "lock_class",
    "might_lock",
    "private_graph",
    "release",
    "release_in",
    "reset_for_tests",
    "set_label",
    "validate_chain",
    "validate_plain",
]


class LockClass:
    """A lockdep class: all locks sharing a name are ordered as one.

    Invariants: `id` is unique per class for the life of the process. `chains` maps
    the chain key of a held stack under which a plain acquisition of this class was
    validated to the chain key after it: a hit is both the cache check and the new key.
    """

    __slots__ = ("chains", "id", "kind", "name", "site")

    def __init__(self, name: str, kind: str, site: Site | None, id_: int) -> None:
        self.name = name
        self.kind = kind
        self.site = site
        self.id = id_
        self.chains: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"LockClass({self.kind} {self.name!r})"


class HeldLock(AtomicSection):
    """One entry of a thread's held-lock stack (`struct held_lock`).

    A spinlock's entry is also the atomic section its holder runs in (`kind ==
    "spinlock"`), so one acquisition records one object in both per-thread stacks; any
    other lock's entry has `kind == "lock"` and is only on the held stack.

    Invariants: `key` is the chain key of the held stack up to and including this entry
    (`chain_key(prev_key, ...)`); `what` describes the lock, `site` is where it was taken.
    """

    __slots__ = ("cls", "instance", "key", "nested", "prev_key", "read", "trylock")

    def __init__(
        self,
        cls: LockClass,
        instance: object,
        site: Site,
        read: bool,
        trylock: bool,
        nested: int,
        prev_key: int,
        key: int,
    ) -> None:
        self.kind = "lock"
        self.what = f"{cls.kind} '{cls.name}'"
        self.site = site
        self.cls = cls
        self.instance = instance
        self.read = read
        self.trylock = trylock
        self.nested = nested
        self.prev_key = prev_key
        self.key = key

    def describe(self) -> str:
        mode = "read" if self.read else "write" if self.cls.kind.startswith("rw") else ""
        how = "trylock" if self.trylock else "lock"
        m = f", {mode}" if mode else ""
        return f"{self.cls.kind} '{self.cls.name}'{m} ({how}) taken at {self.site}"


def chain_key(prev: int, cls_id: int, trylock: bool, nested: int) -> int:
    """The chain key after taking a lock of class `cls_id` on a stack keyed `prev`.

    `ownership.sync.lock` inlines the plain case (`hash((prev, cls_id))`).
    """
    if trylock or nested:
        return hash((prev, cls_id, trylock, nested))
    return hash((prev, cls_id))


@dataclass(frozen=True)
class _Edge:
    """A recorded dependency `a -> b`: b was acquired while a was held."""

    a_site: Site | None
    b_site: Site | None
    thread: str
    declared: str | None = None


_glock = threading.Lock()
_classes: dict[str, LockClass] = {}
_after: dict[int, dict[int, _Edge]] = {}
_by_id: dict[int, LockClass] = {}
_validated: set[int] = set()


def lock_class(name: str, kind: str, site: Site | None = None) -> LockClass:
    """The class named `name`, created on first use."""
    cls = _classes.get(name)
    if cls is None:
        with _glock:
            cls = _classes.get(name)
            if cls is None:
                cls = LockClass(name, kind, site, len(_classes) + 1)
                _classes[name] = cls
                _by_id[cls.id] = cls
    return cls


_declared: dict[tuple[int, int], str] = {}


def declare_order(outer: LockClass, inner: LockClass, reason: str) -> None:
    """Seed the graph with a documented order: `inner` nests inside `outer`.

    Declared orders are facts about the code, not observations of a run: they survive
    `reset_for_tests()`. Declaring an order that the recorded dependencies already
    invert is a `LockError` (rule `lock-order`), as taking the locks that way would be.
    """
    with _glock:
        path = _path(inner.id, outer.id) if inner.id != outer.id else None
        if path:
            e = _after[path[0][0]][path[0][1]]
            raise LockError(
                f"declared order '{outer.name}' -> '{inner.name}' contradicts the recorded "
                "dependencies",
                rule="lock-order",
                obj=f"{inner.kind} '{inner.name}'",
                site=here(),
                origin=e.a_site,
                origin_label=f"'{_by_id[path[0][0]].name}' was held, taken",
                notes=[(f"then '{_by_id[path[0][1]].name}' was taken", e.b_site)],
                details=[f"declared: {reason}"],
            )
        _declared[(outer.id, inner.id)] = reason
        _after.setdefault(outer.id, {}).setdefault(
            inner.id, _Edge(None, None, "(declared)", declared=reason)
        )
        _forget_chains()


def _path(src: int, dst: int) -> list[tuple[int, int]] | None:
    """A path src ->* dst in the dependency graph, as a list of edges."""
    if src == dst:
        return []
    prev: dict[int, int] = {src: src}
    q = deque([src])
    while q:
        n = q.popleft()
        for m in _after.get(n, ()):
            if m in prev:
                continue
            prev[m] = n
            if m == dst:
                path = []
                while m != src:
                    path.append((prev[m], m))
                    m = prev[m]
                path.reverse()
                return path
            q.append(m)
    return None


def _recursion(h: HeldLock, cls: LockClass, site: Site, read: bool, same: bool) -> LockError:
    what = "lock" if same else "lock of the same class"
    return LockError(
        f"possible recursive locking detected: acquiring a {what} this thread already holds",
        rule="recursive-lock",
        obj=f"{cls.kind} '{cls.name}'" + (" (read)" if read else ""),
        site=site,
        origin=h.site,
        origin_label="the lock is already held, taken",
        details=(
            ["hint: for two locks of one class taken in a defined order, pass nested=1"]
            if not same
            else []
        ),
    )


def _inversion(h: HeldLock, cls: LockClass, site: Site, path: list[tuple[int, int]]) -> LockError:
    notes: list[tuple[str, Site | None]] = []
    details = ["the existing dependency chain (new lock first) is:"]
    for a, b in path:
        e = _after[a][b]
        ca, cb = _by_id[a], _by_id[b]
        if e.declared:
            details.append(f"  -> '{cb.name}' nests inside '{ca.name}' (declared: {e.declared})")
        else:
            details.append(f"  -> '{cb.name}' taken while holding '{ca.name}' ({e.thread})")
            notes.append((f"'{ca.name}' was held, taken", e.a_site))
            notes.append((f"then '{cb.name}' was taken", e.b_site))
    return LockError(
        f"possible circular locking dependency detected: '{cls.name}' after '{h.cls.name}' "
        f"inverts the recorded order",
        rule="lock-order",
        obj=f"{cls.kind} '{cls.name}'",
        site=site,
        origin=h.site,
        origin_label=f"but this thread already holds '{h.cls.name}', taken",
        notes=notes,
        details=details,
    )


def acquire(
    cls: LockClass,
    instance: object,
    site: Site,
    *,
    read: bool = False,
    trylock: bool = False,
    nested: int = 0,
) -> HeldLock:
    """Validate and record an acquisition; raises `LockError` before any effect."""
    return acquire_in(ctx.st, cls, instance, site, read, trylock, nested)


_new = object.__new__


def acquire_in(
    c: ThreadState,
    cls: LockClass,
    instance: object,
    site: Site,
    read: bool = False,
    trylock: bool = False,
    nested: int = 0,
) -> HeldLock:
    """`acquire` for a caller that already has the thread's state `c`.

    Cost on a validated chain: a scan of the held locks for this instance (as lockdep's
    recursion check; the stack is a few entries deep), one tuple hash and one set lookup.
    """
    held = c.held
    if not trylock:
        for h in held:
            if h.instance is instance:
                raise _recursion(h, cls, site, read, True)
    prev = c.chain_key
    key = hash((prev, cls.id)) if not (trylock or nested) else hash((prev, cls.id, trylock, nested))
    if key not in _validated:
        validate_chain(held, cls, site, trylock, nested, key)
    # INVARIANT: a new held-lock entry, built without a Python-level __init__ (hot path).
    entry: HeldLock = _new(HeldLock)
    entry.kind = "lock"
    entry.what = f"{cls.kind} '{cls.name}'"
    entry.cls = cls
    entry.instance = instance
    entry.site = site
    entry.read = read
    entry.trylock = trylock
    entry.nested = nested
    entry.prev_key = prev
    entry.key = key
    held.append(entry)
    c.chain_key = key
    return entry


def might_lock(cls: LockClass, instance: object, site: Site, *, read: bool = False) -> None:
    """`might_lock()` / `might_lock_read()`: validate as if `instance` were taken here.

    The acquisition is checked and its dependencies recorded exactly as a real one
    (`acquire`), then released at once: code that only *may* take a lock (a user copy
    may fault and take the mmap lock) is ordered against the locks its caller holds on
    every run, not only on the runs where it does take it. Raises `LockError` before
    any effect, as `acquire` does.
    """
    c = ctx.st
    release_in(c, acquire_in(c, cls, instance, site, read))


def validate_chain(
    held: list[HeldLock], cls: LockClass, site: Site, trylock: bool, nested: int, key: int
) -> None:
    """The slow path of an acquisition along a chain not seen before (chain `key`).

    Raises `LockError` for recursion or an order inversion (before any effect);
    otherwise records the new dependencies and caches the chain.
    """
    if trylock:
        with _glock:
            _validated.add(key)
        return
    _validate(held, cls, site, nested, key, None)


def is_validated(key: int) -> bool:
    return key in _validated


def validate_plain(held: list[HeldLock], cls: LockClass, site: Site, prev: int) -> int:
    """Validate a plain acquisition of `cls` on a stack keyed `prev` (the slow path of
    `ownership.sync.lock`); returns the new chain key and caches it in `cls.chains`."""
    key = hash((prev, cls.id))
    with _glock:
        if key in _validated:
            cls.chains[prev] = key
            return key
    _validate(held, cls, site, 0, key, prev)
    return key


def _forget_chains() -> None:
    """Drop every cached chain (the graph changed). Called with `_glock` held."""
    _validated.clear()
    for c in list(_classes.values()):
        c.chains.clear()


def _validate(
    held: list[HeldLock], cls: LockClass, site: Site, nested: int, key: int, prev: int | None
) -> None:
    """Check the acquisition against the graph, add its dependencies and cache its chain,
    all under the graph lock (so a concurrent reset cannot leave a stale cache entry)."""
    thread = sched.current_name()
    label = _label[0]
    if label is not None:
        thread = f"{thread}, in {label}"
    with _glock:
        for h in held:
            if h.cls is cls:
                if nested or h.trylock:
                    continue
                raise _recursion(h, cls, site, False, False)
            path = _path(cls.id, h.cls.id)
            if path is not None:
                raise _inversion(h, cls, site, path)
        for h in held:
            if h.cls is not cls:
                _after.setdefault(h.cls.id, {}).setdefault(cls.id, _Edge(h.site, site, thread))
        _validated.add(key)
        if prev is not None:
            cls.chains[prev] = key


def release(entry: HeldLock) -> None:
    """Remove `entry` from the calling thread's held-lock stack."""
    release_in(ctx.st, entry)


def release_in(c: ThreadState, entry: HeldLock) -> None:
    """`release` for a caller that already has the thread's state `c`."""
    held = c.held
    if held and held[-1] is entry:
        held.pop()
        c.chain_key = entry.prev_key
        return
    for i in range(len(held) - 1, -1, -1):
        if held[i] is entry:
            del held[i]
            break
    else:
        raise LockError(
            "releasing a lock this thread does not hold",
            rule="unlock-not-held",
            obj=f"{entry.cls.kind} '{entry.cls.name}'",
            site=here(),
            origin=entry.site,
            origin_label="the lock was taken",
        )
    # Out-of-order release: recompute the chain keys of the entries above it.
    key = held[i - 1].key if i > 0 else 0
    for h in held[i:]:
        h.prev_key = key
        key = chain_key(key, h.cls.id, h.trylock, h.nested)
        h.key = key
    c.chain_key = key


def reset_for_tests() -> None:
    """Forget every recorded dependency (classes stay). Only for test isolation."""
    with _glock:
        _after.clear()
        _forget_chains()
        for (a, b), reason in _declared.items():
            _after.setdefault(a, {})[b] = _Edge(None, None, "(declared)", declared=reason)


# What the code running now is, for the record of each new dependency (the pytest
# plugin sets the test's id, so a report names the test that recorded the first order).
_label: list[str | None] = [None]


def set_label(label: str | None) -> None:
    """Name the code running from now on in every dependency it records (None: none)."""
    _label[0] = label


@contextmanager
def private_graph() -> Iterator[None]:
    """Run the body against an empty dependency graph, then put the previous one back.

    For code that breaks lock order on purpose (a test of the inversion report): what it
    records is forgotten afterwards, and it sees nothing recorded before. Declared
    orders hold in both (they are facts about the code); an order declared inside the
    body is kept afterwards. Every cached chain is forgotten on entry and exit.
    """
    with _glock:
        saved = {a: dict(bs) for a, bs in _after.items()}
    reset_for_tests()
    try:
        yield
    finally:
        with _glock:
            _after.clear()
            _after.update(saved)
            for (a, b), reason in _declared.items():
                _after.setdefault(a, {}).setdefault(
                    b, _Edge(None, None, "(declared)", declared=reason)
                )
            _forget_chains()


def dependency_count() -> int:
    """How many dependencies the graph holds (declared ones included)."""
    with _glock:
        return sum(len(bs) for bs in _after.values())
