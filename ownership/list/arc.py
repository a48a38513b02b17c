"""`ListArc<T, ID>` and `AtomicTracker<ID>` (rust/kernel/list/arc.rs).

A `ListArc` is an `Arc` that also owns the right to touch the item's `ListLinks` of
one id: an item has at most one `ListArc` per id, so whoever holds it (a caller, or the
`List` it was pushed into) has exclusive use of those prev/next pointers. There are two
ways to know that no other `ListArc` exists, as upstream's `ListArcSafe` strategies:

* untracked: the `ListArc` is made from a fresh allocation (`ListArc.new`, upstream's
  `From<UniqueArc<T>>`), so nothing else can hold one. `try_from_arc` is then not
  available (upstream: `T` does not implement `TryNewListArc`), a `TypeError` here.
* tracked by an `AtomicTracker` field: `ListArc.try_from_arc(arc)` succeeds once (an
  atomic compare-and-exchange false -> true) and fails until that `ListArc` is given
  back with `into_arc()` or `drop()` (a release store of false).

Items say which fields serve which id by deriving from `HasListLinks` and setting
`list_fields = {ID: ("links_field", "tracker_field" or None)}` (upstream's
`impl_list_item!` and `impl_list_arc_safe!` macros).

The model checks Rust's move semantics: a `ListArc` is consumed by `push_*` (the list
owns it), `into_arc` and `drop`; any later use is a `RefcountError` (rule
`list-arc-moved`) naming where it was consumed.

Lock order: none; an `AtomicTracker` is an atomic flag, not a lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .. import sched
from ..alloc import GFP_KERNEL, Flags
from ..config import STATE
from ..errors import RefcountError
from ..site import Site, here
from ..sync import Arc, ArcBorrow
from ..unsafe import unsafe, unsafe_fn

if TYPE_CHECKING:
    from . import ListLinks

__all__ = ["AtomicTracker", "HasListLinks", "ListArc"]

T = TypeVar("T")


class AtomicTracker:
    """`AtomicTracker<ID>`: whether a `ListArc` for id `id` exists, as an atomic flag.

    Invariants: if the flag is false, no `ListArc` of this id exists for the item (the
    flag may be true without one only while the one that claimed it is being made).
    """

    __slots__ = ("_flag", "id")

    def __init__(self, id: int = 0) -> None:
        self.id = id
        self._flag = threading.Lock()

    def try_new_list_arc(self) -> bool:
        """`TryNewListArc::try_new_list_arc`: cmpxchg(false, true), Acquire.

        Called by `ListArc.try_from_arc`; a driver does not call it directly.
        """
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic compare-and-exchange: a preemption point under an explorer.
            hook(self)
        return self._flag.acquire(False)

    @unsafe_fn(
        safety="no ListArc of this id exists for the item (it was just allocated)",
        checked="the item's ListLinks record the live ListArc: a second one is an "
        "UnsafeError (list-arc-not-unique)",
    )
    def on_create_list_arc_from_unique(self) -> None:
        """A `ListArc` was made from a fresh allocation: the flag becomes true."""
        self._flag.acquire(False)

    @unsafe_fn(
        safety="the ListArc of this id is gone, and the tracker still thinks it exists",
        checked="the item's ListLinks record the live ListArc: a second one made after a "
        "wrong call is an UnsafeError (list-arc-not-unique)",
    )
    def on_drop_list_arc(self) -> None:
        """The `ListArc` is gone: store false, Release."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic store: a preemption point under an explorer.
            hook(self)
        if self._flag.locked():
            self._flag.release()

    def has_list_arc(self) -> bool:
        """Whether the tracker thinks a `ListArc` exists (for tests and debug output)."""
        return self._flag.locked()

    def __repr__(self) -> str:
        return f"AtomicTracker<{self.id}>({'set' if self._flag.locked() else 'clear'})"


class HasListLinks:
    """An item that can be in `List`s: which field holds the links (and tracker) per id.

    `list_fields` maps a list id to `(links attribute, tracker attribute or None)`;
    None means untracked (only `ListArc.new` can make a `ListArc` of that id).
    """

    __slots__ = ()

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {}

    def list_links(self, id: int) -> ListLinks:
        """`ListItem::view_links`: the `ListLinks` of this item for `id`."""
        try:
            name = type(self).list_fields[id][0]
        except KeyError:
            raise TypeError(f"{type(self).__name__} is not a ListItem<{id}>") from None
        links: ListLinks = getattr(self, name)
        return links

    def list_tracker(self, id: int) -> AtomicTracker | None:
        """The tracker of id `id`, or None when that id is untracked."""
        try:
            name = type(self).list_fields[id][1]
        except KeyError:
            raise TypeError(f"{type(self).__name__} is not ListArcSafe<{id}>") from None
        if name is None:
            return None
        tracker: AtomicTracker = getattr(self, name)
        return tracker


def _item_of(value: object, id: int) -> HasListLinks:
    if not isinstance(value, HasListLinks):
        raise TypeError(f"{type(value).__name__} is not a ListItem<{id}> (derive HasListLinks)")
    return value


class ListArc(Generic[T]):
    """`ListArc<T, ID>`: an `Arc` handle with the exclusive right to be in a list of `id`.

    Invariants: until consumed (`_moved_at` set), this object owns one count of the
    item's `Arc` (`_arc`) and the item's links of `id` are its to use; the item's
    tracker of `id` (if any) is set and the links record this `ListArc` as live.
    """

    __slots__ = ("_arc", "_made_at", "_moved_at", "_type", "id")

    def __init__(self, arc: Arc[T], id: int, site: Site) -> None:
        # Only the constructors below make a ListArc: they established uniqueness.
        self._arc = arc
        self.id = id
        self._type = type(arc.get()).__name__
        self._made_at = site
        self._moved_at: Site | None = None

    # --- construction -------------------------------------------------------------

    @classmethod
    def new(cls, value: T, gfp: Flags = GFP_KERNEL, id: int = 0) -> ListArc[T]:
        """Allocate `value` in a new `Arc` and make its `ListArc` for `id` (`ENOMEM`)."""
        item = _item_of(value, id)
        links = item.list_links(id)
        tracker = item.list_tracker(id)
        site = here()
        links._check_unique(site)
        arc = Arc.new(value, gfp)
        links._list_arc_made(site)
        if tracker is not None:
            # SAFETY: a fresh allocation has no ListArc yet.
            with unsafe("SAFETY: a fresh allocation has no ListArc yet"):
                tracker.on_create_list_arc_from_unique()
        return cls(arc, id, site)

    @classmethod
    def try_from_arc(cls, arc: Arc[T], id: int = 0) -> ListArc[T] | None:
        """Take over `arc` as the item's `ListArc` for `id`, or None if one exists.

        On success `arc` is consumed (its count moves into the `ListArc`); on failure
        the caller keeps it. `TypeError` if `id` is untracked for the item's type.
        """
        value = arc.get()
        item = _item_of(value, id)
        tracker = item.list_tracker(id)
        if tracker is None:
            raise TypeError(
                f"ListArc::try_from_arc: {type(value).__name__} is not TryNewListArc<{id}> "
                "(untracked: only ListArc.new can make its ListArc)"
            )
        if not tracker.try_new_list_arc():
            return None
        site = here()
        # Checked before the handle is consumed: a violation changes nothing.
        item.list_links(id)._list_arc_made(site)
        # The handle's count moves into the ListArc: the caller's handle is consumed.
        moved = arc.clone()
        arc.drop()
        return cls(moved, id, site)

    @classmethod
    def try_from_arc_borrow(cls, borrow: ArcBorrow[T], id: int = 0) -> ListArc[T] | None:
        """As `try_from_arc`, taking a new count from a borrow (`try_from_arc_borrow`)."""
        value = borrow.get()
        item = _item_of(value, id)
        tracker = item.list_tracker(id)
        if tracker is None:
            raise TypeError(f"{type(value).__name__} is not TryNewListArc<{id}> (untracked)")
        if not tracker.try_new_list_arc():
            return None
        site = here()
        item.list_links(id)._list_arc_made(site)
        return cls(borrow.clone_arc(), id, site)

    # --- use ---------------------------------------------------------------------

    def _check(self, use: str) -> None:
        if self._moved_at is not None and STATE.on:
            raise RefcountError(
                f"{use} of a ListArc after it was moved",
                rule="list-arc-moved",
                obj=self.describe(),
                site=here(),
                origin=self._moved_at,
                origin_label="the ListArc was consumed (pushed, into_arc or dropped)",
                notes=[("the ListArc was made", self._made_at)],
            )

    def get(self) -> T:
        """`&*list_arc`."""
        if self._moved_at is not None:
            self._check("dereference")
        return self._arc.get()

    def clone_arc(self) -> Arc[T]:
        """A new plain `Arc` count of the item (`ListArc::clone_arc`)."""
        self._check("clone_arc")
        return self._arc.clone()

    def as_arc(self) -> Arc[T]:
        """The `Arc` inside, borrowed (`ListArc::as_arc`): do not drop it."""
        self._check("as_arc")
        return self._arc

    def as_arc_borrow(self) -> ArcBorrow[T]:
        self._check("as_arc_borrow")
        return self._arc.as_arc_borrow()

    @staticmethod
    def ptr_eq(a: ListArc[Any], b: ListArc[Any]) -> bool:
        return Arc.ptr_eq(a._arc, b._arc)

    def _consume(self, use: str) -> Arc[T]:
        """Mark this handle moved (pushed into a list, or converted) and give its Arc."""
        self._check(use)
        self._moved_at = here()
        return self._arc

    def into_arc(self) -> Arc[T]:
        """Give up the list right, keeping the count as a plain `Arc` (`into_arc`)."""
        arc = self._consume("into_arc")
        item = _item_of(arc.get(), self.id)
        item.list_links(self.id)._list_arc_gone()
        tracker = item.list_tracker(self.id)
        if tracker is not None:
            # SAFETY: this ListArc was the item's one for its id and it is consumed above.
            with unsafe("SAFETY: this ListArc was the item's one for its id and is now gone"):
                tracker.on_drop_list_arc()
        return arc

    def drop(self) -> None:
        """`drop(list_arc)`: give up the list right and the count."""
        self.into_arc().drop()

    def _reissue(self, site: Site) -> ListArc[T]:
        """The `ListArc` a list hands back when it unlinks the item (`ListArc::from_raw`)."""
        return ListArc(self._arc, self.id, site)

    def describe(self) -> str:
        return f"ListArc<{self._type}, {self.id}>"

    def __repr__(self) -> str:
        return self.describe() + (" (moved)" if self._moved_at is not None else "")

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Deref: `list_arc.method()` reaches the item (typed code uses `.get()`).
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self.get(), name)
