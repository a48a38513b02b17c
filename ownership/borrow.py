"""Lifetimes and borrows: the borrow checker's rules, checked when the code runs.

A `Lifetime` is the region for which a reference is valid: a guard's critical
section, an owner's life (a `VBox` until it is dropped), a borrow's scope. Every
reference handed out by a guard or owner holds its lifetime; using it after the
lifetime ended raises `LifetimeError` naming where the reference was made and where
its owner ended. Checking is one attribute load per use.

`BorrowTracker` keeps Rust's aliasing rule for one object, or for byte ranges of it:
any number of shared borrows, or exactly one exclusive borrow. A conflicting borrow
raises `BorrowError` naming the live borrow's site.

`BorrowStack` keeps the same rule the way Miri's Stacked Borrows does, for borrows whose
end Python cannot see (a cursor is dead after its last use, not when it is dropped):
taking or using a borrow never conflicts at once, but an access to the owner through
another path invalidates the borrows it conflicts with (a write every borrow, a read the
exclusive ones), and the next use of an invalidated borrow is a `BorrowError` naming
the use, the access that invalidated it and where the borrow was taken. A borrow may
also hang from a `Lifetime` (the guard of the lock around the owner): used after that
lifetime ended, it is a `LifetimeError`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Generic, NoReturn, TypeVar

from . import sched
from .config import STATE
from .errors import BorrowError, LifetimeError
from .site import UNKNOWN, Site, here, site_of_frame

__all__ = ["Borrow", "BorrowStack", "BorrowTracker", "Lifetime", "Ref", "Tag"]

T = TypeVar("T")


class Lifetime:
    """A region during which references derived from an owner are valid.

    Invariants: `alive` is True until `end()` is called once (it changes only there);
    then `end_site` is where the owner ended. `parent`, if any, must be alive for this
    lifetime to be alive (a borrow of a borrow). `fast` is `alive and parent is None`:
    the one test a reference's deref needs in the common case.
    """

    __slots__ = (
        "_what",
        "alive",
        "begin",
        "begin_label",
        "end_label",
        "end_site",
        "fast",
        "parent",
    )

    def __init__(
        self,
        what: str | Callable[[], str],
        begin: Site | None = None,
        parent: Lifetime | None = None,
        begin_label: str = "the owner was made",
    ) -> None:
        self.alive = True
        self.fast = parent is None
        # A callable is formatted only when a report needs it (the hot path never does).
        self._what = what
        self.begin = begin
        self.begin_label = begin_label
        self.end_site: Site | None = None
        self.end_label = "the owner ended"
        self.parent = parent

    @property
    def what(self) -> str:
        """What the lifetime belongs to, for reports."""
        w = self._what
        return w if isinstance(w, str) else w()

    def end(self, site: Site | None = None, label: str | None = None) -> None:
        self.fast = False
        self.alive = False
        self.end_site = site if site is not None else here()
        if label:
            self.end_label = label

    def is_alive(self) -> bool:
        lt: Lifetime | None = self
        while lt is not None:
            if not lt.alive:
                return False
            lt = lt.parent
        return True

    def check(self, use: str) -> None:
        """Raise `LifetimeError` if the lifetime (or a parent) ended."""
        if not STATE.on:
            return
        lt: Lifetime | None = self
        while lt is not None:
            if not lt.alive:
                lt.expired(use, made=self.begin)
            lt = lt.parent

    def expired(self, use: str, made: Site | None = None) -> NoReturn:
        notes: list[tuple[str, Site | None]] = []
        if made is not None and made is not UNKNOWN:
            notes.append(("the reference was made", made))
        if self.begin is not None and self.begin != made:
            notes.append((self.begin_label, self.begin))
        raise LifetimeError(
            f"{use} after its lifetime ended",
            obj=self.what,
            site=here(),
            origin=self.end_site,
            origin_label=self.end_label,
            notes=notes,
        )


class Ref(Generic[T]):
    """`&'a T`: a reference that dies with the lifetime it was derived from.

    Invariants: `_target` is valid while `_lt` (and its parents) are alive; `_site` is
    where the reference was made (UNKNOWN when made with checks off).
    """

    __slots__ = ("_lt", "_site", "_target")

    def __init__(self, target: T, lifetime: Lifetime, site: Site | None = None) -> None:
        if not isinstance(lifetime, Lifetime):
            raise TypeError(f"Ref needs a Lifetime, got {type(lifetime).__name__}")
        self._target = target
        self._lt = lifetime
        if site is None:
            site = site_of_frame(sys._getframe(1)) if STATE.on else UNKNOWN
        self._site = site

    def get(self) -> T:
        """Dereference; a `LifetimeError` if the owner or guard has ended.

        Cost while alive and unnested: two attribute loads and one test.
        """
        if self._lt.fast:
            return self._target
        self._check_chain()
        return self._target

    def _check_chain(self) -> None:
        lt: Lifetime | None = self._lt
        while lt is not None:
            if not lt.alive and STATE.on:
                lt.expired("dereference of a reference", made=self._site)
            lt = lt.parent

    @property
    def lifetime(self) -> Lifetime:
        return self._lt

    @property
    def site(self) -> Site:
        """Where the reference was made."""
        return self._site


class Borrow:
    """One live borrow recorded in a `BorrowTracker`."""

    __slots__ = ("end", "exclusive", "owner", "site", "start", "tid")

    def __init__(
        self, owner: BorrowTracker, exclusive: bool, start: int, end: int, site: Site
    ) -> None:
        self.owner = owner
        self.exclusive = exclusive
        self.start = start
        self.end = end
        self.site = site
        self.tid = sched.current_id()

    def release(self) -> None:
        self.owner.release(self)

    def __enter__(self) -> Borrow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class BorrowTracker:
    """Shared-xor-exclusive borrows of one object (or of byte ranges of it).

    Invariants: no two live borrows overlap unless both are shared.
    """

    __slots__ = ("_lock", "live", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.live: list[Borrow] = []
        self._lock = threading.Lock()

    def acquire(
        self, exclusive: bool, start: int = 0, end: int = 1, site: Site | None = None
    ) -> Borrow:
        """Record a borrow of `[start, end)`; `BorrowError` if it conflicts."""
        if type(start) is not int or type(end) is not int:
            raise TypeError(f"borrow range must be ints, got {start!r}, {end!r}")
        if not 0 <= start < end:
            raise ValueError(f"borrow range [{start}, {end}) is empty or negative")
        s = site if site is not None else here()
        b = Borrow(self, exclusive, start, end, s)
        if not STATE.on:
            return b
        with self._lock:
            for other in self.live:
                if other.start < end and start < other.end and (exclusive or other.exclusive):
                    kind = "exclusive" if exclusive else "shared"
                    okind = "exclusive" if other.exclusive else "shared"
                    where = "" if (start, end) == (0, 1) else f" of bytes [{start}, {end})"
                    cross = " on another thread" if other.tid != b.tid else ""
                    raise BorrowError(
                        f"{kind} borrow{where} while a{'n' if okind == 'exclusive' else ''} "
                        f"{okind} borrow is live{cross}",
                        obj=self.what,
                        site=s,
                        origin=other.site,
                        origin_label=f"the {okind} borrow was taken",
                    )
            self.live.append(b)
        return b

    def release(self, b: Borrow) -> None:
        with self._lock:
            try:
                self.live.remove(b)
            except ValueError:
                pass

    def shared(self, site: Site | None = None) -> Borrow:
        return self.acquire(False, site=site)

    def exclusive(self, site: Site | None = None) -> Borrow:
        return self.acquire(True, site=site)


class Tag:
    """One borrow in a `BorrowStack`: valid until an access through another path pops it.

    Invariants: `invalidated_at` is None while the borrow is valid; once set (by the
    owner's `BorrowStack.access`) it never changes back. `parent`, if any, is the
    lifetime the borrow may not outlive (the guard of the lock around the owner).
    """

    __slots__ = (
        "exclusive",
        "invalidated_at",
        "invalidated_how",
        "owner",
        "parent",
        "site",
        "what",
    )

    def __init__(
        self,
        owner: BorrowStack,
        what: str,
        exclusive: bool,
        site: Site,
        parent: Lifetime | None,
    ) -> None:
        self.owner = owner
        self.what = what
        self.exclusive = exclusive
        self.site = site
        self.parent = parent
        self.invalidated_at: Site | None = None
        self.invalidated_how = ""

    def use(self, use: str) -> None:
        """Check the borrow before `use`: `BorrowError` if invalidated, `LifetimeError` if
        it outlived its parent lifetime."""
        if not STATE.on:
            return
        parent = self.parent
        if parent is not None and not parent.fast:
            lt: Lifetime | None = parent
            while lt is not None:
                if not lt.alive:
                    raise LifetimeError(
                        f"{use} of {self.what} after its lifetime ended",
                        obj=lt.what,
                        site=here(),
                        origin=lt.end_site,
                        origin_label=lt.end_label,
                        notes=[(f"{self.what} was made", self.site)],
                    )
                lt = lt.parent
        if self.invalidated_at is not None:
            raise BorrowError(
                f"{use} of {self.what} after the {self.owner.what} was {self.invalidated_how} "
                "through another path",
                rule="borrow-invalidated",
                obj=self.owner.what,
                site=here(),
                origin=self.invalidated_at,
                origin_label=f"the {self.owner.what} was {self.invalidated_how} here",
                notes=[(f"{self.what} was made", self.site)],
            )

    def is_valid(self) -> bool:
        return self.invalidated_at is None

    def release(self) -> None:
        """End the borrow early (its last use); later accesses no longer concern it."""
        self.owner.release(self)


class BorrowStack:
    """Borrows of one owner checked the Stacked Borrows way (see the module docstring).

    Invariants: `_tags` holds the borrows not yet invalidated nor released; a write
    access leaves only the tag it was made through, a read access no exclusive tag but
    that one.
    """

    __slots__ = ("_lock", "_tags", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._tags: list[Tag] = []
        self._lock = threading.Lock()

    def borrow(
        self,
        what: str,
        exclusive: bool,
        site: Site | None = None,
        parent: Lifetime | None = None,
    ) -> Tag:
        """Take a borrow; taking it is an access (a write for an exclusive one)."""
        s = site if site is not None else here()
        self.access(exclusive, s)
        t = Tag(self, what, exclusive, s, parent)
        if STATE.on:
            with self._lock:
                self._tags.append(t)
        return t

    def access(self, write: bool, site: Site | None = None, through: Tag | None = None) -> None:
        """An access to the owner (through `through`, or directly): invalidate the
        borrows it conflicts with."""
        if not self._tags or not STATE.on:
            return
        s = site if site is not None else here()
        how = "changed" if write else "read"
        with self._lock:
            keep: list[Tag] = []
            for t in self._tags:
                if t is through or (not write and not t.exclusive):
                    keep.append(t)
                else:
                    t.invalidated_at = s
                    t.invalidated_how = how
            self._tags = keep

    def release(self, tag: Tag) -> None:
        with self._lock:
            try:
                self._tags.remove(tag)
            except ValueError:
                pass

    def live(self) -> int:
        """How many borrows are neither invalidated nor released."""
        return len(self._tags)
