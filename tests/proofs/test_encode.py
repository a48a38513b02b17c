"""The Z3 reading of the rule table agrees with the concrete evaluator on any input.

Random full 64-bit values (hypothesis) for every formula of the table, evaluated by
`vma_rules.evaluate` and by Z3's simplifier on the encoding; and malformed
expressions or constants are a clear TypeError, never a silently truncated value.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.include import vm_flags as F
from ownership.mm import vma_rules as R
from proofs.crosscheck import Formula, agree_at, formulas
from proofs.encode import Env, ctx_names, formula, is_term, masks, term, var_names
from proofs.z3api import bool_val, bv_val, bv_var, closed_value, has

FORMULAS = formulas()
U64 = st.integers(min_value=0, max_value=F.VM_FLAGS_MAX)


@pytest.mark.parametrize("f", FORMULAS, ids=lambda f: f.label)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_64_bit_values_agree(f: Formula, data: st.DataObject) -> None:
    values = {v: data.draw(U64, label=v) for v in f.bvs}
    facts = {c: data.draw(st.booleans(), label=c) for c in f.facts}
    concrete, z3v = agree_at(f, values, facts)
    assert concrete == z3v, f"{f.label} at {values} {facts}"


RULE_FACTS = sorted({c for r in R.RULES for c in ctx_names(r.expr)})


@settings(max_examples=200, deadline=None)
@given(
    old=U64,
    new=U64,
    facts=st.fixed_dictionaries({c: st.booleans() for c in RULE_FACTS}),
)
def test_every_rule_agrees_with_runtime_violations(
    old: int, new: int, facts: dict[str, bool]
) -> None:
    broken = {r.id for r in R.violations(old, new, facts)}
    for r in R.RULES:
        f = Formula(r.id, r.expr, ())
        _, z = agree_at(f, {"old": old, "new": new}, {k: facts[k] for k in f.facts})
        assert (not z) == (r.id in broken), r.id


def test_missing_context_fact_is_false_as_in_evaluate() -> None:
    e = R.Implies(R.Ctx("in_use"), R.Has(R.Var("old"), F.WRITE))
    env = Env({"old": bv_val(0)})
    assert closed_value(formula(e, env), {}, {}, "bool") is True
    assert R.evaluate(e, {"old": 0}) is True


def test_walkers_name_the_free_variables_and_bits() -> None:
    e = R.Implies(
        R.And(R.Ctx("in_use"), R.Has(R.Var("old"), F.WRITE)),
        R.Eq(R.BAnd(R.Var("new"), R.Const(F.MAYWRITE)), R.Var("prot")),
    )
    assert var_names(e) == {"old", "new", "prot"}
    assert ctx_names(e) == {"in_use"}
    assert masks(e) == {F.WRITE, F.MAYWRITE}
    assert not is_term(e) and is_term(R.Ite(R.Ctx("x"), R.Var("a"), R.Const(0)))
    assert not is_term(R.Ite(R.Ctx("x"), R.Lit(True), R.Lit(False)))


def test_ite_over_formulas_agrees() -> None:
    e = R.Ite(R.Ctx("x"), R.Has(R.Var("a"), F.READ), R.Lit(False))
    f = Formula("ite", e, ())
    for a in (0, F.READ):
        for x in (False, True):
            concrete, z = agree_at(f, {"a": a}, {"x": x})
            assert concrete == z == (x and bool(a))
    same = Formula("eq", R.Eq(R.Has(R.Var("a"), F.READ), R.Ctx("x")), ())
    assert agree_at(same, {"a": F.READ}, {"x": True}) == (True, True)
    assert agree_at(same, {"a": 0}, {"x": True}) == (False, False)


@pytest.mark.parametrize(
    "bad",
    [
        R.Const(1 << 64),
        R.Const(-1),
        R.Has(R.Var("old"), 1 << 64),
    ],
    ids=["too-wide", "negative", "mask-too-wide"],
)
def test_constants_outside_64_bits_are_type_errors(bad: R.Expr) -> None:
    env = Env({"old": bv_var("t.old")})
    with pytest.raises(TypeError, match="does not fit in 64 bits"):
        if is_term(bad):
            term(bad, env)
        else:
            formula(bad, env)


def test_malformed_expressions_are_type_errors() -> None:
    env = Env({"old": bv_var("t.old")})
    with pytest.raises(TypeError, match="compares a bit-vector with a boolean"):
        formula(R.Eq(R.Var("old"), R.Lit(True)), env)
    with pytest.raises(TypeError, match="not a boolean expression"):
        formula(R.Var("old"), env)
    with pytest.raises(TypeError, match="not a bit-vector expression"):
        term(R.Lit(True), env)
    with pytest.raises(TypeError, match="not a rule expression"):
        is_term(R.Expr())
    with pytest.raises(KeyError, match="no value for variable 'new'"):
        formula(R.Has(R.Var("new"), F.READ), env)


@given(v=st.one_of(st.integers(max_value=-1), st.integers(min_value=1 << 64), st.booleans()))
def test_bv_val_rejects_what_does_not_fit(v: int) -> None:
    with pytest.raises(TypeError):
        bv_val(v)


@given(v=U64, mask=U64)
def test_has_is_nonzero_and(v: int, mask: int) -> None:
    assert closed_value(has(bv_val(v), mask), {}, {}, "bool") == bool(v & mask)


def test_closed_value_requires_a_closed_term() -> None:
    with pytest.raises(ValueError, match="did not reduce"):
        closed_value(has(bv_var("t.free"), F.READ), {}, {}, "bool")
    assert closed_value(bool_val(True), {}, {}, "bool") is True
