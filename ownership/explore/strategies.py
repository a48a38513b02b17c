"""Search strategies of the explorer: random, PCT, bounded DFS with sleep sets, replay.

A strategy is asked at each *decision* (a seam point where more than one thread can
run, or where a blocked waiter could be woken spuriously) which thread runs next. The
default choice, the one a schedule string does not record, is to keep running the
current thread if it can run, else the runnable thread created first; every other
choice is recorded as `(decision, thread index, spurious)`, and a choice that switches
away from a thread that could go on is a *preemption*.

* `RandomStrategy`: a uniform choice at each decision (shuttle's random scheduler).
* `PctStrategy`: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
  random thread priorities, always run the highest-priority runnable thread, and lower
  the running thread's priority at `depth - 1` random change points among the estimated
  number of steps; a bug of depth `d` is found with probability at least `1/(n k^(d-1))`.
* `DfsSearch`: CHESS's iterative preemption bounding (Musuvathi and Qadeer, PLDI 2007):
  every schedule with 0 preemptions, then 1, ... up to the bound, each schedule run
  once, in order of its preemption count. Each schedule is identified by its recorded
  choices; the children of a run are the schedules that agree with it up to a decision
  and take another thread there. With `prune`, sleep sets (Godefroid 1996) skip a child
  equivalent to one already explored: a thread put to sleep at a node stays asleep
  until a dependent step runs, and a run whose runnable threads are all asleep is
  dropped. Two steps are dependent when they start at the same seam object (a lock, a
  wait queue, an atomic); a step that starts at a plain preemption point (object None)
  touches no shared state by assumption: the pruning assumes, as loom and DPOR tools
  do, that the code is data-race free outside the seam, which Rust's types (data
  reachable only through guards and atomics) make it. Code that shares plain data
  without the seam should be searched with `prune=False`.
* `ReplayStrategy`: the recorded choices of a schedule string, default elsewhere.

No C counterpart: shuttle's `RandomScheduler`, `PctScheduler` and `DfsScheduler` are
the closest relatives.

Lock order: strategies take no locks.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from .scheduler import GreenletScheduler, MThread

__all__ = [
    "Branch",
    "DfsRun",
    "DfsSearch",
    "PctStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "default_choice",
]

SPURIOUS_P = 0.02
"""Probability that a random or PCT decision wakes a waiter spuriously."""


def default_choice(s: GreenletScheduler, enabled: list[MThread]) -> MThread:
    """The choice a schedule string leaves implicit (as `GreenletScheduler._pick`)."""
    cur = s.current
    return cur if cur is not None and cur in enabled else enabled[0]


class RandomStrategy:
    """A seeded uniform choice among the runnable threads at each decision."""

    def __init__(self, rng: random.Random, spurious: bool = True) -> None:
        self.rng = rng
        self.spurious = spurious

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        rng = self.rng
        if sleepers and rng.random() < SPURIOUS_P:
            return rng.choice(sleepers), True
        if len(enabled) == 1:
            return enabled[0], False
        return rng.choice(enabled), False


class PctStrategy:
    """PCT with `depth - 1` priority change points among `steps` estimated steps.

    Invariants: initial priorities are in `[depth, depth + 1)`; the `i`-th change point
    sets the running thread's priority to `depth - 1 - i`, below every initial one.
    """

    def __init__(self, rng: random.Random, depth: int, steps: int, spurious: bool = True) -> None:
        self.rng = rng
        self.depth = max(depth, 1)
        self.spurious = spurious
        k = max(steps, 1)
        n = min(self.depth - 1, k)
        self.change_points = deque(sorted(rng.sample(range(1, k + 1), n)))
        self.prio: dict[int, float] = {}
        self._changed = 0

    def _priority(self, t: MThread) -> float:
        p = self.prio.get(t.index)
        if p is None:
            p = self.prio[t.index] = self.depth + self.rng.random()
        return p

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        cps = self.change_points
        while cps and cps[0] <= s.steps:
            cps.popleft()
            self._changed += 1
            cur = s.current
            if cur is not None:
                self.prio[cur.index] = self.depth - 1 - self._changed
        if sleepers and self.rng.random() < SPURIOUS_P:
            return self.rng.choice(sleepers), True
        return max(enabled, key=self._priority), False


class ReplayStrategy:
    """Take the recorded choices; the default choice everywhere else."""

    def __init__(self, choices: list[tuple[int, int, bool]], spurious: bool) -> None:
        self.choices = {d: (t, sp) for d, t, sp in choices}
        self.spurious = spurious

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        c = self.choices.get(s.decisions - 1)
        if c is not None:
            idx, sp = c
            for u in sleepers if sp else enabled:
                if u.index == idx:
                    return u, sp
        return default_choice(s, enabled), False


@dataclass
class Branch:
    """A schedule still to run: the recorded choices up to and including `at`.

    `sleep` are the thread indices asleep at decision `at` (before the choice there is
    made); `shard` is the part of the search tree it belongs to.
    """

    choices: list[tuple[int, int, bool]]
    at: int
    sleep: frozenset[int]
    cost: int
    shard: int = 0


def _independent(a: MThread, b: MThread) -> bool:
    x = a.obj
    return x is None or x is not b.obj


@dataclass
class _Node:
    decision: int
    allowed: list[int]
    chosen: int
    current: int
    preemptions: int
    sleep: frozenset[int]


class DfsRun:
    """The strategy of one dfs run: follow `branch`, then the default, noting the nodes."""

    spurious = False

    def __init__(self, search: DfsSearch, branch: Branch) -> None:
        self.search = search
        self.branch = branch
        self.forced = {d: t for d, t, _ in branch.choices}
        self.sleep: set[MThread] = set()
        self.nodes: list[_Node] = []

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        d = s.decisions - 1
        b = self.branch
        prune = self.search.prune
        if d <= b.at:
            idx = self.forced.get(d)
            u = next((x for x in enabled if x.index == idx), None) if idx is not None else None
            if u is None:
                u = default_choice(s, enabled)
            if d == b.at and prune:
                self.sleep = {
                    x for x in s.live if x.index in b.sleep and x is not u and _independent(x, u)
                }
            return u, False
        sleep = self.sleep
        allowed = [x for x in enabled if x not in sleep] if sleep else enabled
        if not allowed:
            s.prune()
        cur = s.current
        cur_on = cur is not None and cur in enabled
        u = cur if cur_on and cur in allowed else allowed[0]
        assert cur is not None or not cur_on
        self.nodes.append(
            _Node(
                d,
                [x.index for x in allowed],
                u.index,
                cur.index if cur_on and cur is not None else -1,
                s.preemptions,
                frozenset(x.index for x in sleep),
            )
        )
        if cur_on and u is not cur and s.preemptions + 1 > self.search.bound:
            s.prune()
        if sleep:
            self.sleep = {x for x in sleep if _independent(x, u)}
        return u, False


@dataclass
class DfsSearch:
    """The work list of a bounded search, in buckets by preemption count (CHESS order).

    Invariants: every schedule is put in the work list at most once (it is the child of
    exactly one run: the one that agrees with it up to its last recorded choice);
    `buckets[c]` holds schedules with `c` preemptions, taken LIFO (depth first).
    """

    bound: int
    prune: bool = True
    shards: int = 1
    shard: int = 0
    buckets: list[list[Branch]] = field(default_factory=list)
    started: bool = False
    pruned: int = 0
    _top: int = 0

    def next_branch(self) -> Branch | None:
        """The next schedule of this shard to run, None when the search is exhausted."""
        if not self.started:
            self.started = True
            return Branch([], -1, frozenset(), 0)
        for bucket in self.buckets:
            while bucket:
                br = bucket.pop()
                if br.shard == self.shard:
                    return br
        return None

    def finish(self, run: DfsRun, s: GreenletScheduler) -> None:
        """Add the children of a finished run to the work list."""
        if s.pruned:
            self.pruned += 1
        taken = s.choices
        root = run.branch.at < 0
        for node in run.nodes:
            prefix = [c for c in taken if c[0] < node.decision]
            done = {node.chosen} | set(node.sleep)
            for a in node.allowed:
                if a == node.chosen:
                    continue
                cost = node.preemptions + (1 if node.current >= 0 and a != node.current else 0)
                if cost > self.bound:
                    continue
                shard = run.branch.shard
                if root:
                    shard = self._top % self.shards
                    self._top += 1
                br = Branch(
                    [*prefix, (node.decision, a, False)],
                    node.decision,
                    frozenset(done),
                    cost,
                    shard,
                )
                while len(self.buckets) <= cost:
                    self.buckets.append([])
                self.buckets[cost].append(br)
                if self.prune:
                    done.add(a)
