"""Replaying a model checker's trace on the runtime's concrete `vma_rules.apply`."""

from __future__ import annotations

from ownership.mm import vma_rules as R
from proofs.step import GHOST_PTES
from proofs.table import Table
from proofs.trace import Trace


def replay(table: Table, trace: Trace) -> list[int]:
    """The flags after each step when the runtime runs the trace's operations.

    Every operation runs through `vma_rules.apply` with the trace's parameters and
    context facts; the ghost `ptes_installed` fact must match what the operations so
    far imply. A refusal check must pass. Raises whatever `apply` raises.
    """
    flags = 0
    ptes = False
    out: list[int] = []
    for step in trace.steps:
        if step.refuse is not None:
            assert not flags & step.refuse.mask, f"{step.label()} would have refused"
            out.append(flags)
            continue
        assert step.op is not None
        op = table.op(step.op)
        ctx = dict(step.ctx)
        assert ctx.get(GHOST_PTES, ptes) == ptes, "trace disagrees on ptes_installed"
        new = R.apply(op, flags, params=dict(step.params), ctx=ctx)
        assert new is not None, f"{step.label()} did not apply"
        ptes = ptes or op.name in table.installs_ptes
        flags = new
        out.append(flags)
    return out
