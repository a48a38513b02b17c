"""Counterexample traces: a model of the solver read as a run of the kernel.

`trace_of` turns the events of an unrolled run (`proofs.unroll`) and a model into a
`Trace` of `TraceStep`s, with flag names (`fmt_value`), replayable on
`vma_rules.apply`. `readable_model` first makes the model read well: bits no rule looks
at (`quiet_mask`) are cleared, then `greedy` keeps each preference (named operations,
clear rare bits, false context facts) that the counterexample survives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ownership.include import vm_flags as F
from ownership.include import vma_expr as E

from .encode import masks
from .step import GHOST_PTES, SymState
from .system import RefuseIf
from .table import Table
from .unroll import Event, Unrolled, selects
from .z3api import MASK, Bool, Model, Solver, and_, bv_and, bv_eq, bv_val, not_, or_

__all__ = ["Trace", "TraceStep", "fmt_value", "greedy", "quiet_mask", "readable_model", "trace_of"]


def fmt_value(param: str, value: int) -> str:
    """A parameter value the way the kernel spells it (`prot` as PROT_* bits)."""
    if param == "prot":
        if value == 0:
            return "PROT_NONE"
        return F.names(value).replace("VM_", "PROT_")
    return F.names(value)


@dataclass(frozen=True)
class TraceStep:
    """One entry of a concrete run: an operation with its arguments, or a refusal
    check of the mmap handler, and the flags after it.

    Invariants: exactly one of `op` and `refuse` is set.
    """

    op: str | None
    params: tuple[tuple[str, int], ...]
    ctx: tuple[tuple[str, bool], ...]
    """Every context fact the operation read, the ghost `ptes_installed` included."""
    flags: int
    refuse: RefuseIf | None = None
    shown_ctx: tuple[str, ...] = ()

    def label(self) -> str:
        if self.refuse is not None:
            return f"!{self.refuse.query}"
        inner = ", ".join(f"{n}={fmt_value(n, v)}" for n, v in self.params)
        if self.shown_ctx:
            inner += ("; " if inner else "") + ", ".join(self.shown_ctx)
        return f"{self.op}({inner})"


@dataclass(frozen=True)
class Trace:
    """A concrete run found by the model checker, replayable on `vma_rules.apply`.

    Invariants: the first step creates the VMA (an initial operation such as `mmap`).
    """

    steps: tuple[TraceStep, ...]

    @property
    def flags(self) -> tuple[int, ...]:
        return tuple(st.flags for st in self.steps)

    def path(self) -> str:
        return " -> ".join(st.label() for st in self.steps)


def _trace_step(ev: Event, state: SymState, m: Model) -> TraceStep:
    flags = m.int_of(state.flags)
    if ev.refuse is not None:
        return TraceStep(None, (), (), flags, ev.refuse)
    st = ev.chosen(m)
    params = tuple((n, m.int_of(v)) for n, v in st.params.items())
    ctx = tuple((n, m.bool_of(b)) for n, b in st.ctx.items())
    shown = tuple(n for n in st.op.ctx if n != GHOST_PTES and n in st.ctx and m.bool_of(st.ctx[n]))
    return TraceStep(st.op.name, params, ctx, flags, None, shown)


def trace_of(events: Sequence[tuple[Event, SymState]], m: Model) -> Trace:
    return Trace(tuple(_trace_step(ev, state, m) for ev, state in events))


def quiet_mask(table: Table, extra: int) -> int:
    """Bits a readable counterexample may use: those the rules and operations name.

    A small mask names its bits; a complement mask (the allowlists, `fork`'s clearing)
    names the bits it leaves out.
    """
    q = extra
    exprs: list[E.Expr] = [r.expr for r in table.check_rules]
    for op in (*table.ops, *table.v6_ops):
        exprs.extend((op.guard, op.result))
    for e in exprs:
        for mk in masks(e):
            n = bin(mk).count("1")
            if 0 < n <= 16:
                q |= mk
            elif n >= F.VM_FLAGS_BITS - 16:
                q |= MASK & ~mk
    return q


def _clear_everywhere(u: Unrolled, states: Sequence[SymState], mask: int) -> Bool:
    q = bv_val(mask)
    out = [bv_eq(bv_and(s.flags, q), bv_val(0)) for s in states]
    out.extend(bv_eq(bv_and(p, q), bv_val(0)) for p in u.params)
    return and_(*out)


def readable_model(
    table: Table,
    s: Solver,
    u: Unrolled,
    states: Sequence[SymState],
    show: int,
    events: Sequence[tuple[Event, SymState]],
) -> Model:
    """A model of the current (satisfiable) query that reads well.

    Bits no rule looks at are cleared outright when possible; then, as preferences
    kept only when the counterexample survives them: each step uses a named operation
    rather than one with parameters (`set_mixedmap()` rather than `set_flags(value)`),
    each bit outside `show` stays clear, and each context fact is false.
    """
    m = s.model()
    with s.scope():
        s.add(_clear_everywhere(u, states, MASK & ~quiet_mask(table, show)))
        if s.check() != "sat":
            return m
        m = s.model()
        prefs: list[Bool] = []
        for ev, _ in events:
            if ev.sel is None:
                continue
            plain = [j for j, st in enumerate(ev.choices) if not st.op.params]
            if plain and len(plain) < len(ev.choices):
                n = len(ev.choices)
                prefs.append(or_(*[selects(ev.sel, j, n) for j in plain]))
        rest = quiet_mask(table, show) & ~show
        bits = sorted((1 << i for i in range(F.VM_FLAGS_BITS) if rest >> i & 1), reverse=True)
        prefs.extend(_clear_everywhere(u, states, b) for b in bits)
        for ev, _ in events:
            if ev.choices:
                st = ev.chosen(m)
                prefs.extend(not_(v) for n, v in st.ctx.items() if n != GHOST_PTES)
        # In priority order: named operations, then rare (high) bits, then low bits,
        # then context facts.
        return greedy(s, m, prefs)


def greedy(s: Solver, m: Model, prefs: Sequence[Bool]) -> Model:
    """Keep each preference, in order, if the query stays satisfiable with it.

    `m` is a model of the current assertions; a preference it already satisfies costs
    no query. The caller scopes the solver: preferences are asserted into it.
    """
    for p in prefs:
        if m.bool_of(p):
            s.add(p)
            continue
        if s.check(p) == "sat":
            m = s.model()
            s.add(p)
    return m
