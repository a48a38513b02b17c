"""`python -m ownership explore MODULE:FUNCTION`: explore a scenario from the shell.

    python -m ownership explore MODULE:FUNCTION [--strategy S] [--runs N] [--seed S]
        [--max-preemptions K] [--max-steps N] [--replay STR] [--shard I/N] [--no-prune]
        [--json]

`MODULE:FUNCTION` names a zero-argument scenario (the current directory is on the
import path). A progress bar with an ETA is drawn on stderr when it is a terminal;
Ctrl-C stops the search and prints what was explored so far. The exit status is 0 when
no schedule failed, 1 when one did (its splat and replay string are printed), 2 for a
bad command line, 130 when interrupted with no failure found.

No C counterpart (a command-line tool of the model).

Lock order: none (a command-line front end).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .explorer import DEFAULT_MAX_STEPS, STRATEGIES, Exploration, explore

__all__ = ["load_scenario", "main", "parse_shard"]


def load_scenario(spec: str) -> Callable[[], object]:
    """The callable named by `MODULE:FUNCTION`."""
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise ValueError(f"expected MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: object = importlib.import_module(mod_name)
    for part in fn_name.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec} is not callable")
    return obj


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 0 <= int(i) < int(n):
        raise ValueError(f"expected --shard I/N with 0 <= I < N, got {text!r}")
    return int(i), int(n)


class _Bar:
    """A progress bar with an ETA on a terminal; nothing otherwise."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = max(total, 1)
        self.on = out.isatty()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, ex: Exploration) -> None:
        if not self.on:
            return
        now = time.perf_counter()
        if now - self.last < 0.1 and ex.runs < self.total:
            return
        self.last = now
        done = min(ex.runs, self.total)
        el = now - self.t0
        eta = el / done * (self.total - done) if done else 0.0
        width = 30
        fill = int(width * done / self.total)
        self.out.write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} schedules "
            f"{el:.1f}s, ETA {eta:.1f}s "
        )
        self.out.flush()

    def close(self) -> None:
        if self.on:
            self.out.write("\n")
            self.out.flush()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ownership explore",
        description="Explore the interleavings of a scenario, checking every kernel rule.",
    )
    ap.add_argument("scenario", help="MODULE:FUNCTION, a zero-argument scenario")
    ap.add_argument("--strategy", choices=STRATEGIES, default="portfolio")
    ap.add_argument("--runs", type=int, default=1000, help="schedules to run at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-preemptions", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS)
    ap.add_argument("--replay", default=None, help="run exactly this schedule string")
    ap.add_argument("--shard", default="0/1", help="I/N: this process's part of the search")
    ap.add_argument("--no-prune", action="store_true", help="turn the dfs sleep sets off")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        shard = parse_shard(args.shard)
    except (ValueError, ImportError, AttributeError) as e:
        print(f"explore: {e}", file=sys.stderr)
        return 2
    if args.runs < 0 or args.max_steps <= 0:
        print("explore: --runs must be >= 0 and --max-steps > 0", file=sys.stderr)
        return 2
    bar = _Bar(sys.stderr, args.runs)
    try:
        ex = explore(
            scenario,
            strategy=args.strategy,
            runs=args.runs,
            seed=args.seed,
            max_preemptions=args.max_preemptions,
            max_steps=args.max_steps,
            replay=args.replay,
            shard=shard,
            prune=not args.no_prune,
            progress=bar,
        )
    except ValueError as e:
        bar.close()
        print(f"explore: {e}", file=sys.stderr)
        return 2
    bar.close()
    if args.json:
        j = ex.to_json()
        j["scenario"] = args.scenario
        j["shard"] = args.shard
        print(json.dumps(j, indent=2))
    else:
        if ex.failure is not None:
            print(str(ex.failure))
            for note in getattr(ex.failure, "__notes__", []):
                print(note)
        print(ex.summary())
    if ex.failure is not None:
        return 1
    return 130 if ex.interrupted else 0
