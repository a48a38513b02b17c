"""Benchmark: what the plugin costs a plain `mypy --strict` run, cold and warm.

    .venv/bin/python -m tests.static.bench_static [--target binder] [--repeat 3] [--json]

For the target package (binder/ by default, ownership/ if binder/ is missing), it runs
mypy as a user would, in a subprocess, with the project's configuration with and without
the `plugins = ownership.static.plugin` line:

* cold: an empty cache directory (stdlib, ownership and the target all checked);
* warm: the same command again on the cache the cold run left (nothing changed).

Each measurement is the median of `--repeat` cold runs (and three warm runs after
each), alternating the two configurations so that machine load hits both alike; the
minimum and the CPU time (user + system) of the mypy process are reported too, the CPU
time being the steadiest figure on a shared machine. The overhead is (with / without) - 1.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PLUGIN = "ownership.static.plugin"
CPU: list[float] = []
"""CPU seconds (user + system) of each mypy run, in order: steadier than wall time on a
loaded machine."""


def write_config(directory: Path, with_plugin: bool) -> Path:
    parser = configparser.ConfigParser()
    parser.read(PROJECT / "mypy.ini")
    plugins = [
        p.strip() for p in parser.get("mypy", "plugins", fallback="").split(",") if p.strip()
    ]
    plugins = [p for p in plugins if p != PLUGIN] + ([PLUGIN] if with_plugin else [])
    if plugins:
        parser.set("mypy", "plugins", ", ".join(plugins))
    elif parser.has_option("mypy", "plugins"):
        parser.remove_option("mypy", "plugins")
    path = directory / ("with.ini" if with_plugin else "without.ini")
    with open(path, "w", encoding="utf-8") as f:
        parser.write(f)
    return path


def run_mypy(config: Path, cache: Path, target: str) -> float:
    """Wall time of one mypy run (its CPU time is added to `CPU`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            target,
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"mypy failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return elapsed


def measure(target: str, repeat: int, warm_runs: int = 3) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-static-"))
    try:
        configs = {True: write_config(work, True), False: write_config(work, False)}
        times: dict[tuple[bool, str], list[float]] = {}
        cpu: dict[tuple[bool, str], list[float]] = {}
        for i in range(repeat):
            for plugin in (False, True) if i % 2 == 0 else (True, False):
                cache = work / f"cache-{plugin}-{i}"
                times.setdefault((plugin, "cold"), []).append(
                    run_mypy(configs[plugin], cache, target)
                )
                cpu.setdefault((plugin, "cold"), []).append(CPU[-1])
                for _ in range(warm_runs):
                    times.setdefault((plugin, "warm"), []).append(
                        run_mypy(configs[plugin], cache, target)
                    )
                    cpu.setdefault((plugin, "warm"), []).append(CPU[-1])
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "target": target,
        "repeat": repeat,
        "warm_runs": warm_runs,
        "seconds": {
            "cold_without": med[(False, "cold")],
            "cold_with": med[(True, "cold")],
            "warm_without": med[(False, "warm")],
            "warm_with": med[(True, "warm")],
        },
        "min_seconds": {
            "cold_without": low[(False, "cold")],
            "cold_with": low[(True, "cold")],
            "warm_without": low[(False, "warm")],
            "warm_with": low[(True, "warm")],
        },
        "overhead": {
            "cold": med[(True, "cold")] / med[(False, "cold")] - 1,
            "warm": med[(True, "warm")] / med[(False, "warm")] - 1,
        },
        "cpu_seconds": {
            "cold_without": cmed[(False, "cold")],
            "cold_with": cmed[(True, "cold")],
            "warm_without": cmed[(False, "warm")],
            "warm_with": cmed[(True, "warm")],
        },
        "cpu_overhead": {
            "cold": cmed[(True, "cold")] / cmed[(False, "cold")] - 1,
            "warm": cmed[(True, "warm")] / cmed[(False, "warm")] - 1,
        },
        "overhead_of_minimums": {
            "cold": low[(True, "cold")] / low[(False, "cold")] - 1,
            "warm": low[(True, "warm")] / low[(False, "warm")] - 1,
        },
        "files": sum(1 for _ in (PROJECT / target).rglob("*.py")),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default = "binder" if (PROJECT / "binder" / "__init__.py").exists() else "ownership"
    parser.add_argument("--target", default=default)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    res = measure(opts.target, opts.repeat)
    if opts.json:
        print(json.dumps(res, indent=2))
        return 0
    s = res["seconds"]
    o = res["overhead"]
    assert isinstance(s, dict) and isinstance(o, dict)
    m = res["min_seconds"]
    om = res["overhead_of_minimums"]
    assert isinstance(m, dict) and isinstance(om, dict)
    print(
        f"mypy --strict {res['target']}/ ({res['files']} files): {opts.repeat} cold runs and "
        f"{opts.repeat * 3} warm runs per configuration (median; minimum)"
    )
    print(
        f"  cold: {s['cold_without']:.2f}s without the plugin, {s['cold_with']:.2f}s with "
        f"(+{o['cold']:.0%}); "
        f"min {m['cold_without']:.2f}s / {m['cold_with']:.2f}s (+{om['cold']:.0%})"
    )
    print(
        f"  warm: {s['warm_without']:.3f}s without the plugin, {s['warm_with']:.3f}s with "
        f"(+{o['warm']:.0%}); "
        f"min {m['warm_without']:.3f}s / {m['warm_with']:.3f}s (+{om['warm']:.0%})"
    )
    c = res["cpu_seconds"]
    oc = res["cpu_overhead"]
    assert isinstance(c, dict) and isinstance(oc, dict)
    print(
        f"  CPU time (median): cold {c['cold_without']:.2f}s / {c['cold_with']:.2f}s "
        f"(+{oc['cold']:.0%}), "
        f"warm {c['warm_without']:.3f}s / {c['warm_with']:.3f}s (+{oc['warm']:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
