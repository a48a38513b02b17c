"""The golden corpus: every expected finding is reported, and nothing else.

Each file of `bad/<rule>/` marks its findings with `# expect: <code>`; each file of
`good/` and `unseen/` must produce none. A finding must name both ends of the problem:
its own line, and a related location (the lock acquisition, the declaration, the place
the value was made), as the runtime reports do.
"""

from __future__ import annotations

import pytest

from ownership.static.cli import CheckResult
from ownership.static.codes import RULES_BY_CODE
from ownership.static.report import Report

from .corpus import BAD, GOOD, UNSEEN, CorpusFile, all_files

BAD_FILES = all_files(BAD)
SILENT_FILES = all_files(GOOD) + all_files(UNSEEN)


def reports_for(result: CheckResult, f: CorpusFile) -> list[Report]:
    return [
        r
        for r in result.reports
        if r.path.endswith(str(f.path.relative_to(BAD.parent.parent.parent)))
    ]


@pytest.mark.parametrize(
    "f", BAD_FILES, ids=lambda f: f.module.rsplit(".", 2)[-2] + "/" + f.path.name
)
def test_bad_file_reports_exactly_its_expected_findings(
    corpus_result: CheckResult, f: CorpusFile
) -> None:
    reports = reports_for(corpus_result, f)
    got = {(r.code, r.line) for r in reports}
    assert got == f.expected(), "\n".join(
        f"{r.path}:{r.line}: {r.message} [{r.code}]" for r in reports
    )
    for r in reports:
        assert r.code in RULES_BY_CODE, f"unexpected mypy error: {r.message} [{r.code}]"
        # Both sites: the finding's own line, and where the conflict comes from.
        assert r.related(), f"{r.path}:{r.line} [{r.code}] names no related location"


@pytest.mark.parametrize("f", SILENT_FILES, ids=lambda f: f.path.parent.name + "/" + f.path.name)
def test_good_file_is_silent(corpus_result: CheckResult, f: CorpusFile) -> None:
    assert f.expected() == set()
    assert reports_for(corpus_result, f) == []


def test_every_rule_has_bad_examples() -> None:
    rules_with_examples = {code for f in BAD_FILES for code, _ in f.expected()}
    assert rules_with_examples == set(RULES_BY_CODE)


def test_bad_files_live_in_their_rules_directory() -> None:
    for f in BAD_FILES:
        assert {code for code, _ in f.expected()} <= {f.rule_dir}, f.path


def _one(result: CheckResult, name: str, line: int) -> Report:
    matches = [r for r in result.reports if r.path.endswith(name) and r.line == line]
    assert len(matches) == 1, matches
    return matches[0]


def _line_of(f: CorpusFile, needle: str) -> int:
    return next(n for n, text in enumerate(f.text.splitlines(), start=1) if needle in text)


def test_get_thread_names_the_allocation_and_the_lock(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "atomic_sleep" / "get_thread.py")
    alloc = _line_of(f, "Arc.new(Thread(id), GFP_KERNEL)")
    lock = _line_of(f, "with self.inner.lock() as inner:")
    r = _one(corpus_result, "atomic_sleep/get_thread.py", alloc)
    assert r.code == "atomic-sleep"
    assert "`Arc.new()` may sleep" in r.message and "GFP_KERNEL" in r.message
    texts = [n.text for n in r.notes]
    assert "this call expects the preemption count to be 0" in texts
    assert "but the possible preemption count here is 1.." in texts
    assert texts[-1] == "which is called from here"
    assert next((n.path, n.line) for n in r.related()) == (r.path, lock)
    assert any("alloc_check()" in t and 'declared @may_sleep(gfp="gfp")' in t for t in texts)


def test_transitive_chain_three_calls_deep_across_two_modules(corpus_result: CheckResult) -> None:
    scenario = CorpusFile(BAD / "atomic_sleep" / "transitive.py")
    a = CorpusFile(BAD / "atomic_sleep" / "chain_a.py")
    b = CorpusFile(BAD / "atomic_sleep" / "chain_b.py")
    call = _line_of(scenario, "chain_a.register(key)")
    r = _one(corpus_result, "atomic_sleep/transitive.py", call)
    related = [(n.path.rsplit("/", 1)[-1], n.line) for n in r.related() if n.path is not None]
    # The lock, then the chain from the allocation back up to the call.
    assert related[0] == ("transitive.py", _line_of(scenario, "with self.lock.lock() as count:"))
    chain = [loc for loc in related if loc[0] in ("chain_a.py", "chain_b.py")]
    assert chain == [
        ("chain_b.py", _line_of(b, "return KBox.new(Entry(key), GFP_KERNEL)")),
        ("chain_b.py", _line_of(b, "entry = alloc_entry(key)")),
        ("chain_a.py", _line_of(a, "node = chain_b.make_node(key)")),
    ]
    texts = [n.text for n in r.notes]
    assert "which is called from `make_node()` as `alloc_entry()`" in texts
    assert "which is called from `register()` as `chain_b.make_node()`" in texts


def test_maybe_held_guard_reports_a_range(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "atomic_sleep" / "linear_guard.py")
    line = _line_of(f, "# expect: atomic-sleep")
    reports = [
        r for r in corpus_result.reports if r.path.endswith("linear_guard.py") and r.line == line
    ]
    # Both the allocation and the push on that line may sleep.
    assert {r.message.split("`")[1] for r in reports} == {"KBox.new()", "self.log.push()"}
    assert all(
        "but the possible preemption count here is 1.." in [n.text for n in r.notes]
        for r in reports
    )


def test_rcu_and_preempt_sections_are_named(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "atomic_sleep" / "rcu_and_preempt.py")
    rcu = _one(
        corpus_result, "rcu_and_preempt.py", _line_of(f, "self.entries.push(value, GFP_KERNEL)")
    )
    assert "but this code runs inside an RCU read-side critical section" in [
        n.text for n in rcu.notes
    ]
    assert rcu.related()[0].line == _line_of(f, "with rcu_read_lock():")
    pre = _one(corpus_result, "rcu_and_preempt.py", _line_of(f, "with preempt_disabled():") + 1)
    assert pre.related()[0].line == _line_of(f, "with preempt_disabled():")
    linear = _one(corpus_result, "rcu_and_preempt.py", _line_of(f, "sec = preempt_disable()") + 1)
    assert linear.related()[0].line == _line_of(f, "sec = preempt_disable()")
    irq = _one(corpus_result, "rcu_and_preempt.py", _line_of(f, "with local_irq_disable():") + 1)
    assert "but interrupts are disabled here" in [n.text for n in irq.notes]


def test_send_handoff_names_where_the_guard_was_made(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "send_handoff" / "spawn_guard.py")
    r = _one(corpus_result, "spawn_guard.py", _line_of(f, "spawn(bump, g)"))
    assert r.message == "`g` is !Send but is handed to another thread by `spawn()`"
    assert r.related()[0].line == _line_of(f, "with self.lock.lock() as g:")
    assert any("MutexGuard[int] is !Send" in n.text for n in r.notes)


def test_guard_escape_names_reference_and_guard(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "guard_escape" / "store_on_self.py")
    r = _one(corpus_result, "store_on_self.py", _line_of(f, "self.cached = view"))
    assert "stored on `self.cached`" in r.message
    assert [n.line for n in r.related()] == [
        _line_of(f, "view = g.ref()"),
        _line_of(f, "with self.table.lock() as g:"),
    ]


def test_unsafe_call_names_the_contract(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "unsafe_call" / "outside_block.py")
    r = _one(corpus_result, "outside_block.py", _line_of(f, "ring.slot_unchecked(0)"))
    contract = r.related()[0]
    assert "`index` is below the ring's size." in contract.text
    assert contract.line == _line_of(f, "def slot_unchecked")


def test_send_handoff_names_the_guard_of_its_own_branch(corpus_result: CheckResult) -> None:
    # The name `g` is bound again in the `else` branch, which the walk sees later: the
    # note must still name the assignment the hand-off in the `if` branch sees.
    f = CorpusFile(BAD / "send_handoff" / "reused_name.py")
    r = _one(corpus_result, "reused_name.py", _line_of(f, "spawn(bump, g)"))
    assert r.related()[0].line == _line_of(f, "g = self.left.lock()")
    assert r.related()[0].line != _line_of(f, "g = self.right.lock()")


def test_an_arc_drop_that_may_not_be_the_last_states_the_limit(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "atomic_sleep" / "arc_drop_not_last.py")
    r = _one(corpus_result, "atomic_sleep/arc_drop_not_last.py", _line_of(f, "old.drop()"))
    assert "runs `Session.drop_arc()`" in r.message
    texts = [n.text for n in r.notes]
    limit = "limit: `Arc.drop()` runs `drop_arc()` only when it drops the last"
    assert any(t.startswith(limit) for t in texts)


def test_unknown_gfp_flags_state_the_limit(corpus_result: CheckResult) -> None:
    f = CorpusFile(BAD / "atomic_sleep" / "gfp_unknown.py")
    r = _one(corpus_result, "atomic_sleep/gfp_unknown.py", _line_of(f, "KBox.new(1, self.gfp)"))
    assert "not known statically" in r.message
    texts = [n.text for n in r.notes]
    limit = "limit: the checker cannot evaluate these GFP flags statically"
    assert any(t.startswith(limit) for t in texts)
    # A finding whose flags are known states no limit.
    g = CorpusFile(BAD / "atomic_sleep" / "get_thread.py")
    at = _line_of(g, "Arc.new(Thread(id), GFP_KERNEL)")
    known = _one(corpus_result, "atomic_sleep/get_thread.py", at)
    assert not any(n.text.startswith("limit:") for n in known.notes)
