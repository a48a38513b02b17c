"""The expression language of the VMA flag rules: 64-bit terms and formulas over them.

A header both sides read (the floor, `ownership.include`): the simulated kernel
evaluates these trees on concrete flag values (`evaluate`), and `proofs/` interprets the
same trees as Z3 bit-vector formulas. There is no upstream counterpart; the formulas
restate what include/linux/mm.h and the mm/vma review (seed 003) say in prose.

Bit-vector terms (`Var`, `Const`, `BAnd`, `BOr`, `BNot`, `Ite`) and formulas (`Has`,
`Eq`, `And`, `Or`, `Not`, `Implies`, `Ctx`, `Lit`). `Var("old")` and `Var("new")` (`OLD`,
`NEW`) are the flags before and after a change; other `Var`s are an operation's
parameters; `Ctx(name)` is a boolean fact about the VMA (`ptes_installed`, `in_use`, ...).

Lock order: no locks; every object here is immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import vm_flags as F

__all__ = [
    "MASK64",
    "NEW",
    "OLD",
    "And",
    "BAnd",
    "BNot",
    "BOr",
    "Const",
    "Ctx",
    "Eq",
    "Expr",
    "Has",
    "Implies",
    "Ite",
    "Lit",
    "Not",
    "Or",
    "Var",
    "evaluate",
]

MASK64 = F.VM_FLAGS_MAX


class Expr:
    """A node of a rule or operation formula (bit-vector term or boolean formula)."""

    __slots__ = ()


@dataclass(frozen=True)
class Var(Expr):
    """A 64-bit value: `old`, `new`, or an operation parameter."""

    name: str


@dataclass(frozen=True)
class Const(Expr):
    value: int


@dataclass(frozen=True)
class BAnd(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class BOr(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class BNot(Expr):
    a: Expr


@dataclass(frozen=True)
class Ite(Expr):
    """`cond ? a : b` over bit-vectors."""

    cond: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Has(Expr):
    """`(term & mask) != 0`: at least one bit of `mask` is set."""

    term: Expr
    mask: int


@dataclass(frozen=True)
class Eq(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class And(Expr):
    args: tuple[Expr, ...]

    def __init__(self, *args: Expr) -> None:
        object.__setattr__(self, "args", tuple(args))


@dataclass(frozen=True)
class Or(Expr):
    args: tuple[Expr, ...]

    def __init__(self, *args: Expr) -> None:
        object.__setattr__(self, "args", tuple(args))


@dataclass(frozen=True)
class Not(Expr):
    a: Expr


@dataclass(frozen=True)
class Implies(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Ctx(Expr):
    """A boolean fact about the VMA or the call, supplied by the caller."""

    name: str


@dataclass(frozen=True)
class Lit(Expr):
    value: bool


OLD = Var("old")
NEW = Var("new")


def evaluate(e: Expr, env: Mapping[str, int | bool]) -> int | bool:
    """Evaluate a formula on concrete values (`env` maps Var and Ctx names)."""
    if isinstance(e, Var):
        return int(env[e.name])
    if isinstance(e, Const):
        return e.value
    if isinstance(e, BAnd):
        return int(evaluate(e.a, env)) & int(evaluate(e.b, env))
    if isinstance(e, BOr):
        return int(evaluate(e.a, env)) | int(evaluate(e.b, env))
    if isinstance(e, BNot):
        return ~int(evaluate(e.a, env)) & MASK64
    if isinstance(e, Ite):
        return evaluate(e.a if evaluate(e.cond, env) else e.b, env)
    if isinstance(e, Has):
        return (int(evaluate(e.term, env)) & e.mask) != 0
    if isinstance(e, Eq):
        return evaluate(e.a, env) == evaluate(e.b, env)
    if isinstance(e, And):
        return all(evaluate(a, env) for a in e.args)
    if isinstance(e, Or):
        return any(evaluate(a, env) for a in e.args)
    if isinstance(e, Not):
        return not evaluate(e.a, env)
    if isinstance(e, Implies):
        return (not evaluate(e.a, env)) or bool(evaluate(e.b, env))
    if isinstance(e, Ctx):
        return bool(env.get(e.name, False))
    if isinstance(e, Lit):
        return e.value
    raise TypeError(f"not a rule expression: {e!r}")
