"""The pytest plugin, exercised in inner pytest sessions (`pytester`).

Every inner session loads the plugin through the installed `pytest11` entry point, as a
driver's suite would: no conftest names it. Lock class names are unique per test, as
the inner sessions run in this process and share its lockdep classes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.lockdep_private


def _line_of(path: Path, text: str, nth: int = 1) -> int:
    """The number of the `nth` line of `path` containing `text`."""
    hits = [i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln]
    return hits[nth - 1]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Summary lines are cut at the terminal's width: make it wide enough to read them."""
    monkeypatch.setenv("COLUMNS", "300")


def test_the_kernel_fixture_is_listed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(["*fixtures defined from ownership.pytest_plugin*", "kernel*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for m in ("lockdep_private", "allow_leaks", "checks_off", "explore", "kernel"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{m}*"])


def test_an_inversion_between_two_tests_is_reported_in_the_second(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_order="""
        from ownership.sync import Mutex

        A = Mutex(0, name="plugin-inv-A")
        B = Mutex(0, name="plugin-inv-B")

        def test_first_path():
            with A.lock():
                with B.lock():
                    pass

        def test_second_path():
            with B.lock():
                with A.lock():
                    pass
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    f = pytester.path / "test_order.py"
    result.stdout.fnmatch_lines(
        [
            "FAILED test_order.py::test_second_path - ownership.errors.LockError: "
            "lock-order: possible circular locking dependency detected at "
            f"test_order.py:{_line_of(f, 'with A.lock()', 2)}",
        ]
    )
    out = result.stdout.str()
    # The first test's sites and its id are named, as lockdep names the first path.
    assert f"test_order.py:{_line_of(f, 'with B.lock()', 1)} in test_first_path()" in out
    assert "in test test_order.py::test_first_path" in out
    assert "fix: take the locks in the recorded order" in out


def test_a_private_graph_keeps_a_deliberate_inversion_to_itself(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_private="""
        import pytest
        from ownership.sync import Mutex

        A = Mutex(0, name="plugin-priv-A")
        B = Mutex(0, name="plugin-priv-B")

        def test_first_path():
            with A.lock():
                with B.lock():
                    pass

        @pytest.mark.lockdep_private
        def test_inverted_on_purpose():
            with B.lock():
                with A.lock():
                    pass

        def test_the_session_graph_is_back():
            with A.lock():
                with B.lock():
                    pass
        """
    )
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=3)


def test_the_private_ini_option_isolates_every_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nownership_lockdep = private\n")
    pytester.makepyfile(
        test_ini="""
        from ownership.sync import Mutex

        A = Mutex(0, name="plugin-ini-A")
        B = Mutex(0, name="plugin-ini-B")

        def test_one():
            with A.lock(), B.lock():
                pass

        def test_two():
            with B.lock(), A.lock():
                pass
        """
    )
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=2)


def test_a_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nownership_lockdep = sometimes\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ownership_lockdep must be 'session' or 'private'*"])


def test_the_leak_check_fails_a_test_that_leaked_a_page(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leak="""
        import pytest
        from ownership.alloc import GFP_KERNEL
        from ownership.page import Page

        def test_leaks(kernel):
            Page.alloc_page(GFP_KERNEL)

        def test_drops(kernel):
            Page.alloc_page(GFP_KERNEL).drop()

        @pytest.mark.allow_leaks
        def test_leaks_on_purpose(kernel):
            Page.alloc_page(GFP_KERNEL)

        def test_leaks_an_mm_reference(kernel):
            from ownership.aref import ARef
            from ownership.task import current

            p = kernel.spawn_process("app")
            with p.as_current():
                mm = current().mm()
                assert mm is not None
                ARef.from_ref(mm)

        @pytest.mark.kernel(pages_per_node=8)
        def test_kernel_arguments(kernel):
            assert kernel.pool.pages_per_node == 8
        """
    )
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=5, errors=2)
    out = result.stdout.str()
    assert "ERROR at teardown of test_leaks " in out
    where = f"test_leak.py:{_line_of(pytester.path / 'test_leak.py', 'Page.alloc_page')}"
    assert "unreferenced object: struct page" in out and f"allocated at {where}" in out
    assert "ERROR at teardown of test_leaks_an_mm_reference" in out
    assert "leaked reference: mm_struct" in out


def test_checks_off_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_checks="""
        import pytest
        from ownership.alloc import GFP_KERNEL, KBox
        from ownership.config import checks_enabled
        from ownership.sync import SpinLock

        LOCK = SpinLock(0, name="plugin-checks")

        @pytest.mark.checks_off
        def test_unchecked():
            assert not checks_enabled()
            with LOCK.lock():
                KBox.new(1, GFP_KERNEL)

        def test_checked():
            assert checks_enabled()
            with LOCK.lock():
                KBox.new(1, GFP_KERNEL)
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_checks.py::test_checked - ownership.errors.AtomicSleepError: atomic-sleep:*"]
    )


def test_the_context_is_put_back_after_a_failure_in_atomic_context(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_ctx="""
        from ownership.context import in_atomic, preempt_disable

        def test_fails_in_atomic():
            preempt_disable()
            assert False, "failed inside an atomic section"

        def test_next_starts_clean():
            assert not in_atomic()

        def test_passes_but_leaves_preemption_off():
            preempt_disable()
        """
    )
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_passes_but_leaves_preemption_off" in out
    assert "atomic section open: preempt_disable" in out
    assert "ERROR at teardown of test_fails_in_atomic" not in out


@pytest.mark.skipif(
    importlib.util.find_spec("ownership.explore") is not None,
    reason="ownership.explore is importable: the skip path is not taken",
)
def test_the_explore_marker_skips_without_the_explorer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_explore="""
        import pytest

        @pytest.mark.explore(runs=5)
        def test_scenario():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs ownership.explore, which is not importable*"])


@pytest.mark.skipif(
    importlib.util.find_spec("ownership.explore") is None,
    reason="ownership.explore is not importable yet",
)
def test_the_explore_marker_runs_the_body_under_the_explorer(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_explore="""
        import pytest

        RUNS = []

        @pytest.mark.explore(runs=3)
        def test_scenario():
            RUNS.append(1)

        def test_it_ran():
            assert RUNS
        """
    )
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=2)
