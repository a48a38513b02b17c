"""Intrusive lists: `List`, `ListLinks`, `ListArc`, `AtomicTracker` (ownership.list).

Per rule, a test that triggers it and one that runs the correct pattern clean:
`list-remove-wrong-list` (the Safety of `List::remove`, CVE-2025-68260's pattern of a
`mem::take` then a remove on the emptied list), `list-borrowed` (changing a list while
an iterator or cursor is live), `list-arc-moved` (a `ListArc` used after a push), and
`list-arc-not-unique` (a tracker told a `ListArc` is gone while it is not). Then the
list operations against a plain model, and a hypothesis state machine pushing, popping,
removing and re-claiming items across two lists of one id.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ownership.config import checking
from ownership.errors import BorrowError, RefcountError, UnsafeError
from ownership.list import AtomicTracker, HasListLinks, List, ListArc, ListLinks
from ownership.sync import Arc
from ownership.unsafe import unsafe
from tests.expect import assert_splat, line


class Item(HasListLinks):
    """An item with a tracked id 0 and an untracked id 1 (as Binder's `NodeDeath`)."""

    __slots__ = ("links", "links1", "track", "value")

    list_fields: ClassVar[dict[int, tuple[str, str | None]]] = {
        0: ("links", "track"),
        1: ("links1", None),
    }

    def __init__(self, value: int) -> None:
        self.value = value
        self.links = ListLinks(0)
        self.track = AtomicTracker(0)
        self.links1 = ListLinks(1)

    def __repr__(self) -> str:
        return f"Item({self.value})"


def values(lst: List[Item]) -> list[int]:
    return [i.value for i in lst]


# --- list-remove-wrong-list ---------------------------------------------------------------


def test_remove_of_item_in_another_list_of_same_id() -> None:
    a: List[Item] = List(0, name="node.death_list")
    b: List[Item] = List(0, name="other")
    item = Item(1)
    ins = line() + 1
    b.push_back(ListArc.new(item))
    with pytest.raises(UnsafeError) as ei:
        with unsafe("SAFETY: (wrong) the item is in this list or in none"):
            at = line() + 1
            a.remove(item)
    assert_splat(
        ei, "list-remove-wrong-list", lines=[ins, at], mentions=["node.death_list", "other"]
    )
    # Raised before anything changed: the item is still in `b`.
    assert values(b) == [1] and a.is_empty()


def test_remove_after_mem_take_names_the_take() -> None:
    death_list: List[Item] = List(0, name="death_list")
    item = Item(7)
    ins = line() + 1
    death_list.push_back(ListArc.new(item))
    took = line() + 1
    local = death_list.take("local death_list")
    with pytest.raises(UnsafeError) as ei:
        with unsafe("SAFETY: (wrong) a NodeDeath is in its node's death_list or in none"):
            death_list.remove(item)
    err = assert_splat(
        ei,
        "list-remove-wrong-list",
        lines=[ins, took],
        mentions=["local death_list", "mem::take", "inserted into death_list"],
    )
    assert err.origin is not None
    assert values(local) == [7]
    local.drop()


def test_remove_clean_in_this_list_or_none() -> None:
    a: List[Item] = List(0)
    item, other = Item(1), Item(2)
    a.push_back(ListArc.new(item))
    a.push_back(ListArc.new(other))
    with unsafe("SAFETY: `item` was only ever pushed into `a`"):
        la = a.remove(item)
        assert la is not None and la.get() is item
        assert a.remove(item) is None
    assert values(a) == [2]
    la.drop()
    a.drop()


def test_remove_outside_unsafe_block_is_unsafe_call() -> None:
    a: List[Item] = List(0)
    with pytest.raises(UnsafeError) as ei:
        a.remove(Item(1))
    assert_splat(ei, "unsafe-call")


# --- list-borrowed ---------------------------------------------------------------------


def test_push_while_iterating_is_a_borrow_violation() -> None:
    a: List[Item] = List(0, name="todo")
    a.push_back(ListArc.new(Item(1)))
    made = line() + 1
    it = a.iter()
    next(it)
    with pytest.raises(BorrowError) as ei:
        a.push_back(ListArc.new(Item(2)))
    assert_splat(ei, "list-borrowed", lines=[made], mentions=["todo", "iterator"])
    it.close()
    a.push_back(ListArc.new(Item(2)))
    assert values(a) == [1, 2]
    a.drop()


def test_pop_while_cursor_live_is_a_borrow_violation() -> None:
    a: List[Item] = List(0)
    a.push_back(ListArc.new(Item(1)))
    with a.cursor_front() as c:
        made = line() - 1
        with pytest.raises(BorrowError) as ei:
            a.pop_front()
        assert_splat(ei, "list-borrowed", lines=[made], mentions=["cursor"])
        with pytest.raises(BorrowError):
            iter(a)
        assert c.peek_next() is not None
    la = a.pop_front()
    assert la is not None
    la.drop()


def test_loop_that_breaks_ends_its_borrow() -> None:
    a: List[Item] = List(0)
    for v in range(3):
        a.push_back(ListArc.new(Item(v)))
    for item in a:
        if item.value == 1:
            break
    # The loop's iterator is gone: the list may change again.
    la = a.pop_front()
    assert la is not None and la.get().value == 0
    la.drop()
    a.drop()


def test_cursor_removes_through_its_own_borrow() -> None:
    a: List[Item] = List(0)
    for v in range(5):
        a.push_back(ListArc.new(Item(v)))
    removed: list[ListArc[Item]] = []
    with a.cursor_front() as c:
        while (peek := c.peek_next()) is not None:
            if peek.get().value % 2:
                removed.append(peek.remove())
            else:
                c.move_next()
        assert c.peek_next() is None
        prev = c.peek_prev()
        assert prev is not None and prev.get().value == 4
        assert c.move_prev() and c.move_prev()
        nxt = c.peek_next()
        assert nxt is not None and nxt.get().value == 2
    assert values(a) == [0, 2, 4]
    assert [la.get().value for la in removed] == [1, 3]
    for la in removed:
        la.drop()
    a.drop()


# --- list-arc-moved ----------------------------------------------------------------------


def test_list_arc_used_after_push() -> None:
    a: List[Item] = List(0)
    la = ListArc.new(Item(1))
    pushed = line() + 1
    a.push_back(la)
    with pytest.raises(RefcountError) as ei:
        a.push_back(la)
    assert_splat(ei, "list-arc-moved", lines=[pushed])
    with pytest.raises(RefcountError):
        la.get()
    a.drop()


def test_list_arc_into_arc_then_reclaim() -> None:
    item = Item(1)
    la = ListArc.new(item)
    arc = la.into_arc()
    with pytest.raises(RefcountError) as ei:
        la.drop()
    assert_splat(ei, "list-arc-moved")
    again = ListArc.try_from_arc(arc)
    assert again is not None and again.get() is item
    again.drop()


# --- list-arc-not-unique and the tracker -----------------------------------------------------


def test_try_from_arc_succeeds_once_until_the_item_leaves() -> None:
    a: List[Item] = List(0)
    b: List[Item] = List(0)
    arc = Arc.new(Item(1))
    spare = arc.clone()
    la = ListArc.try_from_arc(arc)
    assert la is not None
    a.push_back(la)
    # The ListArc is in `a`: a second one (for `b`) cannot be made; the Arc stays ours.
    assert ListArc.try_from_arc(spare) is None
    assert spare.get().track.has_list_arc()
    back = a.pop_front()
    assert back is not None
    back.drop()
    assert not spare.get().track.has_list_arc()
    la2 = ListArc.try_from_arc(spare)
    assert la2 is not None
    b.push_back(la2)
    assert values(b) == [1] and a.is_empty()
    b.drop()


def test_untracked_id_has_no_try_from_arc() -> None:
    arc = Arc.new(Item(1))
    with pytest.raises(TypeError):
        ListArc.try_from_arc(arc, id=1)
    arc.drop()


def test_wrong_id_push_is_a_type_error() -> None:
    lst1: List[Item] = List(1)
    la = ListArc.new(Item(1), id=0)
    with pytest.raises(TypeError):
        lst1.push_back(la)
    la.drop()


def test_tracker_cleared_while_list_arc_lives() -> None:
    item = Item(1)
    a: List[Item] = List(0, name="todo")
    la = ListArc.new(item)
    arc = la.clone_arc()
    ins = line() + 1
    a.push_back(la)
    with unsafe("SAFETY: (wrong) claims the item's ListArc is gone while `a` holds it"):
        item.track.on_drop_list_arc()
    with pytest.raises(UnsafeError) as ei:
        ListArc.try_from_arc(arc)
    assert_splat(ei, "list-arc-not-unique", lines=[ins], mentions=["todo"])
    # Raised before the handle was consumed: it is still ours.
    assert arc.refcount() == 2
    arc.drop()
    a.drop()


def test_clean_tracker_use_makes_one_list_arc_at_a_time() -> None:
    item = Item(1)
    la = ListArc.new(item)
    arc = la.clone_arc()
    assert ListArc.try_from_arc(arc) is None
    la.drop()
    la2 = ListArc.try_from_arc(arc)
    assert la2 is not None
    la2.drop()


def test_list_drop_releases_its_list_arcs() -> None:
    a: List[Item] = List(0)
    arc = Arc.new(Item(1))
    keep = arc.clone()
    la = ListArc.try_from_arc(arc)
    assert la is not None
    a.push_back(la)
    assert keep.refcount() == 2
    a.drop()
    assert keep.refcount() == 1 and not keep.get().track.has_list_arc()
    keep.drop()


def test_checks_off_remove_from_wrong_list_does_not_raise() -> None:
    a: List[Item] = List(0)
    b: List[Item] = List(0)
    item = Item(1)
    b.push_back(ListArc.new(item))
    with checking(False):
        with unsafe("SAFETY: (wrong) checks are off"):
            la = a.remove(item)
    assert la is not None and b.is_empty()
    la.drop()


# --- behaviour against a plain model -----------------------------------------------------


def test_push_pop_order_take_and_push_all_back() -> None:
    a: List[Item] = List(0)
    for v in (2, 3):
        a.push_back(ListArc.new(Item(v)))
    a.push_front(ListArc.new(Item(1)))
    assert values(a) == [1, 2, 3] and len(a) == 3
    b = a.take()
    assert a.is_empty() and values(b) == [1, 2, 3]
    a.push_back(ListArc.new(Item(0)))
    a.push_all_back(b)
    assert values(a) == [0, 1, 2, 3] and b.is_empty()
    back = a.pop_back()
    assert back is not None and back.get().value == 3
    back.drop()
    a.drop()
    assert a.pop_front() is None and a.pop_back() is None


def test_two_threads_racing_on_a_list_are_reported_not_corrupted() -> None:
    # One thread empties the list into a local one; another removes from the original.
    death_list: List[Item] = List(0, name="death_list")
    items = [Item(v) for v in range(4)]
    for it in items:
        death_list.push_back(ListArc.new(it))
    taken = threading.Event()
    done = threading.Event()
    caught: list[BaseException] = []

    def releaser() -> None:
        local = death_list.take("local")
        taken.set()
        done.wait(5)
        local.drop()

    def remover() -> None:
        taken.wait(5)
        try:
            with unsafe("SAFETY: (wrong) the item is in death_list or in none"):
                death_list.remove(items[2])
        except UnsafeError as e:
            caught.append(e)
        done.set()

    ts = [threading.Thread(target=releaser), threading.Thread(target=remover)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert len(caught) == 1 and isinstance(caught[0], UnsafeError)
    assert caught[0].rule == "list-remove-wrong-list"


# --- state machine ------------------------------------------------------------------------


class ListMachine(RuleBasedStateMachine):
    """Items move between two lists of id 0; the model says where each is."""

    N = 4

    def __init__(self) -> None:
        super().__init__()
        self.lists: tuple[List[Item], List[Item]] = (List(0, name="L0"), List(0, name="L1"))
        self.items = [Item(v) for v in range(self.N)]
        self.arcs = [Arc.new(it) for it in self.items]
        self.where: list[int | None] = [None] * self.N
        self.order: tuple[list[int], list[int]] = ([], [])

    @rule(i=st.integers(0, N - 1), dst=st.integers(0, 1), front=st.booleans())
    def claim_and_push(self, i: int, dst: int, front: bool) -> None:
        handle = self.arcs[i].clone()
        la = ListArc.try_from_arc(handle)
        if self.where[i] is not None:
            assert la is None
            handle.drop()
            return
        assert la is not None
        if front:
            self.lists[dst].push_front(la)
            self.order[dst].insert(0, i)
        else:
            self.lists[dst].push_back(la)
            self.order[dst].append(i)
        self.where[i] = dst

    @rule(src=st.integers(0, 1), front=st.booleans())
    def pop(self, src: int, front: bool) -> None:
        la = self.lists[src].pop_front() if front else self.lists[src].pop_back()
        if not self.order[src]:
            assert la is None
            return
        i = self.order[src].pop(0 if front else -1)
        assert la is not None and la.get() is self.items[i]
        la.drop()
        self.where[i] = None

    @rule(i=st.integers(0, N - 1), src=st.integers(0, 1))
    def remove(self, i: int, src: int) -> None:
        lst = self.lists[src]
        other = self.where[i]
        if other is not None and other != src:
            with pytest.raises(UnsafeError) as ei:
                with unsafe("SAFETY: (wrong on purpose) the item is in this list or none"):
                    lst.remove(self.items[i])
            assert ei.value.rule == "list-remove-wrong-list"
            return
        with unsafe("SAFETY: the model says the item is in this list or in none"):
            la = lst.remove(self.items[i])
        if other is None:
            assert la is None
            return
        assert la is not None
        self.order[src].remove(i)
        self.where[i] = None
        la.drop()

    @rule(src=st.integers(0, 1))
    def take_back(self, src: int) -> None:
        dst = 1 - src
        taken = self.lists[src].take()
        self.lists[dst].push_all_back(taken)
        for i in self.order[src]:
            self.where[i] = dst
        self.order[dst].extend(self.order[src])
        self.order[src].clear()

    @invariant()
    def matches_model(self) -> None:
        for k in (0, 1):
            got = [self.items.index(x) for x in self.lists[k]]
            assert got == self.order[k]
        for i, it in enumerate(self.items):
            assert it.track.has_list_arc() == (self.where[i] is not None)
            assert self.arcs[i].refcount() == (2 if self.where[i] is not None else 1)

    def teardown(self) -> None:
        for lst in self.lists:
            lst.drop()
        for arc in self.arcs:
            arc.drop()


TestListMachine = ListMachine.TestCase
TestListMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
