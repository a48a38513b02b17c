"""The concrete evaluator and the Z3 encoding agree on every formula of the table.

`ownership.include.vma_expr.evaluate` (what the runtime checks) and `proofs.encode` (what
the proofs reason about) interpret the same `Expr` trees. A proof about the encoding
is a proof about the runtime only if the two agree, so this module checks it:

* `exhaustive(f, bits)`: every combination of `bits` driver-relevant flag bits spread
  over the formula's variables (the bits the formula names first, then the bits the
  rule table names), plus every context fact. The concrete evaluator tabulates all
  `2**bits` cases; one Z3 query compares the encoding with that truth table (the table
  is a `2**bits`-bit constant indexed by a symbolic case number), so Z3 decides every
  case, not a sample.
* `agree_at(f, values, facts)`: one point with arbitrary 64-bit values, evaluated by
  the concrete evaluator and by Z3's own simplifier (used with hypothesis).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from ownership.include import vm_flags as F
from ownership.include import vma_expr as E

from .encode import Env, ctx_names, formula, is_term, masks, term, var_names
from .table import TABLE, Table
from .trace import quiet_mask
from .z3api import (
    BV,
    MASK,
    Bool,
    Solver,
    and_,
    bool_val,
    bool_var,
    bv_var,
    closed_value,
    iff,
    index_bit,
    lookup_bit,
    not_,
    output_bit,
    spread,
)

__all__ = [
    "CheckResult",
    "Formula",
    "agree_at",
    "driver_bits",
    "exhaustive",
    "formulas",
    "layout",
]

MAX_BITS = 20
"""Largest exhaustive domain accepted (a `2**20`-bit truth table, a million cases)."""


@dataclass(frozen=True)
class Formula:
    """One expression of the table, with the bits each of its variables may take.

    Invariants: `domains` names parameters of `expr` (`Param` masks); every other
    variable ranges over all 64 bits.
    """

    label: str
    expr: E.Expr
    domains: tuple[tuple[str, int], ...]

    @property
    def bvs(self) -> tuple[str, ...]:
        return tuple(sorted(var_names(self.expr)))

    @property
    def facts(self) -> tuple[str, ...]:
        return tuple(sorted(ctx_names(self.expr)))

    def domain(self, var: str) -> int:
        return dict(self.domains).get(var, MASK)


def formulas(t: Table = TABLE) -> list[Formula]:
    """Every rule, every operation's guard and result, `CAN_MERGE` and `MERGE_RESULT`."""
    out = [Formula(f"rule {r.id}", r.expr, ()) for r in t.check_rules]
    for op in (*t.ops, *t.v6_ops):
        dom = tuple((p.name, p.mask) for p in op.params)
        out.append(Formula(f"{op.name}.guard", op.guard, dom))
        out.append(Formula(f"{op.name}.result", op.result, dom))
    out.append(Formula("CAN_MERGE", t.can_merge, ()))
    out.append(Formula("MERGE_RESULT", t.merge_result, ()))
    return out


def _bits(mask: int) -> list[int]:
    return [1 << i for i in range(F.VM_FLAGS_BITS) if mask >> i & 1]


def driver_bits(t: Table = TABLE) -> list[int]:
    """The flag bits the rule table names (rules and operations), lowest first."""
    return _bits(quiet_mask(t, 0))


def _named_bits(e: E.Expr) -> list[int]:
    """The bits `e` names: a small mask's bits, or the bits a complement leaves out."""
    out = 0
    for mk in masks(e):
        n = bin(mk).count("1")
        if 0 < n <= 16:
            out |= mk
        elif n >= F.VM_FLAGS_BITS - 16:
            out |= MASK & ~mk
    return _bits(out)


def layout(f: Formula, bits: int, t: Table = TABLE) -> list[tuple[str, int]]:
    """Which case-index bit means what: `(variable, flag bit)` or `(fact, 0)` pairs.

    Context facts come first (each is one bit); the remaining budget goes round-robin
    to the bit-vector variables, each taking the bits the formula names, then the
    bits the table names, within the variable's domain.
    """
    if not 0 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in 0..{MAX_BITS}, got {bits}")
    out: list[tuple[str, int]] = [(c, 0) for c in f.facts][:bits]
    order = _named_bits(f.expr)
    order += [b for b in driver_bits(t) if b not in order]
    queues = {v: [b for b in order if b & f.domain(v)] for v in f.bvs}
    while len(out) < bits and any(queues.values()):
        for v in f.bvs:
            if queues[v] and len(out) < bits:
                out.append((v, queues[v].pop(0)))
    return out


def _case(lay: list[tuple[str, int]], idx: int, f: Formula) -> dict[str, int | bool]:
    """The variable values of case number `idx`."""
    env: dict[str, int | bool] = {v: 0 for v in f.bvs}
    for c in f.facts:
        env[c] = False
    k = 0
    while idx:
        if idx & 1:
            name, bit = lay[k]
            env[name] = True if bit == 0 else int(env[name]) | bit
        idx >>= 1
        k += 1
    return env


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one exhaustive comparison.

    Invariants: `mismatch` is None iff `agree`.
    """

    label: str
    cases: int
    agree: bool
    mismatch: str | None
    concrete_seconds: float
    z3_seconds: float


def exhaustive(f: Formula, bits: int = 12, t: Table = TABLE) -> CheckResult:
    """Compare evaluator and encoding on every case of `layout(f, bits)`."""
    lay = layout(f, bits, t)
    n = len(lay)
    cases = 1 << n
    boolean = not is_term(f.expr)

    t0 = time.perf_counter()
    values = [E.evaluate(f.expr, _case(lay, i, f)) for i in range(cases)]
    t1 = time.perf_counter()

    width = max(n, 1)
    idx = bv_var(f"xc.{f.label}.i", width)
    bvs: dict[str, BV] = {}
    for v in f.bvs:
        ks = [k for k, (name, bit) in enumerate(lay) if name == v and bit]
        pos = [lay[k][1].bit_length() - 1 for k in ks]
        bvs[v] = spread(idx, ks, pos)
    facts: dict[str, Bool] = {}
    for k, (name, bit) in enumerate(lay):
        if bit == 0:
            facts[name] = index_bit(idx, k)
    env = Env(bvs, facts)
    s = Solver(60_000)
    if n < width:
        # No variable at all: the single case is index 0.
        s.add(not_(output_bit(idx, 0)))
    if boolean:
        table = sum(1 << i for i, v in enumerate(values) if v)
        expected = lookup_bit(table, idx, width) if n else bool_val(bool(values[0]))
        s.add(not_(iff(formula(f.expr, env), expected)))
    else:
        tm = term(f.expr, env)
        eqs: list[Bool] = []
        full = (1 << cases) - 1
        # A column equal to one index bit (a flag passed through) is written as that
        # bit: the same truth table, compactly.
        proj = {sum(1 << i for i in range(cases) if i >> k & 1): k for k in range(n)}
        for b in range(F.VM_FLAGS_BITS):
            col = sum(1 << i for i, v in enumerate(values) if int(v) >> b & 1)
            ob = output_bit(tm, b)
            if col == 0:
                eqs.append(not_(ob))
            elif col == full:
                eqs.append(ob)
            elif col in proj:
                eqs.append(iff(ob, index_bit(idx, proj[col])))
            elif full & ~col in proj:
                eqs.append(iff(ob, not_(index_bit(idx, proj[full & ~col]))))
            else:
                eqs.append(iff(ob, lookup_bit(col, idx, width)))
        s.add(not_(and_(*eqs)))
    r = s.check()
    t2 = time.perf_counter()
    mismatch: str | None = None
    if r == "sat":
        i = s.model().int_of(idx)
        env_c = _case(lay, i, f)
        z = agree_at(
            f,
            {k: int(v) for k, v in env_c.items() if k in f.bvs},
            {k: bool(v) for k, v in env_c.items() if k in f.facts},
        )
        mismatch = f"{f.label} at {_fmt_env(env_c, f)}: evaluate={z[0]!r} z3={z[1]!r}"
    elif r == "unknown":
        mismatch = f"{f.label}: solver gave up"
    return CheckResult(f.label, cases, mismatch is None, mismatch, t1 - t0, t2 - t1)


def _fmt_env(env: Mapping[str, int | bool], f: Formula) -> str:
    parts = [f"{v}={F.names(int(env[v]))}" for v in f.bvs]
    parts += [f"{c}={bool(env[c])}" for c in f.facts]
    return ", ".join(parts)


def agree_at(
    f: Formula, values: Mapping[str, int], facts: Mapping[str, bool]
) -> tuple[int | bool, int | bool]:
    """The concrete and the Z3 value of `f` at one point (any 64-bit values)."""
    env: dict[str, int | bool] = dict(values)
    env.update(facts)
    concrete = E.evaluate(f.expr, env)
    names = {v: f"xr.{v}" for v in f.bvs}
    zenv = Env({v: bv_var(names[v]) for v in f.bvs}, {c: bool_var(f"xr.ctx.{c}") for c in f.facts})
    bvs = {names[v]: values[v] for v in f.bvs}
    bools = {f"xr.ctx.{c}": bool(facts.get(c, False)) for c in f.facts}
    if is_term(f.expr):
        z = closed_value(term(f.expr, zenv), bvs, bools, "bv")
        return int(concrete), z
    zb = closed_value(formula(f.expr, zenv), bvs, bools, "bool")
    return bool(concrete), zb
