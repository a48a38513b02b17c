"""`python -m ownership check` never reports a success it did not check: it runs with
its plugin when no configuration lists it, and a configuration it cannot read, or a
mypy too old for the plugin, is an error (exit status 2), not "no findings"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ownership.static.plugin import mypy_supported

from .corpus import PROJECT

# The README's example with the allocation moved under the spinlock, and a guard
# handed to another thread: two bugs only the plugin sees.
DRIVER = """\
from ownership.alloc import GFP_KERNEL, KBox
from ownership.sync import Mutex, MutexGuard, SpinLock
from ownership.task import spawn


def bump(g: MutexGuard[int]) -> None:
    g.data += 1


class Registry:
    def __init__(self) -> None:
        self.inner: SpinLock[dict[int, KBox[str]]] = SpinLock({}, name="registry.inner")
        self.count = Mutex(0, name="registry.count")

    def get_or_insert(self, key: int) -> KBox[str]:
        with self.inner.lock() as g:
            if key in g.data:
                return g.data[key]
            new = KBox.new(f"entry {key}", GFP_KERNEL)
            g.data[key] = new
            return new

    def bump_elsewhere(self) -> None:
        with self.count.lock() as g:
            spawn(bump, g).join()
"""


def check(
    tmp_path: Path, *args: str, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # The project's sources are found through MYPYPATH (the venv's editable install
    # is a path hook mypy does not follow); the folder itself has no configuration.
    env = dict(os.environ, MYPYPATH=str(PROJECT))
    cache_dir = cache if cache is not None else tmp_path / "cache"
    return subprocess.run(
        [sys.executable, "-m", "ownership", "check", "--cache-dir", str(cache_dir), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the checks that build: the model is analysed once."""
    return tmp_path_factory.mktemp("check-config-cache")


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    path = tmp_path / "drv.py"
    path.write_text(DRIVER, encoding="utf-8")
    return path


def test_without_a_configuration_the_check_uses_its_own(
    tmp_path: Path, driver: Path, shared_cache: Path
) -> None:
    proc = check(tmp_path, driver.name, cache=shared_cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "drv.py:19: error: sleeping function called from atomic context" in proc.stdout
    assert "drv.py:25: error: `g` is !Send but is handed to another thread" in proc.stdout


def test_a_configuration_without_the_plugin_still_gets_it(
    tmp_path: Path, driver: Path, shared_cache: Path
) -> None:
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n", encoding="utf-8")
    proc = check(tmp_path, driver.name, cache=shared_cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[atomic-sleep]" in proc.stdout and "[send-handoff]" in proc.stdout


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[mypy\nstrict = True\n", "File contains no section headers"),
        ("[mypy]\nstrictness = True\n", "Unrecognized option: strictness"),
        ("[mypy]\n[ownership-static]\nsilence = tests.*\n", "unknown setting(s): silence"),
    ],
)
def test_a_configuration_that_cannot_be_read_is_an_error(
    tmp_path: Path, driver: Path, text: str, says: str
) -> None:
    config = tmp_path / "broken.ini"
    config.write_text(text, encoding="utf-8")
    proc = check(tmp_path, "--config-file", config.name, driver.name)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert "Success" not in proc.stdout


def test_a_missing_configuration_file_is_an_error(tmp_path: Path, driver: Path) -> None:
    proc = check(tmp_path, "--config-file", "no-such.ini", driver.name)
    assert proc.returncode == 2
    assert "configuration file not found: no-such.ini" in proc.stderr


def test_mypy_versions_the_plugin_supports() -> None:
    assert mypy_supported("2.4.0") and mypy_supported("2.4.1") and mypy_supported("2.5.0+dev.1a2b")
    assert mypy_supported("3.0")
    assert (
        not mypy_supported("2.3.1") and not mypy_supported("1.20.2") and not mypy_supported("1.8.0")
    )
