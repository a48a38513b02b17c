"""The plugin inside plain `mypy`, and mypy's incremental cache.

mypy replays the errors of modules it does not re-check. The plugin must therefore make
mypy re-check a module whose findings depend on a summary that changed, even when the
module's own source did not: here `driver` calls `middle.register`, which calls
`leaf.make`; editing only `leaf` must make `driver`'s finding appear and disappear.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ownership.static.cli import CheckResult, run_check

from .corpus import PROJECT

LEAF = '''\
"""The bottom of the chain: a helper that allocates."""

from ownership.alloc import {gfp}, KBox


def make(value: int) -> KBox[int]:
    return KBox.new(value, {gfp})
'''

MIDDLE = '''\
"""The middle of the chain, in its own module."""

from ownership.alloc import KBox

from . import leaf


def register(value: int) -> KBox[int]:
    return leaf.make(value)
'''

DRIVER = '''\
"""The caller: it holds a spinlock around the chain."""

from ownership.sync import SpinLock

from . import middle

LOCK = SpinLock(0, name="driver.LOCK")


def add(value: int) -> None:
    with LOCK.lock():
        middle.register(value).drop()


def add_ignored(value: int) -> None:
    with LOCK.lock():
        middle.register(value).drop()  # type: ignore[atomic-sleep]
'''

CALL_LINE = DRIVER.splitlines().index("        middle.register(value).drop()") + 1
IGNORED_LINE = (
    DRIVER.splitlines().index("        middle.register(value).drop()  # type: ignore[atomic-sleep]")
    + 1
)


class Project:
    """A throw-away project using the plugin, with its own mypy cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pkg = root / "drv"
        self.pkg.mkdir(parents=True)
        (self.pkg / "__init__.py").write_text("", encoding="utf-8")
        (self.pkg / "middle.py").write_text(MIDDLE, encoding="utf-8")
        (self.pkg / "driver.py").write_text(DRIVER, encoding="utf-8")
        self.config = root / "mypy.ini"
        self.config.write_text(
            f"[mypy]\nstrict = True\nplugins = ownership.static.plugin\nmypy_path = {PROJECT}\n",
            encoding="utf-8",
        )
        self.cache = root / "cache"
        self.stamp = 1_700_000_000
        self.set_leaf("GFP_KERNEL")

    def set_leaf(self, gfp: str) -> None:
        path = self.pkg / "leaf.py"
        path.write_text(LEAF.format(gfp=gfp), encoding="utf-8")
        # Same size, maybe the same second: give mypy a new mtime to notice the edit.
        self.stamp += 10
        os.utime(path, (self.stamp, self.stamp))

    def check(self) -> CheckResult:
        return run_check([str(self.pkg)], config_file=str(self.config), cache_dir=str(self.cache))

    def findings(self) -> set[tuple[str, str, int]]:
        return {(Path(r.path).name, r.code, r.line) for r in self.check().reports}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    yield Project(tmp_path_factory.mktemp("incremental"))


def test_cold_run_finds_the_transitive_sleep(project: Project) -> None:
    assert project.findings() == {("driver.py", "atomic-sleep", CALL_LINE)}
    store = project.cache / f"{sys.version_info[0]}.{sys.version_info[1]}" / "ownership-static"
    assert (store / "drv.driver.json").exists()
    assert (store / "drv.leaf.json").exists()


def test_warm_run_replays_the_same_findings(project: Project) -> None:
    first = project.check()
    again = project.check()
    assert [(r.path, r.line, r.message, r.notes) for r in again.reports] == [
        (r.path, r.line, r.message, r.notes) for r in first.reports
    ]
    assert len(again.reports) == 1


def test_editing_only_the_leaf_updates_the_driver(project: Project) -> None:
    project.set_leaf("GFP_ATOMIC")
    # The driver was re-checked: its finding is gone, and so its `type: ignore` is unused.
    assert project.findings() == {("driver.py", "unused-ignore", IGNORED_LINE)}
    project.set_leaf("GFP_KERNEL")
    assert project.findings() == {("driver.py", "atomic-sleep", CALL_LINE)}


def test_plain_mypy_reports_with_error_codes_and_notes(project: Project) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(project.config),
            "--cache-dir",
            str(project.cache),
            "drv",
        ],
        capture_output=True,
        text=True,
        cwd=project.root,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    # mypy prints the path as the run that cached the module was given it.
    errors = [line.split("drv/", 1)[1] for line in lines if ": error: " in line]
    assert errors == [
        f"driver.py:{CALL_LINE}: error: sleeping function called from atomic context: "
        "`middle.register()` may sleep  [atomic-sleep]"
    ]
    notes = [line for line in lines if f"driver.py:{CALL_LINE}: note: " in line]
    assert notes[0].endswith("this call expects the preemption count to be 0")
    assert notes[-1].endswith("which is called from here")
    assert any("drv/leaf.py:7)" in n for n in notes)
