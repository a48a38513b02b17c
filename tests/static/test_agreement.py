"""Static and dynamic agree: each bad snippet that can run is caught by the runtime
checks with the same rule, each good one runs clean, and the documented blind spots of
the checker (`unseen/`) are caught at run time only.

The runtime report must name the same two sites the corpus marks: where the bug
happened (`# runtime-site`) and where the conflicting lock, guard or declaration came
from (`# runtime-origin`).
"""

from __future__ import annotations

import importlib

import pytest

from ownership import errors
from ownership.errors import SafetyViolation
from ownership.static.cli import CheckResult
from ownership.static.codes import RULES_BY_CODE
from tests.expect import assert_splat

from .corpus import BAD, GOOD, UNSEEN, CorpusFile, all_files

RUNNABLE_BAD = [f for f in all_files(BAD) if f.has_main()]
RUNNABLE_GOOD = [f for f in all_files(GOOD) if f.has_main()]


def run_main(f: CorpusFile) -> None:
    importlib.import_module(f.module).main()


@pytest.mark.parametrize("f", RUNNABLE_BAD, ids=lambda f: f.path.parent.name + "/" + f.path.name)
def test_bad_snippet_is_caught_at_runtime_too(f: CorpusFile) -> None:
    reason = f.static_only()
    if reason is not None:
        # The runtime cannot see this one: the run is clean, and the file says why.
        run_main(f)
        assert f.runtime_sites() == []
        return
    rule = RULES_BY_CODE[f.rule_dir or ""]
    assert rule.runtime_class is not None and rule.runtime_rule is not None
    cls = getattr(errors, rule.runtime_class)
    with pytest.raises(cls) as info:
        run_main(f)
    sites = f.runtime_sites()
    assert sites, f"{f.path} marks no `# runtime-site`"
    named = [f"{name}:{line}" for name, line in sites + f.runtime_origins()]
    assert_splat(info, rule.runtime_rule, cls=cls, mentions=named)


@pytest.mark.parametrize("f", RUNNABLE_GOOD, ids=lambda f: f.path.name)
def test_good_snippet_runs_clean(f: CorpusFile) -> None:
    run_main(f)


def test_dynamic_dispatch_is_caught_only_at_runtime(corpus_result: CheckResult) -> None:
    f = CorpusFile(UNSEEN / "dynamic_dispatch.py")
    assert [r for r in corpus_result.reports if r.path.endswith("dynamic_dispatch.py")] == []
    with pytest.raises(SafetyViolation) as info:
        run_main(f)
    named = [f"{name}:{line}" for name, line in f.runtime_sites() + f.runtime_origins()]
    assert_splat(info, "atomic-sleep", mentions=named)


def test_use_after_release_is_caught_only_at_runtime(corpus_result: CheckResult) -> None:
    f = CorpusFile(UNSEEN / "use_after_release.py")
    assert [r for r in corpus_result.reports if r.path.endswith("use_after_release.py")] == []
    with pytest.raises(SafetyViolation) as info:
        run_main(f)
    named = [f"{name}:{line}" for name, line in f.runtime_sites() + f.runtime_origins()]
    assert_splat(info, "lifetime", mentions=named)


def test_each_unseen_file_has_its_runtime_test() -> None:
    assert {f.path.name for f in all_files(UNSEEN)} == {
        "dynamic_dispatch.py",
        "use_after_release.py",
    }


def test_every_static_rule_with_a_runtime_class_has_a_runtime_example() -> None:
    caught = {f.rule_dir for f in RUNNABLE_BAD if f.static_only() is None}
    assert caught == {
        code for code, rule in RULES_BY_CODE.items() if rule.runtime_class is not None
    }
