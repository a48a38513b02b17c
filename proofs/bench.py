"""`python -m proofs --bench`: how long the proofs and the cross-check take.

Reports the whole suite's time (median of `repeat` runs in this process; the first run
also builds the formula templates, so it is reported separately as the cold run), the
slowest claim, every claim over its target (flag-level claims: 100 ms; the split/merge
claims: 60 s; the Binder claims: 2 s), and how the exhaustive concrete-vs-Z3 cross-check
scales with the
number of enumerated bits (cases, time in the concrete evaluator, time in Z3).

A progress bar with an ETA (tqdm, on stderr) counts claims and cross-check formulas, on a
terminal or with `--progress`. Ctrl-C stops the run and prints what was measured so far
(`interrupted` in the JSON; exit status 130).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm

from . import CLAIMS
from .crosscheck import MAX_BITS, exhaustive, formulas
from .z3api import leave_ctrl_c_to_python

__all__ = [
    "BINDER_TARGET",
    "FLAG_TARGET",
    "INTERRUPTED",
    "MERGE_TARGET",
    "SUITE_TARGET",
    "BenchReport",
    "main",
    "run",
    "steps",
    "stop_at_steps",
]

#: The exit status after Ctrl-C, once the partial report was printed (128 + SIGINT).
INTERRUPTED = 130

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


def _suite_once(
    tick: Callable[[], None], per: dict[str, float] | None = None
) -> tuple[float, dict[str, float], bool]:
    """One run of every claim; `per` (filled as claims finish) survives an interrupt."""
    per = {} if per is None else per
    ok = True
    t0 = time.perf_counter()
    for c in CLAIMS:
        r = c.run()
        per[c.name] = r.seconds
        ok = ok and r.ok
        tick()
    return time.perf_counter() - t0, per, ok


def _scaling(bits: int, tick: Callable[[], None]) -> ScalingRow:
    fs = formulas()
    cases = 0
    conc = z = 0.0
    agree = True
    for f in fs:
        tick()
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
    interrupted: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "interrupted": self.interrupted,
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


@contextmanager
def stop_at_steps() -> Iterator[Callable[[], None]]:
    """Make Ctrl-C stop at the next step boundary; yields the check to call at each step.

    Z3 frees its contexts in `__del__`, where a `KeyboardInterrupt` is swallowed: a Ctrl-C
    that lands there would be lost. So the first Ctrl-C only sets a flag (and says so on
    stderr) and the step check raises `KeyboardInterrupt`; a second one raises at once.
    Outside the main thread, Ctrl-C keeps its default behaviour.
    """
    stop = [False]

    def on_sigint(signum: int, frame: object) -> None:
        if stop[0]:
            raise KeyboardInterrupt
        stop[0] = True
        print("\ninterrupted: stopping after the current step", file=sys.stderr, flush=True)

    def check() -> None:
        if stop[0]:
            raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    if main:
        leave_ctrl_c_to_python()
    prev = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        yield check
    finally:
        if main:
            signal.signal(signal.SIGINT, prev)


def steps(repeat: int, bits: list[int]) -> int:
    """How many progress steps `run` makes: claims per suite run, formulas per size."""
    return repeat * len(CLAIMS) + len(bits) * len(formulas())


def run(repeat: int, bits: list[int], tick: Callable[[], None] | None = None) -> BenchReport | None:
    """Run the suite `repeat` times and the cross-check at each size in `bits`.

    `tick()` is called after each claim and before each cross-check formula. After
    Ctrl-C the report covers what finished (`interrupted`); None if no claim had.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    runs: list[tuple[float, dict[str, float], bool]] = []
    scaling: list[ScalingRow] = []
    interrupted = False
    current: dict[str, float] = {}
    try:
        with stop_at_steps() as check:

            def step() -> None:
                check()
                if tick is not None:
                    tick()

            for _ in range(repeat):
                current = {}
                runs.append(_suite_once(step, current))
            for b in bits:
                scaling.append(_scaling(b, step))
    except KeyboardInterrupt:
        interrupted = True
        if not runs and current:
            runs.append((sum(current.values()), current, True))
    if not runs:
        return None
    warm = runs[1:] or runs
    names = [n for n in warm[0][1] if all(n in r[1] for r in warm)]
    per = {n: statistics.median(r[1][n] for r in warm) for n in names}
    kinds = {c.name: c.kind for c in CLAIMS}
    flag_names = [n for n in per if kinds[n] == "flags"]
    over = tuple(n for n, sec in per.items() if sec > _TARGETS.get(kinds[n], FLAG_TARGET))
    return BenchReport(
        claims=len(per) if interrupted else len(CLAIMS),
        all_as_expected=all(ok for _, _, ok in runs),
        suite_seconds=statistics.median(t for t, _, _ in warm),
        suite_cold_seconds=runs[0][0],
        per_claim_seconds=per,
        slowest_claim=max(per, key=lambda n: per[n]),
        slowest_flag_claim=max(flag_names, key=lambda n: per[n]) if flag_names else "",
        over_target=over,
        scaling=tuple(scaling),
        interrupted=interrupted,
    )


def main(repeat: int, bits_arg: str, as_json: bool, show_progress: bool | None = None) -> int:
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
    show = sys.stderr.isatty() if show_progress is None else show_progress
    with tqdm(
        total=steps(repeat, bits),
        desc="proofs --bench",
        unit="step",
        disable=not show,
        file=sys.stderr,
        mininterval=0.2,
    ) as bar:

        def tick() -> None:
            bar.update(1)

        rep = run(repeat, bits, tick)
    if rep is None:
        print("python -m proofs --bench: interrupted before the first claim finished")
        return INTERRUPTED
    status = INTERRUPTED if rep.interrupted else 0 if rep.all_as_expected else 1
    if as_json:
        print(json.dumps(rep.as_json(), indent=2))
        return status
    if rep.interrupted:
        print("interrupted: the report covers what finished")
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
    return status
