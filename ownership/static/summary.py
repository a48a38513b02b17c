"""Function summaries: what a caller needs to know about a callee, and why.

`FuncSummary` is the summary of one function (does it sleep, always or depending on a
GFP parameter; is it an `unsafe fn`; which parameters does it hand to another thread),
`Reason` explains why it sleeps (its declaration, or its first sleeping call, so that a
report can walk the chain), `ClassDecl` holds a class's explicit Send/Sync declarations,
and `ModuleRecord` is everything one module contributes, with the modules it read. They
are split because each is read at a different time: a caller needs one function's
summary, a report needs the chain of reasons, the cache check needs only the record's
dependencies (and reads them from the raw JSON, see `ownership.static.store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STORE_VERSION", "ClassDecl", "FuncSummary", "ModuleRecord", "Reason"]

STORE_VERSION = 3
"""The version of the record format: bumped whenever it or the meaning of a summary
changes (`ownership.static.store` ignores a stored record of another version)."""


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
                str(k): FuncSummary.from_json(str(k), v)
                for k, v in data.get("functions", {}).items()
            },
            classes={str(k): ClassDecl.from_json(v) for k, v in data.get("classes", {}).items()},
            deps={str(k): (str(v[0]), str(v[1])) for k, v in data.get("deps", {}).items()},
        )
