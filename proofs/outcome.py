"""What a checker of `proofs/` concluded about a property: the `Outcome`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .trace import Trace

__all__ = ["Outcome", "Verdict"]


Verdict = Literal["proved", "counterexample", "unknown"]


@dataclass(frozen=True)
class Outcome:
    """What a checker concluded, with a counterexample or the invariant it used.

    Invariants: `counterexample` is set iff `verdict` is "counterexample"; `trace` is
    set only with a counterexample about one VMA's operation sequence.
    """

    verdict: Verdict
    counterexample: str | None = None
    detail: str = ""
    queries: int = 0
    trace: Trace | None = None
