"""The layers hold at run time: what an import really loads, not only what it names.

import-linter (`lint-imports`, pyproject.toml) checks the import statements. These tests
check the other half in a fresh interpreter: `import proofs` and the floor
(`ownership.include`) load no module of the simulated kernel (`ownership.bindings`), and
the simulated kernel loads no module of the Rust side (C never names Rust). An indirect
load, e.g. through a package `__init__` that imports more than its name suggests, is
caught here and not by the import graph.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import ownership.include

ROOT = Path(__file__).resolve().parents[2]

RUNTIME_CORE = frozenset(
    {
        "ownership",
        "ownership.config",
        "ownership.context",
        "ownership.errors",
        "ownership.lockdep",
        "ownership.refcount",
        "ownership.sched",
        "ownership.site",
        "ownership.warn",
    }
)


def _loaded_after(imports: list[str]) -> set[str]:
    """The `ownership*` modules in `sys.modules` after importing `imports`, freshly."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'ownership')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert isinstance(loaded, list)
    return {str(m) for m in loaded}


def _bindings(mods: set[str]) -> list[str]:
    return sorted(
        m for m in mods if m == "ownership.bindings" or m.startswith("ownership.bindings.")
    )


def _include_modules() -> list[str]:
    found = [
        m.name for m in pkgutil.walk_packages(ownership.include.__path__, "ownership.include.")
    ]
    return ["ownership.include", *sorted(found)]


def test_import_proofs_loads_no_simulated_kernel() -> None:
    loaded = _loaded_after(["proofs"])
    assert _bindings(loaded) == []
    # proofs read the floor only: nothing of the Rust side is loaded either.
    rust_side = sorted(
        m for m in loaded if m not in RUNTIME_CORE and not m.startswith("ownership.include")
    )
    assert rust_side == []
    assert "ownership.include.vma_rules" in loaded


def test_the_floor_is_a_leaf() -> None:
    modules = _include_modules()
    assert {"ownership.include.vm_flags", "ownership.include.vma_expr"} <= set(modules)
    assert {"ownership.include.vma_rules", "ownership.include.vma_ops"} <= set(modules)
    loaded = _loaded_after(modules)
    assert _bindings(loaded) == []
    # Only the runtime core is under the floor (errors, config, site).
    below = sorted(m for m in loaded if not m.startswith("ownership.include"))
    assert set(below) <= {"ownership", "ownership.errors", "ownership.config", "ownership.site"}


def test_the_simulated_kernel_loads_nothing_of_the_rust_side() -> None:
    loaded = _loaded_after(["ownership.bindings"])
    assert "ownership.bindings.mm" in loaded and "ownership.bindings.workqueue" in loaded
    rust_side = sorted(
        m
        for m in loaded
        if m not in RUNTIME_CORE
        and not m.startswith("ownership.include")
        and not m.startswith("ownership.bindings")
    )
    assert rust_side == []


def test_every_ownership_module_sits_in_a_layer() -> None:
    """A new top-level module of `ownership` must be placed in the layers contract: a
    module no layer names is not checked by import-linter at all."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    named = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    top = {f"ownership.{info.name}" for info in pkgutil.iter_modules(ownership.__path__)}
    assert top - named == set()
