"""The Binder claims: present, bounded, over the driver's own functions, cross-checked.

* every allocator and offset claim is there with its twin, states its bound in its
  name, and joins `python -m proofs` (its verdicts are checked with all the others in
  test_claims.py);
* the functions the claims run are the ones the driver calls (`binder.range_core` from
  both allocator representations, `binder.validate` from translation), and both
  representations hand `reserve_decision` the other live ranges, so spam detection
  counts the new range in both;
* the symbolic run computes what the concrete run does (`symexec.evaluate`), on every
  case of small domains and on random 64-bit values;
* the pure cores load nothing of the driver or the simulated kernel, and `import
  proofs` loads no binder module but them.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import binder.range_core as RC
import binder.validate as V
import proofs
from binder.range_alloc.array import ArrayRangeAllocator, EmptyArrayAlloc
from binder.range_alloc.tree import FromArrayAllocs, ReserveNewTreeAlloc, TreeRangeAllocator
from ownership.alloc import KVec
from proofs import binder_alloc as A
from proofs import binder_bench
from proofs import binder_offsets as O
from proofs.symexec import Explorer, evaluate, outcome

ROOT = Path(__file__).resolve().parents[2]

BINDER_CLAIMS = {
    "binder_alloc_array_place_8ranges": ["place-unbounded-end"],
    "binder_alloc_tree_split_8descriptors": ["split-keeps-size"],
    "binder_alloc_tree_merge_8descriptors": ["merge-ignores-prev"],
    "binder_alloc_need_alloc_retry_1round": ["tree-nodes-later"],
    "binder_alloc_oneway_budget_8ranges": ["no-oneway-budget"],
    "binder_alloc_spam_after_insert_8ranges": ["spam-before-insert"],
    "binder_alloc_sequence_3ops_16pages": ["no-oneway-budget"],
    "binder_offsets_objects_4objects_u64": ["no-offset-data-bound"],
    "binder_offsets_parent_4objects_u64": ["num-valid-star"],
    "binder_offsets_fixups_3fixups_u64": ["skip-zero-sentinel"],
}


def test_the_binder_claims_and_twins_are_all_there() -> None:
    binder = {c.name: c for c in proofs.CLAIMS if c.kind == "binder"}
    expected = {name for name in BINDER_CLAIMS} | {
        f"{name}~{tag}" for name, tags in BINDER_CLAIMS.items() for tag in tags
    }
    assert set(binder) == expected
    for name in BINDER_CLAIMS:
        assert binder[name].expect == "holds"
        assert any(ch.isdigit() for ch in name), f"{name} states no bound"
    for tag in (
        "spam-before-insert",
        "no-offset-data-bound",
        "num-valid-star",
        "skip-zero-sentinel",
    ):
        assert any(c.name.endswith("~" + tag) and c.expect == "fails" for c in binder.values())


def test_binder_counterexamples_are_concrete_inputs() -> None:
    r = proofs.claim("binder_offsets_parent_4objects_u64~num-valid-star").run()
    assert r.verdict == "counterexample" and r.counterexample is not None
    assert r.counterexample.startswith("the validated count admits an object not yet validated: ")
    assert "obj1_kind=" in r.counterexample or "obj0_kind=" in r.counterexample


def test_the_claims_run_the_drivers_own_functions() -> None:
    assert A.CORE.array_place is RC.array_place
    assert A.CORE.reserve_decision is RC.reserve_decision
    assert A.CORE.split_free is RC.split_free
    assert A.CORE.oneway_space_after_free is RC.oneway_space_after_free
    assert A.CORE.merge_free is RC.merge_free
    assert A.CORE.reserve_step is RC.reserve_step
    assert O.CORE.check_object_offset is V.check_object_offset
    assert O.CORE.check_object_end is V.check_object_end
    assert O.CORE.validated_count is V.validated_count
    assert O.CORE.check_parent is V.check_parent
    assert O.CORE.check_fixup is V.check_fixup
    assert O.CORE.fixup_plan is V.fixup_plan
    assert O.CORE.check_fixup_in_buffer is V.check_fixup_in_buffer


AREA = 128 * 1024


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[tuple[int, bool, int]]]]:
    """Every `reserve_decision` call's `held` ranges, as the representation passed them."""
    seen: list[list[tuple[int, bool, int]]] = []
    real = RC.reserve_decision

    def spy(area: int, free: int, size: int, ow: bool, pid: int, off: int | None, held: Any) -> Any:
        items = list(held)
        seen.append(items)
        return real(area, free, size, ow, pid, off, items)

    monkeypatch.setattr(RC, "reserve_decision", spy)
    yield seen


def test_both_representations_decide_through_reserve_decision(
    decisions: list[list[tuple[int, bool, int]]],
) -> None:
    array: ArrayRangeAllocator[str] = ArrayRangeAllocator(AREA, EmptyArrayAlloc.try_new(8))
    tree: TreeRangeAllocator[str] = TreeRangeAllocator.from_array(
        AREA, KVec.new(), FromArrayAllocs.try_new(0)
    )
    sizes = [(AREA // 8, True, 1), (64, False, 2), (AREA // 16, True, 1)]
    flags_array = [array.reserve_new(0, s, w, p)[1] for s, w, p in sizes]
    flags_tree = [
        tree.reserve_new(0, s, w, p, ReserveNewTreeAlloc.try_new())[1] for s, w, p in sizes
    ]
    assert flags_array == flags_tree
    # Each call saw exactly the ranges reserved before it: the new one is the core's to
    # add, after the insert, in both representations.
    assert decisions[:3] == decisions[3:] == [[], [sizes[0]], [sizes[0], sizes[1]]]


# --- the symbolic run computes what the concrete run does -----------------------------------


def _sorted_ranges(area: int, n: int) -> Iterator[list[tuple[int, int]]]:
    points = range(area + 1)
    for cut in itertools.combinations(points, 2 * n):
        yield [(cut[2 * i], cut[2 * i + 1] - cut[2 * i]) for i in range(n)]


def test_array_place_agrees_exhaustively() -> None:
    cases = 0
    for n in (0, 1, 2):
        for ranges in _sorted_ranges(6, n):
            for size in range(1, 8):
                assert evaluate(RC.array_place, ranges, 6, size) == RC.array_place(ranges, 6, size)
                cases += 1
    assert cases > 200


def test_reserve_decision_and_free_agree_exhaustively() -> None:
    for area, free, size, ow, pid, held_pid, held_ow, off in itertools.product(
        (10, 40), (0, 3, 20), (1, 4, 15), (False, True), (1, 2), (1, 2), (False, True), (None, 8)
    ):
        held = [(12, held_ow, held_pid)]
        want = RC.reserve_decision(area, free, size, ow, pid, off, held)
        assert evaluate(RC.reserve_decision, area, free, size, ow, pid, off, held) == want
        assert evaluate(RC.oneway_space_after_free, free, size, ow) == RC.oneway_space_after_free(
            free, size, ow
        )


def test_merge_and_retry_step_agree_exhaustively() -> None:
    for prev, nxt in itertools.product((None, (0, 4)), (None, (12, 3))):
        assert evaluate(RC.merge_free, 4, 8, prev, nxt) == RC.merge_free(4, 8, prev, nxt)
    for kind in ("empty", "array", "tree"):
        for flags in itertools.product((False, True), repeat=4):
            assert evaluate(RC.reserve_step, kind, *flags) == RC.reserve_step(kind, *flags)


def test_validation_agrees_exhaustively() -> None:
    for off, end_prev, data in itertools.product(range(0, 13), range(0, 9, 4), range(0, 13, 3)):
        assert evaluate(V.check_object_offset, off, end_prev, data) == V.check_object_offset(
            off, end_prev, data
        )
        assert evaluate(V.check_object_end, off, 4, data) == V.check_object_end(off, 4, data)
    for k, start in itertools.product(range(4), (0, 8, 24)):
        assert evaluate(V.validated_count, start + 8 * k, start) == k
    for parent, num_valid in itertools.product(range(4), range(4)):
        for ancestors in ([], [0], [0, 2], [1, 2, 3]):
            assert evaluate(V.check_parent, parent, num_valid, ancestors) == V.check_parent(
                parent, num_valid, ancestors
            )
    for mn, po, ln, pl in itertools.product(range(0, 9, 4), range(0, 9, 4), (0, 4, 8), (0, 8, 16)):
        assert evaluate(V.check_fixup, mn, po, ln, pl) == V.check_fixup(mn, po, ln, pl)
        assert evaluate(V.check_fixup_in_buffer, mn, po, ln, pl) == V.check_fixup_in_buffer(
            mn, po, ln, pl
        )
    for is_pointer, skip in itertools.product((False, True), (0, 4, 8)):
        assert evaluate(V.fixup_plan, is_pointer, skip) == V.fixup_plan(is_pointer, skip)


U64 = st.integers(0, V.U64_MAX)


@settings(max_examples=60, deadline=None)
@given(U64, U64, U64, U64)
def test_validation_agrees_on_random_u64(a: int, b: int, c: int, d: int) -> None:
    assert evaluate(V.check_object_offset, a, b, c) == V.check_object_offset(a, b, c)
    assert evaluate(V.check_object_end, a, 40, c) == V.check_object_end(a, 40, c)
    assert evaluate(V.check_fixup, a, b, c, d) == V.check_fixup(a, b, c, d)
    assert evaluate(V.validated_count, a + 8 * (b % 5), a) == b % 5


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 4096), max_size=4),
    st.integers(1, 64 * 1024),
    st.integers(0, 32 * 1024),
    st.integers(1, 8192),
    st.booleans(),
)
def test_allocator_agrees_on_random_states(
    gaps: list[int], area: int, free: int, size: int, oneway: bool
) -> None:
    ranges = []
    pos = 0
    for g in gaps:
        ranges.append((pos + g, g))
        pos += 2 * g
    held = [(s, i % 2 == 0, 1 + i % 2) for i, (_, s) in enumerate(ranges)]
    assert evaluate(RC.array_place, ranges, area, size) == RC.array_place(ranges, area, size)
    args = (area, free, size, oneway, 1, 0, held)
    assert evaluate(RC.reserve_decision, *args) == RC.reserve_decision(*args)


def test_a_symbolic_branch_explores_both_sides() -> None:
    """The explorer finds a violation only reachable on one side of a branch."""

    def build(ex: Explorer) -> Any:
        x = ex.int_var("x", 0, 100)

        def run() -> None:
            if x > 90:
                ex.check(x != 97, "x is 97")

        return run

    out = outcome(build)
    assert out.verdict == "counterexample" and out.counterexample == "x is 97: x=97"


def test_binder_bench_measures_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert binder_bench.main(["--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["claim"] for r in rows} == {f[0] for f in binder_bench.FAMILIES}
    assert all(r["proved"] and r["paths"] > 0 for r in rows)


# --- layers ---------------------------------------------------------------------------------


def _fresh(code: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_the_pure_cores_load_nothing_of_the_driver_or_the_kernel() -> None:
    loaded = _fresh(
        "import json, sys\n"
        "import binder.range_core, binder.validate\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('binder', 'ownership'))))\n"
    )
    assert loaded == ["binder", "binder.range_core", "binder.validate"]


def test_import_proofs_loads_only_the_pure_cores_of_binder() -> None:
    loaded = _fresh(
        "import json, sys\n"
        "import proofs\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'binder')))\n"
    )
    assert loaded == ["binder", "binder.range_core", "binder.validate"]
