"""One VMA's flags as a transition system built from the rule table, and its checkers.

A `System` says how a VMA comes to exist (an initial operation such as `mmap`, then
the driver's mmap handler: a fixed sequence of `Call`s and `RefuseIf` checks) and what
may happen to it afterwards (any sequence of operations, each any number of times).
Every operation is encoded from its `VmaOp` entry: parameters restricted to their
`Param` masks, its guard, its result, and, for a `checked` driver operation, every
rule `check_transition` evaluates at run time. The state is the 64-bit flags plus one
ghost fact, whether a PTE has been installed (set by the operations in
`INSTALLS_PTES`, read by rules as `Ctx("ptes_installed")`); every other context fact
is chosen freely at every step, which over-approximates what the kernel can do. The
proofs leave the ghost fact free in the pre-state of every step too, so they hold
whatever the runtime reports about PTEs (a zap may remove them); the bounded checker
tracks it, so that its counterexamples are runs the kernel can take.

Two checkers decide a `Property` (bad states or bad steps):

* `prove` - unbounded: an inductive invariant found by Houdini from candidate
  conjuncts (the state rules, plus claim-specific ones): every candidate that an
  initial state or a step can falsify is dropped until the rest is inductive; the
  property must follow from what is left. Every precondition is checked satisfiable.
* `bmc` - bounded model checking: the shortest operation sequence that reaches a bad
  state or takes a bad step, printed with flag names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ownership.include import vm_flags as F
from ownership.include import vma_expr as E
from ownership.include import vma_ops as O
from ownership.include import vma_rules as R

from .encode import Env, ctx_names, formula, masks, term
from .table import Table
from .z3api import (
    BV,
    MASK,
    Bool,
    Model,
    Solver,
    and_,
    bool_val,
    bool_var,
    bv_and,
    bv_eq,
    bv_val,
    bv_var,
    has,
    iff,
    implies,
    not_,
    or_,
    substitute,
)

__all__ = [
    "GHOST_PTES",
    "Call",
    "Candidate",
    "DriverStep",
    "Outcome",
    "Property",
    "RefuseIf",
    "Step",
    "SymState",
    "System",
    "Trace",
    "TraceStep",
    "bmc",
    "conjunction",
    "decide",
    "encode_op",
    "fmt_value",
    "greedy",
    "prove",
    "quiet_mask",
    "rule_holds",
    "rules_hold",
]

GHOST_PTES = "ptes_installed"

Verdict = Literal["proved", "counterexample", "unknown"]


@dataclass(frozen=True)
class Outcome:
    """What a checker concluded, with a counterexample or the invariant it used.

    Invariants: `counterexample` is set iff `verdict` is "counterexample"; `trace` is
    set only with a counterexample about one VMA's operation sequence.
    """

    verdict: Verdict
    counterexample: str | None = None
    detail: str = ""
    queries: int = 0
    trace: Trace | None = None


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


# --------------------------------------------------------------------------------------
# Systems and properties.


@dataclass(frozen=True)
class Call:
    """The mmap handler calls an operation; if it fails, so does the mmap."""

    op: str


@dataclass(frozen=True)
class RefuseIf:
    """The mmap handler refuses the VMA when any bit of `mask` is set (`query` names
    the `VmAreaNew` query, e.g. `writable()`)."""

    mask: int
    query: str


DriverStep = Call | RefuseIf


@dataclass(frozen=True)
class System:
    """How a VMA is created and what may happen to it afterwards.

    Invariants: `init_ops` is not empty (checked when the system is encoded); the
    handler's `Call`s and `ops` name operations of the table.
    """

    init_ops: tuple[O.VmaOp, ...]
    handler: tuple[DriverStep, ...] = ()
    ops: tuple[O.VmaOp, ...] = ()
    init_facts: tuple[tuple[str, bool], ...] = ()
    """Context facts fixed for the initial operation (a driver's mmap handler only runs
    for a mapping of the driver's file: `("file", True)`)."""


@dataclass(frozen=True)
class Property:
    """What must never happen: a bad state, or a bad step (`Step` with its op).

    Invariants: at least one of `bad_state`, `bad_step` and `bad_created` is set.
    """

    label: str
    bad_state: Callable[[SymState], Bool] | None = None
    bad_step: Callable[[Step], Bool] | None = None
    bad_created: Callable[[SymState], Bool] | None = None
    """A state that must not be the result of creating the VMA (mmap plus handler)."""
    attempt: Callable[[Step], Bool] | None = None
    """Vacuity guard for a step property: some reachable state must let an operation
    be *attempted* (guard and parameters satisfied, before the runtime check) with this
    formula true, or the proof would hold for want of a case."""
    headline: Callable[[int, int], str] = field(default=lambda pre, post: F.names(post))


@dataclass(frozen=True)
class Candidate:
    """A conjunct the invariant may contain."""

    label: str
    holds: Callable[[SymState], Bool]


# --------------------------------------------------------------------------------------
# Traces.


def fmt_value(param: str, value: int) -> str:
    """A parameter value the way the kernel spells it (`prot` as PROT_* bits)."""
    if param == "prot":
        if value == 0:
            return "PROT_NONE"
        return F.names(value).replace("VM_", "PROT_")
    return F.names(value)


@dataclass(frozen=True)
class _Event:
    """One entry of a run: a step chosen among `choices` by `sel`, or a refusal check."""

    choices: tuple[Step, ...] = ()
    sel: BV | None = None
    refuse: RefuseIf | None = None

    def chosen(self, m: Model) -> Step:
        if self.sel is None:
            return self.choices[0]
        return self.choices[m.int_of(self.sel)]


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
    """A concrete run found by the model checker, replayable on `vma_ops.apply`.

    Invariants: the first step creates the VMA (an initial operation such as `mmap`).
    """

    steps: tuple[TraceStep, ...]

    @property
    def flags(self) -> tuple[int, ...]:
        return tuple(st.flags for st in self.steps)

    def path(self) -> str:
        return " -> ".join(st.label() for st in self.steps)


def _trace_step(ev: _Event, state: SymState, m: Model) -> TraceStep:
    flags = m.int_of(state.flags)
    if ev.refuse is not None:
        return TraceStep(None, (), (), flags, ev.refuse)
    st = ev.chosen(m)
    params = tuple((n, m.int_of(v)) for n, v in st.params.items())
    ctx = tuple((n, m.bool_of(b)) for n, b in st.ctx.items())
    shown = tuple(n for n in st.op.ctx if n != GHOST_PTES and n in st.ctx and m.bool_of(st.ctx[n]))
    return TraceStep(st.op.name, params, ctx, flags, None, shown)


def _trace(events: Sequence[tuple[_Event, SymState]], m: Model) -> Trace:
    return Trace(tuple(_trace_step(ev, state, m) for ev, state in events))


# --------------------------------------------------------------------------------------
# Encoding a system.


@dataclass
class _Unrolled:
    conds: list[Bool]
    events: list[tuple[_Event, SymState]]
    states: list[SymState]
    params: list[BV]
    handler_steps: list[Step]


def _choose(steps: Sequence[Step], nxt: SymState, tag: str) -> tuple[Bool, BV | None]:
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


def _selects(sel: BV, j: int, n: int) -> Bool:
    """The selector of a choice among `n` steps picks step `j`."""
    return bv_eq(sel, bv_val(j, n.bit_length()))


def _encode_creation(table: Table, system: System, prefix: str) -> _Unrolled:
    """The initial operation (a choice among `init_ops`) followed by the handler."""
    if not system.init_ops:
        raise ValueError("a system needs an initial operation")
    pre = SymState(bv_var(f"{prefix}.none"), bool_val(False))
    steps = [encode_op(table, op, pre, f"{prefix}.{op.name}") for op in system.init_ops]
    s0 = SymState(bv_var(f"{prefix}.s0"), bool_var(f"{prefix}.s0.ptes"))
    cond, sel = _choose(steps, s0, f"{prefix}.init")
    u = _Unrolled([cond], [(_Event(tuple(steps), sel), s0)], [s0], [], [])
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
            u.events.append((_Event(refuse=ds), state))
            continue
        step = encode_op(table, table.op(ds.op), state, f"{prefix}.h{i}.{ds.op}")
        u.conds.append(step.enabled)
        u.params.extend(step.params.values())
        u.handler_steps.append(step)
        state = step.post
        u.events.append((_Event((step,)), state))
        u.states.append(state)
    return u


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


def _clear_everywhere(u: _Unrolled, states: Sequence[SymState], mask: int) -> Bool:
    q = bv_val(mask)
    out = [bv_eq(bv_and(s.flags, q), bv_val(0)) for s in states]
    out.extend(bv_eq(bv_and(p, q), bv_val(0)) for p in u.params)
    return and_(*out)


def _readable_model(
    table: Table,
    s: Solver,
    u: _Unrolled,
    states: Sequence[SymState],
    show: int,
    events: Sequence[tuple[_Event, SymState]],
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
                prefs.append(or_(*[_selects(ev.sel, j, n) for j in plain]))
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


# --------------------------------------------------------------------------------------
# Bounded model checking.


def bmc(
    table: Table,
    system: System,
    prop: Property,
    max_depth: int = 4,
    timeout_ms: int = 20_000,
    show: int = 0,
) -> tuple[Outcome, int]:
    """Search operation sequences of length 0..max_depth for a violation of `prop`.

    Returns `counterexample` with the shortest trace, or `unknown` if none exists up to
    the bound (this checker alone never proves anything), and the number of queries.
    """
    s = Solver(timeout_ms)
    u = _encode_creation(table, system, "c")
    s.add(*u.conds)
    events = list(u.events)
    states = list(u.states)
    last = u.states[-1]
    for depth in range(max_depth + 1):
        bad: list[Bool] = []
        if depth == 0:
            if prop.bad_state is not None:
                bad.extend(prop.bad_state(st) for st in u.states)
            if prop.bad_step is not None:
                bad.extend(prop.bad_step(st) for st in u.handler_steps)
            if prop.bad_created is not None:
                bad.append(prop.bad_created(last))
        else:
            nxt = SymState(bv_var(f"d{depth}.flags"), bool_var(f"d{depth}.ptes"))
            steps = [encode_op(table, op, last, f"d{depth}.{op.name}") for op in system.ops]
            if not steps:
                break
            cond, sel = _choose(steps, nxt, f"d{depth}")
            s.add(cond)
            for st in steps:
                u.params.extend(st.params.values())
            events.append((_Event(tuple(steps), sel), nxt))
            states.append(nxt)
            if prop.bad_state is not None:
                bad.append(prop.bad_state(nxt))
            if prop.bad_step is not None:
                for j, st in enumerate(steps):
                    picked = bool_val(True) if sel is None else _selects(sel, j, len(steps))
                    bad.append(and_(picked, prop.bad_step(st)))
            last = nxt
        if not bad:
            continue
        with s.scope():
            s.add(or_(*bad))
            r = s.check()
            if r == "unknown":
                return Outcome("unknown", detail=f"solver gave up at depth {depth}"), s.queries
            if r == "unsat":
                continue
            m = _readable_model(table, s, u, states, show, events)
            tr = _trace(events, m)
            pre = tr.flags[-2] if len(tr.flags) > 1 else tr.flags[-1]
            post = tr.flags[-1]
            cex = f"{prop.headline(pre, post)} via {tr.path()} => {F.names(post)}"
            return Outcome("counterexample", cex, f"depth {depth}", trace=tr), s.queries
    return Outcome("unknown", detail=f"no counterexample up to depth {max_depth}"), s.queries


# --------------------------------------------------------------------------------------
# Inductive proofs.


def _renamed(f: Bool, pre: SymState, tag: str) -> Bool:
    """`f` over a fresh copy of the pre-state (its step variables are per-operation
    already), so that several existential questions fit in one query."""
    return Bool(
        substitute(
            f,
            [(pre.flags, bv_var(f"{tag}.old"))],
            [(pre.ptes, bool_var(f"{tag}.ptes"))],
        )
    )


def prove(
    table: Table,
    system: System,
    prop: Property,
    candidates: Sequence[Candidate],
    timeout_ms: int = 20_000,
    require_all_enabled: bool = False,
) -> tuple[Outcome, int]:
    """Prove `prop` for every reachable state with an inductive invariant.

    The invariant is the largest inductive subset of `candidates` (plus the property
    itself for a state property), found by Houdini. Vacuity guards: the creation
    sequence must be satisfiable, and some step (with `require_all_enabled`, every
    step) must be enabled in some state satisfying the invariant.
    """
    queries = 0
    cands = list(candidates)
    if prop.bad_state is not None:
        bs = prop.bad_state
        cands.append(Candidate(f"never {prop.label}", lambda st: not_(bs(st))))
    memo: dict[tuple[int, int], Bool] = {}

    def holds(c: Candidate, st: SymState) -> Bool:
        # Each (candidate, state) formula is built once: building is the dominant cost.
        key = (id(c), id(st))
        f = memo.get(key)
        if f is None:
            f = memo[key] = c.holds(st)
        return f

    # Initiation: drop what a created VMA can falsify.
    s0 = Solver(timeout_ms)
    u = _encode_creation(table, system, "i")
    s0.add(*u.conds)
    r = s0.check()
    queries += 1
    if r != "sat":
        return Outcome(
            "unknown",
            detail="vacuous: no VMA can be created"
            if r == "unsat"
            else "solver gave up on the creation sequence",
        ), queries
    init = u.states[-1]
    live = cands
    while live:
        with s0.scope():
            s0.add(not_(and_(*[holds(c, init) for c in live])))
            r = s0.check()
            queries += 1
            if r == "unknown":
                return Outcome("unknown", detail="solver gave up on initiation"), queries
            if r == "unsat":
                break
            m = s0.model()
            live = [c for c in live if m.bool_of(holds(c, init))]

    # Consecution: Houdini over every step operation. Each query asks whether some
    # operation, from a state satisfying the live candidates, falsifies one of them;
    # every candidate falsified in the model is dropped.
    pre = SymState(bv_var("h.old"), bool_var("h.ptes"))
    steps = [encode_op(table, op, pre, f"h.{op.name}") for op in system.ops]
    hs = Solver(timeout_ms)
    while live and steps:
        with hs.scope():
            hs.add(*[holds(c, pre) for c in live])
            hs.add(
                or_(
                    *[
                        and_(st.enabled, not_(and_(*[holds(c, st.post) for c in live])))
                        for st in steps
                    ]
                )
            )
            r = hs.check()
            queries += 1
            if r == "unknown":
                return Outcome("unknown", detail="solver gave up on consecution"), queries
            if r == "unsat":
                break
            m = hs.model()
            dropped = {
                id(c)
                for st in steps
                if m.bool_of(st.enabled)
                for c in live
                if not m.bool_of(holds(c, st.post))
            }
            live = [c for c in live if id(c) not in dropped]

    inv = and_(*[holds(c, pre) for c in live])
    labels = ", ".join(c.label for c in live) or "true"
    # The property must follow from the invariant.
    cti: str | None = None
    if prop.bad_state is not None:
        chk = Solver(timeout_ms)
        chk.add(inv, prop.bad_state(pre))
        queries += 1
        if chk.check() != "unsat":
            cti = f"the invariant ({labels}) does not exclude {prop.label}"
    if prop.bad_created is not None:
        with s0.scope():
            s0.add(prop.bad_created(init))
            queries += 1
            if s0.check() != "unsat":
                cti = f"creating the VMA may end {prop.label}"
    if prop.bad_state is not None and cti is None:
        for hstate in u.states[:-1]:
            with s0.scope():
                s0.add(prop.bad_state(hstate))
                queries += 1
                if s0.check() != "unsat":
                    cti = f"the mmap handler passes through a state that may be {prop.label}"
                    break
    if prop.bad_step is not None and cti is None:
        for hs_step in u.handler_steps:
            with s0.scope():
                s0.add(prop.bad_step(hs_step))
                queries += 1
                if s0.check() != "unsat":
                    cti = f"the mmap handler's {hs_step.op.name} may {prop.label}"
                    break
    if prop.bad_step is not None and cti is None and steps:
        chk = Solver(timeout_ms)
        chk.add(inv, or_(*[and_(st.enabled, prop.bad_step(st)) for st in steps]))
        queries += 1
        if chk.check() != "unsat":
            cm = chk.model() if chk.check() == "sat" else None
            which = [
                st.op.name
                for st in steps
                if cm is not None and cm.bool_of(and_(st.enabled, prop.bad_step(st)))
            ]
            who = which[0] if which else "an operation"
            cti = f"{who} may {prop.label} under the invariant ({labels})"
    if cti is not None:
        return Outcome("unknown", detail=cti), queries

    # Vacuity: the steps the proof quantifies over must be possible. One query asks
    # for every step at once, each on its own copy of the state and behind its own
    # assumption literal; the copies are independent, so a (minimal) unsat core names
    # one step that can never fire. Queries: one plus the number of such steps.
    never: list[str] = []
    if steps:
        together = Solver(timeout_ms)
        lits: dict[str, tuple[Bool, Step]] = {}
        for k, st in enumerate(steps):
            name = f"vacuity.{k}"
            lit = bool_var(name)
            together.add(implies(lit, _renamed(and_(inv, st.enabled), pre, f"v{k}")))
            lits[name] = (lit, st)
        while lits:
            queries += 1
            r = together.check(*[lit for lit, _ in lits.values()])
            if r == "sat":
                break
            core = together.core() & lits.keys() if r == "unsat" else set()
            if not core:
                return Outcome("unknown", detail="solver gave up on vacuity"), queries
            for name in core:
                never.append(lits.pop(name)[1].op.name)
    if steps and (len(never) == len(steps) or (require_all_enabled and never)):
        return Outcome("unknown", detail="vacuous: never enabled: " + ", ".join(never)), queries
    if prop.attempt is not None:
        chk = Solver(timeout_ms)
        chk.add(inv, or_(*[and_(st.guard, st.domain, prop.attempt(st)) for st in steps]))
        queries += 1
        if chk.check() != "sat":
            return Outcome(
                "unknown", detail=f"vacuous: no reachable attempt to {prop.label}"
            ), queries
    n_ops = len(steps)
    if not steps:
        return Outcome("proved", detail="holds for every VMA the creation can produce"), queries
    detail = f"inductive invariant: {labels}; {n_ops} operations"
    if never:
        detail += f" (never enabled under it: {', '.join(never)})"
    return Outcome("proved", detail=detail, queries=queries), queries


def decide(
    table: Table,
    system: System,
    prop: Property,
    candidates: Sequence[Candidate],
    *,
    expect_holds: bool,
    max_depth: int = 4,
    require_all_enabled: bool = False,
    show: int = 0,
) -> Outcome:
    """Run both checkers (the likelier one first) and report what they establish."""
    total = 0

    def run_prove() -> Outcome:
        nonlocal total
        o, q = prove(table, system, prop, candidates, require_all_enabled=require_all_enabled)
        total += q
        return o

    def run_bmc() -> Outcome:
        nonlocal total
        o, q = bmc(table, system, prop, max_depth, show=show)
        total += q
        return o

    first, second = (run_prove, run_bmc) if expect_holds else (run_bmc, run_prove)
    o1 = first()
    if o1.verdict != "unknown":
        return dataclasses.replace(o1, queries=total)
    o2 = second()
    if o2.verdict != "unknown":
        return dataclasses.replace(o2, queries=total)
    return Outcome("unknown", None, f"{o1.detail}; {o2.detail}", total)
