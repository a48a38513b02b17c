"""The checkers themselves: vacuity guards, Houdini, bounded search, mutations.

A proof must not hold for want of a case: an impossible creation sequence, a step
that can never fire, or a never-attempted operation give `unknown`, not `proved`.
"""

from __future__ import annotations

import dataclasses

import pytest

from ownership.include import vm_flags as F
from ownership.mm import vma_rules as R
from proofs import TABLE, Claim
from proofs.bmc import bmc
from proofs.decide import decide
from proofs.houdini import prove
from proofs.invariant import breaks_state_rules, state_candidates
from proofs.step import Step, SymState
from proofs.system import Call, Candidate, Property, RefuseIf, System
from proofs.table import Table, drop_check, drop_check_rule, drop_guard, drop_merge_conjunct
from proofs.z3api import Bool, and_, bool_val, has, not_

MMAP = TABLE.initial_ops


def _writable(s: SymState) -> Bool:
    return has(s.flags, F.WRITE)


WRITABLE = Property("writable", bad_state=_writable)


def test_an_impossible_creation_is_vacuous_not_proved() -> None:
    # mmap always sets VM_MAYREAD: a handler refusing it never creates a VMA.
    system = System(MMAP, (RefuseIf(F.MAYREAD, "may_read()"),), TABLE.step_ops)
    out, _ = prove(TABLE, system, WRITABLE, state_candidates(TABLE))
    assert out.verdict == "unknown"
    assert "vacuous: no VMA can be created" in out.detail


def test_a_handler_refused_by_the_runtime_check_creates_nothing() -> None:
    # set_pfnmap after set_mixedmap is refused (mixedmap-pfnmap): no VMA survives.
    handler = (Call("set_mixedmap"), Call("set_pfnmap"))
    out, _ = prove(TABLE, System(MMAP, handler, ()), WRITABLE, ())
    assert out.verdict == "unknown" and "vacuous" in out.detail
    # The same handler in the other order is fine up to the check, and still refused.
    out, _ = prove(
        TABLE, System(MMAP, (Call("set_pfnmap"), Call("set_mixedmap")), ()), WRITABLE, ()
    )
    assert out.verdict == "unknown" and "vacuous" in out.detail


def test_a_never_enabled_step_is_reported() -> None:
    never = R.VmaOp("never", "an operation whose guard is false", R.OLD, guard=R.Lit(False))
    system = System(MMAP, (), (*TABLE.step_ops, never))
    out, _ = prove(TABLE, system, breaks_state_rules(TABLE), state_candidates(TABLE))
    assert out.verdict == "proved"
    assert "never enabled under it: never" in out.detail
    out, _ = prove(
        TABLE, system, breaks_state_rules(TABLE), state_candidates(TABLE), require_all_enabled=True
    )
    assert out.verdict == "unknown" and "vacuous: never enabled: never" in out.detail


def test_a_never_attempted_step_property_is_vacuous() -> None:
    def attempt(st: Step) -> Bool:
        # No reachable VMA has both bits (the invariant excludes it), so the property
        # "this never succeeds" would hold only for want of a case.
        return and_(
            bool_val(st.op.name == "mprotect"),
            has(st.pre.flags, F.MIXEDMAP),
            has(st.pre.flags, F.PFNMAP),
        )

    prop = Property("mprotect a VM_MIXEDMAP|VM_PFNMAP VMA", bad_step=attempt, attempt=attempt)
    out, _ = prove(TABLE, System(MMAP, (), TABLE.step_ops), prop, state_candidates(TABLE))
    assert out.verdict == "unknown"
    assert "vacuous: no reachable attempt" in out.detail


def test_houdini_keeps_only_inductive_candidates() -> None:
    # "VM_DONTCOPY" holds after Binder's handler but MADV_DOFORK clears it.
    def dontcopy(s: SymState) -> Bool:
        return has(s.flags, F.DONTCOPY)

    def no_maywrite(s: SymState) -> Bool:
        return not_(has(s.flags, F.MAYWRITE))

    handler = (Call("try_clear_maywrite"), Call("set_dontcopy"), Call("set_mixedmap"))
    system = System(MMAP, handler, TABLE.step_ops, init_facts=(("file", True),))
    cands = [Candidate("DONTCOPY", dontcopy), Candidate("!MAYWRITE", no_maywrite)]
    out, _ = prove(TABLE, system, WRITABLE, [*state_candidates(TABLE), *cands])
    assert out.verdict == "proved"
    assert "!MAYWRITE" in out.detail and "DONTCOPY" not in out.detail.replace("!MAYWRITE", "")


def test_a_non_inductive_property_gets_a_counterexample_from_bmc() -> None:
    out = decide(TABLE, System(MMAP, (), TABLE.step_ops), WRITABLE, (), expect_holds=True)
    assert out.verdict == "counterexample"
    assert out.trace is not None and out.trace.flags[-1] & F.WRITE
    # The shortest run: mmap with PROT_WRITE.
    assert len(out.trace.steps) == 1 and out.trace.steps[0].op == "mmap"


def test_bmc_alone_never_proves() -> None:
    system = System(MMAP, (), TABLE.step_ops)
    out, _ = bmc(TABLE, system, breaks_state_rules(TABLE), max_depth=2)
    assert out.verdict == "unknown"
    assert "no counterexample up to depth 2" in out.detail


def test_init_facts_must_exist() -> None:
    system = System(MMAP, (), (), init_facts=(("no_such_fact", True),))
    with pytest.raises(KeyError, match="no context fact 'no_such_fact'"):
        prove(TABLE, system, WRITABLE, ())


def test_a_crashing_check_is_unknown_never_proved() -> None:
    def crash(t: Table, hint: str) -> object:
        raise RuntimeError("solver exploded")

    c = Claim("crashes", "holds", 'A claim whose check raises: "never proved".', crash)  # type: ignore[arg-type]
    r = c.run()
    assert r.verdict == "unknown" and not r.ok
    assert "RuntimeError: solver exploded" in r.detail


def test_mutations_change_only_what_they_name() -> None:
    t = drop_guard("mprotect").apply(TABLE)
    assert t.op("mprotect").guard == R.Lit(True)
    assert t.op("madvise_dofork").guard == TABLE.op("madvise_dofork").guard
    t = drop_check("set_flags").apply(TABLE)
    assert not t.op("set_flags").checked and t.op("set_mixedmap").checked
    t = drop_check_rule("write-maywrite").apply(TABLE)
    assert "write-maywrite" not in {r.id for r in t.check_rules}
    assert "write-maywrite" in {r.id for r in t.state_rules}
    t = drop_merge_conjunct(0, "flags").apply(TABLE)
    assert isinstance(t.can_merge, R.And) and len(t.can_merge.args) == 2
    with pytest.raises(KeyError):
        drop_check_rule("no-such-rule").apply(TABLE)
    with pytest.raises(ValueError):
        drop_merge_conjunct(7, "none").apply(TABLE)
    with pytest.raises(KeyError):
        TABLE.op("no_such_op")


def test_v6_api_swaps_exactly_the_two_v6_methods() -> None:
    names = [o.name for o in TABLE.v6_api()]
    assert "v6_set_flags" in names and "v6_vm_insert_page" in names
    assert "set_flags" not in names and "vm_insert_page" not in names
    assert len(names) == len(TABLE.step_ops)


def test_table_reads_the_module() -> None:
    assert TABLE.ops == R.OPS and TABLE.v6_ops == R.V6_OPS and TABLE.check_rules == R.RULES
    assert dataclasses.replace(TABLE) == TABLE
