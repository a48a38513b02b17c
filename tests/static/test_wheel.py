"""The wheel, installed in a fresh venv outside the repo, checks a driver as the repo does.

The wheel is built (`pip wheel --no-deps`), installed into a new venv in a temporary
folder, and a driver with the README's example made buggy is checked there by
`python -m ownership check` (no configuration) and by plain `mypy` with a mypy.ini that
enables the plugin: both must report the transitive sleep through `KBox.new` and the
hand-off through `spawn`, which only the shipped summaries make visible (mypy keeps no
function bodies of installed packages), and nothing else.

The wheel is built in this venv (no build isolation: the test extras carry the build
requirements). The dependencies are installed without the network from a wheelhouse
kept in the user's cache (filled once, with the versions of this venv, by `pip download`); when it
can be neither used nor filled the test skips, saying why.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ownership.static.shipped import SHIPPED_NAME

from .corpus import PROJECT
from .test_check_config import DRIVER

pytestmark = pytest.mark.wheel


def _dependencies() -> tuple[str, ...]:
    """The distribution names of the project's runtime dependencies (pyproject.toml)."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    return tuple(
        m.group(0) for dep in project["dependencies"] if (m := re.match(r"[A-Za-z0-9_.-]+", dep))
    )


DEPENDENCIES = _dependencies()
EXPECTED = (
    "drv.py:19: error: sleeping function called from atomic context: `KBox.new()` may sleep "
    "(with `GFP_KERNEL`, which allows direct reclaim)  [atomic-sleep]",
    "drv.py:25: error: `g` is !Send but is handed to another thread by `spawn()`  [send-handoff]",
)


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def wheelhouse() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rust-mm-model-tests" / "wheelhouse"


def pins() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in DEPENDENCIES]


def install(python: Path, wheel: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    return run([*pip, "--no-index", "--find-links", str(wheelhouse()), str(wheel), *pins()], cwd)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repo with only the wheel and its dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # Built from a copy of the sources: setuptools builds in `build/` under the source
    # tree, and pytest-xdist workers that each build the wheel must not share it.
    source = root / "src"
    shutil.copytree(
        PROJECT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "docs", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    # Built in this venv, which has the build requirements (setuptools, mypy): an
    # isolated build would fetch them from the index every time.
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(dist),
            str(source),
        ],
        root,
    )
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    (wheel,) = dist.glob("rust_mm_model-*.whl")
    env = root / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(env)], root)
    assert made.returncode == 0, made.stderr
    python = env / "bin" / "python"
    done = install(python, wheel, root)
    if done.returncode != 0:
        # Fill the wheelhouse once (the only step that may need the package index).
        fetched = run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary",
                ":all:",
                "-d",
                str(wheelhouse()),
                *pins(),
            ],
            root,
        )
        if fetched.returncode != 0:
            pytest.skip(
                "the dependencies cannot be installed without the network and the wheelhouse "
                f"cannot be filled:\n{(fetched.stdout + fetched.stderr)[-2000:]}"
            )
        done = install(python, wheel, root)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.fixture
def driver_dir(tmp_path: Path) -> Path:
    (tmp_path / "drv.py").write_text(DRIVER, encoding="utf-8")
    return tmp_path


def findings(out: str) -> list[str]:
    return [line for line in out.splitlines() if ": error: " in line]


def test_the_wheel_ships_its_summaries(venv: Path) -> None:
    python = venv / "bin" / "python"
    proc = run(
        [str(python), "-c", "import ownership.static.shipped as s; s.load_shipped() or exit(3)"],
        venv,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = run(
        [str(python), "-c", "import ownership, os; print(os.path.dirname(ownership.__file__))"],
        venv,
    )
    assert (Path(site.stdout.strip()) / "static" / SHIPPED_NAME).is_file()


def test_check_finds_the_bugs_without_a_configuration(venv: Path, driver_dir: Path) -> None:
    proc = run([str(venv / "bin" / "python"), "-m", "ownership", "check", "drv.py"], driver_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert findings(proc.stdout) == list(EXPECTED), proc.stdout
    assert "site-packages/ownership/alloc/__init__.py" in proc.stdout


def test_plain_mypy_with_the_plugin_finds_them_too(venv: Path, driver_dir: Path) -> None:
    (driver_dir / "mypy.ini").write_text(
        "[mypy]\nstrict = True\nplugins = ownership.static.plugin\n", encoding="utf-8"
    )
    proc = run([str(venv / "bin" / "python"), "-m", "mypy", "--no-pretty", "drv.py"], driver_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert findings(proc.stdout) == list(EXPECTED), proc.stdout
