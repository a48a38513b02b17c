"""A system's runs, unrolled into solver constraints.

`encode_creation` encodes how a `proofs.system.System` creates a VMA: a choice among
its initial operations (a selector variable picks one), then its mmap handler's calls
and refusal checks. `choose` encodes one more step, any enabled operation among several.
Each entry of the run is an `Event`, from which `proofs.trace` reads a concrete run out
of a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .step import Step, SymState, encode_op
from .system import RefuseIf, System
from .table import Table
from .z3api import (
    BV,
    Bool,
    Model,
    and_,
    bool_val,
    bool_var,
    bv_eq,
    bv_val,
    bv_var,
    has,
    iff,
    not_,
    or_,
)

__all__ = ["Event", "Unrolled", "choose", "encode_creation", "selects"]


@dataclass(frozen=True)
class Event:
    """One entry of a run: a step chosen among `choices` by `sel`, or a refusal check."""

    choices: tuple[Step, ...] = ()
    sel: BV | None = None
    refuse: RefuseIf | None = None

    def chosen(self, m: Model) -> Step:
        if self.sel is None:
            return self.choices[0]
        return self.choices[m.int_of(self.sel)]


@dataclass
class Unrolled:
    conds: list[Bool]
    events: list[tuple[Event, SymState]]
    states: list[SymState]
    params: list[BV]
    handler_steps: list[Step]


def choose(steps: Sequence[Step], nxt: SymState, tag: str) -> tuple[Bool, BV | None]:
    """`nxt` is the result of one enabled step among `steps` (a selector picks it)."""
    if len(steps) == 1:
        st = steps[0]
        return and_(st.enabled, bv_eq(nxt.flags, st.post.flags), iff(nxt.ptes, st.post.ptes)), None
    width = len(steps).bit_length()
    sel = bv_var(f"{tag}.sel", width)
    return (
        or_(
            *[
                and_(
                    bv_eq(sel, bv_val(j, width)),
                    st.enabled,
                    bv_eq(nxt.flags, st.post.flags),
                    iff(nxt.ptes, st.post.ptes),
                )
                for j, st in enumerate(steps)
            ]
        ),
        sel,
    )


def selects(sel: BV, j: int, n: int) -> Bool:
    """The selector of a choice among `n` steps picks step `j`."""
    return bv_eq(sel, bv_val(j, n.bit_length()))


def encode_creation(table: Table, system: System, prefix: str) -> Unrolled:
    """The initial operation (a choice among `init_ops`) followed by the handler."""
    if not system.init_ops:
        raise ValueError("a system needs an initial operation")
    pre = SymState(bv_var(f"{prefix}.none"), bool_val(False))
    steps = [encode_op(table, op, pre, f"{prefix}.{op.name}") for op in system.init_ops]
    s0 = SymState(bv_var(f"{prefix}.s0"), bool_var(f"{prefix}.s0.ptes"))
    cond, sel = choose(steps, s0, f"{prefix}.init")
    u = Unrolled([cond], [(Event(tuple(steps), sel), s0)], [s0], [], [])
    for st in steps:
        for name, value in system.init_facts:
            if name not in st.ctx:
                raise KeyError(f"{st.op.name} has no context fact {name!r}")
            u.conds.append(iff(st.ctx[name], bool_val(value)))
    for st in steps:
        u.params.extend(st.params.values())
    state = s0
    for i, ds in enumerate(system.handler):
        if isinstance(ds, RefuseIf):
            u.conds.append(not_(has(state.flags, ds.mask)))
            u.events.append((Event(refuse=ds), state))
            continue
        step = encode_op(table, table.op(ds.op), state, f"{prefix}.h{i}.{ds.op}")
        u.conds.append(step.enabled)
        u.params.extend(step.params.values())
        u.handler_steps.append(step)
        state = step.post
        u.events.append((Event((step,)), state))
        u.states.append(state)
    return u
