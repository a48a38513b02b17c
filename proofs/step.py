"""One operation of the rule table as a symbolic step over one VMA's state.

The state (`SymState`) is the 64-bit `vm_flags` plus one ghost fact, whether a PTE has
been installed (set by the operations in `INSTALLS_PTES`, read by rules as
`Ctx("ptes_installed")`). `encode_op` encodes one `VmaOp` entry of
`ownership.include.vma_ops` on a state: its parameters restricted to their `Param` masks,
its guard, its result, and, for a `checked` driver operation, every rule
`check_transition` evaluates at run time. Every context fact other than the ghost one is
a fresh variable, chosen freely at every step, which over-approximates what the kernel
can do.
"""

from __future__ import annotations

from dataclasses import dataclass

from ownership.include import vma_expr as E
from ownership.include import vma_ops as O
from ownership.include import vma_rules as R

from .encode import Env, ctx_names, formula, term
from .table import Table
from .z3api import BV, MASK, Bool, and_, bool_val, bool_var, bv_and, bv_eq, bv_val, bv_var

__all__ = ["GHOST_PTES", "Step", "SymState", "conjunction", "encode_op", "rule_holds", "rules_hold"]


GHOST_PTES = "ptes_installed"


@dataclass(frozen=True)
class SymState:
    """A VMA's symbolic state: `vm_flags` and the ghost fact "a PTE was installed".

    Invariants: `flags` is a 64-bit term; `ptes` never goes from true to false along
    a run (no operation of the table un-installs the history of an insertion).
    """

    flags: BV
    ptes: Bool


@dataclass(frozen=True)
class Step:
    """One operation applied to a symbolic state.

    Invariants: `post` is the operation's result on `pre` with `params` and `ctx`;
    it is meaningful only where `enabled` holds.
    """

    op: O.VmaOp
    tag: str
    pre: SymState
    params: dict[str, BV]
    ctx: dict[str, Bool]
    guard: Bool
    domain: Bool
    check: Bool
    post: SymState
    enabled: Bool
    """`guard`, `domain` and `check` together: the operation succeeds."""


def rule_holds(rule: R.VmaRule, old: BV, new: BV, ctx: dict[str, Bool] | None = None) -> Bool:
    """The table's formula for `rule`, for the change `old -> new` (a state rule reads `new`)."""
    return formula(rule.expr, Env({"old": old, "new": new}, ctx or {}))


def rules_hold(rules: tuple[R.VmaRule, ...], old: BV, new: BV) -> Bool:
    """Every rule of `rules` holds for `old -> new` (one instantiated conjunction)."""
    return formula(conjunction(rules), Env({"old": old, "new": new}))


_CONJ: dict[int, tuple[tuple[R.VmaRule, ...], E.Expr]] = {}


def conjunction(rules: tuple[R.VmaRule, ...]) -> E.Expr:
    """`And` of the rules' formulas: what `check_transition` evaluates, as one
    expression (so that it is built once and instantiated by one substitution)."""
    hit = _CONJ.get(id(rules))
    if hit is None or hit[0] is not rules:
        hit = (rules, E.And(*[r.expr for r in rules]))
        _CONJ[id(rules)] = hit
    return hit[1]


def encode_op(table: Table, op: O.VmaOp, pre: SymState, tag: str) -> Step:
    """Encode `op` on `pre`; fresh variables are named `tag.<name>`."""
    names = set(op.ctx) | ctx_names(op.guard) | ctx_names(op.result)
    if op.checked:
        for r in table.check_rules:
            names |= ctx_names(r.expr)
    ctx: dict[str, Bool] = {}
    for n in sorted(names):
        ctx[n] = pre.ptes if n == GHOST_PTES else bool_var(f"{tag}.{n}")
    params = {p.name: bv_var(f"{tag}.{p.name}") for p in op.params}
    domain = and_(
        *[bv_eq(bv_and(params[p.name], bv_val(MASK & ~p.mask)), bv_val(0)) for p in op.params]
    )
    env = Env({"old": pre.flags, **params}, ctx)
    guard = formula(op.guard, env)
    new = term(op.result, env)
    if op.checked:
        check = formula(conjunction(table.check_rules), env.extend(new=new))
    else:
        check = bool_val(True)
    ptes = bool_val(True) if op.name in table.installs_ptes else pre.ptes
    # INVARIANT: `post` is the table's result term and the ghost update, unconstrained
    # by `enabled` (callers conjoin it).
    return Step(
        op,
        tag,
        pre,
        params,
        ctx,
        guard,
        domain,
        check,
        SymState(new, ptes),
        and_(guard, domain, check),
    )
