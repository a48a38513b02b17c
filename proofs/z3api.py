"""A small typed façade over Z3: 64-bit bit-vector terms, booleans, a solver.

Z3 ships no type stubs, so every Z3 value is `Any` to mypy. This module is the only
place that touches untyped Z3 objects: the rest of `proofs/` sees two opaque types,
`BV` (a 64-bit `vm_flags_t` term, or a narrower index term) and `Bool` (a formula),
and the functions below. `vm_flags_t` is `unsigned long`, 64 bits on x86-64, so every
flags term is 64 bits wide and arithmetic wraps like C's.

Invariants: a `BV` built here is a Z3 bit-vector expression; a `Bool` is a Z3 boolean
expression; both belong to Z3's default context (the package is single-threaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NewType

import z3

__all__ = [
    "BV",
    "WIDTH",
    "Bool",
    "Model",
    "Solver",
    "Verdict",
    "and_",
    "bool_ite",
    "bool_val",
    "bool_var",
    "bv_and",
    "bv_eq",
    "bv_ite",
    "bv_not",
    "bv_or",
    "bv_ule",
    "bv_ult",
    "bv_val",
    "bv_var",
    "bv_xor",
    "closed_value",
    "has",
    "iff",
    "implies",
    "index_bit",
    "leave_ctrl_c_to_python",
    "lookup_bit",
    "not_",
    "or_",
    "output_bit",
    "spread",
    "substitute",
]

WIDTH = 64
MASK = (1 << WIDTH) - 1

BV = NewType("BV", object)
"""A Z3 bit-vector term (64 bits unless built by `spread`'s index helpers)."""

Bool = NewType("Bool", object)
"""A Z3 boolean formula."""

Verdict = Literal["sat", "unsat", "unknown"]


def leave_ctrl_c_to_python() -> None:
    """Stop Z3 from catching SIGINT itself (its `ctrl_c` parameter): by default a check
    in progress swallows a Ctrl-C and returns `unknown`, so a command line could neither
    stop nor report honestly. Afterwards Ctrl-C reaches Python's handler."""
    z3.set_param("ctrl_c", False)


def _z(x: object) -> Any:
    """The underlying Z3 object (typed `Any`: Z3 has no stubs)."""
    return x


def _check_const(v: int, width: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"bit-vector constant must be an int, got {type(v).__name__}")
    if v < 0 or v >> width:
        raise TypeError(f"constant {v:#x} does not fit in {width} bits")


def bv_var(name: str, width: int = WIDTH) -> BV:
    return BV(z3.BitVec(name, width))


_CONSTS: dict[tuple[int, int], Any] = {}


def _const(v: int, width: int) -> Any:
    """A cached Z3 constant (building one through the Python API is not free)."""
    key = (v, width)
    c = _CONSTS.get(key)
    if c is None:
        _check_const(v, width)
        c = z3.BitVecVal(v, width)
        if len(_CONSTS) < 4096:
            _CONSTS[key] = c
    return c


def bv_val(v: int, width: int = WIDTH) -> BV:
    """A constant; a value outside `[0, 2**width)` is a TypeError, never truncated."""
    _check_const(v, width)
    return BV(_const(v, width))


def bv_and(a: BV, b: BV) -> BV:
    return BV(_z(a) & _z(b))


def bv_or(a: BV, b: BV) -> BV:
    return BV(_z(a) | _z(b))


def bv_xor(a: BV, b: BV) -> BV:
    return BV(_z(a) ^ _z(b))


def bv_not(a: BV) -> BV:
    return BV(~_z(a))


def bv_ite(c: Bool, a: BV, b: BV) -> BV:
    return BV(z3.If(_z(c), _z(a), _z(b)))


def bv_eq(a: BV, b: BV) -> Bool:
    return Bool(_z(a) == _z(b))


def bv_ult(a: BV, b: BV) -> Bool:
    """Unsigned `a < b` (addresses are `unsigned long`)."""
    return Bool(z3.ULT(_z(a), _z(b)))


def bv_ule(a: BV, b: BV) -> Bool:
    return Bool(z3.ULE(_z(a), _z(b)))


def has(t: BV, mask: int) -> Bool:
    """`(t & mask) != 0`."""
    _check_const(mask, WIDTH)
    return Bool((_z(t) & _const(mask, WIDTH)) != _const(0, WIDTH))


def bool_var(name: str) -> Bool:
    return Bool(z3.Bool(name))


def bool_val(v: bool) -> Bool:
    return Bool(z3.BoolVal(bool(v)))


def _nary(mk: Any, xs: Sequence[Bool]) -> Bool:
    """`mk` (Z3_mk_and / Z3_mk_or) over `xs`, through the C API: `z3.And` re-checks and
    coerces every argument in Python, which dominates the cost of large conjunctions."""
    ctx = z3.main_ctx()
    arr = (z3.Ast * len(xs))()
    for i, x in enumerate(xs):
        arr[i] = _z(x).as_ast()
    return Bool(z3.BoolRef(mk(ctx.ref(), len(xs), arr), ctx))


def and_(*xs: Bool) -> Bool:
    if not xs:
        return bool_val(True)
    if len(xs) == 1:
        return xs[0]
    return _nary(z3.Z3_mk_and, xs)


def or_(*xs: Bool) -> Bool:
    if not xs:
        return bool_val(False)
    if len(xs) == 1:
        return xs[0]
    return _nary(z3.Z3_mk_or, xs)


def not_(x: Bool) -> Bool:
    return Bool(z3.Not(_z(x)))


def implies(a: Bool, b: Bool) -> Bool:
    return Bool(z3.Implies(_z(a), _z(b)))


def iff(a: Bool, b: Bool) -> Bool:
    return Bool(_z(a) == _z(b))


def bool_ite(c: Bool, a: Bool, b: Bool) -> Bool:
    return Bool(z3.If(_z(c), _z(a), _z(b)))


# --------------------------------------------------------------------------------------
# Index encodings used by the exhaustive cross-check.


def spread(index: BV, index_bits: Sequence[int], positions: Sequence[int]) -> BV:
    """A 64-bit value whose bit `positions[k]` is bit `index_bits[k]` of `index`.

    Every other bit is zero: the value ranges over exactly the combinations of the
    chosen flag bits as `index` ranges over its domain.
    """
    if len(index_bits) != len(positions):
        raise ValueError("index_bits and positions differ in length")
    out: Any = z3.BitVecVal(0, WIDTH)
    for ib, pos in zip(index_bits, positions, strict=True):
        bit = z3.ZeroExt(WIDTH - 1, z3.Extract(ib, ib, _z(index)))
        out = out | (bit << pos)
    return BV(out)


def index_bit(index: BV, k: int) -> Bool:
    """Bit `k` of `index`, as a formula."""
    return Bool(z3.Extract(k, k, _z(index)) == 1)


def output_bit(t: BV, k: int) -> Bool:
    """Bit `k` of a 64-bit term, as a formula."""
    return Bool(z3.Extract(k, k, _z(t)) == 1)


_CHUNK = 1024


def _wide_const(v: int, width: int) -> Any:
    """A constant of any width, built from 1024-bit pieces (Z3 parses numerals through
    `str`, which Python limits to 4300 digits)."""
    if width <= _CHUNK:
        return z3.BitVecVal(v, width)
    parts = []
    for lo in range(0, width, _CHUNK):
        w = min(_CHUNK, width - lo)
        parts.append(z3.BitVecVal((v >> lo) & ((1 << w) - 1), w))
    return z3.Concat(*reversed(parts))


def lookup_bit(table: int, index: BV, index_width: int) -> Bool:
    """Bit `index` of the `2**index_width`-bit constant `table`, as a formula.

    This is how a truth table computed by the concrete evaluator is compared with a
    Z3 formula in one query (a barrel shift of a constant, cheap to bit-blast).
    """
    n = 1 << index_width
    _check_const(table, n)
    shifted = z3.LShR(_wide_const(table, n), z3.ZeroExt(n - index_width, _z(index)))
    return Bool(z3.Extract(0, 0, shifted) == 1)


# --------------------------------------------------------------------------------------
# Solving.


@dataclass(frozen=True)
class Model:
    """A satisfying assignment (completed: unconstrained values read as 0/False)."""

    _m: object

    def int_of(self, t: BV) -> int:
        v = _z(self._m).eval(_z(t), model_completion=True)
        return int(v.as_long())

    def bool_of(self, f: Bool) -> bool:
        v = _z(self._m).eval(_z(f), model_completion=True)
        return bool(z3.is_true(v))


class Solver:
    """An incremental Z3 solver with a per-query timeout.

    Invariants: `push`/`pop` are balanced by the caller (use `scope()`).
    """

    def __init__(self, timeout_ms: int = 10_000) -> None:
        s = z3.SolverFor("QF_BV")
        s.set("timeout", int(timeout_ms))
        s.set("core.minimize", True)
        self._s: Any = s
        self.queries = 0

    def add(self, *fs: Bool) -> None:
        for f in fs:
            self._s.add(_z(f))

    def push(self) -> None:
        self._s.push()

    def pop(self) -> None:
        self._s.pop()

    def check(self, *assumptions: Bool) -> Verdict:
        self.queries += 1
        r = self._s.check(*[_z(a) for a in assumptions])
        if r == z3.sat:
            return "sat"
        if r == z3.unsat:
            return "unsat"
        return "unknown"

    def model(self) -> Model:
        return Model(self._s.model())

    def core(self) -> frozenset[str]:
        """The names of the assumption literals in the last unsat core."""
        return frozenset(str(c) for c in self._s.unsat_core())

    def scope(self) -> _Scope:
        """`with solver.scope(): ...` pushes a frame and pops it on exit."""
        return _Scope(self)


class _Scope:
    def __init__(self, s: Solver) -> None:
        self._s = s

    def __enter__(self) -> Solver:
        self._s.push()
        return self._s

    def __exit__(self, *exc: object) -> None:
        self._s.pop()


def substitute(
    e: BV | Bool, bvs: Sequence[tuple[BV, BV]], bools: Sequence[tuple[Bool, Bool]]
) -> Any:
    """`e` with each variable of a pair replaced by its partner (one Z3 call)."""
    pairs = [(_z(a), _z(b)) for a, b in bvs] + [(_z(a), _z(b)) for a, b in bools]
    if not pairs:
        return e
    return z3.substitute(_z(e), *pairs)


def closed_value(
    e: BV | Bool, bvs: Mapping[str, int], bools: Mapping[str, bool], kind: Literal["bv", "bool"]
) -> int | bool:
    """Evaluate a Z3 term whose free variables are named in `bvs`/`bools`, by Z3 itself.

    Used by the random cross-check: substitute constants for every variable and let
    Z3's simplifier compute the value.
    """
    pairs: list[tuple[Any, Any]] = []
    for name, v in bvs.items():
        _check_const(v, WIDTH)
        pairs.append((z3.BitVec(name, WIDTH), z3.BitVecVal(v, WIDTH)))
    for name, b in bools.items():
        pairs.append((z3.Bool(name), z3.BoolVal(bool(b))))
    r = z3.simplify(z3.substitute(_z(e), *pairs)) if pairs else z3.simplify(_z(e))
    if kind == "bool":
        if z3.is_true(r):
            return True
        if z3.is_false(r):
            return False
        raise ValueError(f"term did not reduce to a boolean constant: {r}")
    if not z3.is_bv_value(r):
        raise ValueError(f"term did not reduce to a bit-vector constant: {r}")
    return int(r.as_long())
