"""The explorer's rows of `python -m ownership bench`: switch cost and schedules/s.

Measured in the same process, best of `repeats`:

* the floor: a plain `greenlet.switch()` between two greenlets (one switch);
* an explorer context switch: two model threads that each pass `n` preemption points
  under a strategy that always switches to the other thread, so every point is a
  decision and a switch (the seam call, the choice, the context swap, the greenlet
  switch), per switch;
* schedules per second: the two-thread lost-update scenario (two lock round trips per
  thread, spawn and join) run under the random strategy, one fresh world per schedule.

No C counterpart (a measurement of the model).

Lock order: every case takes one lock at a time.
"""

from __future__ import annotations

import random
import time

import greenlet

from .. import sched
from ..site import driver_module
from ..sync import SpinLock
from ..task import spawn
from .explorer import run_once
from .scheduler import GreenletScheduler, MThread
from .strategies import RandomStrategy

driver_module(__file__)

__all__ = ["SWITCH_TARGET_US", "measure"]

SWITCH_TARGET_US = 3.0
"""The issue's bound on one explorer context switch."""


def _greenlet_floor(n: int) -> float:
    """Seconds per plain greenlet switch (a ping-pong of `n` round trips)."""

    def pong() -> None:
        main = g.parent
        assert main is not None
        while True:
            main.switch()

    g = greenlet.greenlet(pong)
    g.switch()
    t0 = time.perf_counter()
    for _ in range(n):
        g.switch()
    dt = time.perf_counter() - t0
    g.throw(greenlet.GreenletExit())
    return dt / (2 * n)


class _Alternate:
    """Always run another thread than the current one (every decision is a switch)."""

    spurious = False

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        cur = s.current
        for u in enabled:
            if u is not cur and u.index != 0:
                return u, False
        return enabled[0], False


def _switch_cost(n: int) -> tuple[float, int]:
    """Seconds per explorer switch, and the switches made, for `n` points per thread."""

    def pinger() -> None:
        point = sched.preempt_point
        for _ in range(n):
            point()

    def scenario() -> None:
        a = spawn(pinger, name="ping")
        b = spawn(pinger, name="pong")
        a.join()
        b.join()

    s = GreenletScheduler(_Alternate(), max_steps=10 * n + 100)
    t0 = time.perf_counter()
    s.run(scenario)
    dt = time.perf_counter() - t0
    assert s.failure is None, s.failure
    return dt / max(s.switches, 1), s.switches


def lost_update() -> None:
    """Two threads increment a counter in two critical sections (the racy version)."""
    lock = SpinLock(0, name="bench counter")

    def inc() -> None:
        with lock.lock() as g:
            v = g.data
        with lock.lock() as g:
            g.data = v + 1

    a = spawn(inc, name="inc-a")
    b = spawn(inc, name="inc-b")
    a.join()
    b.join()


def _schedules_per_s(runs: int) -> float:
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(runs):
        run_once(lost_update, RandomStrategy(rng, False))
    return runs / (time.perf_counter() - t0)


def measure(switches: int = 20_000, schedules: int = 300, repeats: int = 3) -> dict[str, object]:
    """The explorer's rows: per-switch costs in microseconds, and schedules per second."""
    floor = min(_greenlet_floor(switches) for _ in range(repeats))
    cost, made = min(_switch_cost(switches // 2) for _ in range(repeats))
    rate = max(_schedules_per_s(schedules) for _ in range(repeats))
    return {
        "greenlet_switch_us": round(floor * 1e6, 3),
        "explorer_switch_us": round(cost * 1e6, 3),
        "explorer_over_greenlet": round(cost / floor, 1) if floor else None,
        "switches": made,
        "lost_update_schedules_per_s": round(rate, 1),
        "target": {
            "value": round(cost * 1e6, 3),
            "limit_us": SWITCH_TARGET_US,
            "met": cost * 1e6 <= SWITCH_TARGET_US,
        },
    }


def render(j: dict[str, object]) -> list[str]:
    t = j["target"]
    assert isinstance(t, dict)
    return [
        "",
        "explorer (ownership.explore, model threads as greenlets):",
        f"{'plain greenlet switch':42} {j['greenlet_switch_us']:>10} us",
        f"{'explorer context switch':42} {j['explorer_switch_us']:>10} us "
        f"({j['explorer_over_greenlet']}x the greenlet floor, {j['switches']} switches)",
        f"{'lost-update schedules per second':42} {j['lost_update_schedules_per_s']:>10}",
        f"target: explorer switch <= {t['limit_us']} us: {t['value']} us "
        f"({'met' if t['met'] else 'MISSED'})",
    ]
