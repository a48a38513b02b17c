"""The rule table's expression language, read as Z3 bit-vector formulas.

`ownership.include` states every VMA flag rule and every flag-changing operation
once, as `Expr` trees that `vma_expr.evaluate` computes on concrete integers. This
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

from ownership.include import vma_expr as E

from .z3api import (
    BV,
    Bool,
    and_,
    bool_ite,
    bool_val,
    bool_var,
    bv_and,
    bv_eq,
    bv_ite,
    bv_not,
    bv_or,
    bv_val,
    bv_var,
    has,
    iff,
    implies,
    not_,
    or_,
    substitute,
)

__all__ = ["Env", "ctx_names", "formula", "is_term", "masks", "term", "var_names"]

_TERMS = (E.Var, E.Const, E.BAnd, E.BOr, E.BNot)
_FORMULAS = (E.Has, E.Eq, E.And, E.Or, E.Not, E.Implies, E.Ctx, E.Lit)


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


def is_term(e: E.Expr) -> bool:
    """Whether `e` denotes a bit-vector (else a boolean)."""
    if isinstance(e, _TERMS):
        return True
    if isinstance(e, E.Ite):
        return is_term(e.a)
    if isinstance(e, _FORMULAS):
        return False
    raise TypeError(f"not a rule expression: {e!r}")


@dataclass(frozen=True)
class _Template:
    """An expression built once over placeholder variables, instantiated by substitution.

    Invariants: `expr` is kept alive so that its `id` stays a valid cache key.
    """

    expr: E.Expr
    z: object
    bvs: tuple[tuple[str, BV], ...]
    ctx: tuple[tuple[str, Bool], ...]


_TEMPLATES: dict[int, _Template] = {}


def _template(e: E.Expr) -> _Template:
    t = _TEMPLATES.get(id(e))
    if t is None or t.expr is not e:
        bvs = tuple((n, bv_var(f"$tmpl.{n}")) for n in sorted(var_names(e)))
        ctx = tuple((n, bool_var(f"$tmpl.ctx.{n}")) for n in sorted(ctx_names(e)))
        env = Env(dict(bvs), dict(ctx))
        z: object = _term(e, env) if is_term(e) else _formula(e, env)
        t = _Template(e, z, bvs, ctx)
        _TEMPLATES[id(e)] = t
    return t


def _instantiate(e: E.Expr, env: Env) -> object:
    t = _template(e)
    bvs: list[tuple[BV, BV]] = []
    for n, v in t.bvs:
        try:
            bvs.append((v, env.bvs[n]))
        except KeyError:
            raise KeyError(f"no value for variable {n!r}") from None
    ctx = [(v, env.ctx.get(n, bool_val(False))) for n, v in t.ctx]
    return substitute(BV(t.z), bvs, ctx)


def term(e: E.Expr, env: Env) -> BV:
    """The 64-bit Z3 term for a bit-vector node.

    Each table expression is built once, over placeholders, and instantiated by one
    substitution per use: building Z3 terms through the Python API is the dominant
    cost of the proofs, substitution is a single native call.
    """
    if not is_term(e):
        raise TypeError(f"not a bit-vector expression: {e!r}")
    return BV(_instantiate(e, env))


def formula(e: E.Expr, env: Env) -> Bool:
    """The Z3 formula for a boolean node (built once, instantiated as `term` is)."""
    if is_term(e):
        raise TypeError(f"not a boolean expression: {e!r}")
    return Bool(_instantiate(e, env))


def _term(e: E.Expr, env: Env) -> BV:
    """Build the 64-bit Z3 term for a bit-vector node, node by node."""
    if isinstance(e, E.Var):
        try:
            return env.bvs[e.name]
        except KeyError:
            raise KeyError(f"no value for variable {e.name!r}") from None
    if isinstance(e, E.Const):
        return bv_val(e.value)
    if isinstance(e, E.BAnd):
        return bv_and(_term(e.a, env), _term(e.b, env))
    if isinstance(e, E.BOr):
        return bv_or(_term(e.a, env), _term(e.b, env))
    if isinstance(e, E.BNot):
        return bv_not(_term(e.a, env))
    if isinstance(e, E.Ite) and is_term(e.a):
        return bv_ite(_formula(e.cond, env), _term(e.a, env), _term(e.b, env))
    raise TypeError(f"not a bit-vector expression: {e!r}")


def _formula(e: E.Expr, env: Env) -> Bool:
    """Build the Z3 formula for a boolean node, node by node."""
    if isinstance(e, E.Has):
        return has(_term(e.term, env), e.mask)
    if isinstance(e, E.Eq):
        ta, tb = is_term(e.a), is_term(e.b)
        if ta and tb:
            return bv_eq(_term(e.a, env), _term(e.b, env))
        if not ta and not tb:
            return iff(_formula(e.a, env), _formula(e.b, env))
        raise TypeError(f"Eq compares a bit-vector with a boolean: {e!r}")
    if isinstance(e, E.And):
        return and_(*[_formula(a, env) for a in e.args])
    if isinstance(e, E.Or):
        return or_(*[_formula(a, env) for a in e.args])
    if isinstance(e, E.Not):
        return not_(_formula(e.a, env))
    if isinstance(e, E.Implies):
        return implies(_formula(e.a, env), _formula(e.b, env))
    if isinstance(e, E.Ctx):
        return env.ctx.get(e.name, bool_val(False))
    if isinstance(e, E.Lit):
        return bool_val(e.value)
    if isinstance(e, E.Ite) and not is_term(e.a):
        return bool_ite(_formula(e.cond, env), _formula(e.a, env), _formula(e.b, env))
    raise TypeError(f"not a boolean expression: {e!r}")


def _children(e: E.Expr) -> Iterator[E.Expr]:
    if isinstance(e, (E.BAnd, E.BOr, E.Eq, E.Implies)):
        yield e.a
        yield e.b
    elif isinstance(e, (E.BNot, E.Not)):
        yield e.a
    elif isinstance(e, E.Ite):
        yield e.cond
        yield e.a
        yield e.b
    elif isinstance(e, E.Has):
        yield e.term
    elif isinstance(e, (E.And, E.Or)):
        yield from e.args


def _walk(e: E.Expr) -> Iterator[E.Expr]:
    yield e
    for c in _children(e):
        yield from _walk(c)


def var_names(e: E.Expr) -> frozenset[str]:
    """The `Var` names in `e`."""
    return frozenset(n.name for n in _walk(e) if isinstance(n, E.Var))


def ctx_names(e: E.Expr) -> frozenset[str]:
    """The `Ctx` names in `e`."""
    return frozenset(n.name for n in _walk(e) if isinstance(n, E.Ctx))


def masks(e: E.Expr) -> frozenset[int]:
    """Every `Has` mask and `Const` value in `e` (the bits the expression looks at)."""
    out: set[int] = set()
    for n in _walk(e):
        if isinstance(n, E.Has):
            out.add(n.mask)
        elif isinstance(n, E.Const):
            out.add(n.value)
    return frozenset(out)
