"""Every claim meets its expectation, and every counterexample is a real run.

The must-hold claims are proved; each has mutated twins that must fail, so no proof
holds for want of a precondition. Each counterexample is replayed through the
runtime's concrete `vma_rules.apply`: the model checker's run is one the runtime
would take (or, for a twin whose runtime check was weakened, one the real runtime
check refuses).
"""

from __future__ import annotations

import pytest

import proofs
from ownership.errors import VmaFlagError
from ownership.include import vm_flags as F
from ownership.mm import vma_rules as R
from proofs import CLAIMS, Claim, Result
from tests.expect import assert_splat
from tests.proofs.replay import replay

_RESULTS: dict[str, Result] = {}


def _result(c: Claim) -> Result:
    """Each claim runs once per test session; several tests read its result."""
    if c.name not in _RESULTS:
        _RESULTS[c.name] = c.run()
    return _RESULTS[c.name]


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.name)
def test_claim_meets_its_expectation(claim: Claim) -> None:
    r = _result(claim)
    assert r.ok, f"{r.name}: expected {r.expect}, got {r.verdict} ({r.detail})"
    if r.verdict == "counterexample":
        assert r.counterexample is not None
        # A flag claim's counterexample names flags; a Binder claim's, its inputs.
        assert ("VM_" if claim.kind != "binder" else "=") in r.counterexample
    else:
        assert r.counterexample is None


def test_the_issue_claims_are_all_there() -> None:
    # The Binder claims are listed in test_binder_claims.py.
    holds = {c.name for c in CLAIMS if c.expect == "holds" and c.kind != "binder"}
    fails = {c.name for c in CLAIMS if c.expect == "fails" and c.twin_of is None}
    assert holds == {
        "safe_api_invariant",
        "set_mixedmap_sound",
        "set_pfnmap_refuses_mixedmap",
        "binder_mmap_postcondition",
        "binder_never_writable",
        "special_never_merged",
        "split_merge",
    }
    assert fails == {
        "v6_set_flags_mixedmap_pfnmap",
        "v6_set_flags_write_without_maywrite",
        "v6_set_flags_hugetlb",
        "v6_set_flags_clear_mixedmap_after_insert",
        "v6_vm_insert_page_uffd",
        "write_check_without_maywrite",
    }


def test_every_must_hold_claim_has_a_twin_that_must_fail() -> None:
    for c in CLAIMS:
        if c.expect == "holds":
            twins = [t for t in CLAIMS if t.twin_of == c.name]
            assert twins, f"{c.name} has no mutated twin"
            assert all(t.expect == "fails" for t in twins)
            assert all(t.name.startswith(c.name + "~") for t in twins)


def test_claims_are_documented_and_name_real_rules() -> None:
    ids = {r.id for r in R.RULES}
    names = [c.name for c in CLAIMS]
    assert len(names) == len(set(names))
    for c in CLAIMS:
        assert '"' in c.doc, f"{c.name} quotes no kernel rule or review sentence"
        assert c.summary()
        assert set(c.rules) <= ids, f"{c.name} names unknown rules"


def test_every_state_rule_is_covered_by_a_proof() -> None:
    covered = proofs.proved_rules()
    for r in R.RULES:
        if r.kind == "state":
            assert "safe_api_invariant" in covered[r.id]
    assert "binder_never_writable" in covered["write-maywrite"]


def test_claim_lookup() -> None:
    assert proofs.claim("split_merge").kind == "merge"
    with pytest.raises(KeyError):
        proofs.claim("no_such_claim")


def _replayable(c: Claim) -> bool:
    """A run of one VMA's operations on a table whose runtime check is the real one
    (a twin whose check lost a rule has no runtime counterpart to replay on)."""
    single_vma = c.kind == "flags" and not c.name.startswith("special_never_merged")
    real_check = {r.id for r in c.table.check_rules} == {r.id for r in R.RULES}
    return c.expect == "fails" and single_vma and real_check


@pytest.mark.parametrize("claim", [c for c in CLAIMS if _replayable(c)], ids=lambda c: c.name)
def test_counterexamples_replay_on_the_runtime(claim: Claim) -> None:
    r = _result(claim)
    assert r.trace is not None and r.counterexample is not None
    assert replay(claim.table, r.trace) == list(r.trace.flags)
    assert F.names(r.trace.flags[-1]) in r.counterexample


def test_runtime_check_refuses_what_a_weakened_check_misses() -> None:
    c = proofs.claim("safe_api_invariant~check-without-write-maywrite")
    r = _result(c)
    assert r.trace is not None
    with pytest.raises(VmaFlagError) as e:
        replay(proofs.TABLE, r.trace)
    assert_splat(e, "write-maywrite", cls=VmaFlagError)


def _trace_ops(r: Result) -> list[str | None]:
    assert r.trace is not None
    return [s.op for s in r.trace.steps]


def test_v6_counterexamples_reproduce_the_review() -> None:
    r = _result(proofs.claim("v6_set_flags_mixedmap_pfnmap"))
    assert "VM_PFNMAP|VM_MIXEDMAP" in (r.counterexample or "")
    assert _trace_ops(r)[-1] == "v6_set_flags"

    r = _result(proofs.claim("v6_set_flags_write_without_maywrite"))
    assert r.trace is not None
    last = r.trace.flags[-1]
    assert last & F.WRITE and not last & F.MAYWRITE

    r = _result(proofs.claim("v6_set_flags_hugetlb"))
    assert r.trace is not None
    assert _trace_ops(r)[-1] == "v6_set_flags"
    assert (r.trace.flags[-1] ^ r.trace.flags[-2]) & F.HUGETLB

    r = _result(proofs.claim("v6_set_flags_clear_mixedmap_after_insert"))
    ops = _trace_ops(r)
    assert r.trace is not None
    assert ops.index("v6_vm_insert_page") < len(ops) - 1 and ops[-1] == "v6_set_flags"
    assert r.trace.flags[-2] & F.MIXEDMAP and not r.trace.flags[-1] & F.MIXEDMAP

    r = _result(proofs.claim("v6_vm_insert_page_uffd"))
    ops = _trace_ops(r)
    assert r.trace is not None
    assert ops[-1] == "v6_vm_insert_page" and "userfaultfd_register" in ops
    assert r.trace.flags[-1] & F.MIXEDMAP and r.trace.flags[-1] & F.UFFD_MASK


def test_checking_write_without_clearing_maywrite_is_the_common_mistake() -> None:
    r = _result(proofs.claim("write_check_without_maywrite"))
    assert r.trace is not None
    assert r.trace.steps[1].label() == "!writable()"
    assert _trace_ops(r)[-1] == "mprotect"
    assert r.trace.flags[-1] & F.WRITE and r.trace.flags[-1] & F.MAYWRITE
    # Binder's handler, which clears VM_MAYWRITE instead, is proved never writable.
    assert _result(proofs.claim("binder_never_writable")).verdict == "proved"


def test_binder_invariant_is_found_not_given() -> None:
    detail = _result(proofs.claim("binder_never_writable")).detail
    assert "!VM_MAYWRITE" in detail
    # MADV_DOFORK clears VM_DONTCOPY (only VM_IO makes it permanent): Houdini drops it.
    assert "VM_DONTCOPY" not in detail


def test_set_mixedmap_soundness_names_who_refuses_pfnmap() -> None:
    detail = _result(proofs.claim("set_mixedmap_sound")).detail
    assert "remap_pfn_range (guard)" in detail
    assert "set_pfnmap (runtime check)" in detail
