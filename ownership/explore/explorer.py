"""`explore()`: run a scenario under many schedules, shrink and report the first failure.

Each schedule runs the scenario afresh on a `GreenletScheduler`, in a fresh world:
lockdep's dependency graph is reset (each run is a boot of its own, so a schedule fails
the same way when replayed alone) and the system workqueue is replaced for the run by
one built on the explorer's primitives (the one made at import keeps the default
scheduler's locks and worker thread). A failing schedule is shrunk (chunks of its recorded
choices dropped, delta-debugging style, while the failure stays the same and the
preemptions and steps do not grow; then a bounded dfs below its preemption count),
then replayed once more with recording on, so the report has
the sites of the last seam points of each thread; that text is appended to the
failure's own splat (`SafetyViolation`: its message; other exceptions: a note).

Resetting lockdep is a side effect on the caller: the dependencies recorded before
`explore()` are forgotten (as between tests), and the graph is the last run's after it.

Strategies: "random", "pct", "dfs", "portfolio" (a bounded dfs on part of the budget,
then PCT of depth 2 and 3 and random in turn, as Coyote mixes its schedulers). Shards
(`shard=(i, n)`) split the seeds of random and PCT runs (run `r` belongs to shard
`r % n`) and the dfs search tree (the subtrees below the first run's decisions are
dealt out round-robin), so `n` processes cover the space without overlap.

No C counterpart: loom's `model()`, shuttle's `check_*` and Coyote's test engine.

Lock order: the explorer takes no locks; it runs one model thread at a time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import lockdep, workqueue
from ..bindings import workqueue as c_workqueue
from ..errors import SafetyViolation
from ..site import Site
from .schedule import Choice, decode, encode
from .scheduler import GreenletScheduler, Strategy
from .strategies import DfsRun, DfsSearch, PctStrategy, RandomStrategy, ReplayStrategy

__all__ = ["DEFAULT_MAX_STEPS", "STRATEGIES", "Exploration", "explore", "run_once"]

DEFAULT_MAX_STEPS = 20_000
"""Seam points one schedule may take before it is reported as a livelock."""

STRATEGIES = ("portfolio", "random", "pct", "dfs")

_DFS_BOUND = 2
_PORTFOLIO_BOUND = 1
_SHRINK_BUDGET = 200

Progress = Callable[["Exploration"], None]


@dataclass
class Exploration:
    """What an exploration found.

    Invariants: `failure` is None iff no schedule failed, and then `schedule` and
    `preemptions` are None; `complete` is True only when a bounded dfs ran out of
    schedules (with no failure, or before finding one); `runs` counts the schedules run
    (`pruned` of them dropped by the sleep sets part way).
    """

    failure: BaseException | None = None
    schedule: str | None = None
    seed: int = 0
    runs: int = 0
    preemptions: int | None = None
    complete: bool = False
    strategy: str = "portfolio"
    pruned: int = 0
    steps: int | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    interleaving: str = ""
    reproduced: bool = True
    total: int = 0
    _started: float = field(default=0.0, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        head = (
            f"explore[{self.strategy}]: {self.runs} schedule(s)"
            f"{f' ({self.pruned} pruned)' if self.pruned else ''} in {self.elapsed:.2f}s"
            f"{', complete' if self.complete else ''}"
            f"{', interrupted' if self.interrupted else ''}"
        )
        if self.failure is None:
            return head + ": no failure"
        return (
            f"{head}: FAILED ({type(self.failure).__name__}"
            f"{f' [{self.failure.rule}]' if isinstance(self.failure, SafetyViolation) else ''})"
            f", {self.preemptions} preemption(s), {self.steps} step(s)\n"
            f"replay with: --replay '{self.schedule}'"
        )

    def to_json(self) -> dict[str, object]:
        f = self.failure
        return {
            "strategy": self.strategy,
            "runs": self.runs,
            "pruned": self.pruned,
            "seed": self.seed,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed, 3),
            "failure": None
            if f is None
            else {
                "type": type(f).__name__,
                "rule": getattr(f, "rule", None),
                "message": str(f),
            },
            "schedule": self.schedule,
            "preemptions": self.preemptions,
            "steps": self.steps,
        }


@contextmanager
def _fresh_world() -> Iterator[None]:
    """A run's own system workqueue and a clean lockdep graph (see the module docstring)."""
    lockdep.reset_for_tests()
    saved, saved_c = workqueue.system_wq, c_workqueue.system_wq
    # INVARIANT: the C queue and its Rust wrapper are replaced together, while the
    # explorer's scheduler is installed, so the run's queue takes its locks from it.
    c_workqueue.system_wq = c_workqueue.WorkqueueStruct("events")
    workqueue.system_wq = workqueue.Workqueue.from_raw(c_workqueue.system_wq)
    try:
        yield
    finally:
        workqueue.system_wq, c_workqueue.system_wq = saved, saved_c


def run_once(
    scenario: Callable[[], object],
    strat: Strategy,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    record: bool = False,
) -> GreenletScheduler:
    """Run `scenario` once under `strat`; the finished scheduler holds the outcome."""
    s = GreenletScheduler(strat, max_steps=max_steps, record=record)
    s.run(scenario, _fresh_world)
    if s.interrupted:
        # Ctrl-C while a model thread ran: stop the search as if it hit the driver.
        raise KeyboardInterrupt
    return s


def _signature(e: BaseException) -> tuple[type[BaseException], str | None]:
    return type(e), getattr(e, "rule", None)


def _replay(
    scenario: Callable[[], object],
    choices: list[Choice],
    spurious: bool,
    max_steps: int,
    record: bool = False,
) -> GreenletScheduler:
    return run_once(scenario, ReplayStrategy(choices, spurious), max_steps=max_steps, record=record)


def _shrink(
    scenario: Callable[[], object], s: GreenletScheduler, spurious: bool, max_steps: int
) -> tuple[GreenletScheduler, int]:
    """Drop recorded choices one at a time while the failure stays the same."""
    assert s.failure is not None
    sig = _signature(s.failure)
    best = s
    budget = _SHRINK_BUDGET
    # Delta debugging (ddmin): drop chunks of the recorded choices, halving the chunk
    # size when no chunk of a size can go; a long random schedule loses most of its
    # choices in a few runs.
    chunk = max(len(best.choices) // 2, 1)
    while budget > 0 and best.choices:
        improved = False
        i = len(best.choices)
        while i > 0 and budget > 0:
            lo = max(i - chunk, 0)
            cand = best.choices[:lo] + best.choices[i:]
            budget -= 1
            r = _replay(scenario, cand, spurious, max_steps)
            if (
                r.failure is not None
                and _signature(r.failure) == sig
                and (
                    r.preemptions,
                    r.steps,
                )
                <= (best.preemptions, best.steps)
            ):
                best = r
                improved = True
                i = min(lo, len(best.choices))
            else:
                i = lo
        if not improved:
            if chunk == 1:
                break
            chunk = max(chunk // 2, 1)
        else:
            chunk = min(chunk, max(len(best.choices) // 2, 1))
    # Dropping a choice moves the decisions after it; a bounded search below the
    # preemption count found so far looks for a schedule that needs fewer.
    bound = 0
    while budget > 0 and best.preemptions > 1 and bound < best.preemptions:
        search = DfsSearch(bound, prune=True)
        while budget > 0:
            br = search.next_branch()
            if br is None:
                break
            run = DfsRun(search, br)
            budget -= 1
            r = run_once(scenario, run, max_steps=max_steps)
            search.finish(run, r)
            if r.failure is not None and _signature(r.failure) == sig:
                best = r
                break
        else:
            break
        bound += 1
    return best, _SHRINK_BUDGET - budget


def _site_line(site: Site) -> str:
    return site.describe().splitlines()[0]


def interleaving_report(s: GreenletScheduler, schedule: str) -> str:
    """The last seam points of each thread of a recorded run, oldest first."""
    lines = [
        f"interleaving (schedule {schedule}; the last seam points of each thread, "
        "numbered by step):"
    ]
    for t in s.threads:
        state = s.final.get(t.index, "?")
        lines.append(f"  thread '{t.name}' ({state}):")
        for step, op, obj, site in t.trail:
            lines.append(f"    #{step} {op} {obj} at {_site_line(site)}")
    return "\n".join(lines)


def _attach(e: BaseException, text: str) -> None:
    if isinstance(e, SafetyViolation):
        e.args = (f"{e.report()}\n{text}",)
    else:
        e.add_note(text)


def _finish_failure(
    ex: Exploration,
    scenario: Callable[[], object],
    s: GreenletScheduler,
    spurious: bool,
    max_steps: int,
    shrink: bool,
) -> None:
    best = s
    if shrink:
        best, _runs = _shrink(scenario, s, spurious, max_steps)
    # A schedule found by the shrinking dfs counts decisions without spurious wakeups.
    spurious = best.strategy.spurious
    schedule = encode(best.choices, spurious)
    rec = _replay(scenario, best.choices, spurious, max_steps, record=True)
    assert best.failure is not None
    failure = best.failure
    if rec.failure is not None and _signature(rec.failure) == _signature(failure):
        failure = rec.failure
        ex.interleaving = interleaving_report(rec, schedule)
        _attach(failure, ex.interleaving)
    else:
        ex.reproduced = False
    ex.failure = failure
    ex.schedule = schedule
    ex.preemptions = best.preemptions
    ex.steps = best.steps


def _seeded(seed: int, r: int) -> random.Random:
    return random.Random(f"explore:{seed}:{r}")


def explore(
    scenario: Callable[[], object],
    *,
    strategy: str = "portfolio",
    runs: int = 1000,
    seed: int = 0,
    max_preemptions: int | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    replay: str | None = None,
    shard: tuple[int, int] = (0, 1),
    prune: bool = True,
    spurious: bool | None = None,
    shrink: bool = True,
    progress: Progress | None = None,
) -> Exploration:
    """Run `scenario` under up to `runs` schedules; the first failure, shrunk.

    `max_preemptions` bounds dfs (default 2; 1 for the dfs part of "portfolio") and is
    PCT's depth minus one (default 2). `spurious` lets random and PCT wake waiters
    spuriously (default on for them; dfs never does). `prune` turns dfs's sleep sets
    on. `replay` runs exactly that schedule string.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    if runs < 0 or max_steps <= 0:
        raise ValueError("runs must be >= 0 and max_steps > 0")
    idx, nshards = shard
    if not 0 <= idx < nshards:
        raise ValueError(f"bad shard {idx}/{nshards}")
    ex = Exploration(seed=seed, strategy=strategy if replay is None else "replay", total=runs)
    t0 = time.perf_counter()
    try:
        if replay is not None:
            choices, sp = decode(replay)
            ex.total = 1
            s = _replay(scenario, choices, sp, max_steps)
            ex.runs = 1
            if s.failure is not None:
                _finish_failure(ex, scenario, s, sp, max_steps, shrink=False)
            return ex
        _search(
            ex,
            scenario,
            strategy,
            runs,
            seed,
            max_preemptions,
            max_steps,
            idx,
            nshards,
            prune,
            spurious,
            shrink,
            progress,
        )
    except KeyboardInterrupt:
        ex.interrupted = True
    finally:
        ex.elapsed = time.perf_counter() - t0
    return ex


def _search(
    ex: Exploration,
    scenario: Callable[[], object],
    strategy: str,
    runs: int,
    seed: int,
    max_preemptions: int | None,
    max_steps: int,
    idx: int,
    nshards: int,
    prune: bool,
    spurious: bool | None,
    shrink: bool,
    progress: Progress | None,
) -> None:
    rand_spurious = True if spurious is None else spurious

    def done_one(s: GreenletScheduler, sp: bool) -> bool:
        ex.runs += 1
        if progress is not None:
            progress(ex)
        if s.failure is not None:
            _finish_failure(ex, scenario, s, sp, max_steps, shrink)
            return True
        return False

    dfs_budget = runs
    if strategy == "portfolio":
        dfs_budget = runs // 3
    if strategy in ("dfs", "portfolio"):
        default_bound = _DFS_BOUND if strategy == "dfs" else _PORTFOLIO_BOUND
        bound = default_bound if max_preemptions is None else max_preemptions
        search = DfsSearch(bound, prune=prune, shards=nshards, shard=idx)
        while ex.runs < dfs_budget:
            br = search.next_branch()
            if br is None:
                ex.complete = True
                break
            run = DfsRun(search, br)
            s = run_once(scenario, run, max_steps=max_steps)
            search.finish(run, s)
            ex.pruned = search.pruned
            if done_one(s, False):
                return
        if strategy == "dfs":
            return
    depth = (2 if max_preemptions is None else max_preemptions) + 1
    steps = 0
    r = 0
    while ex.runs < runs:
        r += 1
        if (r - 1) % nshards != idx:
            continue
        rng = _seeded(seed, r)
        kind = strategy
        if strategy == "portfolio":
            kind = ("pct", "pct", "random")[r % 3]
        strat: Strategy
        if kind == "random":
            strat = RandomStrategy(rng, rand_spurious)
        else:
            if steps == 0:
                # PCT's step count is estimated from a first, non-preempting run.
                first = run_once(scenario, ReplayStrategy([], False), max_steps=max_steps)
                steps = max(first.steps, 1)
                if done_one(first, False):
                    return
                if ex.runs >= runs:
                    return
            d = depth if strategy == "pct" else 2 + r % 2
            strat = PctStrategy(rng, d, steps, rand_spurious)
        s = run_once(scenario, strat, max_steps=max_steps)
        steps = max(steps, s.steps)
        if done_one(s, strat.spurious):
            return
