"""The pytest plugin: a simulated kernel per test, with lockdep kept for the whole session.

Installing the package registers it (the `pytest11` entry point `ownership`), so a
driver's own test suite gets, with no conftest:

* the `kernel` fixture: a fresh `Kernel` (the simulated machine of
  `ownership.bindings`; `ownership.kunit` re-exports it), installed as the default
  kernel for the test. At teardown every task still running is exited and
  `kernel.leaks()` must be empty (no leaked page, `mm_struct` reference), and the world
  must be consistent (`kernel.check_consistency()`); `@pytest.mark.kernel(**kwargs)`
  passes arguments to `Kernel(...)` (e.g. `pages_per_node=64`).
* isolation of the per-thread execution context: whatever a test leaves on its thread
  (a held lock, an open atomic section or `unsafe` block) is put back after it, even
  after a test that failed inside an atomic section; a test that *passed* but left one
  open fails at teardown, naming what it left. The runtime checks are switched on for
  every test and the warning log (`ownership.warn`) is cleared.
* lockdep's dependency graph is kept for the whole session, as one boot keeps it: a
  test taking A then B and a later test taking B then A is an inversion between two
  code paths, reported in the second test, naming the first test's sites and its id.
  `@pytest.mark.lockdep_private` runs a test that breaks lock order on purpose against
  an empty graph and puts the session's graph back afterwards. The ini option
  `ownership_lockdep = private` makes every test private (a suite full of deliberate
  inversions, as this repository's is); `session` is the default.
* `@pytest.mark.allow_leaks` skips the teardown leak check of `kernel`;
* `@pytest.mark.checks_off` runs the test with every runtime check off
  (`ownership.config.checking(False)`), to show a bug goes unnoticed without them or to
  measure their cost;
* `@pytest.mark.explore(**kwargs)` runs the test function under the interleaving
  explorer (`ownership.explore.explore(body, **kwargs)`), every schedule afresh, and
  fails with the first failing schedule's exception and its replayable schedule. The
  function's fixtures are made once, so the body builds its own locks and threads. If
  `ownership.explore` cannot be imported the test is skipped, saying so.

Under pytest-xdist every worker is its own process with its own graph: an inversion
between two tests is found only when both run on one worker (`-p no:xdist`, or
`--dist loadfile` for tests in one file). Violations pickle, so a worker's report
reaches the controller intact.

Lock order: the plugin takes no lock of the model.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from . import lockdep, warn
from .bindings import Kernel
from .config import STATE
from .context import ctx

__all__ = ["kernel"]

_MARKERS = (
    "lockdep_private: run the test against a private lockdep graph (it breaks lock order "
    "on purpose); the session's graph is put back afterwards",
    "allow_leaks: do not fail the test when the `kernel` fixture finds leaked pages or "
    "references at teardown",
    "checks_off: run the test with every runtime check of ownership switched off",
    "explore(**kwargs): run the test function under ownership.explore.explore(body, "
    "**kwargs); skipped if ownership.explore is not importable",
    "kernel(**kwargs): arguments for the Kernel(...) of the `kernel` fixture",
)

_CALL_PASSED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "ownership_lockdep",
        "lockdep graph per session (one boot: inversions between tests are found) or "
        "private to each test",
        default="session",
    )


def pytest_configure(config: pytest.Config) -> None:
    for m in _MARKERS:
        config.addinivalue_line("markers", m)
    mode = str(config.getini("ownership_lockdep")).strip()
    if mode not in ("session", "private"):
        raise pytest.UsageError(f"ownership_lockdep must be 'session' or 'private', not {mode!r}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Remembered for the teardown: a failed test's leftovers are its failure's doing.
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


def _clean_thread() -> list[str]:
    """Put this thread's execution context back to idle; what was left open."""
    held = ctx.held
    left = [f"lock held: {h.describe()}" for h in held]
    # A spinlock's held-lock entry is also its atomic section: name it once.
    left += [
        f"atomic section open: {s.describe()}"
        for s in ctx.sections
        if not any(s is h for h in held)
    ]
    if ctx.unsafe_depth:
        left.append(f"{ctx.unsafe_depth} unsafe block(s) open")
    if not left and (ctx.rcu_depth or ctx.irq_depth or ctx.preempt_count):
        left.append(
            f"preempt_count {ctx.preempt_count}, rcu depth {ctx.rcu_depth}, "
            f"irq depth {ctx.irq_depth}"
        )
    ctx.held.clear()
    ctx.sections.clear()
    ctx.preempt_count = ctx.rcu_depth = ctx.irq_depth = 0
    ctx.chain_key = 0
    ctx.unsafe_depth = 0
    ctx.st.unsafe_blocks.clear()
    ctx.task = None
    return left


@pytest.fixture(autouse=True)
def _ownership_isolation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test: checks on (or off under `checks_off`), a clean thread, the lockdep graph.

    The graph is the session's unless the test is marked `lockdep_private` or the ini
    option `ownership_lockdep` is `private`. Every dependency the test records is
    labelled with its node id.
    """
    item = request.node
    private = (
        item.get_closest_marker("lockdep_private") is not None
        or str(request.config.getini("ownership_lockdep")).strip() == "private"
    )
    warn.clear()
    _clean_thread()
    prev_on = STATE.on
    STATE.on = item.get_closest_marker("checks_off") is None
    lockdep.set_label(f"test {item.nodeid}")
    graph = lockdep.private_graph() if private else None
    if graph is not None:
        graph.__enter__()
    try:
        yield
    finally:
        if graph is not None:
            graph.__exit__(None, None, None)
        lockdep.set_label(None)
        STATE.on = prev_on
        left = _clean_thread()
    if left and item.stash.get(_CALL_PASSED, False):
        pytest.fail("the test left its thread in a bad state:\n  " + "\n  ".join(left))


@pytest.fixture
def kernel(request: pytest.FixtureRequest) -> Iterator[Kernel]:
    """A fresh simulated kernel, the default one for the test; checked for leaks after.

    Teardown: the world must be consistent; every task still running is exited; then
    `kernel.leaks()` must be empty unless the test is marked `allow_leaks`.
    """
    marker = request.node.get_closest_marker("kernel")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    k = Kernel(**kwargs)
    with k.as_default():
        yield k
    failed_call = not request.node.stash.get(_CALL_PASSED, True)
    if failed_call:
        # The test's own failure is the report; a teardown error on top would be noise.
        return
    problems = k.check_consistency()
    if problems:
        pytest.fail("the simulated kernel is inconsistent:\n  " + "\n  ".join(problems))
    for t in list(k.tasks.values()):
        if not t.exited:
            t.exit()
    if request.node.get_closest_marker("allow_leaks") is not None:
        return
    leaks = k.leaks()
    if leaks:
        pytest.fail("leaked at teardown (kernel.leaks()):\n  " + "\n  ".join(leaks))


def _explorer() -> Callable[..., Any] | None:
    """`ownership.explore.explore`, if that module can be imported."""
    if importlib.util.find_spec("ownership.explore") is None:
        return None
    # Imported here, not at module level: the explorer is optional (a later layer) and
    # the plugin must load without it.
    mod = importlib.import_module("ownership.explore")
    fn = getattr(mod, "explore", None)
    return fn if callable(fn) else None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("explore")
    if marker is None:
        return None
    explore = _explorer()
    if explore is None:
        pytest.skip("@pytest.mark.explore needs ownership.explore, which is not importable")
    fn = pyfuncitem.obj
    names = pyfuncitem._fixtureinfo.argnames
    args = {name: pyfuncitem.funcargs[name] for name in names}

    def body() -> None:
        fn(**args)

    result = explore(body, **marker.kwargs)
    failure = getattr(result, "failure", None)
    if isinstance(failure, BaseException):
        schedule = getattr(result, "schedule", None)
        failure.add_note(f"explore: failing schedule {schedule!r} (replay=...)")
        raise failure
    return True
