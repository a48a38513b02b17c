"""Claims: named, documented statements about the rule table, and their verdicts.

A `Claim` is an object with a name, the expectation (`holds`: it must be *proved*;
`fails`: it must yield a *counterexample*), a docstring quoting the kernel rule or
review sentence it encodes, and a `check` that returns an `Outcome`. `twin()` derives
a claim's mutated twin: the same check on a table with one precondition or conjunct
removed, expected to fail. Running a claim times it and gives a `Result`; `unknown`
never meets an expectation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from .outcome import Outcome, Verdict
from .table import TABLE, Mutation, Table
from .trace import Trace

__all__ = ["Check", "Claim", "Expect", "Result", "run_claims"]

Expect = Literal["holds", "fails"]
Check = Callable[[Table, Expect], Outcome]
"""A claim's decision procedure, run on the (possibly mutated) table. The expectation
is only a hint (which checker to try first); the verdict never depends on it."""


@dataclass(frozen=True)
class Result:
    """A claim's verdict, as `python -m proofs --json` prints it.

    Invariants: `ok` iff the verdict meets the expectation (`unknown` never does).
    """

    name: str
    expect: Expect
    verdict: Verdict
    counterexample: str | None
    seconds: float
    detail: str = ""
    trace: Trace | None = None
    """The operation sequence of a counterexample, when the claim is about one VMA."""

    @property
    def ok(self) -> bool:
        if self.expect == "holds":
            return self.verdict == "proved"
        return self.verdict == "counterexample"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "expect": self.expect,
            "verdict": self.verdict,
            "counterexample": self.counterexample,
            "seconds": round(self.seconds, 6),
        }


@dataclass(frozen=True)
class Claim:
    """One statement about the VMA flag rules, or (`kind == "binder"`) about the Binder
    driver's pure cores (`binder.range_core`, `binder.validate`), which ignore `table`.

    Invariants: `doc` quotes the kernel rule or review sentence; a twin's `expect` is
    "fails"; `rules` lists the ids of the `vma_rules.RULES` entries the claim covers.
    """

    name: str
    expect: Expect
    doc: str
    check: Check
    rules: tuple[str, ...] = ()
    kind: Literal["flags", "merge", "binder"] = "flags"
    table: Table = field(default=TABLE, repr=False)
    twin_of: str | None = None

    def run(self) -> Result:
        t0 = time.perf_counter()
        try:
            out = self.check(self.table, self.expect)
        except Exception as e:  # A crashing claim must never look proved.
            out = Outcome("unknown", detail=f"{type(e).__name__}: {e}")
        dt = time.perf_counter() - t0
        return Result(
            self.name, self.expect, out.verdict, out.counterexample, dt, out.detail, out.trace
        )

    def twin(self, mutation: Mutation) -> Claim:
        """This claim on a table with `mutation` applied: it must find a counterexample."""
        return Claim(
            name=f"{self.name}~{mutation.tag}",
            expect="fails",
            doc=f"Mutated twin of {self.name}: {mutation.description}. {self.doc}",
            check=self.check,
            rules=(),
            kind=self.kind,
            table=mutation.apply(self.table),
            twin_of=self.name,
        )

    def variant(self, tag: str, description: str, check: Check) -> Claim:
        """A twin that changes the claim's own premise (e.g. drops a step of the driver's
        mmap handler) rather than the table: it must find a counterexample."""
        return Claim(
            name=f"{self.name}~{tag}",
            expect="fails",
            doc=f"Mutated twin of {self.name}: {description}. {self.doc}",
            check=check,
            rules=(),
            kind=self.kind,
            table=self.table,
            twin_of=self.name,
        )

    def summary(self) -> str:
        """The docstring's first line."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


def run_claims(claims: Iterable[Claim]) -> list[Result]:
    return [c.run() for c in claims]
