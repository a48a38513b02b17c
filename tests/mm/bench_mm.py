"""Benchmarks of the mm/page layer: the cost of the runtime checks, as ratios.

Run with `.venv/bin/python -m tests.mm.bench_mm [--json] [--seconds S]`. Each operation is
timed with the checks on and off (`ownership.config.checking`), in one process, so the
ratio is what the checks cost on this machine. This is a benchmark, not a test: pytest
does not collect it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from ownership import config
from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, GFP_ZERO
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
)
from ownership.mm import MmWithUser
from ownership.page import Page
from ownership.task import current
from ownership.unsafe import unsafe

from .drivers import ScratchDevice


def _rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    batch = 64
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= end:
            return n / (now - start)


def run(seconds: float) -> dict[str, dict[str, float]]:
    k = Kernel(pages_per_node=8192)
    k.register_miscdevice("scratch", ScratchDevice())
    p = k.spawn_process("bench")
    results: dict[str, dict[str, float]] = {}
    with p.as_current():
        anon = p.mmap(None, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write_user(anon, b"\0" * 16 * PAGE_SIZE)
        f = p.open("scratch")
        dev = p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
        mm = current().mm()
        assert isinstance(mm, MmWithUser)
        page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)

        def lookup() -> None:
            with mm.mmap_read_lock() as g:
                v = g.vma_lookup(anon)
                assert v is not None
                v.flags()

        def vma_lock() -> None:
            g = mm.lock_vma_under_rcu(anon)
            assert g is not None
            g.drop()

        def insert_zap() -> None:
            with mm.mmap_read_lock() as g:
                v = g.vma_lookup(dev)
                assert v is not None
                mixed = v.as_mixedmap_vma()
                assert mixed is not None
                mixed.vm_insert_page(dev, page)
                mixed.zap_page_range_single(dev, PAGE_SIZE)

        def read_user() -> None:
            p.read_user(anon, PAGE_SIZE)

        def raw_read() -> None:
            with unsafe("SAFETY: the benchmark is the only user of the page."):
                page.read_raw(0, 64)

        def alloc_free() -> None:
            Page.alloc_page(GFP_ATOMIC).drop()

        def measure(name: str, fn: Callable[[], object]) -> None:
            on = _rate(fn, seconds)
            with config.checking(False):
                off = _rate(fn, seconds)
            results[name] = {"checks_on_per_s": on, "checks_off_per_s": off, "ratio": off / on}

        with mm.mmap_read_lock() as guard:
            ref = guard.vma_lookup(anon)
            assert ref is not None
            measure("VmAreaRef.flags (per-use lifetime check)", ref.flags)
        measure("Page.read_raw 64 B (unsafe + borrow check)", raw_read)
        measure("Page.alloc_page + drop", alloc_free)
        measure("lock_vma_under_rcu + drop", vma_lock)
        measure("mmap_read_lock + vma_lookup + flags + unlock", lookup)
        measure("vm_insert_page + zap_page_range_single", insert_zap)
        measure("read_user 4 KiB (fault path locking)", read_user)
        page.drop()
        p.munmap(dev, PAGE_SIZE)
        f.close()
        p.exit()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=0.3)
    args = ap.parse_args(argv)
    res = run(args.seconds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'operation':48} {'checks on/s':>12} {'checks off/s':>13} {'cost':>6}")
    for name, r in res.items():
        print(
            f"{name:48} {r['checks_on_per_s']:12.0f} {r['checks_off_per_s']:13.0f} "
            f"{r['ratio']:5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
