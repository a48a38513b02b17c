"""Bounded model checking of a `proofs.system.System`.

`bmc` searches operation sequences of length 0..max_depth for the shortest one that
reaches a bad state or takes a bad step of a `Property`, and prints it with flag names
(`proofs.trace`). It never proves anything on its own: no counterexample up to the
bound is "unknown".
"""

from __future__ import annotations

from ownership.include import vm_flags as F

from .outcome import Outcome
from .step import SymState, encode_op
from .system import Property, System
from .table import Table
from .trace import readable_model, trace_of
from .unroll import Event, choose, encode_creation, selects
from .z3api import Bool, Solver, and_, bool_val, bool_var, bv_var, or_

__all__ = ["bmc"]


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
    u = encode_creation(table, system, "c")
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
            cond, sel = choose(steps, nxt, f"d{depth}")
            s.add(cond)
            for st in steps:
                u.params.extend(st.params.values())
            events.append((Event(tuple(steps), sel), nxt))
            states.append(nxt)
            if prop.bad_state is not None:
                bad.append(prop.bad_state(nxt))
            if prop.bad_step is not None:
                for j, st in enumerate(steps):
                    picked = bool_val(True) if sel is None else selects(sel, j, len(steps))
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
            m = readable_model(table, s, u, states, show, events)
            tr = trace_of(events, m)
            pre = tr.flags[-2] if len(tr.flags) > 1 else tr.flags[-1]
            post = tr.flags[-1]
            cex = f"{prop.headline(pre, post)} via {tr.path()} => {F.names(post)}"
            return Outcome("counterexample", cex, f"depth {depth}", trace=tr), s.queries
    return Outcome("unknown", detail=f"no counterexample up to depth {max_depth}"), s.queries
