"""`python -m proofs --bench`: how long the proofs and the cross-check take.

Reports the whole suite's time (median of `repeat` runs in this process; the first run
also builds the formula templates, so it is reported separately as the cold run), the
slowest claim, every claim over its target (flag-level claims: 100 ms; the split/merge
claims: 60 s; the Binder claims: 2 s), and how the exhaustive concrete-vs-Z3 cross-check scales with the
number of enumerated bits (cases, time in the concrete evaluator, time in Z3).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass

from . import CLAIMS
from .crosscheck import MAX_BITS, exhaustive, formulas

__all__ = [
    "BINDER_TARGET",
    "FLAG_TARGET",
    "MERGE_TARGET",
    "SUITE_TARGET",
    "BenchReport",
    "main",
    "run",
]

SUITE_TARGET = 5.0
FLAG_TARGET = 0.100
MERGE_TARGET = 60.0
BINDER_TARGET = 2.0
"""Per Binder claim (`proofs.binder_alloc`, `proofs.binder_offsets`): every path of the
driver's pure cores at the claim's bound."""


@dataclass(frozen=True)
class ScalingRow:
    bits: int
    formulas: int
    cases: int
    concrete_seconds: float
    z3_seconds: float
    agree: bool


_TARGETS = {"merge": MERGE_TARGET, "binder": BINDER_TARGET}


def _suite_once() -> tuple[float, dict[str, float], bool]:
    per: dict[str, float] = {}
    ok = True
    t0 = time.perf_counter()
    for c in CLAIMS:
        r = c.run()
        per[c.name] = r.seconds
        ok = ok and r.ok
    return time.perf_counter() - t0, per, ok


def _scaling(bits: int) -> ScalingRow:
    fs = formulas()
    cases = 0
    conc = z = 0.0
    agree = True
    for f in fs:
        r = exhaustive(f, bits)
        cases += r.cases
        conc += r.concrete_seconds
        z += r.z3_seconds
        agree = agree and r.agree
    return ScalingRow(bits, len(fs), cases, conc, z, agree)


@dataclass(frozen=True)
class BenchReport:
    """What `--bench` measured."""

    claims: int
    all_as_expected: bool
    suite_seconds: float
    suite_cold_seconds: float
    per_claim_seconds: dict[str, float]
    slowest_claim: str
    slowest_flag_claim: str
    over_target: tuple[str, ...]
    scaling: tuple[ScalingRow, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "claims": self.claims,
            "all_as_expected": self.all_as_expected,
            "suite_seconds": self.suite_seconds,
            "suite_cold_seconds": self.suite_cold_seconds,
            "suite_target_seconds": SUITE_TARGET,
            "slowest_claim": {
                "name": self.slowest_claim,
                "seconds": self.per_claim_seconds[self.slowest_claim],
            },
            "slowest_flag_claim": {
                "name": self.slowest_flag_claim,
                "seconds": self.per_claim_seconds.get(self.slowest_flag_claim, 0.0),
            },
            "over_target": list(self.over_target),
            "per_claim_seconds": self.per_claim_seconds,
            "crosscheck_scaling": [dataclasses.asdict(r) for r in self.scaling],
        }


def run(repeat: int, bits: list[int]) -> BenchReport:
    """Run the suite `repeat` times and the cross-check at each size in `bits`."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    runs = [_suite_once() for _ in range(repeat)]
    warm = runs[1:] or runs
    per = {n: statistics.median(r[1][n] for r in warm) for n in warm[0][1]}
    kinds = {c.name: c.kind for c in CLAIMS}
    flag_names = [n for n in per if kinds[n] == "flags"]
    over = tuple(
        n for n, sec in per.items() if sec > _TARGETS.get(kinds[n], FLAG_TARGET)
    )
    return BenchReport(
        claims=len(CLAIMS),
        all_as_expected=all(ok for _, _, ok in runs),
        suite_seconds=statistics.median(t for t, _, _ in warm),
        suite_cold_seconds=runs[0][0],
        per_claim_seconds=per,
        slowest_claim=max(per, key=lambda n: per[n]),
        slowest_flag_claim=max(flag_names, key=lambda n: per[n]) if flag_names else "",
        over_target=over,
        scaling=tuple(_scaling(b) for b in bits),
    )


def main(repeat: int, bits_arg: str, as_json: bool) -> int:
    try:
        bits = [int(b) for b in bits_arg.split(",") if b.strip()]
    except ValueError:
        print(f"python -m proofs --bench: bad --bits {bits_arg!r}", file=sys.stderr)
        return 2
    if repeat < 1 or not all(0 <= b <= MAX_BITS for b in bits):
        print(
            f"python -m proofs --bench: --repeat must be >= 1 and --bits in 0..{MAX_BITS}",
            file=sys.stderr,
        )
        return 2
    rep = run(repeat, bits)
    if as_json:
        print(json.dumps(rep.as_json(), indent=2))
        return 0 if rep.all_as_expected else 1
    per = rep.per_claim_seconds
    print(
        f"suite: {rep.claims} claims, median {rep.suite_seconds:.2f}s over "
        f"{max(repeat - 1, 1)} warm run(s) (cold {rep.suite_cold_seconds:.2f}s; "
        f"target {SUITE_TARGET:.0f}s)"
    )
    print(f"slowest claim: {rep.slowest_claim} {per[rep.slowest_claim] * 1000:.0f} ms")
    if rep.slowest_flag_claim:
        print(
            f"slowest flag-level claim: {rep.slowest_flag_claim} "
            f"{per[rep.slowest_flag_claim] * 1000:.0f} ms (target {FLAG_TARGET * 1000:.0f} ms)"
        )
    print("over target: " + (", ".join(rep.over_target) if rep.over_target else "none"))
    print("cross-check (concrete evaluator vs Z3, every case):")
    print(
        f"  {'bits':>4} {'formulas':>8} {'cases':>10} {'concrete s':>10} {'z3 s':>8} "
        f"{'us/case':>8}  agree"
    )
    for r in rep.scaling:
        per_case = (r.concrete_seconds + r.z3_seconds) / max(r.cases, 1) * 1e6
        print(
            f"  {r.bits:>4} {r.formulas:>8} {r.cases:>10} {r.concrete_seconds:>10.2f} "
            f"{r.z3_seconds:>8.2f} {per_case:>8.1f}  {'yes' if r.agree else 'NO'}"
        )
    return 0 if rep.all_as_expected else 1
