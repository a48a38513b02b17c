"""Exhaustive agreement of the concrete evaluator and the Z3 encoding.

For every formula of the table, every combination of a dozen driver-relevant bits
(and every context fact) is decided by Z3 against the evaluator's truth table. A
diverging evaluator is caught, and the mismatch names the case.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ownership.include import vm_flags as F
from ownership.include import vma_expr
from ownership.mm import vma_rules as R
from proofs import crosscheck as X
from proofs.crosscheck import Formula, exhaustive, formulas, layout

FORMULAS = formulas()


@pytest.mark.parametrize("f", FORMULAS, ids=lambda f: f.label)
def test_exhaustive_agreement_over_12_bits(f: Formula) -> None:
    r = exhaustive(f, 12)
    assert r.agree, r.mismatch
    assert r.cases == 1 << len(layout(f, 12))


def test_the_table_is_fully_covered() -> None:
    labels = {f.label for f in FORMULAS}
    assert {f"rule {r.id}" for r in R.RULES} <= labels
    for op in (*R.OPS, *R.V6_OPS):
        assert {f"{op.name}.guard", f"{op.name}.result"} <= labels
    assert {"CAN_MERGE", "MERGE_RESULT"} <= labels


def test_driver_relevant_bits_are_the_ones_the_table_names() -> None:
    bits = X.driver_bits()
    for b in (F.READ, F.WRITE, F.MAYWRITE, F.PFNMAP, F.MIXEDMAP, F.IO, F.DONTCOPY, F.HUGETLB):
        assert b in bits
    assert F.SEALED not in bits


def test_layout_puts_facts_first_and_respects_parameter_domains() -> None:
    mmap = next(f for f in FORMULAS if f.label == "mmap.result")
    lay = layout(mmap, 12)
    facts = [name for name, bit in lay if bit == 0]
    assert facts == sorted(R.OPS_BY_NAME["mmap"].ctx)
    assert all(bit & F.ACCESS for name, bit in lay if name == "prot")
    # Every prot bit and every fact fit: the mmap result is checked on all its inputs.
    assert len(lay) == len(facts) + 3

    sticky = next(f for f in FORMULAS if f.label == "rule mixedmap-sticky")
    lay = layout(sticky, 4)
    # The bits a rule names come first, for each of its variables.
    assert ("old", F.MIXEDMAP) in lay and ("new", F.MIXEDMAP) in lay


@pytest.mark.parametrize("bits", [-1, X.MAX_BITS + 1])
def test_layout_refuses_bad_sizes(bits: int) -> None:
    with pytest.raises(ValueError, match="bits must be in"):
        layout(FORMULAS[0], bits)


def test_a_diverging_evaluator_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = R.evaluate

    def buggy(e: R.Expr, env: Mapping[str, int | bool]) -> int | bool:
        # An evaluator whose bitwise or is an exclusive or.
        if isinstance(e, R.BOr):
            return int(real(e.a, env)) ^ int(real(e.b, env))
        return real(e, env)

    monkeypatch.setattr(vma_expr, "evaluate", buggy)
    f = next(f for f in FORMULAS if f.label == "set_mixedmap.result")
    r = exhaustive(f, 6)
    assert not r.agree
    assert r.mismatch is not None
    # Only a VMA that already has VM_MIXEDMAP tells | from ^.
    assert "set_mixedmap.result at old=" in r.mismatch and "VM_MIXEDMAP" in r.mismatch
    assert "evaluate=" in r.mismatch and "z3=" in r.mismatch


def test_a_diverging_boolean_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = R.evaluate

    def buggy(e: R.Expr, env: Mapping[str, int | bool]) -> int | bool:
        # An evaluator whose Implies reads "a or b".
        if isinstance(e, R.Implies):
            return bool(real(e.a, env)) or bool(real(e.b, env))
        return real(e, env)

    monkeypatch.setattr(vma_expr, "evaluate", buggy)
    f = next(f for f in FORMULAS if f.label == "rule write-maywrite")
    r = exhaustive(f, 4)
    assert not r.agree and r.mismatch is not None
    assert "rule write-maywrite at new=VM_NONE" in r.mismatch


def test_a_formula_without_variables() -> None:
    r = exhaustive(Formula("true", R.Lit(True), ()), 12)
    assert r.agree and r.cases == 1
