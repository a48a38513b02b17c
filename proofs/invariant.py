"""Claim 1: every state reachable through the safe API satisfies the rule table.

The invariant is the conjunction of the table's state rules. It is proved inductively:
every initial state `mmap` can produce (every PROT/MAP combination, as the table's
`mmap` operation computes it) satisfies it, and every other operation of the table
preserves it, assuming only its guard, its parameter domain and, for a checked driver
operation, the runtime rule check. Each mutated twin removes one of those assumptions
and must reach a state that breaks a rule.
"""

from __future__ import annotations

from ownership.include import vm_flags as F
from ownership.include import vma_expr as E
from ownership.include import vma_rules as R

from .claim import Claim, Expect
from .decide import decide
from .encode import masks
from .outcome import Outcome
from .step import SymState, rule_holds, rules_hold
from .system import Candidate, Property, System
from .table import Table, drop_check, drop_check_rule, drop_guard
from .z3api import Bool, not_

__all__ = ["CLAIMS", "SAFE_API_INVARIANT", "breaks_state_rules", "rule_bits", "state_candidates"]


def _state_rule(r: R.VmaRule) -> Candidate:
    def holds(s: SymState) -> Bool:
        return rule_holds(r, s.flags, s.flags)

    return Candidate(r.id, holds)


def state_candidates(t: Table) -> list[Candidate]:
    """One invariant conjunct per state rule of the table."""
    return [_state_rule(r) for r in t.state_rules]


def rule_bits(rule: R.VmaRule) -> int:
    """The flag bits a rule looks at (its small masks; complements name every bit)."""
    out = 0
    for mk in masks(rule.expr):
        if 0 < mk and bin(mk).count("1") <= 16:
            out |= mk
    return out


def breaks_state_rules(t: Table) -> Property:
    """Reaching a state that breaks any state rule of the table."""

    def bad(s: SymState) -> Bool:
        return not_(rules_hold(t.state_rules, s.flags, s.flags))

    def headline(pre: int, post: int) -> str:
        broken = [r for r in t.state_rules if not E.evaluate(r.expr, {"old": post, "new": post})]
        bits = 0
        for r in broken:
            bits |= rule_bits(r)
        ids = ", ".join(r.id for r in broken) or "a state rule"
        return f"{F.names(post & bits)} (breaks {ids})"

    return Property("breaking a state rule", bad_state=bad, headline=headline)


def _check(t: Table, hint: Expect) -> Outcome:
    system = System(t.initial_ops, (), t.step_ops)
    return decide(
        t,
        system,
        breaks_state_rules(t),
        state_candidates(t),
        expect_holds=hint == "holds",
        require_all_enabled=True,
    )


SAFE_API_INVARIANT = Claim(
    name="safe_api_invariant",
    expect="holds",
    doc="""Every state reachable through the safe API satisfies every state rule.

    "you'd have to at least allowlist which bits the driver may clear and which bits it
    may set, and additionally deny at least the bad combination VM_MIXEDMAP|VM_PFNMAP"
    (Jann Horn, review of v6). From every VMA `mmap` can create, through any sequence of
    the VmAreaNew setters and try_clear_may*, VmAreaMut.set_flags as validated,
    mprotect, madvise, remap_pfn_range, userfaultfd registration and fork, the flags
    satisfy the conjunction of the state rules: each operation preserves it and the
    initial states satisfy it.""",
    check=_check,
    rules=tuple(r.id for r in R.RULES if r.kind == "state"),
)

CLAIMS: tuple[Claim, ...] = (
    SAFE_API_INVARIANT,
    SAFE_API_INVARIANT.twin(drop_check("set_flags")),
    SAFE_API_INVARIANT.twin(drop_guard("mprotect")),
    SAFE_API_INVARIANT.twin(drop_guard("remap_pfn_range")),
    SAFE_API_INVARIANT.twin(drop_guard("userfaultfd_register")),
    SAFE_API_INVARIANT.twin(drop_check_rule("write-maywrite")),
)
