"""Fixtures of the mm tests: a fresh simulated kernel and a process running as current."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ownership.bindings import Kernel, Task


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """An isolated world; the test fails if it is left inconsistent."""
    k = Kernel(pages_per_node=4096)
    yield k
    problems = k.check_consistency()
    assert not problems, problems
    for t in list(k.tasks.values()):
        if not t.exited:
            t.exit()
    leaks = k.leaks()
    assert not leaks, leaks


@pytest.fixture
def proc(kernel: Kernel) -> Iterator[Task]:
    """A process, with the test's thread running as it."""
    p = kernel.spawn_process("app")
    with p.as_current():
        yield p
