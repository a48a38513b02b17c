"""Test isolation comes from the package's pytest plugin (`ownership.pytest_plugin`).

The plugin (registered by the `pytest11` entry point, so installing the package loads
it) switches the checks on for every test, clears the warning log, puts the thread's
execution context back after each test and fails a passing test that left a lock, an
atomic section or an `unsafe` block open. This suite breaks lock orders on purpose in
many tests, so pyproject.toml sets `ownership_lockdep = "private"`: every test gets an
empty lockdep graph (what the plugin's `lockdep_private` marker gives one test).

Left here: the hypothesis profiles, and `pytester` for the plugin's own tests
(tests/plugin): pytest accepts `pytest_plugins` only in this top-level conftest.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# Property tests explore at random during development; CI (which sets CI=true) replays a
# fixed derivation so a landing is judged on the code, not on the draw. Neither imposes a
# per-example deadline: real-thread tests on a loaded 2-core machine are slow, not wrong.
settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
