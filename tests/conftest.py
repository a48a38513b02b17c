"""Test isolation: every test starts with a clean execution context and lock graph."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from ownership import config, lockdep, warn
from ownership.context import ctx

# Property tests explore at random during development; CI (which sets CI=true) replays a
# fixed derivation so a landing is judged on the code, not on the draw. Neither imposes a
# per-example deadline: real-thread tests on a loaded 2-core machine are slow, not wrong.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def clean_runtime() -> Iterator[None]:
    """Reset lockdep's dependency graph and the warning log; check the thread is clean.

    A test that leaves this thread in atomic context or holding a lock fails: a
    violation must never leave the model corrupted.
    """
    lockdep.reset_for_tests()
    warn.clear()
    prev = config.STATE.on
    config.STATE.on = True
    yield
    config.STATE.on = prev
    leftover = [h.describe() for h in ctx.held]
    sections = [s.describe() for s in ctx.sections]
    unsafe_depth = ctx.unsafe_depth
    # Clean up before failing so the next test starts clean regardless.
    ctx.held.clear()
    ctx.sections.clear()
    ctx.preempt_count = ctx.rcu_depth = ctx.irq_depth = 0
    ctx.chain_key = 0
    ctx.unsafe_depth = 0
    assert not leftover, f"test left locks held: {leftover}"
    assert not sections, f"test left atomic sections open: {sections}"
    assert unsafe_depth == 0, "test left an unsafe block open"
