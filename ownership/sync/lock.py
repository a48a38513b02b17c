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

Each acquisition goes through lockdep (`ownership.sync.lockdep`) before blocking, so an
AB-BA order is reported even when the run does not deadlock. Locks are `Pinned`: they
are built in place (`SpinLock(value, name="...")`) and never move.

Lock order: none taken here; each lock is independent.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, Self, TypeVar

from .. import sched
from ..borrow import Lifetime, Ref
from ..config import STATE
from ..context import AtomicSection, enter_atomic, exit_atomic, may_sleep
from ..errors import LifetimeError, LockError, SendError
from ..marker import NotThreadSafe
from ..pin import Pinned
from ..site import Site, here
from . import lockdep

__all__ = ["Guard", "Lock", "Mutex", "MutexGuard", "SpinLock", "SpinLockGuard"]

T = TypeVar("T")


class Lock(Pinned, Generic[T]):
    """A lock protecting a `T`; the class name given is the lockdep class.

    Invariants: `_raw` is held iff exactly one live guard for this lock exists;
    `_data` is only read or written through that guard.
    """

    kind = "lock"
    _guard_type: type[Guard[Any]]

    __slots__ = ("__ownership_pinned_at__", "_cls", "_data", "_name", "_raw")

    def __init__(self, data: T, name: str | None = None) -> None:
        site = here()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"lock name must be a str, got {type(name).__name__}")
        self._name = name if name is not None else f"{type(self).__name__}@{site.short()}"
        self._data = data
        self._raw = sched.active().raw_lock()
        self._cls = lockdep.lock_class(self._name, self.kind, site)
        # INVARIANT: the lock is pinned where it is built, as `new_spinlock!` in `pin_init!`.
        self._pin_here(site)

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        return f"{self.kind} '{self._name}'"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def _make_guard(
        self, site: Site, held: lockdep.HeldLock | None, sec: AtomicSection | None
    ) -> Guard[T]:
        return self._guard_type(self, site, held, sec)

    def _lock(self, site: Site, nested: int) -> Guard[T]:
        if not STATE.on:
            self._raw.acquire()
            return self._make_guard(site, None, None)
        sec = self._enter(site)
        try:
            held = lockdep.acquire(self._cls, self, site, nested=nested)
        except BaseException:
            if sec is not None:
                exit_atomic(sec)
            raise
        self._raw.acquire()
        return self._make_guard(site, held, sec)

    def _try_lock(self, site: Site) -> Guard[T] | None:
        if not self._raw.acquire(False):
            return None
        if not STATE.on:
            return self._make_guard(site, None, None)
        sec = self._enter(site)
        held = lockdep.acquire(self._cls, self, site, trylock=True)
        return self._make_guard(site, held, sec)

    def _enter(self, site: Site) -> AtomicSection | None:
        return None

    def __ownership_is_send__(self) -> bool:
        from ..marker import is_send

        return is_send(self._data)

    def __ownership_is_sync__(self) -> bool:
        from ..marker import is_send

        return is_send(self._data)


class Guard(NotThreadSafe, Generic[T]):
    """Proof that a lock is held; the data is reachable only through it.

    Invariants: while `_released` is False, the calling thread `_tid` holds `_lock`;
    `_held` is its lockdep entry (None when made with checks off).
    """

    __slots__ = ("_end_site", "_held", "_lock", "_lt", "_released", "_sec", "_tid", "origin_site")

    def __init__(
        self,
        lock: Lock[T],
        site: Site,
        held: lockdep.HeldLock | None,
        sec: AtomicSection | None,
    ) -> None:
        self._lock = lock
        self.origin_site = site
        self._held = held
        self._sec = sec
        self._tid = threading.get_ident()
        self._released = False
        self._lt: Lifetime | None = None
        self._end_site: Site | None = None

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
        if self._released and STATE.on:
            raise self._dead("read of the protected data")
        return self._lock._data

    @data.setter
    def data(self, value: T) -> None:
        if self._released and STATE.on:
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
            lt = self._lt = Lifetime(f"data of {self._lock.describe()}", self.origin_site)
            if self._released:
                lt.end(self._end_site, "the guard was released")
        return lt

    @property
    def lock(self) -> Lock[T]:
        return self._lock

    def is_held(self) -> bool:
        return not self._released

    # --- release -------------------------------------------------------------

    def drop(self) -> None:
        """Release the lock (`drop(guard)`)."""
        if self._released:
            if STATE.on:
                raise LockError(
                    "guard released twice (unlock of a lock not held)",
                    rule="double-unlock",
                    obj=self._lock.describe(),
                    site=here(),
                    origin=self._end_site,
                    origin_label="the guard was already released",
                    notes=[("the lock was taken", self.origin_site)],
                )
            return
        if self._held is not None:
            if threading.get_ident() != self._tid:
                raise SendError(
                    f"{type(self).__name__} released on another thread than the one that locked",
                    obj=self._lock.describe(),
                    site=here(),
                    origin=self.origin_site,
                    origin_label=f"the lock was taken on thread {self._tid}",
                )
            lockdep.release(self._held)
        self._released = True
        if STATE.on:
            self._end_site = here()
            if self._lt is not None:
                self._lt.end(self._end_site, "the guard was released")
        self._lock._raw.release()
        if self._sec is not None:
            exit_atomic(self._sec)
        else:
            sched.active().preempt_point()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._released:
            self.drop()

    # --- condvar support -------------------------------------------------------

    def _unlock_for_wait(self) -> None:
        if self._held is not None:
            lockdep.release(self._held)
        self._lock._raw.release()
        if self._sec is not None:
            exit_atomic(self._sec)

    def _relock_after_wait(self, site: Site) -> None:
        lk = self._lock
        if self._held is not None:
            self._sec = lk._enter(site)
            self._held = lockdep.acquire(lk._cls, lk, site)
        lk._raw.acquire()

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
    __slots__ = ()

    def lock(self, *, nested: int = 0) -> SpinLockGuard[T]:
        """Acquire; never sleeps, but the holder may not sleep either."""
        g = self._lock(here(), nested)
        return g  # type: ignore[return-value]

    def try_lock(self) -> SpinLockGuard[T] | None:
        return self._try_lock(here())  # type: ignore[return-value]

    def _enter(self, site: Site) -> AtomicSection | None:
        return enter_atomic("spinlock", f"SpinLock '{self._name}'", site)


class Mutex(Lock[T]):
    """`Mutex<T>` (struct mutex): `lock()` may sleep."""

    kind = "Mutex"
    _guard_type = MutexGuard
    __slots__ = ()

    @may_sleep
    def lock(self, *, nested: int = 0) -> MutexGuard[T]:
        """Acquire, sleeping if contended. Must not be called in atomic context."""
        return self._lock(here(), nested)  # type: ignore[return-value]

    def try_lock(self) -> MutexGuard[T] | None:
        """Acquire if free; never sleeps (usable from a shrinker)."""
        return self._try_lock(here())  # type: ignore[return-value]
