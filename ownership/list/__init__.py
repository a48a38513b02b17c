"""Intrusive doubly linked lists of `ListArc`s (rust/kernel/list.rs).

A `List` of id `ID` holds `ListArc`s: an item is linked through its own `ListLinks`
field of that id (the prev/next pointers live in the item, so pushing never allocates
and can be done under a spinlock). An item may be in several lists at once only through
different ids, one `ListLinks` field each; the one `ListArc` per id (`ownership.list.arc`)
is what makes the pointers of an id exclusive to one list.

What upstream makes a compile error or an unsafe contract, the model checks:

* `List.remove(item)` is an `unsafe fn`, as upstream: its Safety ("the item is in this
  list, or in no list with this id") is checked, and an item that sits in another list
  of the same id is an `UnsafeError` (rule `list-remove-wrong-list`) naming both lists,
  where the item was inserted and, if the other list got it by `take()` (`mem::take`),
  where that happened. This is the bug of CVE-2025-68260 in Rust Binder.
* Iterators and cursors borrow the list (`&List` and `&mut List`): pushing, popping or
  removing while one is live is a `BorrowError` (rule `list-borrowed`) naming where the
  iterator or cursor was made. An iterator ends when it is exhausted, closed or
  collected; a cursor when its `with` block ends or `close()` is called.
* A list is pushed only `ListArc`s of its own id (a `TypeError`, a type error upstream).

Every check runs before the list changes. `List.drop()` pops and drops every element, as
upstream's `Drop`; a list merely forgotten keeps its elements' counts (`mem::forget`).

Upstream counterparts: `List<T, ID>` (`List`), `ListLinks<ID>` (`ListLinks`),
`ListArc<T, ID>` and `AtomicTracker<ID>` (`ownership.list.arc`), `Iter` (`Iter`),
`Cursor` and `CursorPeek` (`Cursor`, `CursorPeek`), `impl_list_item!` and
`impl_list_arc_safe!` (`HasListLinks.list_fields`).

Lock order: a list has no lock of its own (upstream it lives behind the driver's lock);
one module lock, a leaf, keeps the model's bookkeeping of every list consistent when a
driver races, so that the race is reported instead of corrupting the model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from ..config import STATE
from ..errors import BorrowError, UnsafeError
from ..site import Site, here
from ..unsafe import unsafe_fn
from .arc import AtomicTracker, HasListLinks, ListArc

__all__ = [
    "AtomicTracker",
    "Cursor",
    "CursorPeek",
    "HasListLinks",
    "Iter",
    "List",
    "ListArc",
    "ListLinks",
]

T = TypeVar("T")

# The model's bookkeeping lock (a leaf): every list operation holds it while it checks
# and changes links, so a racing driver is reported rather than corrupting the lists.
_lock = threading.RLock()


class ListLinks:
    """`ListLinks<ID>`: the prev/next pointers of one item for lists of id `id`.

    Invariants: `list` is the `List` the item is in (None when in none); `prev`/`next`
    are its neighbours there (None exactly when `list` is None); `inserted_at` is where
    it was pushed (into the list named `inserted_into`) and `taken_at` where its list
    was last moved by `take()`;
    `arc_site` is where the live `ListArc` of this id was made while one exists outside
    a list (None otherwise).
    """

    __slots__ = (
        "arc_site",
        "id",
        "inserted_at",
        "inserted_into",
        "item",
        "list",
        "next",
        "prev",
        "taken_at",
    )

    def __init__(self, id: int = 0) -> None:
        self.id = id
        self.list: List[Any] | None = None
        self.prev: ListLinks | None = None
        self.next: ListLinks | None = None
        self.item: ListArc[Any] | None = None
        self.inserted_at: Site | None = None
        self.inserted_into = ""
        self.taken_at: Site | None = None
        self.arc_site: Site | None = None

    def is_linked(self) -> bool:
        return self.list is not None

    def _check_unique(self, site: Site) -> None:
        """A second `ListArc` for this id would alias the pointers: `UnsafeError`."""
        if not STATE.on:
            return
        other = self.arc_site if self.list is None else self.inserted_at
        if self.arc_site is not None or self.list is not None:
            where = "held" if self.list is None else f"in {self.list.name}"
            raise UnsafeError(
                f"a second ListArc<{self.id}> for an item whose ListArc is {where}",
                rule="list-arc-not-unique",
                obj=f"ListLinks<{self.id}>",
                site=site,
                origin=other,
                origin_label="the existing ListArc was made"
                if self.list is None
                else "the item was inserted",
            )

    def _list_arc_made(self, site: Site) -> None:
        self._check_unique(site)
        self.arc_site = site

    def _list_arc_gone(self) -> None:
        self.arc_site = None

    def __repr__(self) -> str:
        where = self.list.name if self.list is not None else "no list"
        return f"ListLinks<{self.id}>({where})"


def _links(value: object, id: int) -> ListLinks:
    if not isinstance(value, HasListLinks):
        raise TypeError(f"{type(value).__name__} is not a ListItem<{id}> (derive HasListLinks)")
    return value.list_links(id)


class _Borrows:
    """The live iterators (shared) and cursor (exclusive) of one list."""

    __slots__ = ("cursor", "iters")

    def __init__(self) -> None:
        self.iters: dict[int, Site] = {}
        self.cursor: tuple[int, Site] | None = None


class List(Generic[T]):
    """`List<T, ID>`: an intrusive list owning a `ListArc` of each element.

    Invariants: `_first` is None iff the list is empty; the elements' `ListLinks` of
    `id` form a cycle through `prev`/`next`, each with `list` set to this list and
    `item` the `ListArc` the list owns; no element's links are used by another list.
    """

    __slots__ = ("_borrows", "_first", "created_at", "id", "name")

    def __init__(self, id: int = 0, name: str | None = None) -> None:
        self.id = id
        self._first: ListLinks | None = None
        self.created_at = here()
        self.name = name if name is not None else f"List<{id}> made at {self.created_at.short()}"
        self._borrows = _Borrows()

    def __repr__(self) -> str:
        return f"List({self.name!r})"

    # --- borrows --------------------------------------------------------------------

    def _check_mut(self, use: str, cursor: int | None = None) -> None:
        """`&mut self`: no iterator may be live, and no cursor but `cursor`."""
        if not STATE.on:
            return
        b = self._borrows
        origin: Site | None = None
        kind = ""
        if b.iters:
            origin = next(iter(b.iters.values()))
            kind = "an iterator"
        elif b.cursor is not None and b.cursor[0] != cursor:
            origin = b.cursor[1]
            kind = "a cursor"
        if origin is not None:
            raise BorrowError(
                f"{use} of {self.name} while {kind} borrows it",
                rule="list-borrowed",
                obj=self.name,
                site=here(),
                origin=origin,
                origin_label=f"{kind} over the list was made",
            )

    # --- queries --------------------------------------------------------------------

    def is_empty(self) -> bool:
        return self._first is None

    def __len__(self) -> int:
        # Not upstream (its List has no length); the model counts for tests and stats.
        with _lock:
            n = 0
            cur = self._first
            while cur is not None:
                n += 1
                cur = cur.next
                if cur is self._first:
                    break
            return n

    def front(self) -> T | None:
        """The first element (for debug output; upstream reaches it with a cursor)."""
        first = self._first
        return None if first is None or first.item is None else first.item.get()

    # --- insertion ------------------------------------------------------------------

    def _link(self, la: ListArc[T], front: bool, use: str) -> None:
        if not isinstance(la, ListArc):
            raise TypeError(f"{use} takes a ListArc, got {type(la).__name__}")
        if la.id != self.id:
            raise TypeError(f"{use}: a ListArc<{la.id}> cannot go into a List<{self.id}>")
        with _lock:
            self._check_mut(use)
            la._check(use)
            links = _links(la.get(), self.id)
            site = here()
            la._consume(use)
            links.arc_site = None
            links.item = la._reissue(site)
            links.list = self
            links.inserted_at = site
            links.inserted_into = self.name
            links.taken_at = None
            first = self._first
            if first is None:
                links.prev = links.next = links
                self._first = links
            else:
                last = first.prev
                assert last is not None
                links.next = first
                links.prev = last
                last.next = links
                first.prev = links
                if front:
                    self._first = links

    def push_back(self, item: ListArc[T]) -> None:
        """Add `item` at the back; the list now owns the `ListArc`."""
        self._link(item, False, "push_back")

    def push_front(self, item: ListArc[T]) -> None:
        """Add `item` at the front; the list now owns the `ListArc`."""
        self._link(item, True, "push_front")

    # --- removal --------------------------------------------------------------------

    def _unlink(self, links: ListLinks) -> ListArc[T]:
        """Remove `links` (in this list) and hand its `ListArc` back. Under `_lock`."""
        nxt, prev = links.next, links.prev
        assert nxt is not None and prev is not None and links.list is self
        if nxt is links:
            self._first = None
        else:
            prev.next = nxt
            nxt.prev = prev
            if self._first is links:
                self._first = nxt
        held = links.item
        assert held is not None
        site = here()
        la = held._reissue(site)
        links.list = links.prev = links.next = links.item = None
        links.taken_at = None
        links.arc_site = site
        return la

    def pop_front(self) -> ListArc[T] | None:
        with _lock:
            self._check_mut("pop_front")
            first = self._first
            return None if first is None else self._unlink(first)

    def pop_back(self) -> ListArc[T] | None:
        with _lock:
            self._check_mut("pop_back")
            first = self._first
            if first is None:
                return None
            assert first.prev is not None
            return self._unlink(first.prev)

    @unsafe_fn(
        safety="`item` is in this list, or in no list with this id (not in another list of "
        "the same id, such as one this list was moved into by mem::take)",
        checked="every item's ListLinks record which list it is in: an item in another list "
        "of the same id is an UnsafeError (list-remove-wrong-list) naming both lists",
    )
    def remove(self, item: T) -> ListArc[T] | None:
        """Unlink `item` and return its `ListArc`; None if it is in no list."""
        with _lock:
            self._check_mut("remove")
            links = _links(item, self.id)
            where = links.list
            if where is None:
                return None
            if where is not self:
                if STATE.on:
                    notes: list[tuple[str, Site | None]] = []
                    if links.taken_at is not None:
                        notes.append(
                            (
                                f"{where.name} took the items of their list (mem::take)",
                                links.taken_at,
                            )
                        )
                    notes.append((f"{self.name} was made", self.created_at))
                    raise UnsafeError(
                        f"List::remove on {self.name} of an item that is in {where.name} "
                        f"(another list with id {self.id}): the Safety contract is broken, the "
                        "two lists' prev/next pointers would be written without the other "
                        "list's lock",
                        rule="list-remove-wrong-list",
                        obj=f"{type(item).__name__} in {where.name}",
                        site=here(),
                        origin=links.inserted_at,
                        origin_label=f"the item was inserted into {links.inserted_into}",
                        notes=notes,
                    )
                # Checks off: behave as upstream's unchecked unlink of the other list.
                return where._unlink(links)
            return self._unlink(links)

    # --- whole-list operations --------------------------------------------------------

    def take(self, name: str | None = None) -> List[T]:
        """`core::mem::take(&mut list)`: a new list holding every element; this one empty."""
        with _lock:
            self._check_mut("mem::take")
            new: List[T] = List(self.id, name)
            if name is None:
                new.name = f"List<{self.id}> taken from {self.name} at {new.created_at.short()}"
            first = self._first
            self._first = None
            new._first = first
            cur = first
            while cur is not None:
                cur.list = new
                cur.taken_at = new.created_at
                cur = cur.next
                if cur is first:
                    break
            return new

    def push_all_back(self, other: List[T]) -> None:
        """Move every element of `other` to the back of this list (`push_all_back`)."""
        if other.id != self.id:
            raise TypeError(f"push_all_back: a List<{other.id}> into a List<{self.id}>")
        with _lock:
            self._check_mut("push_all_back")
            other._check_mut("push_all_back")
            of = other._first
            if of is None:
                return
            other._first = None
            cur: ListLinks | None = of
            while cur is not None:
                cur.list = self
                cur = cur.next
                if cur is of:
                    break
            first = self._first
            if first is None:
                self._first = of
                return
            last, olast = first.prev, of.prev
            assert last is not None and olast is not None
            last.next = of
            of.prev = last
            olast.next = first
            first.prev = olast

    def drop(self) -> None:
        """`drop(list)`: pop and drop every element, as upstream's `Drop`."""
        while True:
            la = self.pop_front()
            if la is None:
                return
            la.drop()

    # --- iteration and cursors -------------------------------------------------------

    def iter(self) -> Iter[T]:
        """`list.iter()`: the elements front to back, borrowing the list (shared)."""
        return Iter(self)

    def __iter__(self) -> Iterator[T]:
        return Iter(self)

    def cursor_front(self) -> Cursor[T]:
        """A cursor before the first element, borrowing the list (exclusive)."""
        return Cursor(self, self._first)

    def cursor_back(self) -> Cursor[T]:
        """A cursor after the last element, borrowing the list (exclusive)."""
        return Cursor(self, None)


class Iter(Generic[T]):
    """`Iter<'a, T, ID>`: a shared borrow of a list, yielding its elements in order.

    Invariants: while `_live`, the list's `_borrows.iters` holds this iterator's key.
    """

    __slots__ = ("_cur", "_list", "_live", "site")

    def __init__(self, lst: List[T]) -> None:
        self._list = lst
        self.site = here()
        with _lock:
            if STATE.on and lst._borrows.cursor is not None:
                raise BorrowError(
                    f"iteration over {lst.name} while a cursor borrows it",
                    rule="list-borrowed",
                    obj=lst.name,
                    site=self.site,
                    origin=lst._borrows.cursor[1],
                    origin_label="a cursor over the list was made",
                )
            lst._borrows.iters[id(self)] = self.site
            self._live = True
            self._cur = lst._first

    def __iter__(self) -> Iter[T]:
        return self

    def __next__(self) -> T:
        with _lock:
            cur = self._cur
            if cur is None or not self._live:
                self.close()
                raise StopIteration
            nxt = cur.next
            self._cur = None if nxt is self._list._first else nxt
            assert cur.item is not None
            return cast(T, cur.item.get())

    def close(self) -> None:
        """End the borrow (also at exhaustion and when the iterator is collected)."""
        if self._live:
            self._live = False
            self._list._borrows.iters.pop(id(self), None)

    def __enter__(self) -> Iter[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_live", False):
            self.close()


class CursorPeek(Generic[T]):
    """`CursorPeek`: the element next to a cursor, which it may remove."""

    __slots__ = ("_cursor", "_links", "_next")

    def __init__(self, cursor: Cursor[T], links: ListLinks, is_next: bool) -> None:
        self._cursor = cursor
        self._links = links
        self._next = is_next

    def get(self) -> T:
        item = self._links.item
        assert item is not None
        return cast(T, item.get())

    def arc(self) -> Any:
        """A new `Arc` count of the element (`CursorPeek::arc`)."""
        item = self._links.item
        assert item is not None
        return item.clone_arc()

    def remove(self) -> ListArc[T]:
        """Unlink the element; the cursor stays where it was between its neighbours."""
        c = self._cursor
        lst = c._list
        with _lock:
            c._check_live()
            lst._check_mut("CursorPeek::remove", cursor=id(c))
            if self._links.list is not lst:
                raise ValueError("CursorPeek::remove of an element no longer in the list")
            if self._next:
                nxt = self._links.next
                c._next = None if nxt is self._links or nxt is lst._first else nxt
            return lst._unlink(self._links)


class Cursor(Generic[T]):
    """`Cursor<'a, T, ID>`: a position between two elements, borrowing the list mutably.

    Invariants: `_next` is the element after the cursor (None: at the back); while
    `_live`, the list's `_borrows.cursor` is this cursor.
    """

    __slots__ = ("_list", "_live", "_next", "site")

    def __init__(self, lst: List[T], nxt: ListLinks | None) -> None:
        self.site = here()
        self._list = lst
        with _lock:
            lst._check_mut("cursor")
            lst._borrows.cursor = (id(self), self.site)
            self._live = True
            self._next = nxt

    def _check_live(self) -> None:
        if not self._live:
            raise ValueError("use of a closed list cursor")

    def _prev_links(self) -> ListLinks | None:
        first = self._list._first
        if first is None:
            return None
        if self._next is None:
            return first.prev
        return None if self._next is first else self._next.prev

    def peek_next(self) -> CursorPeek[T] | None:
        with _lock:
            self._check_live()
            nxt = self._next
            return None if nxt is None else CursorPeek(self, nxt, True)

    def peek_prev(self) -> CursorPeek[T] | None:
        with _lock:
            self._check_live()
            prev = self._prev_links()
            return None if prev is None else CursorPeek(self, prev, False)

    def move_next(self) -> bool:
        """Step over the next element; False at the back."""
        with _lock:
            self._check_live()
            nxt = self._next
            if nxt is None:
                return False
            after = nxt.next
            self._next = None if after is self._list._first else after
            return True

    def move_prev(self) -> bool:
        """Step back over the previous element; False at the front."""
        with _lock:
            self._check_live()
            prev = self._prev_links()
            if prev is None:
                return False
            self._next = prev
            return True

    def close(self) -> None:
        """End the borrow of the list."""
        with _lock:
            if self._live:
                self._live = False
                b = self._list._borrows
                if b.cursor is not None and b.cursor[0] == id(self):
                    b.cursor = None

    def __enter__(self) -> Cursor[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_live", False):
            self.close()
