"""The summaries shipped inside the wheel: `ownership/static/summaries.json`.

mypy strips the function bodies of installed packages (it reports no errors there, so
it does not keep them), so the plugin cannot summarise `ownership` and `binder` once
they are pip-installed: `KBox.new(..., GFP_KERNEL)` would no longer be known to reach
`alloc_check`, nor `spawn` to hand its arguments to another thread. The wheel
therefore carries the records the plugin computes from the sources
(`ownership.static.summary.ModuleRecord`, one per module), made at build time by
`ownership.static.build_summaries` (setup.py's `build_py` runs it), with paths relative
to the directory holding the packages.

The file says which record format (`STORE_VERSION`) and which package version it was
made for; a file of another format or version is refused (`ShippedError`), as is an
installed package without the file. A module's record is used only when the source
mypy found for it is the one the record was made from (same hash): a source checkout,
or an edited installed file, is analysed from its source instead.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from typing import Any

from .store import source_hash
from .summary import STORE_VERSION, ModuleRecord

__all__ = [
    "DIST_NAME",
    "FORMAT",
    "PACKAGES",
    "SHIPPED_NAME",
    "Shipped",
    "ShippedError",
    "load_shipped",
    "write_shipped",
]

SHIPPED_NAME = "summaries.json"
FORMAT = "ownership-static-summaries"
DIST_NAME = "rust-mm-model"
PACKAGES = ("ownership", "binder")
"""The packages whose summaries ship (the model and the driver built on it)."""

_STATIC_DIR = os.path.dirname(os.path.abspath(__file__))


class ShippedError(RuntimeError):
    """The shipped summaries are missing from an installed package, or do not match it."""


class Shipped:
    """The shipped records, by module, with paths made absolute under `root`.

    Invariants: every record's `path` and dependency paths are under `root`; records
    are parsed when first asked for.
    """

    def __init__(self, root: str, package_version: str, raw: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.package_version = package_version
        self._raw = raw
        self._parsed: dict[str, ModuleRecord | None] = {}

    def modules(self) -> list[str]:
        return sorted(self._raw)

    def get(self, module: str) -> ModuleRecord | None:
        if module in self._parsed:
            return self._parsed[module]
        data = self._raw.get(module)
        rec: ModuleRecord | None = None
        if data is not None:
            full = dict(
                data, version=STORE_VERSION, path=os.path.join(self.root, str(data["path"]))
            )
            full["deps"] = {
                k: [os.path.join(self.root, str(v[0])), v[1]]
                for k, v in data.get("deps", {}).items()
            }
            rec = ModuleRecord.from_json(full)
        self._parsed[module] = rec
        return rec

    def matches(self, module: str, path: str) -> bool:
        """Whether the record of `module` was made from the file mypy found at `path`."""
        rec = self.get(module)
        return rec is not None and source_hash(path) == rec.hash


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_installed(directory: str) -> bool:
    parts = os.path.normpath(directory).split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts


def load_shipped(static_dir: str = _STATIC_DIR) -> Shipped | None:
    """The summaries shipped beside this package (None in a source checkout without them).

    Raises ShippedError when an installed package has no summaries, or when the file
    is of another record format or package version than the package installed.
    """
    path = os.path.join(static_dir, SHIPPED_NAME)
    root = os.path.dirname(os.path.dirname(static_dir))
    if not os.path.exists(path):
        if _is_installed(static_dir):
            raise ShippedError(
                f"{DIST_NAME} is installed without its static summaries ({path}): mypy does not "
                "analyse installed packages' bodies, so the checks would miss what they reach; "
                "install it from a wheel built by the project's setup.py"
            )
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ShippedError(f"cannot read the shipped summaries {path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ShippedError(f"{path} is not a file of shipped summaries")
    if doc.get("store_version") != STORE_VERSION:
        raise ShippedError(
            f"{path} holds summaries of format {doc.get('store_version')}, "
            f"this checker reads format {STORE_VERSION}: rebuild the package"
        )
    installed = _installed_version()
    if installed is None and not _is_installed(static_dir):
        # A source checkout that was never installed: its sources are analysed.
        return None
    if doc.get("package_version") != installed:
        raise ShippedError(
            f"{path} was made for {DIST_NAME} {doc.get('package_version')}, "
            f"but {installed} is installed: rebuild the package"
        )
    modules = doc.get("modules")
    if not isinstance(modules, dict):
        raise ShippedError(f"{path} has no modules")
    return Shipped(root, str(doc["package_version"]), modules)


def write_shipped(path: str, records: list[ModuleRecord], root: str, package_version: str) -> None:
    """Write `records` (sources under `root`) as the shipped summaries of that version."""
    modules: dict[str, Any] = {}
    for rec in sorted(records, key=lambda r: r.module):
        data = rec.to_json()
        del data["version"]
        data["path"] = os.path.relpath(rec.path, root)
        data["deps"] = {k: [os.path.relpath(v[0], root), v[1]] for k, v in sorted(rec.deps.items())}
        modules[rec.module] = data
    doc = {
        "format": FORMAT,
        "store_version": STORE_VERSION,
        "package_version": package_version,
        "modules": modules,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"), sort_keys=True)
