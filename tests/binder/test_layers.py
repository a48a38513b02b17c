"""binder/ reaches the simulated C side only through ownership, never `ownership.bindings`;
binder's userspace side reaches the driver only through the UAPI.

Two independent checks: the import-linter contract of pyproject.toml (run as the test
command runs it), and a scan of every binder module's imports, which also catches the
forms a static import graph may miss (`from ownership import bindings`, an
`importlib.import_module` of the name). `binder.__main__` is the one exception: it is
the machine that boots a simulated kernel, not driver code.
"""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

import binder

BINDER_DIR = pathlib.Path(binder.__file__).parent
ALLOWED = {"__main__.py"}
USERSPACE = ("client", "servicemanager", "demo", "bench")
"""The modules that play userspace: they may import, of binder, the UAPI and each other."""
USERSPACE_MAY_IMPORT = {"uapi", *USERSPACE}


def forbidden_imports(source: str) -> list[str]:
    """Every import of `ownership.bindings` in `source`, as text."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("ownership.bindings")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.startswith("ownership.bindings"):
                found.append(node.module)
            elif node.module == "ownership":
                found += [f"ownership.{a.name}" for a in node.names if a.name == "bindings"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("ownership.bindings") and " " not in node.value:
                found.append(f"string {node.value!r}")
    return found


def test_the_scanner_finds_every_form() -> None:
    src = (
        "import ownership.bindings\n"
        "from ownership.bindings.kernel import Kernel\n"
        "from ownership import bindings, page\n"
        "import importlib\nimportlib.import_module('ownership.bindings.mm')\n"
        "from ownership.page import Page\n"
    )
    assert forbidden_imports(src) == [
        "ownership.bindings",
        "ownership.bindings.kernel",
        "ownership.bindings",
        "string 'ownership.bindings.mm'",
    ]


def test_no_driver_module_imports_the_c_side() -> None:
    offenders = {}
    for path in sorted(BINDER_DIR.rglob("*.py")):
        if path.name in ALLOWED and path.parent == BINDER_DIR:
            continue
        bad = forbidden_imports(path.read_text())
        if bad:
            offenders[str(path.relative_to(BINDER_DIR))] = bad
    assert not offenders, offenders


def test_import_linter_contract_is_kept() -> None:
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    if exe is None:
        pytest.fail("lint-imports is not installed in the virtualenv")
    root = BINDER_DIR.parent
    res = subprocess.run([exe], cwd=root, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert "binder reaches the C side only through ownership KEPT" in res.stdout, out
    assert (
        "binder's userspace side speaks to the driver only through the UAPI KEPT" in res.stdout
    ), out


def binder_imports(source: str) -> set[str]:
    """The binder modules (relative to the package) that `source`, a binder module, imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("binder.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:
                found |= {a.name for a in node.names}
            elif node.level == 1 and node.module is not None:
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module is not None and node.module.startswith("binder."):
                found.add(node.module.split(".")[1])
    return found


def test_the_userspace_scanner_finds_every_form() -> None:
    src = "from . import uapi as u\nfrom .process import Process\nimport binder.node.wrapper\n"
    assert binder_imports(src) == {"uapi", "process", "node"}


def test_the_userspace_side_imports_no_driver_module() -> None:
    offenders = {}
    for name in USERSPACE:
        bad = binder_imports((BINDER_DIR / f"{name}.py").read_text()) - USERSPACE_MAY_IMPORT
        if bad:
            offenders[name] = sorted(bad)
    assert not offenders, offenders
