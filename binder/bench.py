"""`python -m binder bench`: a binderThroughputTest-like workload, checks on and off.

Like AOSP's binderThroughputTest with `-p` (fixed pairs), it starts one service manager
and N server processes, each registering `binderWorker<i>` and serving `BINDER_NOP`
with one looper thread, and N client processes, each on its own thread sending
`--iterations` synchronous transactions with a `--payload`-byte parcel to its server.
It reports transactions per second and the round-trip latency percentiles, in
microseconds, for the runtime checks on and/or off, and their ratio.

Absolute numbers measure a Python model, not a kernel: Rust and C binder take about
17.5 us per round trip on a Pixel 6 Pro (RFC cover letter, one pair). What the model
measures is the *relative* cost of its checks, to compare with KASAN (about 2-3x),
KCSAN (5x) or Miri's borrow tracking (about 40x).

This is userspace code over `binder.client`; the caller supplies a factory for a fresh
simulated kernel with binder registered.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ownership import sched
from ownership.config import checking
from ownership.workqueue import flush

from .client import BinderClient, Parcel, Transaction
from .servicemanager import ServiceManager, add_service, get_service

__all__ = ["BINDER_NOP", "BenchResult", "run_bench"]

BINDER_NOP = 0x20  # IBinder::FIRST_CALL_TRANSACTION + 31, as in binderThroughputTest
WORKER_PTR = 0xB0B0_0000


@dataclass
class BenchResult:
    """One run of the workload: what was measured and the per-call latencies."""

    checks: str
    pairs: int
    iterations: int
    payload: int
    transactions: int
    seconds: float
    latencies_us: list[float]

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_us:
            return 0.0
        xs = sorted(self.latencies_us)
        i = min(len(xs) - 1, max(0, round(q / 100.0 * (len(xs) - 1))))
        return xs[i]

    def as_json(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "pairs": self.pairs,
            "iterations": self.iterations,
            "payload": self.payload,
            "transactions": self.transactions,
            "seconds": round(self.seconds, 4),
            "transactions_per_second": round(self.tps, 1),
            "latency_us": {
                "avg": round(statistics.fmean(self.latencies_us), 1) if self.latencies_us else 0.0,
                "p50": round(self.percentile(50), 1),
                "p90": round(self.percentile(90), 1),
                "p99": round(self.percentile(99), 1),
            },
        }


def _nop(client: BinderClient, t: Transaction) -> Parcel:
    return Parcel()


def _run_once(
    make_kernel: Callable[[], Any], pairs: int, iterations: int, payload: int, checks: bool
) -> BenchResult:
    kernel = make_kernel()
    sm_task = kernel.spawn_process("servicemanager")
    sm = BinderClient(sm_task)
    ServiceManager(sm)
    # The loopers start through the scheduling seam (OS threads under the default
    # scheduler, which the benchmark measures).
    loopers = [sched.active().spawn(sm.loop, "sm-looper")]
    servers: list[Any] = []
    for i in range(pairs):
        task = kernel.spawn_process(f"binderWorker{i}")
        c = BinderClient(task)
        c.add_object(WORKER_PTR + i, _nop)
        loopers.append(sched.active().spawn(c.loop, f"worker{i}-looper"))
        add_service(c, f"binderWorker{i}", WORKER_PTR + i)
        servers.append(task)
    clients: list[tuple[Any, BinderClient, int]] = []
    for i in range(pairs):
        task = kernel.spawn_process(f"client{i}")
        c = BinderClient(task)
        h = get_service(c, f"binderWorker{i}")
        assert h is not None, f"binderWorker{i} not registered"
        clients.append((task, c, h))
    data = bytes(payload)
    lat: list[list[float]] = [[] for _ in range(pairs)]
    errors: list[BaseException] = []
    start_gate = threading.Barrier(pairs + 1)

    def client_body(i: int) -> None:
        _task, c, h = clients[i]
        parcel = Parcel()
        parcel.data += data
        try:
            start_gate.wait()
            for _ in range(iterations):
                t0 = time.perf_counter_ns()
                r = c.transact(h, BINDER_NOP, parcel)
                lat[i].append((time.perf_counter_ns() - t0) / 1000.0)
                if not r.ok:
                    raise RuntimeError(f"transaction failed: {r.code:#x}")
        except BaseException as e:
            errors.append(e)

    with checking(checks):
        threads = [
            threading.Thread(target=client_body, args=(i,), name=f"client{i}") for i in range(pairs)
        ]
        for t in threads:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
    for task, _c, _h in clients:
        task.exit()
    for task in servers:
        task.exit()
    sm_task.exit()
    flush()
    for th in loopers:
        th.join(5)
    if errors:
        raise errors[0]
    all_lat = [x for xs in lat for x in xs]
    return BenchResult(
        "on" if checks else "off", pairs, iterations, payload, len(all_lat), seconds, all_lat
    )


def run_bench(
    make_kernel: Callable[[], Any],
    *,
    checks: str = "on",
    pairs: int = 1,
    iterations: int = 2000,
    payload: int = 0,
) -> list[BenchResult]:
    """Run the workload with the checks on, off, or both (`checks="both"`)."""
    if checks not in ("on", "off", "both"):
        raise ValueError("checks must be 'on', 'off' or 'both'")
    if pairs < 1 or iterations < 1 or payload < 0:
        raise ValueError("pairs and iterations must be >= 1, payload >= 0")
    modes = [True, False] if checks == "both" else [checks == "on"]
    return [_run_once(make_kernel, pairs, iterations, payload, m) for m in modes]
