"""`Lock<T, B>` and its guard: `SpinLock` and `Mutex` (rust/kernel/sync/lock.rs).

A lock owns its data; the only way to reach the data is through a guard, and a guard
is the only evidence that the lock is held. Guards are context managers (`with
lock.lock() as g:`) and `!Send`: the kernel requires `spin_unlock`/`mutex_unlock` on
the thread that locked. A reference taken through a guard (`g.ref()`, or objects that
hold `g.lifetime`) dies when the guard is released.

The two backends differ in what they do to the execution context:

* `SpinLock` disables preemption for the guard's life: the holder is in atomic
  context, and anything that may sleep raises `AtomicSleepError`.
* `Mutex.lock()` may sleep: calling it in atomic context is a violation. Its
  `try_lock()` never sleeps.

Each acquisition goes through lockdep (`ownership.lockdep`) before blocking, so an
AB-BA order is reported even when the run does not deadlock. Locks are `Pinned`: they
are built in place (`SpinLock(value, name="...")`) and never move.

Cost: lock and unlock are the model's hottest path, so they are written flat (the
fast paths of `site_of_frame` and `lockdep.acquire_in` inlined): one thread-local
lookup (`ctx.st`), interned call sites (`ownership.site`), lockdep's chain cache (one
lookup in the lock class's `chains`), and no allocation but the guard itself: each lock
owns one lockdep entry, which is also its holder's atomic section for a spinlock, and
whichever thread holds the lock word fills it in. A guard made with checks off
carries no lockdep entry and no atomic section, and stays unchecked for its whole
life even if checks are switched on meanwhile (and vice versa). `python -m ownership
bench` measures the result.

Lock order: none taken here; each lock is independent.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Generic, Self, TypeVar

from .. import lockdep, sched
from ..borrow import Lifetime, Ref
from ..config import STATE
from ..context import AtomicSection, ThreadState, ctx, exit_atomic, may_sleep
from ..drop import drop_sleeps
from ..errors import LifetimeError, LockError, SendError
from ..lockdep import (
    _validated,  # lockdep's chain cache, read on the fast path.
)
from ..marker import NotThreadSafe, is_send
from ..pin import Pinned
from ..site import UNKNOWN, Site, here, last_code, site_of_frame

__all__ = ["Guard", "Lock", "Mutex", "MutexGuard", "SpinLock", "SpinLockGuard"]

T = TypeVar("T")

_new = object.__new__
_getframe = sys._getframe


class Lock(Pinned, Generic[T]):
    """A lock protecting a `T`; the class name given is the lockdep class.

    Invariants: `_raw` is held iff exactly one live guard for this lock exists;
    `_data` is only read or written through that guard.
    """

    kind = "lock"
    _guard_type: type[Guard[Any]]
    _atomic = False

    __slots__ = (
        "__ownership_pinned_at__",
        "_cls",
        "_data",
        "_entry",
        "_guard",
        "_name",
        "_raw",
        "_what",
    )

    def __init__(self, data: T, name: str | None = None) -> None:
        site = here()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"lock name must be a str, got {type(name).__name__}")
        self._name = name if name is not None else f"{type(self).__name__}@{site.short()}"
        self._what = f"{self.kind} '{self._name}'"
        self._data = data
        self._raw = sched.active().raw_lock()
        self._cls = lockdep.lock_class(self._name, self.kind, site)
        # INVARIANT: one held-lock entry per lock, filled by whichever thread holds the
        # lock word (an exclusive lock has at most one holder).
        self._entry = lockdep.HeldLock(self._cls, self, site, False, False, 0, 0, 0)
        if self._atomic:
            self._entry.kind = "spinlock"
        # INVARIANT: the lock is pinned where it is built, as `new_spinlock!` in `pin_init!`.
        self._pin_here(site)

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        return self._what

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def held_guard(self) -> Guard[T] | None:
        """The checked guard through which the calling thread holds this lock, if any."""
        g: Guard[T] | None = getattr(self, "_guard", None)
        if g is None or not g.is_held() or g._st is not ctx.st:
            return None
        return g

    def _acquire(self, f: FrameType, nested: int, trylock: bool) -> Guard[T] | None:
        """Take the lock for a caller whose frame is `f`; None if a trylock failed.

        With checks on, lockdep validates the acquisition *before* the lock word is
        touched (so an inversion is reported instead of deadlocking); once the lock word
        is held, the acquisition is recorded (for a spinlock, the atomic section opens).
        This is `_order_key` and `_push` inlined: the model's hottest path.
        """
        raw = self._raw
        g: Guard[T] = _new(self._guard_type)
        g._lock = self
        g._end_site = None
        g._lt = None
        if not STATE.on:
            if trylock:
                if not raw.acquire(False):
                    return None
            else:
                raw.acquire()
            # INVARIANT: an unchecked guard: no lockdep entry, no atomic section.
            g.origin_site = UNKNOWN
            g._held = None
            g._st = None
            return g
        # The call site, interned (the fast path of `site_of_frame`, inlined).
        lc = last_code[0]
        site = lc[1].get(f.f_lasti) if lc[0] is f.f_code else None
        if site is None:
            site = site_of_frame(f)
        st = ctx.st
        # lockdep (the fast path of `lockdep.acquire_in`): the recursion check, then the
        # chain key, cached per class; only a chain never seen before is validated (and
        # may raise).
        held_stack = st.held
        cls = self._cls
        prev = st.chain_key
        if not trylock:
            for h in held_stack:
                if h.instance is self:
                    lockdep.acquire_in(st, cls, self, site)  # Raises the recursion report.
        if trylock or nested:
            if type(nested) is not int or nested < 0:
                raise TypeError(f"nested must be a lock subclass number >= 0, got {nested!r}")
            key = lockdep.chain_key(prev, cls.id, trylock, nested)
            if key not in _validated:
                lockdep.validate_chain(held_stack, cls, site, trylock, nested, key)
        else:
            k = cls.chains.get(prev)
            key = k if k is not None else lockdep.validate_plain(held_stack, cls, site, prev)
        if trylock:
            if not raw.acquire(False):
                return None
        else:
            raw.acquire()
        # INVARIANT: this thread holds the lock word, so it is the only user of the
        # lock's one held-lock entry; for a spinlock that entry is also the atomic section.
        e = self._entry
        e.site = site
        e.trylock = trylock
        e.nested = nested
        e.prev_key = prev
        e.key = key
        held_stack.append(e)
        st.chain_key = key
        if self._atomic:
            st.sections.append(e)
            st.preempt_count += 1
        g.origin_site = site
        g._held = e
        g._st = st
        # The checked guard in force, so that borrows of the data made under it (an
        # rbtree cursor) can hang from its lifetime (`held_guard`).
        self._guard = g
        return g

    def _order_key(self, st: ThreadState, site: Site) -> tuple[int, int]:
        """Validate a plain acquisition by this thread; its (previous, new) chain keys."""
        prev = st.chain_key
        for h in st.held:
            if h.instance is self:
                lockdep.acquire_in(st, self._cls, self, site)  # Raises the recursion report.
        k = self._cls.chains.get(prev)
        key = k if k is not None else lockdep.validate_plain(st.held, self._cls, site, prev)
        return prev, key

    def _push(self, st: ThreadState, site: Site, prev: int, key: int) -> lockdep.HeldLock:
        """Record a plain acquisition whose lock word this thread now holds."""
        e = self._entry
        e.site = site
        e.trylock = False
        e.nested = 0
        e.prev_key = prev
        e.key = key
        st.held.append(e)
        st.chain_key = key
        if self._atomic:
            st.sections.append(e)
            st.preempt_count += 1
        return e

    def __ownership_is_send__(self) -> bool:
        return is_send(self._data)

    def __ownership_is_sync__(self) -> bool:
        return is_send(self._data)

    def __ownership_drop_sleeps__(self) -> str | None:
        """Drop glue: dropping a lock drops the data it protects."""
        got = drop_sleeps(self._data)
        return f"{self._what}'s data {got}" if got is not None else None


def _close_section(st: ThreadState, sec: AtomicSection) -> None:
    """Close a spinlock's atomic section out of LIFO order (`exit_atomic` without its
    preemption point: the lock word is still held)."""
    secs = st.sections
    for i in range(len(secs) - 1, -1, -1):
        if secs[i] is sec:
            del secs[i]
            st.preempt_count -= 1
            return
    exit_atomic(sec, st)  # Not open on this thread: raises the unbalanced report.


class Guard(NotThreadSafe, Generic[T]):
    """Proof that a lock is held; the data is reachable only through it.

    Invariants: while `_end_site` is None (not released), the thread whose state is
    `_st` holds `_lock`, and `_held` is its lockdep entry (for a spinlock also its atomic
    section); `_held` and `_st` are None when the guard was made with checks off.
    """

    __slots__ = ("_end_site", "_held", "_lock", "_lt", "_st", "origin_site")

    _lock: Lock[T]
    _lt: Lifetime | None
    _end_site: Site | None
    _held: lockdep.HeldLock | None
    _st: ThreadState | None
    origin_site: Site

    def __init__(self, lock: Lock[T], site: Site, held: lockdep.HeldLock | None) -> None:
        self._lock = lock
        self.origin_site = site
        self._held = held
        self._st = ctx.st if held is not None else None
        self._end_site = None
        self._lt = None

    @property
    def _sec(self) -> AtomicSection | None:
        """The atomic section the holder runs in (a spinlock's lockdep entry), if any."""
        h = self._held
        return h if h is not None and h.kind == "spinlock" else None

    # --- data access -------------------------------------------------------

    def _dead(self, use: str) -> LifetimeError:
        return LifetimeError(
            f"{use} through a guard after it was released",
            obj=self._lock.describe(),
            site=here(),
            origin=self._end_site,
            origin_label="the guard was released",
            notes=[("the lock was taken", self.origin_site)],
        )

    @property
    def data(self) -> T:
        """The protected value (`&*guard`)."""
        if self._end_site is not None and STATE.on:
            raise self._dead("read of the protected data")
        return self._lock._data

    @data.setter
    def data(self, value: T) -> None:
        if self._end_site is not None and STATE.on:
            raise self._dead("write of the protected data")
        self._lock._data = value

    def replace(self, value: T) -> T:
        """`core::mem::replace(&mut *guard, value)`."""
        old = self.data
        self.data = value
        return old

    def ref(self) -> Ref[T]:
        """A reference to the data that dies with this guard."""
        return Ref(self.data, self.lifetime)

    @property
    def lifetime(self) -> Lifetime:
        """The guard's critical section, for references derived from it."""
        lt = self._lt
        if lt is None:
            lt = self._lt = Lifetime(
                f"data of {self._lock.describe()}",
                self.origin_site,
                begin_label="the lock was taken",
            )
            if self._end_site is not None:
                lt.end(self._end_site, "the guard was released")
        return lt

    @property
    def lock(self) -> Lock[T]:
        return self._lock

    def is_held(self) -> bool:
        return self._end_site is None

    # --- release -------------------------------------------------------------

    def drop(self) -> None:
        """Release the lock (`drop(guard)`)."""
        self._release(_getframe(1))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._end_site is None:
            self._release(_getframe(1))

    def _release(self, f: FrameType) -> None:
        """Release for a caller whose frame is `f`; violations are raised before any effect."""
        held = self._held
        if held is None:
            # Made with checks off: nothing was recorded, so nothing to undo.
            if self._end_site is not None:
                if STATE.on:
                    raise self._double_unlock(site_of_frame(f))
                return
            end = site_of_frame(f) if STATE.on else UNKNOWN
            self._end_site = end
            if self._lt is not None:
                self._lt.end(end, "the guard was released")
            self._lock._raw.release()
            hook = sched.preempt_hook
            if hook is not None:
                hook()
            return
        # The call site, interned (the fast path of `site_of_frame`, inlined).
        lc = last_code[0]
        site = lc[1].get(f.f_lasti) if lc[0] is f.f_code else None
        if site is None:
            site = site_of_frame(f)
        if self._end_site is not None:
            if STATE.on:
                raise self._double_unlock(site)
            return
        st = ctx.st
        if st is not self._st:
            raise SendError(
                f"{type(self).__name__} released on another thread than the one that locked",
                obj=self._lock.describe(),
                site=site,
                origin=self.origin_site,
                origin_label=(
                    f"the lock was taken on thread '{self._st.thread_name}'"
                    if self._st
                    else "the lock was taken on another thread"
                ),
            )
        hs = st.held
        if hs and hs[-1] is held:
            hs.pop()
            st.chain_key = held.prev_key
        else:
            lockdep.release_in(st, held)
        self._end_site = site
        lt = self._lt
        if lt is not None:
            lt.end(site, "the guard was released")
        if held.kind == "spinlock":
            # The section closes before the lock word is released: from then on another
            # thread may take the lock and reuse its entry.
            secs = st.sections
            if secs and secs[-1] is held:
                secs.pop()
                st.preempt_count -= 1
            else:
                _close_section(st, held)
        self._lock._raw.release()
        hook = sched.preempt_hook
        if hook is not None:
            hook()

    def _double_unlock(self, site: Site) -> LockError:
        return LockError(
            "guard released twice (unlock of a lock not held)",
            rule="double-unlock",
            obj=self._lock.describe(),
            site=site,
            origin=self._end_site,
            origin_label="the guard was already released",
            notes=[("the lock was taken", self.origin_site)],
        )

    # --- condvar support -------------------------------------------------------

    def _unlock_for_wait(self) -> None:
        """Release the lock for a condvar wait; the guard stays (the wait re-takes it)."""
        held = self._held
        if held is not None:
            st = ctx.st
            lockdep.release_in(st, held)
            if held.kind == "spinlock":
                _close_section(st, held)
        self._lock._raw.release()
        sched.preempt_point()

    def _relock_after_wait(self, site: Site) -> None:
        """Re-take the lock after a condvar wait, recorded at `site`."""
        lk = self._lock
        if self._held is None:
            lk._raw.acquire()
            return
        st = ctx.st
        prev, key = lk._order_key(st, site)
        lk._raw.acquire()
        self._held = lk._push(st, site, prev, key)

    def describe(self) -> str:
        return f"{type(self).__name__} of {self._lock.describe()}"


class SpinLockGuard(Guard[T]):
    """A held `SpinLock`: the holder is in atomic context until it is dropped."""

    __slots__ = ()


class MutexGuard(Guard[T]):
    """A held `Mutex`."""

    __slots__ = ()


class SpinLock(Lock[T]):
    """`SpinLock<T>` (spinlock_t): holding it disables preemption.

    Invariants: a thread holding it is in atomic context (`in_atomic()`).
    """

    kind = "SpinLock"
    _guard_type = SpinLockGuard
    _atomic = True
    __slots__ = ()

    def lock(self, *, nested: int = 0) -> SpinLockGuard[T]:
        """Acquire; never sleeps, but the holder may not sleep either."""
        return self._acquire(_getframe(1), nested, False)  # type: ignore[return-value]

    def try_lock(self) -> SpinLockGuard[T] | None:
        return self._acquire(_getframe(1), 0, True)  # type: ignore[return-value]


class Mutex(Lock[T]):
    """`Mutex<T>` (struct mutex): `lock()` may sleep."""

    kind = "Mutex"
    _guard_type = MutexGuard
    __slots__ = ()

    @may_sleep
    def lock(self, *, nested: int = 0) -> MutexGuard[T]:
        """Acquire, sleeping if contended. Must not be called in atomic context."""
        # Frame 1 is the `@may_sleep` wrapper; the caller is one further up.
        return self._acquire(_getframe(2), nested, False)  # type: ignore[return-value]

    def try_lock(self) -> MutexGuard[T] | None:
        """Acquire if free; never sleeps (usable from a shrinker)."""
        return self._acquire(_getframe(1), 0, True)  # type: ignore[return-value]
