"""Function summaries across modules, and the findings of one module.

`Analyzer` lives as long as one mypy build. When mypy finishes checking a module, the
plugin hands it the module's tree and type map; the analyzer walks it
(`ownership.static.facts`), computes the summary of every function by a fixed point
over the module's calls (a function may sleep if it calls, outside any atomic section
of its own, something that may sleep; it is GFP-conditional if it forwards its own GFP
parameter to a GFP-conditional callee; it hands a parameter to another thread if it
passes it to a hand-off parameter), judges every call against its callees' summaries,
and stores the summaries for later modules and later runs.

Callees in other modules are summarised by the module that defines them: from this
build (the module was checked earlier), from the store (mypy loaded it from its
cache), or, for a module of the same import cycle that mypy has not checked yet, from
a provisional walk of its tree with declared types, solved together with the current
module.

A few functions of the model are facts rather than code to analyse
(`INTRINSICS`): `might_sleep()` itself, `CondVar.wait` (it sleeps, but releases the
guard it is given first) and `check_send` (the hand-off check every hand-off calls).
Everything else is read from the `@may_sleep` and `@unsafe_fn` declarations of
`ownership` and inferred from bodies.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mypy.nodes import Expression, MypyFile
from mypy.types import Type

from .facts import CallFact, Finding, FunctionFacts, ModuleFacts, Note, Region
from .resolve import Typer
from .store import Store
from .summary import ClassDecl, FuncSummary, ModuleRecord, Reason
from .walker import ModuleWalker, extract_module, scan_class_decls

__all__ = ["INTRINSICS", "Analyzer", "display_path"]

INTRINSICS: dict[str, FuncSummary] = {
    "ownership.context.might_sleep": FuncSummary(
        "ownership.context.might_sleep",
        0,
        always=True,
        reason=Reason("declared", 0),
        declared="might_sleep(), the may-sleep annotation itself",
    ),
    "ownership.sync.condvar.CondVar.wait": FuncSummary(
        "ownership.sync.condvar.CondVar.wait",
        0,
        always=True,
        reason=Reason("declared", 0),
        declared="a wait for a notification (it releases only its own guard)",
    ),
    "ownership.sync.condvar.CondVar.wait_timeout": FuncSummary(
        "ownership.sync.condvar.CondVar.wait_timeout",
        0,
        always=True,
        reason=Reason("declared", 0),
        declared="a wait for a notification (it releases only its own guard)",
    ),
    "ownership.marker.check_send": FuncSummary(
        "ownership.marker.check_send",
        0,
        handoff=("value",),
    ),
}

_MAX_CHAIN = 12


def display_path(path: str) -> str:
    """A path as mypy prints it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


@dataclass
class Verdict:
    """Whether a call may sleep, judged against its callees' summaries.

    Invariants: when `sleeps`, `callee` is the callee that sleeps and `detail` says
    with which GFP flags (if any); `fwd` lists the caller's own GFP parameters whose
    flags decide it otherwise (empty when `sleeps`).
    """

    sleeps: bool = False
    callee: str = ""
    detail: str = ""
    fwd: list[str] = field(default_factory=list)


_UNKNOWN_GFP = "which may allow direct reclaim (not known statically)"
"""The verdict's detail for GFP flags the checker cannot evaluate (assumed to sleep)."""

_LIMIT_UNKNOWN_GFP = (
    "limit: the checker cannot evaluate these GFP flags statically (an attribute, a call's "
    "result) and assumes they allow direct reclaim; pass `GFP_ATOMIC`/`GFP_NOWAIT` literally, "
    "or through a GFP parameter, to make the verdict exact"
)
_LIMIT_ARC_DROP = (
    "limit: `Arc.drop()` runs `drop_arc()` only when it drops the last reference; the checker "
    "cannot tell statically whether this one is and reports it as if it were (the runtime "
    "refuses only a last drop)"
)


class Analyzer:
    """The build-wide state: summaries by module, the pool being solved, the store.

    Invariants: `done` holds the modules whose record is final for this build;
    `pool` holds the facts of the module being finished and of the provisional
    modules of its import cycle; `summaries` holds the current (possibly not yet
    fixed) summaries of every function in the pool.
    """

    def __init__(
        self,
        modules: Callable[[], dict[str, MypyFile]],
        store: Store,
        in_scope: Callable[[str], bool],
    ) -> None:
        self._modules = modules
        self.store = store
        self.in_scope = in_scope
        self.done: set[str] = set()
        self.pool: dict[str, ModuleFacts] = {}
        self.provisional: dict[str, ModuleFacts] = {}
        self.summaries: dict[str, FuncSummary] = {}
        self.used: set[str] = set()
        self._module_of: dict[str, str | None] = {}
        self._dirty = False
        self._solving = False
        self._class_decls: dict[str, dict[str, ClassDecl]] = {}
        self._lines: dict[str, list[str]] = {}
        self._final: dict[str, FuncSummary | None] = {}
        self._walkers: dict[str, ModuleWalker] = {}
        self._not_found: set[str] = set()

    def lines(self, path: str) -> list[str]:
        """The source lines of a module, read once per build."""
        cached = self._lines.get(path)
        if cached is None:
            cached = self._lines[path] = _read_lines(path)
        return cached

    # --- where things live -------------------------------------------------------

    def module_of(self, fullname: str) -> str | None:
        """The module defining `fullname` (the longest module-name prefix)."""
        if fullname in self._module_of:
            return self._module_of[fullname]
        mods = self._modules()
        name = fullname
        found: str | None = None
        while "." in name:
            name = name.rsplit(".", 1)[0]
            if name in mods:
                found = name
                break
        self._module_of[fullname] = found
        return found

    def path_of(self, module: str) -> str:
        facts = self.pool.get(module) or self.provisional.get(module)
        if facts is not None:
            return facts.path
        tree = self._modules().get(module)
        if tree is not None and tree.path:
            return tree.path
        rec = self.store.get(module)
        return rec.path if rec is not None else module

    def short(self, fullname: str) -> str:
        mod = self.module_of(fullname)
        name = fullname[len(mod) + 1 :] if mod else fullname
        return name.replace(".<module>", "<module>")

    # --- summaries -----------------------------------------------------------------

    def _record_for(self, module: str) -> ModuleRecord | None:
        """The final record of a module checked earlier or loaded from mypy's cache."""
        tree = self._modules().get(module)
        if (
            self.store.is_shipped(module)
            or module in self.done
            or tree is None
            or tree.is_cache_skeleton
            or not tree.defs
        ):
            return self.store.get(module)
        return None

    def _ensure_provisional(self, module: str, fullname: str | None = None) -> bool:
        """Walk, in a module of the current import cycle that mypy has not checked yet,
        the function `fullname` (when given): only what other modules call is needed."""
        walker = self._walkers.get(module)
        if walker is None:
            tree = self._modules().get(module)
            if tree is None or tree.is_cache_skeleton or not tree.defs or module in self.done:
                return False
            walker = ModuleWalker(tree, Typer(None), self.lines(tree.path), self.class_decl)
            self._walkers[module] = walker
            self.provisional[module] = walker.facts
        if module not in self.pool:
            self.pool[module] = walker.facts
            self._dirty = True
        if (
            fullname is not None
            and fullname not in walker.facts.functions
            and fullname not in self._not_found
        ):
            if walker.define_function(fullname):
                self._dirty = True
            else:
                self._not_found.add(fullname)
        return True

    def summary(self, fullname: str) -> FuncSummary | None:
        intrinsic = INTRINSICS.get(fullname)
        if intrinsic is not None:
            return intrinsic
        module = self.module_of(fullname)
        if module is None or not self.in_scope(module):
            return None
        self.used.add(module)
        if module in self.pool:
            if fullname not in self.summaries and module in self._walkers:
                # A function of a provisional module not walked yet.
                self._ensure_provisional(module, fullname)
                if self._dirty and not self._solving:
                    self.solve()
            return self.summaries.get(fullname)
        if fullname in self._final:
            return self._final[fullname]
        rec = self._record_for(module)
        if rec is not None:
            found = self._final[fullname] = rec.functions.get(fullname)
            return found
        if self._ensure_provisional(module, fullname):
            if not self._solving:
                self.solve()
            return self.summaries.get(fullname)
        return None

    def class_decl(self, fullname: str) -> ClassDecl | None:
        module = self.module_of(fullname)
        if module is None or not self.in_scope(module):
            return None
        self.used.add(module)
        rec = self._record_for(module)
        if rec is not None:
            return rec.classes.get(fullname)
        decls = self._class_decls.get(module)
        if decls is None:
            tree = self._modules().get(module)
            decls = scan_class_decls(tree) if tree is not None else {}
            self._class_decls[module] = decls
        return decls.get(fullname)

    def verdict(self, call: CallFact) -> Verdict:
        """May this call sleep, given its callees' summaries and its GFP arguments?"""
        out = Verdict()
        for callee in call.callees:
            s = self.summary(callee)
            if s is None or not s.may_sleep:
                continue
            if s.always:
                return Verdict(True, callee, "")
            for p in s.gfp:
                arg = call.args.get(p)
                cls = arg.gfp if arg is not None else None
                if arg is not None and cls == "fwd" and arg.gfp_fwd:
                    if arg.gfp_fwd not in out.fwd:
                        out.fwd.append(arg.gfp_fwd)
                    out.callee = out.callee or callee
                    continue
                if arg is None:
                    cls = s.gfp_defaults.get(p, "unknown")
                    text = f"its default `{p}` flags"
                else:
                    text = f"`{arg.text}`"
                if cls == "sleep":
                    return Verdict(True, callee, f"with {text}, which allows direct reclaim")
                if cls != "nosleep":
                    return Verdict(True, callee, f"with {text}, {_UNKNOWN_GFP}")
        return out

    def _summarize(self, ff: FunctionFacts) -> FuncSummary:
        s = FuncSummary(ff.fullname, ff.line, gfp_defaults=dict(ff.gfp_defaults))
        if ff.unsafe is not None:
            s.unsafe, s.unsafe_line = ff.unsafe, ff.line
        intrinsic = INTRINSICS.get(ff.fullname)
        if intrinsic is not None:
            s.always, s.gfp, s.reason, s.declared = (
                intrinsic.always,
                intrinsic.gfp,
                intrinsic.reason,
                intrinsic.declared,
            )
            s.handoff = intrinsic.handoff
            return s
        if ff.declared_sleep is not None:
            if ff.declared_sleep:
                s.gfp = ff.declared_sleep
                s.declared = f'@may_sleep(gfp="{ff.declared_sleep[0]}")'
            else:
                s.always = True
                s.declared = "@may_sleep"
            s.reason = Reason("declared", ff.line)
        else:
            gfp: list[str] = []
            gfp_reason: Reason | None = None
            for c in ff.calls:
                if c.regions:
                    continue
                v = self.verdict(c)
                if v.sleeps:
                    s.always = True
                    s.reason = Reason("call", c.line, v.callee, c.label, v.detail)
                    break
                for p in v.fwd:
                    if p not in gfp:
                        gfp.append(p)
                    if gfp_reason is None:
                        gfp_reason = Reason(
                            "call", c.line, v.callee, c.label, f"passing its own `{p}` flags"
                        )
            if not s.always and gfp:
                # INVARIANT: a GFP condition only when the function does not always sleep.
                s.gfp, s.reason = tuple(gfp), gfp_reason
        handoff: list[str] = []
        for c in ff.calls:
            for callee in c.callees:
                cs = self.summary(callee)
                if cs is None:
                    continue
                for formal in cs.handoff:
                    arg = c.args.get(formal)
                    if arg is not None and arg.param is not None and arg.param not in handoff:
                        handoff.append(arg.param)
        s.handoff = tuple(handoff)
        return s

    def solve(self) -> None:
        """Iterate the pool's summaries to their fixed point (they only grow)."""
        self._solving = True
        try:
            self._solve()
        finally:
            self._solving = False

    def _solve(self) -> None:
        # A worklist from the bottom (nothing sleeps): a function is summarised again
        # only when a callee's summary changed. Modules of the import cycle that the
        # summaries turn out to need join the pool as they are met.
        functions: dict[str, FunctionFacts] = {}
        callers: dict[str, set[str]] = {}
        pending: deque[str] = deque()
        queued: set[str] = set()
        added: set[str] = set()

        def admit() -> None:
            for facts in list(self.pool.values()):
                for ff in list(facts.functions.values()):
                    if ff.fullname in added:
                        continue
                    added.add(ff.fullname)
                    functions[ff.fullname] = ff
                    self.summaries.pop(ff.fullname, None)
                    for c in ff.calls:
                        for callee in c.callees:
                            callers.setdefault(callee, set()).add(ff.fullname)
                    if ff.fullname not in queued:
                        queued.add(ff.fullname)
                        pending.append(ff.fullname)

        admit()
        while pending:
            name = pending.popleft()
            queued.discard(name)
            self._dirty = False
            new = self._summarize(functions[name])
            old = self.summaries.get(name)
            self.summaries[name] = new
            if old is None or not old.same_facts(new):
                for caller in callers.get(name, ()):
                    if caller not in queued:
                        queued.add(caller)
                        pending.append(caller)
            if self._dirty:
                admit()

    # --- one module ------------------------------------------------------------------

    def analyze(self, tree: MypyFile, type_map: dict[Expression, Type] | None) -> list[Finding]:
        """Walk a module mypy has just checked; store its summaries; return its findings."""
        module = tree.fullname
        lines = self.lines(tree.path)
        self.used = set()
        self.provisional.pop(module, None)
        self._walkers.pop(module, None)
        self._class_decls.pop(module, None)
        for fn in [k for k in self.summaries if self.module_of(k) == module]:
            del self.summaries[fn]
        self.pool = {}
        facts = extract_module(tree, Typer(type_map), lines, self.class_decl)
        self.pool = {module: facts}
        self.solve()
        findings = list(facts.findings)
        findings.extend(self._call_findings(facts))
        findings.extend(self._unsafe_block_findings(facts))
        self._store(facts, tree.path)
        self.done.add(module)
        for other in list(self.pool):
            if other != module:
                self.pool.pop(other)
        self.pool.pop(module, None)
        return _dedupe(findings)

    def _store(self, facts: ModuleFacts, path: str) -> None:
        deps: dict[str, tuple[str, str]] = {}
        for mod in sorted(self.used - {facts.module}):
            p = self.path_of(mod)
            deps[mod] = (p, self.store.hash(p))
            rec = self.store.get(mod) if mod in self.done or mod not in self.provisional else None
            if rec is not None:
                for dmod, (dpath, dhash) in rec.deps.items():
                    if dmod != facts.module:
                        deps.setdefault(dmod, (dpath, dhash))
        functions = {
            ff.fullname: self.summaries[ff.fullname]
            for ff in facts.functions.values()
            if ff.fullname in self.summaries and not self.summaries[ff.fullname].is_trivial()
        }
        # INVARIANT: the hash is of the source as it is now, re-read (not the build's
        # memo), and `deps` closes over the records of every module consulted.
        rec = ModuleRecord(
            facts.module,
            path,
            self.store.hash(path, fresh=True),
            functions,
            dict(facts.classes),
            deps,
        )
        self.store.put(rec)

    # --- findings --------------------------------------------------------------------

    def _call_findings(self, facts: ModuleFacts) -> list[Finding]:
        out: list[Finding] = []
        for ff in facts.functions.values():
            for c in ff.calls:
                if c.regions:
                    v = self.verdict(c)
                    if v.sleeps:
                        out.append(self._atomic_sleep(facts, c, v))
                out.extend(self._unsafe_call(facts, c))
                out.extend(self._handoff(facts, c))
        return out

    def _atomic_sleep(self, facts: ModuleFacts, c: CallFact, v: Verdict) -> Finding:
        what = f"`{c.label}`{c.extra} may sleep" + (f" ({v.detail})" if v.detail else "")
        notes = [Note("this call expects the preemption count to be 0")]
        notes.append(Note(_count_text(c.regions)))
        path = facts.path
        for r in c.regions:
            maybe = "" if r.definite else " (on some paths)"
            verb = "was taken" if r.kind == "spinlock" else "began"
            notes.append(Note(f"{r.what} {verb} here{maybe}", path, r.line))
        notes.extend(self._chain(v.callee, v.detail))
        notes.append(Note("which is called from here"))
        notes.extend(Note(limit) for limit in self._limits(v))
        return Finding(
            "atomic-sleep",
            c.line,
            c.column,
            f"sleeping function called from atomic context: {what}",
            notes,
        )

    def _limits(self, v: Verdict) -> list[str]:
        """The checker's known imprecisions behind a verdict, stated in the finding."""
        callees, details = [v.callee], [v.detail]
        cur, seen = v.callee, set()
        while len(callees) < _MAX_CHAIN and cur not in seen:
            seen.add(cur)
            s = self.summary(cur)
            if s is None or s.reason is None or s.reason.kind == "declared":
                break
            cur = s.reason.callee
            callees.append(cur)
            details.append(s.reason.detail)
        out = []
        if any(_UNKNOWN_GFP in d for d in details):
            out.append(_LIMIT_UNKNOWN_GFP)
        if any(c.endswith(".drop_arc") for c in callees):
            out.append(_LIMIT_ARC_DROP)
        return out

    def _chain(self, callee: str, detail: str) -> list[Note]:
        """From the declaration that sleeps back to the call: "which is called from ..."."""
        steps: list[tuple[str, Reason]] = []
        cur = callee
        seen: set[str] = set()
        declared: tuple[str, FuncSummary] | None = None
        while len(steps) < _MAX_CHAIN and cur not in seen:
            seen.add(cur)
            s = self.summary(cur)
            if s is None or s.reason is None:
                break
            if s.reason.kind == "declared":
                declared = (cur, s)
                break
            steps.append((cur, s.reason))
            cur = s.reason.callee
        notes: list[Note] = []
        if declared is not None:
            name, s = declared
            mod = self.module_of(name)
            loc_path = self.path_of(mod) if mod and s.reason is not None and s.reason.line else None
            decl = s.declared or "@may_sleep"
            notes.append(
                Note(
                    f"`{self.short(name)}()` may sleep: declared {decl}",
                    display_path(loc_path) if loc_path else None,
                    s.reason.line if s.reason is not None else 0,
                )
            )
        for fn, reason in reversed(steps):
            mod = self.module_of(fn)
            p = display_path(self.path_of(mod)) if mod else None
            extra = f", {reason.detail}" if reason.detail else ""
            notes.append(
                Note(
                    f"which is called from `{self.short(fn)}()` as `{reason.label}`{extra}",
                    p,
                    reason.line,
                )
            )
        return notes

    def _unsafe_call(self, facts: ModuleFacts, c: CallFact) -> list[Finding]:
        out: list[Finding] = []
        for callee in c.callees:
            s = self.summary(callee)
            if s is None or s.unsafe is None:
                continue
            mod = self.module_of(callee)
            decl_path = display_path(self.path_of(mod)) if mod else None
            contract = Note(
                f"`{self.short(callee)}()` is unsafe; its Safety contract: {s.unsafe}",
                decl_path,
                s.unsafe_line,
            )
            if c.unsafe_ctx == "block":
                continue
            notes = [contract]
            where = "outside an unsafe block"
            if c.unsafe_ctx == "fn":
                # As the kernel builds with `-D unsafe_op_in_unsafe_fn`: the body of an
                # unsafe function is not an unsafe block.
                where = "in an unsafe function's body, outside an unsafe block"
                notes.append(
                    Note(
                        "an unsafe function's body is not an unsafe block (unsafe_op_in_unsafe_fn)"
                    )
                )
            notes.append(
                Note(
                    'wrap it in `with unsafe("SAFETY: ..."):`, the string saying why the '
                    "contract holds"
                )
            )
            out.append(
                Finding(
                    "unsafe-call",
                    c.line,
                    c.column,
                    f"call to unsafe function `{c.label}` {where}",
                    notes,
                )
            )
        return out

    def _handoff(self, facts: ModuleFacts, c: CallFact) -> list[Finding]:
        out: list[Finding] = []
        for callee in c.callees:
            s = self.summary(callee)
            if s is None or not s.handoff:
                continue
            for formal in s.handoff:
                bad = c.nonsend_arg(formal)
                if bad is None:
                    continue
                text, reason, origin = bad
                notes = [Note(reason)]
                if origin:
                    notes.append(Note("the !Send value was made here", facts.path, origin))
                notes.append(
                    Note(f"`{self.short(callee)}()` hands its `{formal}` to another thread")
                )
                out.append(
                    Finding(
                        "send-handoff",
                        c.line,
                        c.column,
                        f"`{text}` is !Send but is handed to another thread by `{c.label}`",
                        notes,
                    )
                )
        return out

    def _unsafe_block_findings(self, facts: ModuleFacts) -> list[Finding]:
        out: list[Finding] = []
        for b in facts.unsafe_blocks:
            problems: list[str] = []
            if b.argument == "missing":
                problems.append("without a justification string")
            elif b.argument == "empty":
                problems.append("with an empty justification string")
            if not problems:
                continue
            notes: list[Note] = []
            for ff in facts.functions.values():
                for c in ff.calls:
                    if c.unsafe_block != b.line or c.unsafe_ctx != "block":
                        continue
                    for callee in c.callees:
                        s = self.summary(callee)
                        if s is not None and s.unsafe is not None:
                            mod = self.module_of(callee)
                            p = display_path(self.path_of(mod)) if mod else None
                            notes.append(
                                Note(
                                    f"the block calls `{self.short(callee)}()`, whose Safety "
                                    f"contract is: {s.unsafe}",
                                    p,
                                    s.unsafe_line,
                                )
                            )
            notes.append(
                Note(
                    "say why the contract holds in the block's string: `with unsafe(\"SAFETY: "
                    '..."):`'
                )
            )
            out.append(
                Finding(
                    "undocumented-unsafe",
                    b.line,
                    b.column,
                    "unsafe block " + " and ".join(problems),
                    notes,
                )
            )
        return out


def _count_text(regions: tuple[Region, ...]) -> str:
    preempt = [r for r in regions if r.kind in ("spinlock", "preempt")]
    if preempt:
        lo = sum(1 for r in preempt if r.definite)
        hi = len(preempt)
        span = f"{lo}.." if lo else f"0..{hi}"
        return f"but the possible preemption count here is {span}"
    kinds = {r.kind for r in regions}
    if "rcu" in kinds:
        return "but this code runs inside an RCU read-side critical section"
    return "but interrupts are disabled here"


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, int, str]] = set()
    out: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.line, f.column, f.code)):
        key = (f.code, f.line, f.column, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []
