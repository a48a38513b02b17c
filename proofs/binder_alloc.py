"""Binder's range allocator, proved on its own code (`binder.range_core`).

Both representations of the allocator (`binder.range_alloc`: the sorted array and the
two red-black trees) take their decisions from `binder.range_core`; the claims below run
those functions symbolically (`proofs.symexec`) for every input within the bound in
the claim's name, over a state that satisfies the representation's invariant. A claim
over one step from any such state covers every reachable state of that size, whatever
operations led there; `binder_alloc_sequence` also runs whole operation sequences from
the empty mapping.

* `binder_alloc_array_place`: a new range lies inside the mapping, overlaps no live
  range, keeps the array sorted, and ENOSPC comes only when no gap fits;
* `binder_alloc_tree_split`: taking a free range for a reservation keeps the
  descriptors tiling the mapping, and the free bytes drop by exactly the size;
* `binder_alloc_tree_merge`: freeing a tree range merges it with its free neighbours
  and keeps the tiling, with no two free neighbours and exact free bytes;
* `binder_alloc_need_alloc_retry`: the NeedAlloc retry reaches a reservation after at
  most one round trip through `make_alloc`, each NeedAlloc asking for something missing
  (with the representation unchanged while the lock is dropped: another thread may
  change it, and then the loop asks again, as upstream's does);
* `binder_alloc_oneway_budget`: the oneway budget never goes negative and always equals
  half the mapping minus the oneway ranges, after a reserve and after a free;
* `binder_alloc_spam_after_insert`: spam detection counts the new range (both
  representations call the same `reserve_decision` with the other live ranges);
* `binder_alloc_sequence`: up to 3 reserve/free operations on a mapping of up to 16
  pages, from empty, through the array's bookkeeping: every invariant above after each.

Each has a twin with a mistake put back, which must yield a counterexample; the spam
twin is CVE-2026-43435 (the check before the insert).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from binder import range_core as core

from .claim import Claim, Expect
from .outcome import Outcome
from .symexec import Explorer, outcome, sym_not
from .table import Table

__all__ = [
    "CLAIMS",
    "CORE",
    "MUTANTS",
    "AllocCore",
    "budget_harness",
    "merge_harness",
    "place_harness",
    "retry_harness",
    "sequence_harness",
    "spam_harness",
    "split_harness",
]

PAGE = 4096
MAX_PAGES = 16
MAX_RANGES = 8
"""`TREE_THRESHOLD`: the array never holds more ranges."""

Held = Iterable[tuple[int, bool, int]]


@dataclass(frozen=True)
class AllocCore:
    """The allocator decisions a harness runs: the real ones, or a mutant's."""

    array_place: Callable[[Sequence[tuple[int, int]], int, int], tuple[int, int] | None]
    split_free: Callable[[int, int, int], tuple[int, int]]
    reserve_decision: Callable[[int, int, int, bool, int, int | None, Held], core.Reservation | str]
    oneway_space_after_free: Callable[[int, int, bool], int]
    merge_free: Callable[
        [int, int, tuple[int, int] | None, tuple[int, int] | None], tuple[int, int]
    ]
    reserve_step: Callable[[str, bool, bool, bool, bool], core.Step]


CORE = AllocCore(
    core.array_place,
    core.split_free,
    core.reserve_decision,
    core.oneway_space_after_free,
    core.merge_free,
    core.reserve_step,
)
"""The driver's own functions."""


# --- the mistakes put back --------------------------------------------------------------


def _place_unbounded_end(
    ranges: Sequence[tuple[int, int]], area: int, size: int
) -> tuple[int, int] | None:
    """`array_place` appending after the last range without checking the mapping's end."""
    n = len(ranges)
    return (n, ranges[n - 1][0] + ranges[n - 1][1] if n else 0)


def _split_keeps_size(found_offset: int, found_size: int, size: int) -> tuple[int, int]:
    """`split_free` that moves the rest past the new range without shrinking it."""
    return (found_offset + size, found_size)


def _reserve_no_budget(
    area: int, free: int, size: int, is_oneway: bool, pid: int, offset: int | None, held: Held
) -> core.Reservation | str:
    """`reserve_decision` without the oneway budget check."""
    new = free - size if is_oneway else free
    if offset is None:
        return core.NO_FREE_RANGE
    spam = False
    if is_oneway and new < area // 10:
        spam = core.low_oneway_space(area, pid, [*held, (size, is_oneway, pid)])
    return core.Reservation(offset, new, spam)


def _reserve_spam_before_insert(
    area: int, free: int, size: int, is_oneway: bool, pid: int, offset: int | None, held: Held
) -> core.Reservation | str:
    """`reserve_decision` checking for spam before the insert (CVE-2026-43435)."""
    if is_oneway:
        new = free - size
        if new < 0:
            return core.NO_ONEWAY_SPACE
    else:
        new = free
    if offset is None:
        return core.NO_FREE_RANGE
    spam = False
    if is_oneway and new < area // 10:
        spam = core.low_oneway_space(area, pid, held)
    return core.Reservation(offset, new, spam)


def _merge_ignores_prev(
    offset: int, size: int, prev: tuple[int, int] | None, nxt: tuple[int, int] | None
) -> tuple[int, int]:
    """`merge_free` that adds a free previous range's bytes but keeps its own start."""
    total = size + (nxt[1] if nxt is not None else 0) + (prev[1] if prev is not None else 0)
    return (offset, total)


def _step_tree_nodes_later(
    kind: str, array_full: bool, has_empty_array: bool, has_new_tree: bool, has_tree: bool
) -> core.Step:
    """`reserve_step` that, switching to the tree, does not ask for the tree's
    reservation nodes at once (a second round trip through `make_alloc`)."""
    step = core.reserve_step(kind, array_full, has_empty_array, has_new_tree, has_tree)
    if step.need_new_tree:
        return core.Step(core.NEED_ALLOC, need_new_tree=True)
    return step


MUTANTS: dict[str, AllocCore] = {
    "merge-ignores-prev": replace(CORE, merge_free=_merge_ignores_prev),
    "tree-nodes-later": replace(CORE, reserve_step=_step_tree_nodes_later),
    "place-unbounded-end": replace(CORE, array_place=_place_unbounded_end),
    "split-keeps-size": replace(CORE, split_free=_split_keeps_size),
    "no-oneway-budget": replace(CORE, reserve_decision=_reserve_no_budget),
    "spam-before-insert": replace(CORE, reserve_decision=_reserve_spam_before_insert),
}
"""Each historical or plausible mistake, as the allocator core with it put back."""


# --- states ---------------------------------------------------------------------------------


def _area(ex: Explorer) -> int:
    return ex.int_var("area", 1, MAX_PAGES * PAGE)


def _sorted_ranges(ex: Explorer, n: int, area: int) -> list[tuple[int, int]]:
    """`n` live ranges satisfying the array's invariant: sorted, disjoint, inside."""
    ranges = []
    prev_end = 0
    for i in range(n):
        o = ex.int_var(f"r{i}_offset", 0, MAX_PAGES * PAGE)
        s = ex.int_var(f"r{i}_size", 1, MAX_PAGES * PAGE)
        ex.require(prev_end <= o)
        ranges.append((o, s))
        prev_end = o + s
    ex.require(prev_end <= area)
    return ranges


def _held(ex: Explorer, n: int, area: int) -> list[tuple[int, bool, int]]:
    """`n` live ranges as `(size, is_oneway, pid)`, fitting in the mapping together."""
    held = []
    total = 0
    for i in range(n):
        s = ex.int_var(f"r{i}_size", 1, MAX_PAGES * PAGE)
        held.append((s, ex.bool_var(f"r{i}_oneway"), ex.int_choice(f"r{i}_pid", (1, 2))))
        total += s
    ex.require(total <= area)
    return held


def _oneway_total(held: Iterable[tuple[int, bool, int]]) -> int:
    total = 0
    for s, w, _ in held:
        total += s * w
    return total


# --- harnesses ------------------------------------------------------------------------------


def place_harness(c: AllocCore, n: int) -> Callable[[Explorer], Callable[[], None]]:
    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex)
        size = ex.int_var("size", 1, MAX_PAGES * PAGE)
        ranges = _sorted_ranges(ex, n, area)

        def run() -> None:
            found = c.array_place(ranges, area, size)
            if found is None:
                prev_end = 0
                for o, s in ranges:
                    ex.check(o - prev_end < size, "ENOSPC although a gap fits")
                    prev_end = o + s
                ex.check(area - prev_end < size, "ENOSPC although the end fits")
                return
            idx, off = found
            ex.check(0 <= off, "range before the mapping")
            ex.check(off + size <= area, "range beyond the mapping")
            for o, s in ranges:
                ex.check((off + size <= o) | (o + s <= off), "overlaps a live range")
            new = [*ranges[:idx], (off, size), *ranges[idx:]]
            for (o1, s1), (o2, _) in pairwise(new):
                ex.check(o1 + s1 <= o2, "the insert breaks the order")

        return run

    return build


def split_harness(c: AllocCore, n: int, j: int) -> Callable[[Explorer], Callable[[], None]]:
    """The tree's descriptors tile the mapping; descriptor `j` is a free range that fits
    (what the free tree's lower bound returns)."""

    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex)
        size = ex.int_var("size", 1, MAX_PAGES * PAGE)
        descs = []
        off = 0
        free_before = 0
        for i in range(n):
            s = ex.int_var(f"d{i}_size", 1, MAX_PAGES * PAGE)
            free = True if i == j else ex.bool_var(f"d{i}_free")
            descs.append((off, s, free))
            free_before += s * free
            off = off + s
        ex.require(off == area)
        for (_, _, f1), (_, _, f2) in pairwise(descs):
            # Free neighbours are always merged.
            ex.require(sym_not(f1 & f2))
        ex.require(descs[j][1] >= size)

        def run() -> None:
            found_off, found_size, _ = descs[j]
            rest_off, rest_size = c.split_free(found_off, found_size, size)
            new = [*descs[:j], (found_off, size, False)]
            if rest_size != 0:
                new.append((rest_off, rest_size, True))
            new += descs[j + 1 :]
            ex.check(rest_size >= 0, "negative rest")
            end = 0
            free_after = 0
            for o, s, f in new:
                ex.check(o == end, "descriptors no longer tile the mapping")
                end = o + s
                free_after += s * f
            ex.check(end == area, "descriptors no longer cover the mapping")
            ex.check(free_after == free_before - size, "free bytes not accounted exactly")

        return run

    return build


def merge_harness(c: AllocCore, n: int, j: int) -> Callable[[Explorer], Callable[[], None]]:
    """The tree's descriptors tile the mapping with no two free neighbours; descriptor
    `j` is a live range, freed as `TreeRangeAllocator.reservation_abort` frees it."""

    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex)
        descs = []
        off = 0
        free_before = 0
        for i in range(n):
            s = ex.int_var(f"d{i}_size", 1, MAX_PAGES * PAGE)
            free = False if i == j else ex.bool_var(f"d{i}_free")
            descs.append((off, s, free))
            free_before += s * free
            off = off + s
        ex.require(off == area)
        for (_, _, f1), (_, _, f2) in pairwise(descs):
            ex.require(sym_not(f1 & f2))

        def run() -> None:
            o, s, _ = descs[j]
            prev = descs[j - 1] if j > 0 else None
            nxt = descs[j + 1] if j + 1 < n else None
            prev_free = prev is not None and bool(prev[2])
            next_free = nxt is not None and bool(nxt[2])
            start, size = c.merge_free(
                o,
                s,
                (prev[0], prev[1]) if prev is not None and prev_free else None,
                (nxt[0], nxt[1]) if nxt is not None and next_free else None,
            )
            lo = j - 1 if prev_free else j
            hi = j + 2 if next_free else j + 1
            new = [*descs[:lo], (start, size, True), *descs[hi:]]
            end = 0
            free_after = 0
            for d_off, d_size, d_free in new:
                ex.check(d_off == end, "descriptors no longer tile the mapping")
                end = d_off + d_size
                free_after += d_size * d_free
            ex.check(end == area, "descriptors no longer cover the mapping")
            for (_, _, f1), (_, _, f2) in pairwise(new):
                ex.check(sym_not(f1 & f2), "two free descriptors are neighbours")
            ex.check(free_after == free_before + s, "free bytes not accounted exactly")

        return run

    return build


KINDS = ("empty", "array", "tree")


def retry_harness(c: AllocCore, kind: str) -> Callable[[Explorer], Callable[[], None]]:
    """`RangeAllocator.reserve_new`'s retry loop from representation `kind`, with any
    pre-allocations brought: `make_alloc` makes exactly what a NeedAlloc asks for."""

    def build(ex: Explorer) -> Callable[[], None]:
        full = ex.bool_var("array_full")
        brought = [ex.bool_var(f"has_{x}") for x in ("empty_array", "new_tree", "tree")]

        def run() -> None:
            state = kind
            array_full = full if kind == "array" else False
            has = list(brought)
            rounds = 0
            for _ in range(4):
                step = c.reserve_step(state, array_full, has[0], has[1], has[2])
                if step.action == core.NEED_ALLOC:
                    needs = [step.need_empty_array, step.need_new_tree, step.need_tree]
                    # Progress: it asks for something missing. (Asking again for memory
                    # already brought is harmless: `make_alloc` skips it, as upstream's.)
                    missing = [need & sym_not(h) for need, h in zip(needs, has)]
                    ex.check(
                        missing[0] | missing[1] | missing[2], "a NeedAlloc with nothing missing"
                    )
                    rounds += 1
                    ex.check(rounds <= 1, "more than one round trip through make_alloc")
                    has = [h | need for h, need in zip(has, needs)]
                elif step.action == core.MAKE_ARRAY:
                    ex.check(has[0], "an array made without its KVec")
                    state, array_full, has[0] = "array", False, False
                elif step.action == core.MAKE_TREE:
                    ex.check(has[1], "a tree made without its nodes")
                    state, has[1] = "tree", False
                else:
                    if step.action == core.RESERVE_TREE:
                        ex.check(has[2], "a tree reservation without its nodes")
                    return
            ex.check(False, "reserve_new does not reach a reservation in 4 turns")

        return run

    return build


def budget_harness(c: AllocCore, n: int) -> Callable[[Explorer], Callable[[], None]]:
    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex)
        held = _held(ex, n, area)
        free = area // 2 - _oneway_total(held)
        ex.require(free >= 0)
        size = ex.int_var("size", 1, MAX_PAGES * PAGE)
        oneway = ex.bool_var("oneway")
        pid = ex.int_choice("pid", (1, 2))
        placed = ex.bool_var("placed")
        offset = ex.int_var("offset", 0, MAX_PAGES * PAGE)

        def run() -> None:
            res = c.reserve_decision(
                area, free, size, oneway, pid, offset if placed else None, held
            )
            if isinstance(res, str):
                if res == core.NO_ONEWAY_SPACE:
                    ex.check(oneway & (size > free), "oneway refused within the budget")
            else:
                ex.check(res.free_oneway_space >= 0, "oneway budget negative")
                ex.check(
                    res.free_oneway_space == free - size * oneway,
                    "oneway budget not half the mapping minus the oneway ranges",
                )
            for k in range(n):
                s, w, _ = held[k]
                after = c.oneway_space_after_free(free, s, w)
                others = [h for i, h in enumerate(held) if i != k]
                ex.check(after == area // 2 - _oneway_total(others), "free misaccounts the budget")

        return run

    return build


def spam_harness(
    c: AllocCore, n: int, area_size: int | None = None
) -> Callable[[Explorer], Callable[[], None]]:
    """One reserve over `n` live ranges: the spam verdict is the rule's, after the insert
    (in a mapping of `area_size` bytes when given, e.g. to replay on a real mapping)."""

    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex) if area_size is None else ex.int_var("area", area_size, area_size)
        held = _held(ex, n, area)
        free = area // 2 - _oneway_total(held)
        ex.require(free >= 0)
        size = ex.int_var("size", 1, MAX_PAGES * PAGE)
        oneway = ex.bool_var("oneway")
        pid = ex.int_choice("pid", (1, 2))
        offset = ex.int_var("offset", 0, MAX_PAGES * PAGE)

        def run() -> None:
            res = c.reserve_decision(area, free, size, oneway, pid, offset, held)
            if isinstance(res, str):
                return
            after = [*held, (size, oneway, pid)]
            count = 0
            total = 0
            for s, w, p in after:
                mine = w & (p == pid)
                count += mine
                total += s * mine
            expected = (
                oneway
                & (res.free_oneway_space < area // 10)
                & ((count > core.SPAM_MAX_BUFFERS) | (total > area // 4))
            )
            ex.check(
                res.oneway_spam_detected == expected,
                "spam verdict is not the rule's after the insert",
            )

        return run

    return build


def sequence_harness(c: AllocCore, ops: int) -> Callable[[Explorer], Callable[[], None]]:
    """`ops` reserve/free operations from the empty mapping, booked as `ArrayRangeAllocator`
    books them (a sorted list; insert at the returned index; remove on free)."""

    def build(ex: Explorer) -> Callable[[], None]:
        area = _area(ex)
        steps = [
            (
                ex.bool_var(f"op{i}_reserve"),
                ex.int_var(f"op{i}_size", 1, MAX_PAGES * PAGE),
                ex.bool_var(f"op{i}_oneway"),
                ex.int_choice(f"op{i}_pid", (1, 2)),
                ex.int_var(f"op{i}_victim", 0, max(ops - 1, 0)),
            )
            for i in range(ops)
        ]

        def run() -> None:
            ranges: list[tuple[int, int, bool, int]] = []
            free = area // 2
            for is_reserve, size, oneway, pid, victim in steps:
                if is_reserve:
                    found = c.array_place([(o, s) for o, s, _, _ in ranges], area, size)
                    res = c.reserve_decision(
                        area,
                        free,
                        size,
                        oneway,
                        pid,
                        None if found is None else found[1],
                        ((s, w, p) for _, s, w, p in ranges),
                    )
                    if isinstance(res, str):
                        continue
                    assert found is not None
                    free = res.free_oneway_space
                    ranges.insert(found[0], (found[1], size, oneway, pid))
                else:
                    for k in range(len(ranges)):
                        if victim == k:
                            _, s, w, _ = ranges.pop(k)
                            free = c.oneway_space_after_free(free, s, w)
                            break
                prev_end = 0
                for o, s, _, _ in ranges:
                    ex.check(prev_end <= o, "ranges overlap or are out of order")
                    prev_end = o + s
                ex.check(prev_end <= area, "a range lies beyond the mapping")
                ex.check(free >= 0, "oneway budget negative")
                ex.check(
                    free == area // 2 - _oneway_total((s, w, p) for _, s, w, p in ranges),
                    "oneway budget misaccounted",
                )

        return run

    return build


# --- claims ---------------------------------------------------------------------------------


Harness = Callable[[Explorer], Callable[[], None]]


def _all(harnesses: Iterable[Harness]) -> Outcome:
    """Prove every harness in turn; the first one not proved decides."""
    paths = queries = 0
    for harness in harnesses:
        out = outcome(harness)
        queries += out.queries
        if out.verdict != "proved":
            return out
        paths += int(out.detail.split()[0])
    return Outcome("proved", detail=f"{paths} paths, {queries} solver queries", queries=queries)


def _all_sizes(harness: Callable[[int], Harness], top: int) -> Outcome:
    """Prove `harness(n)` for every state size `n <= top`; the first failure decides."""
    return _all(harness(n) for n in range(top + 1))


def _place(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all_sizes(lambda n: place_harness(c, n), MAX_RANGES)


def _split(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all(
        split_harness(c, n, j) for n in range(1, MAX_RANGES + 1) for j in range(n)
    )


def _merge(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all(
        merge_harness(c, n, j) for n in range(1, MAX_RANGES + 1) for j in range(n)
    )


def _retry(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all(retry_harness(c, kind) for kind in KINDS)


def _budget(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all_sizes(lambda n: budget_harness(c, n), MAX_RANGES)


def _spam(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: _all_sizes(lambda n: spam_harness(c, n), MAX_RANGES)


SEQUENCE_OPS = 3


def _sequence(c: AllocCore) -> Callable[[Table, Expect], Outcome]:
    return lambda table, expect: outcome(sequence_harness(c, SEQUENCE_OPS))


def _with_twins(
    name: str,
    doc: str,
    check: Callable[[AllocCore], Callable[[Table, Expect], Outcome]],
    twins: dict[str, str],
) -> list[Claim]:
    base = Claim(name, "holds", doc, check(CORE), kind="binder")
    return [base] + [base.variant(tag, what, check(MUTANTS[tag])) for tag, what in twins.items()]


CLAIMS: tuple[Claim, ...] = (
    *_with_twins(
        "binder_alloc_array_place_8ranges",
        """A new array range lies inside the mapping, overlaps no live range and keeps the
        array sorted; ENOSPC only when no gap fits (up to 8 ranges, 16 pages). Upstream
        array.rs: "the ranges are sorted by offset" and a new range goes "after the last
        one if it fits there, otherwise into the first gap that fits".""",
        _place,
        {"place-unbounded-end": "appending after the last range without the end check"},
    ),
    *_with_twins(
        "binder_alloc_tree_split_8descriptors",
        """Splitting the best-fit free range keeps the tree's descriptors tiling the
        mapping, and the free bytes drop by exactly the size reserved (up to 8
        descriptors, 16 pages). tree.rs: "the descriptors of tree tile [0, size)".""",
        _split,
        {"split-keeps-size": "the rest of the free range not shrunk"},
    ),
    *_with_twins(
        "binder_alloc_tree_merge_8descriptors",
        """Freeing a tree range merges it with its free neighbours: the descriptors still
        tile the mapping, no two free ones are neighbours, and the free bytes grow by
        exactly the size freed (up to 8 descriptors, 16 pages). tree.rs: "adjacent free
        ranges are always merged".""",
        _merge,
        {"merge-ignores-prev": "the merge keeping its own start when the previous is free"},
    ),
    *_with_twins(
        "binder_alloc_need_alloc_retry_1round",
        """reserve_new's NeedAlloc retry reaches a reservation after at most one round trip
        through make_alloc, from every representation with any pre-allocations brought,
        and every NeedAlloc asks for something missing (every state, 4 turns; the
        representation unchanged while the lock is dropped).
        mod.rs: "the caller drops the lock, calls make_alloc() (GFP_KERNEL), re-locks and
        retries".""",
        _retry,
        {"tree-nodes-later": "the switch to the tree not asking for the tree's nodes at once"},
    ),
    *_with_twins(
        "binder_alloc_oneway_budget_8ranges",
        """The oneway budget never goes negative and is always half the mapping minus the
        oneway ranges, after any reserve or free (up to 8 live ranges, 16 pages).
        mod.rs: "Oneway transactions may use at most half of the area".""",
        _budget,
        {"no-oneway-budget": "reserve_decision without the budget check"},
    ),
    *_with_twins(
        "binder_alloc_spam_after_insert_8ranges",
        """Oneway spam detection counts the new range: the verdict is the rule's over the
        holdings after the insert, in both representations (up to 8 live ranges, 16
        pages). CVE-2026-43435: "TreeRange checked spam before inserting the new range;
        ArrayRange had no check at all".""",
        _spam,
        {"spam-before-insert": "the spam check before the insert (CVE-2026-43435)"},
    ),
    *_with_twins(
        "binder_alloc_sequence_3ops_16pages",
        """Every sequence of up to 3 reserve/free operations from the empty mapping (up to
        16 pages) keeps the ranges disjoint, sorted and inside the mapping and the oneway
        budget exact and non-negative. mod.rs: "Oneway transactions may use at most half
        of the area".""",
        _sequence,
        {"no-oneway-budget": "reserve_decision without the budget check"},
    ),
)
"""The allocator claims and their twins, in the order `python -m proofs` runs them."""
