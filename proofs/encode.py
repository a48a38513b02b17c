"""The rule table's expression language, read as Z3 bit-vector formulas.

`ownership.mm.vma_rules` states every VMA flag rule and every flag-changing operation
once, as `Expr` trees that `vma_rules.evaluate` computes on concrete integers. This
module gives the *same* trees a second meaning: `term` turns a bit-vector node into a
64-bit Z3 term and `formula` turns a boolean node into a Z3 formula. Nothing here
knows what any rule says; it only knows what `BAnd`, `Has`, `Implies`... mean, with
the semantics of `evaluate` (a `Ctx` fact that the environment does not supply is
false, as `env.get(name, False)` is there).

`proofs.crosscheck` checks that the two meanings agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ownership.mm import vma_rules as R

from .z3api import (
    BV,
    Bool,
    and_,
    bool_ite,
    bool_val,
    bv_and,
    bv_eq,
    bv_ite,
    bv_not,
    bv_or,
    bv_val,
    has,
    iff,
    implies,
    not_,
    or_,
)

__all__ = ["Env", "ctx_names", "formula", "is_term", "masks", "term", "var_names"]

_TERMS = (R.Var, R.Const, R.BAnd, R.BOr, R.BNot)
_FORMULAS = (R.Has, R.Eq, R.And, R.Or, R.Not, R.Implies, R.Ctx, R.Lit)


@dataclass(frozen=True)
class Env:
    """Values for the free names of an expression.

    Invariants: `bvs` maps every `Var` name the expression uses to a 64-bit term;
    `ctx` maps `Ctx` names to formulas (a missing one is false).
    """

    bvs: Mapping[str, BV]
    ctx: Mapping[str, Bool] = field(default_factory=dict)

    def extend(self, **bvs: BV) -> Env:
        merged = dict(self.bvs)
        merged.update(bvs)
        return Env(merged, self.ctx)


def is_term(e: R.Expr) -> bool:
    """Whether `e` denotes a bit-vector (else a boolean)."""
    if isinstance(e, _TERMS):
        return True
    if isinstance(e, R.Ite):
        return is_term(e.a)
    if isinstance(e, _FORMULAS):
        return False
    raise TypeError(f"not a rule expression: {e!r}")


def term(e: R.Expr, env: Env) -> BV:
    """The 64-bit Z3 term for a bit-vector node."""
    if isinstance(e, R.Var):
        try:
            return env.bvs[e.name]
        except KeyError:
            raise KeyError(f"no value for variable {e.name!r}") from None
    if isinstance(e, R.Const):
        return bv_val(e.value)
    if isinstance(e, R.BAnd):
        return bv_and(term(e.a, env), term(e.b, env))
    if isinstance(e, R.BOr):
        return bv_or(term(e.a, env), term(e.b, env))
    if isinstance(e, R.BNot):
        return bv_not(term(e.a, env))
    if isinstance(e, R.Ite) and is_term(e.a):
        return bv_ite(formula(e.cond, env), term(e.a, env), term(e.b, env))
    raise TypeError(f"not a bit-vector expression: {e!r}")


def formula(e: R.Expr, env: Env) -> Bool:
    """The Z3 formula for a boolean node."""
    if isinstance(e, R.Has):
        return has(term(e.term, env), e.mask)
    if isinstance(e, R.Eq):
        ta, tb = is_term(e.a), is_term(e.b)
        if ta and tb:
            return bv_eq(term(e.a, env), term(e.b, env))
        if not ta and not tb:
            return iff(formula(e.a, env), formula(e.b, env))
        raise TypeError(f"Eq compares a bit-vector with a boolean: {e!r}")
    if isinstance(e, R.And):
        return and_(*[formula(a, env) for a in e.args])
    if isinstance(e, R.Or):
        return or_(*[formula(a, env) for a in e.args])
    if isinstance(e, R.Not):
        return not_(formula(e.a, env))
    if isinstance(e, R.Implies):
        return implies(formula(e.a, env), formula(e.b, env))
    if isinstance(e, R.Ctx):
        return env.ctx.get(e.name, bool_val(False))
    if isinstance(e, R.Lit):
        return bool_val(e.value)
    if isinstance(e, R.Ite) and not is_term(e.a):
        return bool_ite(formula(e.cond, env), formula(e.a, env), formula(e.b, env))
    raise TypeError(f"not a boolean expression: {e!r}")


def _children(e: R.Expr) -> Iterator[R.Expr]:
    if isinstance(e, (R.BAnd, R.BOr, R.Eq, R.Implies)):
        yield e.a
        yield e.b
    elif isinstance(e, (R.BNot, R.Not)):
        yield e.a
    elif isinstance(e, R.Ite):
        yield e.cond
        yield e.a
        yield e.b
    elif isinstance(e, R.Has):
        yield e.term
    elif isinstance(e, (R.And, R.Or)):
        yield from e.args


def _walk(e: R.Expr) -> Iterator[R.Expr]:
    yield e
    for c in _children(e):
        yield from _walk(c)


def var_names(e: R.Expr) -> frozenset[str]:
    """The `Var` names in `e`."""
    return frozenset(n.name for n in _walk(e) if isinstance(n, R.Var))


def ctx_names(e: R.Expr) -> frozenset[str]:
    """The `Ctx` names in `e`."""
    return frozenset(n.name for n in _walk(e) if isinstance(n, R.Ctx))


def masks(e: R.Expr) -> frozenset[int]:
    """Every `Has` mask and `Const` value in `e` (the bits the expression looks at)."""
    out: set[int] = set()
    for n in _walk(e):
        if isinstance(n, R.Has):
            out.add(n.mask)
        elif isinstance(n, R.Const):
            out.add(n.value)
    return frozenset(out)
