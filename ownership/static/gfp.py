"""GFP flags at a call site: do they allow direct reclaim (and so may the call sleep)?

A function declared `@may_sleep(gfp="flags")` sleeps only when the flags it is given
allow direct reclaim. At each call the checker evaluates the argument statically:

* names and members of `ownership.bindings.gfp` (`GFP_KERNEL`, `__GFP_ZERO`,
  `Flags.DIRECT_RECLAIM`, also when re-exported through `ownership.alloc`) have the
  values of the real module, and the answer is the runtime's own predicate,
  `Flags.may_sleep`; `|`, `&`, `^` and `~` of such values are folded;
* the caller's own GFP parameter ("forwarding") makes the caller GFP-conditional in
  turn, as `KBox.new(value, gfp)` is because it passes `gfp` to `alloc_check`;
* a local variable assigned once is followed to its value;
* `A if cond else B` may allow reclaim when either branch does.

Anything else (an attribute, a call's result) is "unknown", and the checker is
conservative: an unknown GFP value is assumed to allow reclaim, so such a call in
atomic context is reported, and the finding's note says that this is the checker's
limit. Use a literal `GFP_ATOMIC`/`GFP_NOWAIT` (or a parameter) to make the intent
visible.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from mypy.nodes import (
    ConditionalExpr,
    Expression,
    MemberExpr,
    NameExpr,
    OpExpr,
    RefExpr,
    UnaryExpr,
    Var,
)

from .resolve import Typer, instances

__all__ = ["FLAGS_MODULE", "FLAGS_TYPE", "allows_reclaim", "classify", "flag_value"]

FLAGS_MODULE = "ownership.bindings.gfp"
FLAGS_TYPE = "ownership.bindings.gfp.Flags"
_MASK = (1 << 64) - 1

_module: ModuleType | None = None
_values: dict[str, int | None] = {}


def _flags_module() -> ModuleType:
    global _module
    if _module is None:
        _module = importlib.import_module(FLAGS_MODULE)
    return _module


def flag_value(fullname: str) -> int | None:
    """The integer value of a constant of `ownership.bindings.gfp`, or None."""
    if not fullname.startswith(FLAGS_MODULE + "."):
        return None
    if fullname in _values:
        return _values[fullname]
    obj: object = _flags_module()
    for part in fullname[len(FLAGS_MODULE) + 1 :].split("."):
        obj = getattr(obj, part, None)
    value = int(obj) if isinstance(obj, int) and not isinstance(obj, bool) else None
    _values[fullname] = value
    return value


def allows_reclaim(value: int) -> bool:
    """`gfpflags_allow_blocking()`, as the runtime's `Flags.may_sleep` computes it."""
    flags_cls = _flags_module().Flags
    return bool(flags_cls(value & _MASK).may_sleep)


@dataclass(frozen=True)
class _Fwd:
    """A value that is the caller's GFP parameter `param` (possibly with atomic bits).

    Invariants: `param` names a parameter of the function being walked.
    """

    param: str


_Value = int | _Fwd | None


def _ref_fullname(e: RefExpr) -> str:
    if e.fullname:
        return e.fullname
    if isinstance(e, MemberExpr) and isinstance(e.expr, RefExpr):
        base = _ref_fullname(e.expr)
        return f"{base}.{e.name}" if base else ""
    node = e.node
    return getattr(node, "fullname", "") or ""


def _evaluate(
    e: Expression, params: dict[Var, str], local_values: dict[Var, Expression], depth: int
) -> _Value:
    if depth > 6:
        return None
    if isinstance(e, NameExpr) and isinstance(e.node, Var):
        param = params.get(e.node)
        if param is not None:
            return _Fwd(param)
        value = local_values.get(e.node)
        if value is not None and value is not e:
            return _evaluate(value, params, local_values, depth + 1)
    if isinstance(e, RefExpr):
        return flag_value(_ref_fullname(e))
    if isinstance(e, ConditionalExpr):
        # `GFP_ATOMIC if urgent else GFP_KERNEL` may sleep when either branch may.
        a = _evaluate(e.if_expr, params, local_values, depth + 1)
        b = _evaluate(e.else_expr, params, local_values, depth + 1)
        if isinstance(a, int) and isinstance(b, int):
            return a if allows_reclaim(a) or not allows_reclaim(b) else b
        return None
    if isinstance(e, UnaryExpr) and e.op == "~":
        inner = _evaluate(e.expr, params, local_values, depth + 1)
        return (~inner) & _MASK if isinstance(inner, int) else None
    if isinstance(e, OpExpr) and e.op in ("|", "&", "^"):
        left = _evaluate(e.left, params, local_values, depth + 1)
        right = _evaluate(e.right, params, local_values, depth + 1)
        if isinstance(left, int) and isinstance(right, int):
            return {"|": left | right, "&": left & right, "^": left ^ right}[e.op]
        fwd, const = (left, right) if isinstance(left, _Fwd) else (right, left)
        if isinstance(fwd, _Fwd) and isinstance(const, int):
            if e.op == "|":
                # `gfp | __GFP_ZERO` sleeps when gfp does; `gfp | GFP_KERNEL` always.
                return const if allows_reclaim(const) else fwd
            if e.op == "&":
                # Masking the reclaim bit out makes it atomic; keeping it keeps gfp's.
                return 0 if not allows_reclaim(const) else fwd
        if (
            isinstance(left, _Fwd)
            and isinstance(right, _Fwd)
            and left == right
            and e.op in ("|", "&")
        ):
            return left
    return None


def classify(
    e: Expression, typer: Typer, params: dict[Var, str], local_values: dict[Var, Expression]
) -> tuple[str, str] | None:
    """("sleep" | "nosleep" | "unknown", "") or ("fwd", caller's parameter) for a GFP
    expression; None when `e` is not a GFP value at all."""
    value = _evaluate(e, params, local_values, 0)
    if isinstance(value, int):
        return ("sleep" if allows_reclaim(value) else "nosleep", "")
    types = instances(typer.type_of(e))
    is_flags = any(FLAGS_TYPE in [b.fullname for b in inst.type.mro] for inst in types)
    if isinstance(value, _Fwd):
        # Only a parameter that holds GFP flags (or whose type is unknown) forwards them.
        return ("fwd", value.param) if is_flags or not types else None
    return ("unknown", "") if is_flags else None
