"""Fixtures of the mm tests: the plugin's `kernel`, smaller, and a process running as current."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ownership.bindings import Kernel, Task


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The mm tests run with a small page pool, so exhausting it is cheap."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here) and item.get_closest_marker("kernel") is None:
            item.add_marker(pytest.mark.kernel(pages_per_node=4096))


@pytest.fixture
def proc(kernel: Kernel) -> Iterator[Task]:
    """A process, with the test's thread running as it."""
    p = kernel.spawn_process("app")
    with p.as_current():
        yield p
