"""The deterministic interleaving explorer (loom/shuttle/CHESS-class), with every kernel
rule checked at every step.

`explore(scenario, ...)` runs a zero-argument scenario afresh under many schedules, one
model thread at a time (greenlets, `ownership.explore.scheduler`), deciding at every
seam point of `ownership.sched` which thread runs next (`ownership.explore.strategies`),
and returns an `Exploration`: the first failure (shrunk), its replayable schedule
string (`ownership.explore.schedule`), the runs made and whether a bounded search was
exhausted. `python -m ownership explore MODULE:FUNCTION` is the command line
(`ownership.explore.cli`).

There is no C counterpart: this is the model's stand-in for loom, shuttle, CHESS and
Coyote, whose scheduler takes over the kernel's.

Lock order: the explorer takes no locks.
"""

from __future__ import annotations

from .explorer import DEFAULT_MAX_STEPS, STRATEGIES, Exploration, explore

__all__ = ["DEFAULT_MAX_STEPS", "STRATEGIES", "Exploration", "explore"]
