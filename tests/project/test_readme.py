"""The README's driver example runs clean, and its buggy variant is caught as it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ownership.errors import AtomicSleepError
from tests.expect import assert_splat

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    m = re.search(r"## Writing a checked driver\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert m is not None, "the README lost its driver example"
    return m.group(1)


def test_readme_example_runs_clean() -> None:
    ns: dict[str, Any] = {}
    exec(compile(_example(), str(README), "exec"), ns)
    registry = ns["Registry"]()
    first = registry.get_or_insert(7)
    assert registry.get_or_insert(7) is first
    assert first.get() == "entry 7"


def test_readme_bug_is_an_atomic_sleep() -> None:
    # The bug the README describes: allocate inside the first critical section.
    buggy = _example().replace(
        "            if key in g.data:\n                return g.data[key]\n",
        "            if key in g.data:\n                return g.data[key]\n"
        '            g.data[key] = KBox.new("eager", GFP_KERNEL)\n',
        1,
    )
    assert buggy != _example()
    ns: dict[str, Any] = {}
    exec(compile(buggy, str(README), "exec"), ns)
    with pytest.raises(AtomicSleepError) as ei:
        ns["Registry"]().get_or_insert(1)
    assert_splat(ei, "atomic-sleep", cls=AtomicSleepError, mentions=["SpinLock 'registry.inner'"])


def test_readme_names_only_files_in_the_repo() -> None:
    text = README.read_text()
    assert "../" not in text and "API.md" not in text
    root = README.parent
    for path in re.findall(r"`((?:scripts|ownership|binder|proofs|tests)/[\w./-]+)`", text):
        assert (root / path).exists() or (root / path.rstrip("/")).exists(), path
    assert (root / "LICENSE").read_text().startswith("SPDX-License-Identifier: GPL-2.0-only")


def test_the_wheel_metadata_carries_readme_and_license() -> None:
    from importlib import metadata

    meta = metadata.metadata("rust-mm-model")
    assert meta["License-Expression"] == "GPL-2.0-only"
    assert "An executable model of Rust-for-Linux" in (meta.get_payload() or "")  # type: ignore[attr-defined]
    eps = metadata.entry_points(group="pytest11")
    assert any(ep.value == "ownership.pytest_plugin" for ep in eps)
