"""`python -m binder <command>` (or `rust-binder <command>`): the driver in a simulated machine.

This module is the machine, not the driver: it boots a simulated kernel through the
KUnit-style harness (`ownership.kunit`), registers binder in it and acts as userspace.
Like every module of the package it never imports the simulated C side itself. Each
command is a function taking the argument list and returning the exit status,
registered in `COMMANDS`; `USAGE` is what `--help` prints.

`alloc-exhaustive` shows a progress bar with an ETA on stderr (on a terminal, or with
`--progress`); Ctrl-C stops it and prints the partial result (exit status 130).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from ownership.config import checking
from ownership.kunit import MAP_NORESERVE, MAP_PRIVATE, PROT_READ, Kernel
from ownership.miscdevice import File
from ownership.tools.cli import INTERRUPTED, dispatch, progress

from . import alloc_kunit
from .bench import run_bench
from .demo import run_demo
from .rust_binder_main import BinderDevice, register

__all__ = ["COMMANDS", "USAGE", "main"]

USAGE = """usage: rust-binder [--version] [-h] COMMAND [ARGS...]

commands:
  alloc-exhaustive   the 750,000-run port of binder_alloc_kunit.c's exhaustive test
  demo               a service manager, an echo service and a client exchanging messages
  bench              a binderThroughputTest-like workload: transactions/s, latency p50/p90/p99

`rust-binder COMMAND --help` (or `python -m binder COMMAND --help`) describes a command."""

# The counters a worker process adds its runs and failures to (set by `_init_worker`):
# the parent reads them for the progress bar and for a partial result after Ctrl-C.
_shared: tuple[Synchronized[int], Synchronized[int]] | None = None
# Set by Ctrl-C during an in-process run: the run stops between two cases (a
# KeyboardInterrupt raised inside the model, mid-case, would leave a half-done case).
_stop = [False]


def _on_sigint(signum: int, frame: object) -> None:
    if _stop[0]:
        raise KeyboardInterrupt
    _stop[0] = True


def _init_worker(runs: Synchronized[int], failures: Synchronized[int]) -> None:
    """A pool worker's set-up: share the counters; leave Ctrl-C to the parent."""
    global _shared
    _shared = (runs, failures)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exhaustive_worker(job: tuple[bool, int, int, int]) -> dict[str, Any]:
    """Run the cases `i` with `i % stride == k` (and `i % sample == 0`) in a fresh machine."""
    checks, stride, k, sample = job
    kernel = Kernel(pages_per_node=4096)
    reg = register(kernel)
    task = kernel.spawn_process("binder_alloc_kunit")
    with checking(checks), task.as_current():
        f = task.open("binder")
        task.mmap(f, alloc_kunit.BINDER_MMAP_SIZE, PROT_READ, MAP_PRIVATE | MAP_NORESERVE)
        proc = BinderDevice.process_of(File._view(f))
        t0, c0 = time.perf_counter(), time.process_time()
        last = [0, 0]

        def tick(done: int, failures: int) -> None:
            if _stop[0]:
                raise KeyboardInterrupt
            if _shared is not None:
                with _shared[0].get_lock():
                    _shared[0].value += done - last[0]
                with _shared[1].get_lock():
                    _shared[1].value += failures - last[1]
            last[:] = [done, failures]

        result = alloc_kunit.run_exhaustive(
            proc,
            task.pid,
            select=lambda i: i % stride == k and i % sample == 0,
            progress=tick,
            progress_every=1,
        )
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    task.exit()
    reg.unregister()
    return {
        "runs": result.runs,
        "failures": result.failures,
        "failed_cases": result.failed_cases,
        "seconds": seconds,
        "cpu_seconds": cpu,
    }


def _run_exhaustive(checks: bool, jobs: int, sample: int, bar: bool | None) -> dict[str, Any]:
    """Run the cases in `jobs` processes (or this one); the result, partial after Ctrl-C."""
    global _shared
    work = [(checks, jobs, k, sample) for k in range(jobs)]
    expected = len(range(0, alloc_kunit.TOTAL_EXHAUSTIVE_CASES, sample))
    runs_done = multiprocessing.Value("q", 0)
    failures_done = multiprocessing.Value("q", 0)
    parts: list[dict[str, Any]] = []
    interrupted = False
    t0 = time.perf_counter()
    label = f"alloc-exhaustive checks {'on' if checks else 'off'}"
    with progress(expected, label, bar, unit="case") as pbar:
        try:
            if jobs == 1:
                _shared = (runs_done, failures_done)
                stop = threading.Event()
                poller = _poll(pbar, runs_done, stop)
                _stop[0] = False
                prev = signal.signal(signal.SIGINT, _on_sigint)
                try:
                    parts = [_exhaustive_worker(work[0])]
                finally:
                    signal.signal(signal.SIGINT, prev)
                    stop.set()
                    poller.join()
                    _shared = None
            else:
                # The workers are fresh interpreters: they import the worker by its module
                # name (this file runs as `__main__`, which they could not import).
                worker = importlib.import_module("binder.__main__")._exhaustive_worker
                ctx = multiprocessing.get_context("spawn")
                runs_done = ctx.Value("q", 0)
                failures_done = ctx.Value("q", 0)
                with ctx.Pool(jobs, _init_worker, (runs_done, failures_done)) as pool:
                    pending = pool.map_async(worker, work)
                    while not pending.ready():
                        pending.wait(0.2)
                        pbar.update(runs_done.value - pbar.n)
                    parts = pending.get()
            pbar.update(runs_done.value - pbar.n)
        except KeyboardInterrupt:
            interrupted = True
    wall = time.perf_counter() - t0
    if interrupted or not parts:
        runs, failures = runs_done.value, failures_done.value
        cpu, failed_cases = 0.0, []
    else:
        runs = sum(p["runs"] for p in parts)
        failures = sum(p["failures"] for p in parts)
        cpu = sum(p["cpu_seconds"] for p in parts)
        failed_cases = [c for p in parts for c in p["failed_cases"]][:20]
    return {
        "checks": "on" if checks else "off",
        "jobs": jobs,
        "sample": sample,
        "runs": runs,
        "expected_runs": expected,
        "failures": failures,
        "failed_cases": failed_cases,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "runs_per_second": round(runs / wall, 1) if wall else 0.0,
        "ok": not interrupted and failures == 0 and runs == expected,
        "interrupted": interrupted,
    }


def _poll(pbar: Any, counter: Synchronized[int], stop: threading.Event) -> threading.Thread:
    """A thread moving the bar to `counter` every 0.2 s until `stop` (the in-process run)."""

    def run() -> None:
        while not stop.wait(0.2):
            pbar.update(counter.value - pbar.n)

    t = threading.Thread(target=run, name="alloc-exhaustive-progress", daemon=True)
    t.start()
    return t


def cmd_alloc_exhaustive(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m binder alloc-exhaustive",
        description="The exhaustive binder allocator test: 5^5 layouts x front/back x 5! free "
        "orders.",
    )
    ap.add_argument(
        "--checks", choices=("on", "off", "both"), default="on", help="runtime checks (default on)"
    )
    ap.add_argument(
        "--jobs", type=int, default=1, help="worker processes, each with its own machine"
    )
    ap.add_argument("--sample", type=int, default=1, help="run only every N-th case (default: all)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar with ETA on stderr (default: when stderr is a terminal)",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.sample < 1:
        ap.error("--jobs and --sample must be >= 1")
    modes = [True, False] if args.checks == "both" else [args.checks == "on"]
    results = []
    for checks in modes:
        r = _run_exhaustive(checks, args.jobs, args.sample, args.progress)
        results.append(r)
        if not args.json:
            status = "INTERRUPTED" if r["interrupted"] else "PASSED" if r["ok"] else "FAILED"
            print(
                f"binder_alloc_exhaustive_test [{status}] checks {r['checks']}: "
                f"{r['runs']}/{r['expected_runs']} runs, "
                f"{r['failures']} failures, {r['seconds']} s wall, {r['cpu_seconds']} s CPU "
                f"({r['runs_per_second']} runs/s, {r['jobs']} job(s))"
            )
            for c in r["failed_cases"]:
                print(f"  {c}")
        if r["interrupted"]:
            break
    interrupted = any(r["interrupted"] for r in results)
    if args.json:
        doc = {"results": results, "ok": all(r["ok"] for r in results), "interrupted": interrupted}
        print(json.dumps(doc))
    if interrupted:
        return INTERRUPTED
    return 0 if all(r["ok"] for r in results) else 1


def cmd_demo(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m binder demo",
        description="A service manager, an echo service and a client in simulated processes.",
    )
    ap.parse_args(argv)
    return run_demo(Kernel(), register)


def cmd_bench(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m binder bench",
        description="binderThroughputTest-like: client/server pairs, sync BINDER_NOP transactions.",
    )
    ap.add_argument(
        "--checks", choices=("on", "off", "both"), default="on", help="runtime checks (default on)"
    )
    ap.add_argument("--pairs", "--threads", type=int, default=1, help="client/server process pairs")
    ap.add_argument("--iterations", type=int, default=None, help="transactions per client")
    ap.add_argument(
        "--transactions", type=int, default=None, help="transactions in total (split over pairs)"
    )
    ap.add_argument("--payload", type=int, default=0, help="payload bytes per transaction")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.payload < 0:
        ap.error("--pairs must be >= 1 and --payload >= 0")
    iterations = args.iterations
    if iterations is None:
        iterations = max(1, args.transactions // args.pairs) if args.transactions else 2000
    if iterations < 1:
        ap.error("--iterations must be >= 1")

    def make_kernel() -> Kernel:
        k = Kernel()
        register(k)
        return k

    results = run_bench(
        make_kernel,
        checks=args.checks,
        pairs=args.pairs,
        iterations=iterations,
        payload=args.payload,
    )
    docs = [r.as_json() for r in results]
    ratio = None
    if len(results) == 2 and results[0].tps > 0 and results[1].tps > 0:
        ratio = round(results[1].tps / results[0].tps, 2)
    if args.json:
        out: dict[str, Any] = dict(docs[0])
        if len(docs) == 2:
            out["off"] = docs[1]
            out["checks_cost_ratio"] = ratio
        print(json.dumps(out))
        return 0
    for d in docs:
        lat = d["latency_us"]
        print(
            f"checks {d['checks']}: {d['pairs']} pair(s), {d['transactions']} transactions of "
            f"{d['payload']} bytes in {d['seconds']} s: {d['transactions_per_second']} "
            "transactions/s; "
            f"round trip avg {lat['avg']} us, p50 {lat['p50']} us, p90 {lat['p90']} us, p99 "
            f"{lat['p99']} us"
        )
    if ratio is not None:
        print(
            f"checks on cost {ratio}x the time of checks off (target <= 2x; KASAN ~2-3x, KCSAN "
            "~5x, Miri ~40x)"
        )
    print(
        "for scale: C and Rust binder take 17.5 us per round trip on a Pixel 6 Pro (RFC cover "
        "letter)"
    )
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "alloc-exhaustive": cmd_alloc_exhaustive,
    "demo": cmd_demo,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("rust-binder", USAGE, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
