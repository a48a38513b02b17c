"""Per-function summaries and their on-disk store, as klint keeps per-crate metadata.

The analysis (`ownership.static.analysis`) infers, for every function it sees, a
`FuncSummary`: whether the function may sleep (always, or only when one of its GFP
parameters allows direct reclaim), whether it is an `unsafe fn` (with its Safety text),
and which of its parameters it hands to another thread. A caller in another module
reads the callee's summary instead of re-analysing its body.

mypy does not keep function bodies (nor decorators) of modules it loads from its
incremental cache, so the summaries of each module are written next to mypy's cache,
one JSON file per module (`<cache_dir>/<python version>/ownership-static/<module>.json`),
when the module is checked, and read back when a later run needs a summary of a module
that mypy did not re-check. A record also lists the modules whose summaries it used,
with the hash of their source: when one of them changes, the plugin tells mypy (through
`report_config_data`) that the dependent module's cache is stale, so its findings are
recomputed rather than replayed.

The types are split into the summary of one function (`FuncSummary`), the explanation
of why it sleeps (`Reason`), the Send/Sync declarations of a class (`ClassDecl`) and
the per-module record (`ModuleRecord`), because each is read at a different time: a
caller needs one function's summary, a report needs the chain of reasons, and the cache
check needs only the record's dependencies.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "STORE_VERSION",
    "ClassDecl",
    "FuncSummary",
    "ModuleRecord",
    "Reason",
    "Store",
    "source_hash",
]

STORE_VERSION = 3
"""Bumped whenever the record format or the meaning of a summary changes."""


@dataclass(frozen=True)
class Reason:
    """Why a function may sleep: a declaration, or the first sleeping call in its body.

    Invariants: `kind` is "declared" (the `@may_sleep` decorator or a built-in fact of
    the model, at `line` of the function's own file) or "call" (the function calls
    `callee`, displayed as `label`, at `line`; `detail` says with which GFP flags).
    """

    kind: str
    line: int
    callee: str = ""
    label: str = ""
    detail: str = ""

    def to_json(self) -> list[Any]:
        return [self.kind, self.line, self.callee, self.label, self.detail]

    @staticmethod
    def from_json(data: list[Any]) -> Reason:
        kind, line, callee, label, detail = data
        return Reason(str(kind), int(line), str(callee), str(label), str(detail))


@dataclass
class FuncSummary:
    """What a caller needs to know about one function.

    Invariants: `always` and `gfp` are exclusive (a function that always may sleep
    has no GFP condition); `reason` is set iff `always` or `gfp`; `gfp_defaults`
    classifies the default value of each GFP parameter ("sleep", "nosleep" or
    "unknown"); `unsafe` is the Safety text of an `@unsafe_fn`, declared at
    `unsafe_line`; `handoff` names the parameters whose values go to another thread.
    """

    fullname: str
    line: int
    always: bool = False
    gfp: tuple[str, ...] = ()
    reason: Reason | None = None
    gfp_defaults: dict[str, str] = field(default_factory=dict)
    declared: str = ""
    unsafe: str | None = None
    unsafe_line: int = 0
    handoff: tuple[str, ...] = ()

    @property
    def may_sleep(self) -> bool:
        return self.always or bool(self.gfp)

    def is_trivial(self) -> bool:
        return not (self.may_sleep or self.unsafe is not None or self.handoff)

    def same_facts(self, other: FuncSummary) -> bool:
        """Equal as far as callers can tell (the reason is only an explanation)."""
        return (
            self.always == other.always
            and set(self.gfp) == set(other.gfp)
            and set(self.handoff) == set(other.handoff)
            and self.unsafe == other.unsafe
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line}
        if self.always:
            out["always"] = True
        if self.gfp:
            out["gfp"] = list(self.gfp)
        if self.reason is not None:
            out["reason"] = self.reason.to_json()
        if self.gfp_defaults:
            out["gfp_defaults"] = dict(self.gfp_defaults)
        if self.declared:
            out["declared"] = self.declared
        if self.unsafe is not None:
            out["unsafe"] = self.unsafe
            out["unsafe_line"] = self.unsafe_line
        if self.handoff:
            out["handoff"] = list(self.handoff)
        return out

    @staticmethod
    def from_json(fullname: str, data: dict[str, Any]) -> FuncSummary:
        reason = data.get("reason")
        unsafe = data.get("unsafe")
        return FuncSummary(
            fullname=fullname,
            line=int(data.get("line", 0)),
            always=bool(data.get("always", False)),
            gfp=tuple(str(p) for p in data.get("gfp", ())),
            reason=Reason.from_json(reason) if reason is not None else None,
            gfp_defaults={str(k): str(v) for k, v in data.get("gfp_defaults", {}).items()},
            declared=str(data.get("declared", "")),
            unsafe=str(unsafe) if unsafe is not None else None,
            unsafe_line=int(data.get("unsafe_line", 0)),
            handoff=tuple(str(p) for p in data.get("handoff", ())),
        )


@dataclass(frozen=True)
class ClassDecl:
    """The explicit Send/Sync declarations of one class (`impl_send`, `not_sync`, ...).

    Invariants: None means "not declared by this class" (look further up the MRO).
    """

    send: bool | None = None
    sync: bool | None = None

    def to_json(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        if self.send is not None:
            out["send"] = self.send
        if self.sync is not None:
            out["sync"] = self.sync
        return out

    @staticmethod
    def from_json(data: dict[str, Any]) -> ClassDecl:
        send = data.get("send")
        sync = data.get("sync")
        return ClassDecl(
            send=bool(send) if send is not None else None,
            sync=bool(sync) if sync is not None else None,
        )


@dataclass
class ModuleRecord:
    """The summaries of one module and the modules they were computed from.

    Invariants: `hash` is the `source_hash` of `path` when the record was made;
    `deps` maps every module whose summaries this module's analysis read (directly or
    through their own records) to `(path, source hash)` at that time; `functions`
    holds only non-trivial summaries.
    """

    module: str
    path: str
    hash: str
    functions: dict[str, FuncSummary] = field(default_factory=dict)
    classes: dict[str, ClassDecl] = field(default_factory=dict)
    deps: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STORE_VERSION,
            "module": self.module,
            "path": self.path,
            "hash": self.hash,
            "functions": {k: v.to_json() for k, v in sorted(self.functions.items())},
            "classes": {k: v.to_json() for k, v in sorted(self.classes.items())},
            "deps": {k: list(v) for k, v in sorted(self.deps.items())},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ModuleRecord | None:
        if data.get("version") != STORE_VERSION:
            return None
        return ModuleRecord(
            module=str(data["module"]),
            path=str(data["path"]),
            hash=str(data["hash"]),
            functions={
                str(k): FuncSummary.from_json(str(k), v) for k, v in data.get("functions", {}).items()
            },
            classes={str(k): ClassDecl.from_json(v) for k, v in data.get("classes", {}).items()},
            deps={str(k): (str(v[0]), str(v[1])) for k, v in data.get("deps", {}).items()},
        )


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
    only for one build); a record in `_records` is the newest known for its module;
    `_hashes` caches source hashes for one build (a store lives as long as a build).
    """

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._records: dict[str, ModuleRecord | None] = {}
        self._hashes: dict[str, str] = {}

    def hash(self, path: str, *, fresh: bool = False) -> str:
        """`source_hash(path)`, read once per build unless `fresh`."""
        h = None if fresh else self._hashes.get(path)
        if h is None:
            h = self._hashes[path] = source_hash(path)
        return h

    def _file(self, module: str) -> str | None:
        if self.directory is None:
            return None
        return os.path.join(self.directory, module + ".json")

    def get(self, module: str) -> ModuleRecord | None:
        """The newest record of `module`, from memory or disk."""
        if module in self._records:
            return self._records[module]
        rec: ModuleRecord | None = None
        fn = self._file(module)
        if fn is not None:
            try:
                with open(fn, encoding="utf-8") as f:
                    rec = ModuleRecord.from_json(json.load(f))
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                rec = None
        self._records[module] = rec
        return rec

    def put(self, rec: ModuleRecord) -> None:
        """Keep `rec` as the module's record and write it atomically to disk."""
        self._records[rec.module] = rec
        fn = self._file(rec.module)
        if fn is None or self.directory is None:
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(rec.to_json(), f, separators=(",", ":"))
            os.replace(tmp, fn)
        except OSError:
            # A read-only cache directory only costs the next run a re-check.
            pass

    def is_current(self, module: str, path: str) -> bool:
        """Whether the stored record of `module` still describes the sources on disk."""
        rec = self.get(module)
        if rec is None or rec.hash != self.hash(path):
            return False
        return all(self.hash(p) == h for p, h in rec.deps.values())
