"""Deciding a property with both checkers: `proofs.houdini.prove`, then
`proofs.bmc.bmc` (or the other way round when a counterexample is expected)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .bmc import bmc
from .houdini import prove
from .outcome import Outcome
from .system import Candidate, Property, System
from .table import Table

__all__ = ["decide"]


def decide(
    table: Table,
    system: System,
    prop: Property,
    candidates: Sequence[Candidate],
    *,
    expect_holds: bool,
    max_depth: int = 4,
    require_all_enabled: bool = False,
    show: int = 0,
) -> Outcome:
    """Run both checkers (the likelier one first) and report what they establish."""
    total = 0

    def run_prove() -> Outcome:
        nonlocal total
        o, q = prove(table, system, prop, candidates, require_all_enabled=require_all_enabled)
        total += q
        return o

    def run_bmc() -> Outcome:
        nonlocal total
        o, q = bmc(table, system, prop, max_depth, show=show)
        total += q
        return o

    first, second = (run_prove, run_bmc) if expect_holds else (run_bmc, run_prove)
    o1 = first()
    if o1.verdict != "unknown":
        return dataclasses.replace(o1, queries=total)
    o2 = second()
    if o2.verdict != "unknown":
        return dataclasses.replace(o2, queries=total)
    return Outcome("unknown", None, f"{o1.detail}; {o2.detail}", total)
