"""The unbounded prover: an inductive invariant found by Houdini.

`prove` starts from candidate conjuncts (the state rules, plus claim-specific ones):
every candidate that an initial state or a step can falsify is dropped until the rest is
inductive; the property must follow from what is left. Every precondition is checked
satisfiable (the creation sequence, and some step or every step), so that no proof holds
for want of a case.
"""

from __future__ import annotations

from collections.abc import Sequence

from .outcome import Outcome
from .step import Step, SymState, encode_op
from .system import Candidate, Property, System
from .table import Table
from .unroll import encode_creation
from .z3api import Bool, Solver, and_, bool_var, bv_var, implies, not_, or_, substitute

__all__ = ["prove"]


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
    u = encode_creation(table, system, "i")
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
