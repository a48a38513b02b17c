"""The summary store: one JSON file per module, beside mypy's incremental cache.

mypy does not keep function bodies (nor decorators) of modules it loads from its
incremental cache, so the plugin writes each module's summaries
(`ownership.static.summary.ModuleRecord`) when the module is checked, to
`<cache_dir>/<python version>/ownership-static/<module>.json`, and reads them back when
a later run needs a summary of a module mypy did not re-check. A record also lists the
modules whose summaries it used, with the hash of their source: when one of them
changes, the plugin tells mypy (through `report_config_data`) that the dependent
module's cache is stale, so its findings are recomputed rather than replayed.

This module is on the path of every warm mypy run, so it stays light: the cache check
reads only the raw JSON's hashes, and parses a record only when one is needed. The
record format and its version (`STORE_VERSION`) belong to `ownership.static.summary`,
which imports nothing of this package; this module re-exports the version.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from .summary import STORE_VERSION, ModuleRecord

if TYPE_CHECKING:
    from .shipped import Shipped

__all__ = ["STORE_VERSION", "Store", "source_hash"]


def source_hash(path: str) -> str:
    """A digest of the file's bytes ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read(), usedforsecurity=False).hexdigest()
    except OSError:
        return ""


class Store:
    """Module records in memory, backed by one JSON file per module in `directory`.

    Invariants: `directory` is None when mypy runs without a cache (then records live
    only for one build); `_raw` holds the newest JSON known for a module (None when
    there is none) and `_records` its parsed form; `_hashes` and `_stats` cache source
    hashes and (mtime, size) for one build (a store lives as long as a build);
    `_accepted` holds the modules whose shipped record (`ownership.static.shipped`)
    describes the file mypy found: those records come first and are never stale.
    """

    def __init__(self, directory: str | None, shipped: Shipped | None = None) -> None:
        self.directory = directory
        self.shipped = shipped
        self._accepted: dict[str, bool] = {}
        self._raw: dict[str, dict[str, Any] | None] = {}
        self._records: dict[str, ModuleRecord | None] = {}
        self._hashes: dict[str, str] = {}
        self._stats: dict[str, list[int] | None] = {}

    def hash(self, path: str, *, fresh: bool = False) -> str:
        """`source_hash(path)`, read once per build unless `fresh`."""
        h = None if fresh else self._hashes.get(path)
        if h is None:
            h = self._hashes[path] = source_hash(path)
        return h

    def stat(self, path: str) -> list[int] | None:
        """(mtime in ns, size) of a file, once per build: the cheap test before hashing."""
        if path in self._stats:
            return self._stats[path]
        try:
            st = os.stat(path)
            key: list[int] | None = [st.st_mtime_ns, st.st_size]
        except OSError:
            key = None
        self._stats[path] = key
        return key

    def _unchanged(self, path: str, digest: object, stats: dict[str, Any]) -> bool:
        # As mypy does: an unchanged (mtime, size) means an unchanged file; otherwise
        # the content decides (a touched but identical file is still current).
        if stats.get(path) is not None and stats.get(path) == self.stat(path):
            return True
        return self.hash(path) == digest

    def _file(self, module: str) -> str | None:
        if self.directory is None:
            return None
        return os.path.join(self.directory, module + ".json")

    def raw(self, module: str) -> dict[str, Any] | None:
        """The stored JSON of `module`, if it is there and of this version."""
        if module in self._raw:
            return self._raw[module]
        data: dict[str, Any] | None = None
        fn = self._file(module)
        if fn is not None:
            try:
                with open(fn, encoding="utf-8") as f:
                    loaded = json.load(f)
                if isinstance(loaded, dict) and loaded.get("version") == STORE_VERSION:
                    data = loaded
            except (OSError, ValueError):
                data = None
        self._raw[module] = data
        return data

    def accept_shipped(self, module: str, path: str) -> bool:
        """Whether `module`, found by mypy at `path`, is described by a shipped record."""
        res = self._accepted.get(module)
        if res is None:
            res = self.shipped is not None and self.shipped.matches(module, path)
            self._accepted[module] = res
        return res

    def is_shipped(self, module: str) -> bool:
        """Whether `module`'s shipped record was accepted in this build."""
        return self._accepted.get(module, False)

    def get(self, module: str) -> ModuleRecord | None:
        """The newest record of `module`: its shipped one if accepted, else from memory
        or disk."""
        if self.shipped is not None and self._accepted.get(module):
            return self.shipped.get(module)
        if module in self._records:
            return self._records[module]
        data = self.raw(module)
        rec: ModuleRecord | None = None
        if data is not None:
            try:
                rec = ModuleRecord.from_json(data)
            except (KeyError, TypeError, ValueError, IndexError):
                rec = None
        self._records[module] = rec
        return rec

    def put(self, rec: ModuleRecord) -> None:
        """Keep `rec` as the module's record and write it atomically to disk."""
        data = rec.to_json()
        data["stats"] = {
            p: self.stat(p) for p in [rec.path, *(dep[0] for dep in rec.deps.values())]
        }
        self._records[rec.module] = rec
        self._raw[rec.module] = data
        fn = self._file(rec.module)
        if fn is None or self.directory is None:
            return
        tmp = f"{fn}.{os.getpid()}.tmp"
        try:
            os.makedirs(self.directory, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, fn)
        except OSError:
            # A read-only cache directory only costs the next run a re-check.
            pass

    def is_current(self, module: str, path: str) -> bool:
        """Whether the stored record of `module` still describes the sources on disk."""
        if self.accept_shipped(module, path):
            return True
        data = self.raw(module)
        if data is None:
            return False
        stats = data.get("stats")
        deps = data.get("deps")
        if not isinstance(stats, dict) or not isinstance(deps, dict):
            return False
        if not self._unchanged(path, data.get("hash"), stats):
            return False
        for dep in deps.values():
            if not (
                isinstance(dep, list)
                and len(dep) == 2
                and self._unchanged(str(dep[0]), dep[1], stats)
            ):
                return False
        return True
