"""`python -m proofs.binder_bench`: how the Binder claims' time grows with their bound.

Each Binder claim proves a harness for every state size up to its bound (ranges,
descriptors, objects, fixups) or for one sequence length (operations). This runs each
harness family at several bounds and prints, per bound, the feasible paths explored
and the CPU time (`time.process_time`, which Z3 runs inside, so a loaded machine does
not inflate it) and the wall time.

    python -m proofs.binder_bench [--json] [--quick]

`--quick` uses the two smallest bounds of each family (for the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import binder_alloc as A
from . import binder_offsets as O
from .symexec import Explorer, outcome

__all__ = ["FAMILIES", "Row", "main", "run"]

Build = Callable[[Explorer], Callable[[], None]]


def _place(n_max: int) -> list[Build]:
    return [A.place_harness(A.CORE, n) for n in range(n_max + 1)]


def _split(n_max: int) -> list[Build]:
    return [A.split_harness(A.CORE, n, j) for n in range(1, n_max + 1) for j in range(n)]


def _merge(n_max: int) -> list[Build]:
    return [A.merge_harness(A.CORE, n, j) for n in range(1, n_max + 1) for j in range(n)]


def _budget(n_max: int) -> list[Build]:
    return [A.budget_harness(A.CORE, n) for n in range(n_max + 1)]


def _spam(n_max: int) -> list[Build]:
    return [A.spam_harness(A.CORE, n) for n in range(n_max + 1)]


def _sequence(ops: int) -> list[Build]:
    return [A.sequence_harness(A.CORE, ops)]


def _objects(n_max: int) -> list[Build]:
    return [O.objects_harness(O.CORE, n) for n in range(1, n_max + 1)]


def _parent(n_max: int) -> list[Build]:
    return [O.parent_harness(O.CORE, n) for n in range(1, n_max + 1)]


def _fixups(n_max: int) -> list[Build]:
    return [O.fixups_harness(O.CORE, n) for n in range(1, n_max + 1)]


FAMILIES: tuple[tuple[str, str, tuple[int, ...], Callable[[int], list[Build]]], ...] = (
    ("binder_alloc_array_place", "ranges", (4, 8, 12), _place),
    ("binder_alloc_tree_split", "descriptors", (4, 8, 12), _split),
    ("binder_alloc_tree_merge", "descriptors", (4, 8, 12), _merge),
    ("binder_alloc_oneway_budget", "ranges", (4, 8, 12), _budget),
    ("binder_alloc_spam_after_insert", "ranges", (4, 8, 12), _spam),
    ("binder_alloc_sequence", "ops", (2, 3, 4), _sequence),
    ("binder_offsets_objects", "objects", (2, 4, 6), _objects),
    ("binder_offsets_parent", "objects", (2, 3, 4), _parent),
    ("binder_offsets_fixups", "fixups", (2, 3, 4), _fixups),
)
"""Each claim family: its name, what its bound counts, the bounds measured, and the
harnesses that prove it at a bound."""


@dataclass(frozen=True)
class Row:
    claim: str
    unit: str
    bound: int
    paths: int
    cpu_seconds: float
    wall_seconds: float
    proved: bool


def run(quick: bool = False) -> list[Row]:
    """Prove every family at each of its bounds (the two smallest with `quick`)."""
    rows = []
    for name, unit, bounds, builds in FAMILIES:
        for bound in bounds[:2] if quick else bounds:
            c0, w0 = time.process_time(), time.perf_counter()
            paths = 0
            proved = True
            for b in builds(bound):
                out = outcome(b)
                proved = proved and out.verdict == "proved"
                paths += int(out.detail.split()[0]) if out.verdict != "unknown" else 0
            rows.append(
                Row(
                    name,
                    unit,
                    bound,
                    paths,
                    time.process_time() - c0,
                    time.perf_counter() - w0,
                    proved,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proofs.binder_bench", description=__doc__)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="the two smallest bounds only")
    args = p.parse_args(argv)
    rows = run(args.quick)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        for r in rows:
            print(
                f"{r.claim:32} {r.unit:>11} <= {r.bound:<3} paths {r.paths:>6}  "
                f"cpu {r.cpu_seconds:7.3f}s  wall {r.wall_seconds:7.3f}s"
                f"{'' if r.proved else '  NOT PROVED'}"
            )
    return 0 if all(r.proved for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
