"""Symbolic execution of plain Python functions: every path, decided by Z3.

The pure cores of the Binder driver (`binder.range_core`, `binder.validate`) are
ordinary Python over ints and booleans. `Explorer` runs them on symbolic values: a
`SymInt` stands for an unbounded mathematical integer (a Z3 `Int`, which is what a
Python `int` is; the driver's own `U64_MAX` checks are code like any other), and its
arithmetic and comparisons build Z3 terms. Where the code branches on a symbolic
condition (`if`, `and`, `or`, `not`, a comparison used as a truth value), `__bool__`
asks the explorer which way to go: it follows one feasible side and remembers the other,
and the harness is re-run from the start for every feasible path (depth-first, with the
path condition on one incremental solver). Lists keep a concrete length; only their
elements are symbolic. So a claim is proved for *all* inputs within its bounds, not
sampled, and a violation comes back with the solver's model: concrete inputs.

This is what CrossHair does for arbitrary Python; it is written out here (a few dozen
lines over one Z3 solver) because the cores use only integer arithmetic with constant
divisors, comparisons and booleans, and because the claims need the counterexample as
values to replay through the driver, a fixed path budget instead of a timeout, and no
monkey-patching of builtins.

A harness declares its inputs with `int_var`/`bool_var` (with their bounds), and inside
`run` states `assume(c)` (paths where `c` is false are dropped) and `check(c, what)`
(a feasible path where `c` is false is a counterexample).

Like `z3api`, this module touches untyped Z3 objects (typed `Any`); everything it
returns to a harness is typed as the `int` or `bool` it stands for.

Invariants: one `Explorer` runs at a time (a module-level "current" explorer answers
`__bool__`); the solver's scope depth equals the number of decisions taken on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import z3

from .outcome import Outcome

__all__ = [
    "Exploration",
    "Explorer",
    "PathBudgetExceeded",
    "counterexample",
    "evaluate",
    "outcome",
    "sym_not",
]


class PathBudgetExceeded(Exception):
    """More feasible paths than the budget: the verdict is unknown."""


class _Violation(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _Infeasible(Exception):
    """An `assume` failed on this path: drop it."""


_current: Explorer | None = None


def _branch(cond: Any) -> bool:
    if _current is None:
        raise TypeError("a symbolic value's truth was asked outside Explorer.explore")
    return _current._branch(cond)


def _term(x: object) -> Any:
    """The Z3 term of an int, bool, `SymInt` or `SymBool`."""
    if isinstance(x, SymInt | SymBool):
        return x.t
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(x)
    raise TypeError(f"no symbolic meaning for {type(x).__name__}")


def _int_term(x: object) -> Any:
    if isinstance(x, SymBool):
        return z3.If(x.t, z3.IntVal(1), z3.IntVal(0))
    if isinstance(x, bool):
        return z3.IntVal(int(x))
    return _term(x)


def _const_divisor(x: object) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x <= 0:
        raise TypeError("only positive constant divisors are supported")
    return x


class SymInt:
    """A symbolic Python `int` (a Z3 `Int` term)."""

    __slots__ = ("t",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, t: Any) -> None:
        self.t = t

    def __add__(self, o: object) -> SymInt:
        return SymInt(self.t + _int_term(o))

    def __radd__(self, o: object) -> SymInt:
        return SymInt(_int_term(o) + self.t)

    def __sub__(self, o: object) -> SymInt:
        return SymInt(self.t - _int_term(o))

    def __rsub__(self, o: object) -> SymInt:
        return SymInt(_int_term(o) - self.t)

    def __mul__(self, o: object) -> SymInt:
        return SymInt(self.t * _int_term(o))

    def __rmul__(self, o: object) -> SymInt:
        return SymInt(_int_term(o) * self.t)

    def __neg__(self) -> SymInt:
        return SymInt(-self.t)

    def __floordiv__(self, o: object) -> SymInt:
        # Z3's integer division is Euclidean: floor division for a positive divisor.
        return SymInt(self.t / _const_divisor(o))

    def __mod__(self, o: object) -> SymInt:
        return SymInt(self.t % _const_divisor(o))

    def __lt__(self, o: object) -> SymBool:
        return SymBool(self.t < _int_term(o))

    def __le__(self, o: object) -> SymBool:
        return SymBool(self.t <= _int_term(o))

    def __gt__(self, o: object) -> SymBool:
        return SymBool(self.t > _int_term(o))

    def __ge__(self, o: object) -> SymBool:
        return SymBool(self.t >= _int_term(o))

    def __eq__(self, o: object) -> SymBool:  # type: ignore[override]
        return SymBool(self.t == _int_term(o))

    def __ne__(self, o: object) -> SymBool:  # type: ignore[override]
        return SymBool(self.t != _int_term(o))

    def __bool__(self) -> bool:
        return _branch(self.t != 0)

    def __index__(self) -> int:
        raise TypeError("a symbolic int cannot index a list (its length is concrete)")

    def __repr__(self) -> str:
        return f"SymInt({self.t})"


class SymBool:
    """A symbolic Python `bool` (a Z3 formula); it counts as 0 or 1 in arithmetic."""

    __slots__ = ("t",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, t: Any) -> None:
        self.t = t

    def __and__(self, o: object) -> SymBool:
        return SymBool(z3.And(self.t, _term(o)))

    __rand__ = __and__

    def __or__(self, o: object) -> SymBool:
        return SymBool(z3.Or(self.t, _term(o)))

    __ror__ = __or__

    def __eq__(self, o: object) -> SymBool:  # type: ignore[override]
        return SymBool(self.t == _term(o))

    def __ne__(self, o: object) -> SymBool:  # type: ignore[override]
        return SymBool(self.t != _term(o))

    def __add__(self, o: object) -> SymInt:
        return SymInt(_int_term(self) + _int_term(o))

    __radd__ = __add__

    def __mul__(self, o: object) -> SymInt:
        return SymInt(_int_term(self) * _int_term(o))

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return _branch(self.t)

    def __repr__(self) -> str:
        return f"SymBool({self.t})"


@dataclass(frozen=True)
class Exploration:
    """How an exploration ended.

    Invariants: `counterexample` (the inputs, by name) and `violated` are set together,
    when a `check` failed on a feasible path; `paths` counts the paths run to the end.
    """

    paths: int
    queries: int
    counterexample: dict[str, int | bool] | None = None
    violated: str | None = None


class Explorer:
    """Runs a harness on every feasible path of its symbolic inputs."""

    def __init__(self, max_paths: int = 100_000) -> None:
        self._solver: Any = z3.Solver()
        self._vars: dict[str, Any] = {}
        self._trail: list[list[bool]] = []
        self._pos = 0
        self._queries = 0
        self._max_paths = max_paths

    # --- inputs ---------------------------------------------------------------------

    def int_var(self, name: str, lo: int, hi: int) -> int:
        """A symbolic int in `[lo, hi]` (typed as the `int` it stands for)."""
        v = z3.Int(name)
        self._vars[name] = v
        self._solver.add(v >= lo, v <= hi)
        return cast(int, SymInt(v))

    def int_choice(self, name: str, values: tuple[int, ...]) -> int:
        """A symbolic int that is one of `values`."""
        v = z3.Int(name)
        self._vars[name] = v
        self._solver.add(z3.Or(*[v == x for x in values]))
        return cast(int, SymInt(v))

    def bool_var(self, name: str) -> bool:
        v = z3.Bool(name)
        self._vars[name] = v
        return cast(bool, SymBool(v))

    def require(self, cond: bool) -> None:
        """A precondition on the inputs (added once, before any path is run)."""
        self._solver.add(_term(cond))

    # --- in the harness -------------------------------------------------------------

    def assume(self, cond: bool) -> None:
        """Drop the paths where `cond` is false (no branch: the false side is not run)."""
        c: object = cond
        if not isinstance(c, SymBool):
            if not c:
                raise _Infeasible()
            return
        if self._replayed():
            return
        self._queries += 1
        if self._solver.check(c.t) == z3.unsat:
            raise _Infeasible()
        self._solver.add(c.t)
        self._trail.append([True, False])
        self._pos += 1

    def check(self, cond: bool, what: str) -> None:
        """A feasible path where `cond` is false is a counterexample to `what`.

        No branch either: one query asks whether the path allows `not cond`; if not,
        `cond` follows from the path and need not be added to it.
        """
        c: object = cond
        if not isinstance(c, SymBool):
            if not c:
                raise _Violation(what)
            return
        if self._replayed():
            return
        self._queries += 1
        if self._solver.check(z3.Not(c.t)) != z3.unsat:
            self._solver.add(z3.Not(c.t))
            raise _Violation(what)
        self._trail.append([True, False])
        self._pos += 1

    def _replayed(self) -> bool:
        """On a re-run, an `assume` or `check` already passed on this prefix passes again
        (its condition follows from the prefix, or was added to it); skip the query."""
        if self._pos < len(self._trail):
            self._pos += 1
            return True
        return False

    # --- exploration ----------------------------------------------------------------

    def _branch(self, cond: Any) -> bool:
        s = self._solver
        if self._pos < len(self._trail):
            d = self._trail[self._pos][0]
        elif z3.is_true(simple := z3.simplify(cond)) or z3.is_false(simple):
            # Decided without the solver (e.g. a comparison of constants).
            d = z3.is_true(simple)
            self._trail.append([d, False])
        else:
            self._queries += 1
            if s.check(cond) == z3.unsat:
                d, other = False, False
            else:
                self._queries += 1
                d, other = True, s.check(z3.Not(cond)) != z3.unsat
            self._trail.append([d, other])
        s.add(cond if d else z3.Not(cond))
        self._pos += 1
        return d

    def _pin(self, value: object, name: str) -> object:
        """`value` with its ints and bools replaced by symbolic inputs equal to them."""
        if isinstance(value, bool):
            b = self.bool_var(name)
            self.require(b == value)
            return b
        if isinstance(value, int):
            return self.int_var(name, value, value)
        if isinstance(value, list):
            return [self._pin(v, f"{name}_{i}") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            items = [self._pin(v, f"{name}_{i}") for i, v in enumerate(value)]
            return _rebuild(value, items)
        return value

    def _concrete(self, value: object) -> object:
        """`value` evaluated in a model of the current path."""
        if isinstance(value, SymInt | SymBool):
            if self._solver.check() != z3.sat:
                raise RuntimeError("the path has no model")
            v = self._solver.model().eval(value.t, model_completion=True)
            return bool(z3.is_true(v)) if isinstance(value, SymBool) else int(v.as_long())
        if isinstance(value, list):
            return [self._concrete(v) for v in value]
        if isinstance(value, tuple):
            items = [self._concrete(v) for v in value]
            return _rebuild(value, items)
        return value

    def _model(self) -> dict[str, int | bool]:
        s = self._solver
        if s.check() != z3.sat:
            raise PathBudgetExceeded("the solver could not produce the counterexample")
        m = s.model()
        out: dict[str, int | bool] = {}
        for name, v in self._vars.items():
            val = m.eval(v, model_completion=True)
            out[name] = bool(z3.is_true(val)) if z3.is_bool(val) else int(val.as_long())
        return out

    def explore(self, run: Callable[[], None]) -> Exploration:
        """Run `run` on every feasible path; stop at the first counterexample.

        Raises `PathBudgetExceeded` beyond `max_paths` paths.
        """
        global _current
        if _current is not None:
            raise RuntimeError("explorations do not nest")
        _current = self
        paths = 0
        try:
            while True:
                self._solver.push()
                self._pos = 0
                try:
                    run()
                except _Infeasible:
                    pass
                except _Violation as v:
                    cex = self._model()
                    return Exploration(paths + 1, self._queries, cex, v.what)
                finally:
                    self._solver.pop()
                paths += 1
                if paths > self._max_paths:
                    raise PathBudgetExceeded(f"more than {self._max_paths} paths")
                # Backtrack to the deepest decision whose other side is still open.
                del self._trail[self._pos :]
                while self._trail and not self._trail[-1][1]:
                    self._trail.pop()
                if not self._trail:
                    return Exploration(paths, self._queries)
                self._trail[-1] = [not self._trail[-1][0], False]
        finally:
            _current = None


def _rebuild(like: tuple[object, ...], items: list[object]) -> object:
    """A tuple of `items` of the same kind as `like` (a named tuple stays one)."""
    kind: Any = type(like)
    return kind(*items) if hasattr(like, "_fields") else tuple(items)


def sym_not(b: bool) -> bool:
    """`not b` without branching (a symbolic `not` would split the path)."""
    v: object = b
    if isinstance(v, SymBool):
        return cast(bool, SymBool(z3.Not(v.t)))
    return not b


def outcome(build: Callable[[Explorer], Callable[[], None]], max_paths: int = 100_000) -> Outcome:
    """Explore the harness `build(explorer)` returns: `proved` when every feasible path
    passes its checks, `counterexample` (the inputs, `name=value ...`) when one fails,
    `unknown` beyond the path budget."""
    ex = Explorer(max_paths)
    run = build(ex)
    try:
        res = ex.explore(run)
    except PathBudgetExceeded as e:
        return Outcome("unknown", detail=str(e))
    detail = f"{res.paths} paths, {res.queries} solver queries"
    if res.counterexample is None:
        return Outcome("proved", detail=detail, queries=res.queries)
    values = " ".join(f"{k}={v}" for k, v in res.counterexample.items())
    return Outcome(
        "counterexample",
        counterexample=f"{res.violated}: {values}",
        detail=detail,
        queries=res.queries,
    )


def counterexample(
    build: Callable[[Explorer], Callable[[], None]], max_paths: int = 100_000
) -> dict[str, int | bool] | None:
    """The inputs of the harness's first counterexample, or None if it is proved."""
    ex = Explorer(max_paths)
    return ex.explore(build(ex)).counterexample


def evaluate(fn: Callable[..., object], *args: object) -> object:
    """`fn(*args)` run symbolically with every input pinned to its value, the result
    read back from the solver's model: the cross-check that a symbolic run computes
    what the concrete one does (ints, bools, and tuples, lists and named tuples of
    them; other values pass through)."""
    ex = Explorer(max_paths=16)
    pinned = [ex._pin(a, f"a{i}") for i, a in enumerate(args)]
    results: list[object] = []

    def run() -> None:
        results.append(ex._concrete(fn(*pinned)))

    ex.explore(run)
    if len(results) != 1:
        raise RuntimeError(f"{len(results)} feasible paths for pinned inputs")
    return results[0]
