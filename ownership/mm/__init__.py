"""Memory management (rust/kernel/mm.rs): `Mm`, `MmWithUser`, `MmWithUserAsync` and the
guards of the mmap lock and the per-VMA lock.

One `struct mm_struct`, three Rust types, because the refcount you hold decides what you
may do (seed 003):

* `Mm` - kept alive by `mmgrab`/`mmdrop` (`mm_count`): the struct exists, but the address
  space may already be gone. Safe even when `mm_users == 0`: `mmget_not_zero()`.
* `MmWithUser` - kept alive by `mmget`/`mmput` (`mm_users > 0`): the address space exists,
  so only here are the locks: `mmap_read_lock`, `mmap_read_trylock`, `mmap_write_lock`,
  `lock_vma_under_rcu`. Dropping an `ARef[MmWithUser]` runs `mmput`, which may tear the
  address space down and so may sleep.
* `MmWithUserAsync` (in `mmput_async`) - the same count, dropped with `mmput_async`,
  which defers the teardown to a workqueue and is safe in atomic context.

`MmWithUser` is an `Mm` (Rust's `Deref`), `ARef.from_ref(x)` takes the reference kind of
`type(x)`, and `mm_with_user.as_mm()` is the plain `Mm` view for an `mmgrab` reference.
The views of one `mm_struct` are cached, so `a.mm() is b.mm()` compares address spaces
(`ptr::eq`); `==` does the same across view types.

The guards (`MmapReadGuard`, `MmapWriteGuard`, `VmaReadGuard`) are `!Send` (Boqun Feng's
review: an rw_semaphore has strict owner semantics), context managers with `drop()`,
record where they were taken (`origin_site`) and own the `Lifetime` that every
`VmAreaRef` they hand out holds. Using an `Mm` after its last `mmdrop` is a
`RefcountError`; using an `MmWithUser` after the last `mmput` too.

Lock order (Documentation/mm/process_addrs.rst, declared to lockdep by the simulated
kernel): mmap lock -> VMA lock. A VMA read lock taken under the mmap read lock is fine;
`mmap_read_lock` while holding a VMA read lock is reported as a lock-order inversion.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Protocol, Self, TypeVar

from .. import lockdep, sched
from ..aref import ARef
from ..bindings import mm as _c
from ..bindings.mm_types import MmStruct, VmAreaStruct
from ..borrow import Lifetime
from ..config import STATE
from ..context import may_sleep
from ..errors import LifetimeError, LockError, RefcountError, SendError, UnsafeError
from ..marker import NotThreadSafe, impl_send, impl_sync, not_send, not_sync
from ..prim import usize
from ..site import Site, here
from ..unsafe import unsafe, unsafe_fn
from ..view import CView
from .virt import VmAreaMut, VmAreaRef

__all__ = [
    "Mm",
    "MmWithUser",
    "MmWithUserAsync",
    "MmapReadGuard",
    "MmapWriteGuard",
    "VmaReadGuard",
]

_Raw = TypeVar("_Raw")  # what a guard's unlock function takes: an mm_struct or a VMA


@impl_send("It is safe to call mmdrop on another thread than where mmgrab was called")
@impl_sync("All methods on Mm can be called in parallel from several threads")
class Mm(CView[MmStruct]):
    """A `struct mm_struct`, refcounted with `mmgrab`.

    Invariants: values of this type are always refcounted using `mmgrab`; `_mm` is not
    freed while a reference exists (checked: a use after the last `mmdrop` is a
    `RefcountError`).
    """

    __slots__ = ("_mm",)

    def __init__(self, raw: MmStruct) -> None:
        self._mm = raw

    @classmethod
    @unsafe_fn(
        safety="`ptr` points at an mm_struct that is not deallocated during the lifetime "
        "the caller uses the result for.",
        checked="an mm_struct already freed is an UnsafeError; a later use after the last "
        "mmdrop is a RefcountError",
    )
    def from_raw(cls, ptr: MmStruct) -> Self:
        """Obtain a reference from a raw `mm_struct`.

        Safety: `ptr` points at an `mm_struct` that is not freed while the result is used
        (for `MmWithUser`: whose `mm_users` stays non-zero that long).
        """
        if not isinstance(ptr, MmStruct):
            raise TypeError(f"{cls.__name__}.from_raw takes an mm_struct, got {type(ptr).__name__}")
        if STATE.on:
            cls._check_from_raw(ptr)
        return cls._view(ptr)

    @classmethod
    def _check_from_raw(cls, ptr: MmStruct) -> None:
        if ptr.freed:
            raise UnsafeError(
                f"{cls.__name__}::from_raw on a freed mm_struct",
                rule="mm-from-raw-invalid",
                obj=ptr.describe(),
                site=here(),
                origin=ptr.freed_at,
                origin_label="the mm_struct was freed by the last mmdrop()",
            )

    def _live(self, use: str) -> MmStruct:
        mm = self._mm
        if mm.freed_at is not None and STATE.on:
            raise RefcountError(
                f"{use} on an mm_struct after its last mmdrop (use after free)",
                rule="mm-use-after-free",
                obj=mm.describe(),
                site=here(),
                origin=mm.freed_at,
                origin_label="the mm_struct was freed by the last mmdrop()",
            )
        return mm

    def as_raw(self) -> MmStruct:
        """The raw `struct mm_struct *`."""
        return self._live("as_raw")

    def describe(self) -> str:
        return f"{type(self).__name__}({self._mm.describe()})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mm) and other._mm is self._mm

    def __hash__(self) -> int:
        return id(self._mm)

    # --- AlwaysRefCounted ---------------------------------------------------------

    def inc_ref(self) -> None:
        """`mmgrab`."""
        # SAFETY: the existence of `&self` means the mm_struct is alive (checked).
        _c.mmgrab(self._live("mmgrab"))

    @may_sleep
    def dec_ref(self) -> None:
        """`mmdrop`; the destructor of `ARef[Mm]` may sleep."""
        # SAFETY: the caller owns the mmgrab reference it gives back.
        _c.mmdrop(self._live("mmdrop"))

    # --- methods that are safe even when mm_users == 0 ------------------------------

    def mmget_not_zero(self) -> ARef[MmWithUser] | None:
        """An `mmget` reference, unless `mm_users` already reached zero (never sleeps)."""
        mm = self._live("mmget_not_zero")
        # SAFETY: the mm_struct is alive (we hold a reference to it).
        if not _c.mmget_not_zero(mm):
            return None
        with unsafe("SAFETY: we just took an mmget reference, which the new ARef takes over."):
            return ARef.from_raw(MmWithUser._view(mm))


@impl_send("It is safe to call mmput on another thread than where mmget was called")
@impl_sync("All methods on MmWithUser can be called in parallel from several threads")
class MmWithUser(Mm):
    """A `struct mm_struct` with `mm_users > 0`, refcounted with `mmget`.

    Invariants: values of this type are always refcounted using `mmget`; `mm_users` is
    non-zero while it is used (checked: a use after the last `mmput` is a `RefcountError`).
    """

    __slots__ = ()

    @classmethod
    def _check_from_raw(cls, ptr: MmStruct) -> None:
        super()._check_from_raw(ptr)
        if ptr.mm_users.read() == 0:
            raise UnsafeError(
                f"{cls.__name__}::from_raw on an mm_struct whose mm_users is zero",
                rule="mm-from-raw-invalid",
                obj=ptr.describe(),
                site=here(),
                origin=ptr.mm_users.zero_site,
                origin_label="mm_users reached zero (the last mmput)",
            )

    def _live(self, use: str) -> MmStruct:
        mm = super()._live(use)
        if STATE.on and mm.mm_users.read() == 0 and not mm.mm_users.saturated:
            raise RefcountError(
                f"{use} on an MmWithUser after the last mmput (mm_users is zero)",
                rule="mm-users-zero",
                obj=mm.describe(),
                site=here(),
                origin=mm.mm_users.zero_site,
                origin_label="mm_users reached zero (the last mmput)",
            )
        return mm

    def as_mm(self) -> Mm:
        """The `Mm` view (`&**self`), for an `mmgrab` reference with `ARef.from_ref`."""
        return Mm._view(self._live("as_mm"))

    def inc_ref(self) -> None:
        """`mmget`."""
        # SAFETY: `&self` implies mm_users > 0, so mmget is allowed (checked in `_live`).
        _c.mmget(self._live("mmget"))

    @may_sleep
    def dec_ref(self) -> None:
        """`mmput`; the last one tears the address space down, so it may sleep.

        The last count while an mmap lock guard of this address space lives (it borrows
        the reference) is refused (`drop-while-borrowed`) before the count changes: the
        teardown would run under the lock it must take.
        """
        mm = self._live("mmput")
        if STATE.on and mm.mm_users.read() == 1:
            guards = _live_mmap_guards.get(id(mm))
            if guards:
                g = guards[-1]
                raise LifetimeError(
                    "drop of the last mm_users reference while an mmap lock guard borrowing "
                    "it lives",
                    rule="drop-while-borrowed",
                    obj=f"ARef<{type(self).__name__}> of {mm.owner_comm}:{mm.owner_pid}",
                    site=here(),
                    origin=g.origin_site,
                    origin_label=f"the {type(g).__name__} was taken, and is not released",
                )
        # SAFETY: the caller owns the mmget reference it gives back.
        _c.mmput(mm)

    @staticmethod
    def into_mmput_async(me: ARef[MmWithUser]) -> ARef[MmWithUserAsync]:
        """Keep the same `mmget` count, but drop it with `mmput_async`."""
        if not isinstance(me, ARef) or not isinstance(me.get(), MmWithUser):
            raise TypeError("into_mmput_async takes an ARef[MmWithUser]")
        raw = me.into_raw()._live("into_mmput_async")
        with unsafe(
            "SAFETY: into_raw() gave up the mmget count, which MmWithUserAsync takes over; the "
            "layouts and invariants are the same."
        ):
            return ARef.from_raw(MmWithUserAsync._view(raw))

    # --- locks ----------------------------------------------------------------------

    @may_sleep
    def mmap_read_lock(self) -> MmapReadGuard:
        """Take the mmap read lock (sleeps while a writer holds or waits for it)."""
        mm = self._live("mmap_read_lock")
        site = here()
        # SAFETY: `&self` keeps mm_users > 0, so the mm_struct and its lock are valid.
        token = _c.mmap_read_lock(mm, site)
        # INVARIANT: we just acquired the read lock.
        return MmapReadGuard(self, token, site)

    def mmap_read_trylock(self) -> MmapReadGuard | None:
        """Take the mmap read lock if that needs no sleeping; never sleeps."""
        mm = self._live("mmap_read_trylock")
        site = here()
        ok, token = _c.mmap_read_trylock(mm, site)
        if not ok:
            return None
        # INVARIANT: we just acquired the read lock.
        return MmapReadGuard(self, token, site)

    @may_sleep
    def mmap_write_lock(self) -> MmapWriteGuard:
        """Take the mmap write lock (sleeps until every holder is gone)."""
        mm = self._live("mmap_write_lock")
        site = here()
        token = _c.mmap_write_lock(mm, site)
        # INVARIANT: we just acquired the write lock.
        return MmapWriteGuard(self, token, site)

    def lock_vma_under_rcu(self, vma_addr: int) -> VmaReadGuard | None:
        """Read-lock the VMA at `vma_addr` without the mmap lock; None under contention.

        An optimistic trylock: it fails while the VMA is write-locked or being written,
        and always without `CONFIG_PER_VMA_LOCK` (`Kernel(per_vma_lock=False)`); fall
        back to `mmap_read_lock`. Never sleeps.
        """
        a = usize(vma_addr, "vma_addr")
        mm = self._live("lock_vma_under_rcu")
        site = here()
        got = _c.lock_vma_under_rcu(mm, a, site)
        if got is None:
            return None
        vma, token = got
        # INVARIANT: we just acquired the VMA read lock of `vma`.
        return VmaReadGuard(vma, token, site)


class _GuardFields(Protocol):
    """The attributes `_GuardState` works on; each guard has them in its `__slots__`."""

    _token: lockdep.HeldLock | None
    _tid: int
    _released: bool
    _end_site: Site | None
    _lt: Lifetime
    origin_site: Site


class _GuardState:
    """The state and the release shared by the three guards.

    Invariants: a guard is released once, on the thread `_tid` that took its lock; `_lt`
    ends when it is released.
    """

    # No slots here: `VmaReadGuard` also derives from the slotted `VmAreaRef`, and two
    # bases with slots cannot be combined, so each guard lists these in its `__slots__`
    # (and the methods that assign them take `self: _GuardFields`, not this slot-less type).
    __slots__ = ()
    _token: lockdep.HeldLock | None
    _tid: int
    _released: bool
    _end_site: Site | None
    _lt: Lifetime
    origin_site: Site

    def _start(self: _GuardFields, token: lockdep.HeldLock | None) -> None:
        """Record that the calling thread just took the lock (`token` from lockdep)."""
        self._token = token
        self._tid = sched.current_id()
        self._released = False
        self._end_site = None

    def is_held(self) -> bool:
        return not self._released

    @abstractmethod
    def drop(self) -> None:
        """Release the lock; each guard names its unlock function and calls `_release`."""

    def _release(
        self: _GuardFields,
        what: Callable[[], str],
        unlock: Callable[[_Raw, lockdep.HeldLock | None, Site], None],
        raw: _Raw,
    ) -> None:
        """The body of `drop`: the checks, `unlock(raw, token, site)`, then end `_lt`."""
        if STATE.on:
            if self._released:
                raise LockError(
                    f"{type(self).__name__} released twice",
                    rule="double-unlock",
                    obj=what(),
                    site=here(),
                    origin=self._end_site,
                    origin_label="the guard was already released",
                    notes=[("the lock was taken", self.origin_site)],
                )
            if sched.current_id() != self._tid:
                raise SendError(
                    f"{type(self).__name__} released on another thread than the one that locked "
                    "(rw_semaphore owner semantics)",
                    obj=what(),
                    site=here(),
                    origin=self.origin_site,
                    origin_label=f"the lock was taken on thread {self._tid}",
                )
        site = here()
        unlock(raw, self._token, site)
        self._released = True
        self._end_site = site
        self._lt.end(site, f"the {type(self).__name__} was released")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._released:
            self.drop()


# The unreleased mmap lock guards of each address space (by id of its mm_struct).
_live_mmap_guards: dict[int, list[_MmapGuard]] = {}
_live_mmap_guards_lock = threading.Lock()


class _MmapGuard(NotThreadSafe, _GuardState):
    """What `MmapReadGuard` and `MmapWriteGuard` share (each declares its own Send/Sync).

    Invariants: until released, the thread `_tid` holds the mmap lock of `_mm` in the
    mode `_MODE`; `_lt` ends when it is released.
    """

    __slots__ = ("_end_site", "_lt", "_mm", "_released", "_tid", "_token", "origin_site")
    _MODE: ClassVar[str]

    def __init__(self, mm: MmWithUser, token: lockdep.HeldLock | None, site: Site) -> None:
        self._mm = mm
        self.origin_site = site
        self._start(token)
        c_mm = mm._mm
        with _live_mmap_guards_lock:
            _live_mmap_guards.setdefault(id(c_mm), []).append(self)
        self._lt = Lifetime(
            lambda: f"mmap {self._MODE} lock of {c_mm.owner_comm}:{c_mm.owner_pid}", site
        )

    @property
    def lifetime(self) -> Lifetime:
        """The critical section; references from `vma_lookup` hold it."""
        return self._lt

    def mm(self) -> MmWithUser:
        return self._mm

    def _forget(self) -> None:
        """The guard was released: it no longer borrows its address space."""
        key = id(self._mm._mm)
        with _live_mmap_guards_lock:
            live = _live_mmap_guards.get(key, [])
            if self in live:
                live.remove(self)
            if not live:
                _live_mmap_guards.pop(key, None)

    def describe(self) -> str:
        return f"{type(self).__name__} of {self._mm._mm.mmap_lock.describe()}"

    def _check_held(self, use: str) -> None:
        if self._released and STATE.on:
            self._lt.expired(f"{use} on a released {type(self).__name__}", made=self.origin_site)


@not_send("mmap_read_lock and mmap_read_unlock must be called on the same thread")
@not_sync("a guard is used only by the thread holding the lock")
class MmapReadGuard(_MmapGuard):
    """Owns the mmap read lock of an address space.

    Invariants: until released, the thread `_tid` holds the mmap read lock of `_mm`;
    `_lt` ends when it is released.
    """

    __slots__ = ()
    _MODE = "read"

    def vma_lookup(self, vma_addr: int) -> VmAreaRef | None:
        """The VMA containing `vma_addr`, valid until this guard is released.

        Any address is accepted."""
        self._check_held("vma_lookup")
        a = usize(vma_addr, "vma_addr")
        # SAFETY: we hold the mmap read lock, so the tree is stable; any address is okay.
        vma = _c.vma_lookup(self._mm._mm, a)
        if vma is None:
            return None
        # INVARIANT: the VmAreaRef holds our lifetime, so it is used only while we hold the lock.
        return VmAreaRef(vma, self._lt, here())

    def drop(self) -> None:
        """`mmap_read_unlock` (never sleeps); on another thread, a `SendError`."""
        self._release(self.describe, _c.mmap_read_unlock, self._mm._mm)
        self._forget()


@not_send("mmap_write_lock and mmap_write_unlock must be called on the same thread")
@not_sync("a guard is used only by the thread holding the lock")
class MmapWriteGuard(_MmapGuard):
    """Owns the mmap write lock of an address space.

    Invariants: until released, the thread `_tid` holds the mmap write lock of `_mm`;
    VMAs it hands out are write-locked until then; `_lt` ends when it is released.
    """

    __slots__ = ()
    _MODE = "write"

    @may_sleep
    def vma_lookup(self, vma_addr: int) -> VmAreaMut | None:
        """The VMA containing `vma_addr`, write-locked (`vma_start_write`, which waits for
        the VMA's readers and so may sleep); valid until the guard is released."""
        self._check_held("vma_lookup")
        a = usize(vma_addr, "vma_addr")
        vma = _c.vma_lookup(self._mm._mm, a)
        if vma is None:
            return None
        # SAFETY: we hold the mmap write lock, which vma_start_write requires.
        _c.vma_start_write(vma, here())
        # INVARIANT: the mmap write lock is held and the VMA is write-locked for our lifetime.
        return VmAreaMut(vma, self._lt, here())

    def drop(self) -> None:
        """`mmap_write_unlock`, which also ends every VMA write lock."""
        self._release(self.describe, _c.mmap_write_unlock, self._mm._mm)
        self._forget()


@not_send("vma_end_read must be called on the same thread as where the lock was taken")
@not_sync("a guard is used only by the thread holding the lock")
class VmaReadGuard(NotThreadSafe, VmAreaRef, _GuardState):
    """Owns the VMA read lock of one VMA; it is a `VmAreaRef` to that VMA (Rust's `Deref`).

    Invariants: until released, the thread `_tid` holds the VMA read lock of `_vma`;
    `_lt` (the `VmAreaRef` lifetime) ends when it is released.
    """

    __slots__ = ("_end_site", "_released", "_tid", "_token")

    def __init__(self, vma: VmAreaStruct, token: lockdep.HeldLock | None, site: Site) -> None:
        super().__init__(vma, Lifetime(lambda: f"VMA read lock of {vma.describe()}", site), site)
        self._start(token)

    def drop(self) -> None:
        """`vma_end_read` (never sleeps); on another thread, a `SendError`."""
        self._release(self._vma.describe, _c.vma_end_read, self._vma)


from .mmput_async import MmWithUserAsync  # noqa: E402 - it subclasses MmWithUser.
