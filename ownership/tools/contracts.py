"""`python -m ownership contracts`: the safety-contract review.

Lists, over Python sources read by their AST (default: the `ownership` and `binder`
packages; or the files and directories given):

* every `@unsafe_fn(safety=...)` with its Safety text and how the contract is
  enforced: `checked=` means a runtime check verifies the checkable part, `proved=`
  names `proofs/` claims (each looked up in the proofs' sources), otherwise the
  contract is documented only;
* every `unsafe(...)` block with its SAFETY justification, the string argument (the
  one place for the reason, which the runtime also keeps), or "missing"; with the
  unsafe functions the block calls;
* every Send/Sync declaration (`impl_send`, `impl_sync`, `not_send`, `not_sync`, a
  `NotThreadSafe` base) with its reason.

It then reports the runtime registry of `ownership.unsafe` and `ownership.marker` for
what ran in this process: contracts declared by imported modules (and whether the
source scan saw them), unsafe blocks that actually ran, marker declarations.

    python -m ownership contracts [--format md|json|sarif] [--strict] [PATH ...]

`--strict` exits 1 when a block lacks its justification string, unless a comment right
above it starts with "Deliberately undocumented" (the demo's bug, kept on purpose and
reported as such), or when a file cannot be parsed (named on stderr). SARIF output is
written by `ownership.static.sarif` (imported only for `--format sarif`).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import io
import json
import os
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..marker import declarations
from ..unsafe import contracts as runtime_contracts
from ..unsafe import unsafe_sites

__all__ = [
    "BlockInfo",
    "ContractInfo",
    "MarkerInfo",
    "Review",
    "main",
    "render_json",
    "render_md",
    "review",
    "scan_file",
]

_MARKERS = {
    "impl_send": ("Send", True),
    "impl_sync": ("Sync", True),
    "not_send": ("Send", False),
    "not_sync": ("Sync", False),
}


@dataclass
class ContractInfo:
    """One `unsafe fn` found in the sources."""

    qualname: str
    path: str
    line: int
    safety: str
    checked: str | None
    proved: list[str]
    enforcement: str = ""
    proofs_missing: list[str] = field(default_factory=list)
    registered: bool = False
    call_sites: list[str] = field(default_factory=list)


@dataclass
class BlockInfo:
    """One `with unsafe(...)` block found in the sources."""

    path: str
    line: int
    string: str | None
    calls: list[str]
    status: str = ""
    ran: bool = False
    deliberate: bool = False

    @property
    def justification(self) -> str:
        return self.string or ""


@dataclass
class MarkerInfo:
    """One Send/Sync declaration."""

    cls: str
    path: str
    line: int
    trait: str
    implemented: bool
    reason: str


@dataclass
class Review:
    paths: list[str]
    contracts: list[ContractInfo]
    blocks: list[BlockInfo]
    markers: list[MarkerInfo]
    runtime: dict[str, Any]
    errors: list[str]

    def summary(self) -> dict[str, int]:
        return {
            "files_with_errors": len(self.errors),
            "contracts": len(self.contracts),
            "checked_at_runtime": sum(1 for c in self.contracts if c.checked),
            "proved": sum(1 for c in self.contracts if c.proved),
            "documented_only": sum(1 for c in self.contracts if not c.checked and not c.proved),
            "unsafe_blocks": len(self.blocks),
            "blocks_missing_justification": sum(1 for b in self.blocks if b.status == "missing"),
            "blocks_deliberately_undocumented": sum(1 for b in self.blocks if b.deliberate),
            "blocks_ran": sum(1 for b in self.blocks if b.ran),
            "markers": len(self.markers),
        }


# ---------------------------------------------------------------------------------------
# Scanning one file.


def _name_of(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _str(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return "<computed at run time>"


def _strs(node: ast.expr | None) -> list[str]:
    if isinstance(node, (ast.Tuple, ast.List)):
        return [s for s in (_str(e) for e in node.elts) if s is not None]
    s = _str(node)
    return [s] if s is not None else []


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _strip_safety(text: str) -> str:
    t = text.strip()
    if t.upper().startswith("SAFETY:"):
        t = t[len("SAFETY:") :].strip()
    return t


def _comments(source: str) -> dict[int, str]:
    """Line number -> comment text (without `#`), for full-line comments."""
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and tok.line.strip().startswith("#"):
                out[tok.start[0]] = tok.string[1:].strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


DELIBERATE = "DELIBERATELY UNDOCUMENTED"
"""A comment right above a block starting with this marks a bug kept on purpose (the
demo's undocumented-unsafe snippet): reported as such, not counted as missing."""


def _deliberate(comments: dict[int, str], line: int) -> bool:
    n = line - 1
    while n in comments:
        if comments[n].upper().startswith(DELIBERATE):
            return True
        n -= 1
    return False


def _module_name(path: Path) -> str:
    parts = [path.stem] if path.stem != "__init__" else []
    d = path.parent
    while (d / "__init__.py").exists():
        parts.insert(0, d.name)
        d = d.parent
    return ".".join(parts) or path.stem


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, module: str, comments: dict[int, str]) -> None:
        self.path = path
        self.module = module
        self.comments = comments
        self.scope: list[str] = []
        self.contracts: list[ContractInfo] = []
        self.blocks: list[tuple[BlockInfo, list[tuple[str | None, str]]]] = []
        self.markers: list[MarkerInfo] = []
        self.constants: dict[str, str] = {}

    def visit_Module(self, node: ast.Module) -> None:
        # Module-level string constants, so that a contract may name one (`safety=TEXT`).
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target: ast.expr | None = stmt.targets[0]
            else:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                if isinstance(value.value, str):
                    self.constants[target.id] = value.value
        self.generic_visit(node)

    def _text(self, node: ast.expr | None) -> str | None:
        """`_str`, also reading a module-level string constant the argument names."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        return _str(node)

    def _qual(self, name: str) -> str:
        return ".".join([self.module, *self.scope, name])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        qual = self._qual(node.name)
        for d in node.decorator_list:
            if isinstance(d, ast.Call) and _name_of(d.func) in _MARKERS:
                trait, implemented = _MARKERS[_name_of(d.func) or ""]
                reason = _str(d.args[0]) if d.args else _str(_kw(d, "reason"))
                self.markers.append(
                    MarkerInfo(qual, self.path, d.lineno, trait, implemented, reason or "")
                )
        if any(_name_of(b) == "NotThreadSafe" for b in node.bases):
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            reason = "NotThreadSafe base" + (f": {doc[0]}" if doc else "")
            for trait in ("Send", "Sync"):
                self.markers.append(MarkerInfo(qual, self.path, node.lineno, trait, False, reason))
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            if isinstance(d, ast.Call) and _name_of(d.func) == "unsafe_fn":
                self.contracts.append(
                    ContractInfo(
                        qualname=self._qual(node.name),
                        path=self.path,
                        line=node.lineno,
                        safety=(self._text(_kw(d, "safety")) or "").strip(),
                        checked=self._text(_kw(d, "checked")),
                        proved=_strs(_kw(d, "proved")),
                    )
                )
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            e = item.context_expr
            if isinstance(e, ast.Call) and _name_of(e.func) == "unsafe":
                raw = _str(e.args[0]) if e.args else _str(_kw(e, "justification"))
                string = _strip_safety(raw) if raw is not None else None
                calls: list[tuple[str | None, str]] = []
                for stmt in node.body:
                    for sub in ast.walk(stmt):
                        if isinstance(sub, ast.Call):
                            name = _name_of(sub.func)
                            if name is not None:
                                owner = None
                                if isinstance(sub.func, ast.Attribute):
                                    owner = _name_of(sub.func.value)
                                calls.append((owner, name))
                info = BlockInfo(
                    path=self.path,
                    line=node.lineno,
                    string=string or None,
                    calls=[],
                    deliberate=_deliberate(self.comments, node.lineno),
                )
                self.blocks.append((info, calls))
        self.generic_visit(node)

    visit_With = _with
    visit_AsyncWith = _with


def scan_file(
    path: Path,
) -> tuple[
    list[ContractInfo], list[tuple[BlockInfo, list[tuple[str | None, str]]]], list[MarkerInfo]
]:
    """The contracts, unsafe blocks (with the calls in them) and markers of one file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    sc = _Scanner(_display(path), _module_name(path.resolve()), _comments(source))
    sc.visit(tree)
    return sc.contracts, sc.blocks, sc.markers


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(
                f for f in p.rglob("*.py") if not any(part.startswith(".") for part in f.parts)
            )
        elif p.suffix == ".py":
            yield p


# ---------------------------------------------------------------------------------------
# The review.


def _package_dir(name: str) -> Path | None:
    """Where package `name` lives, found without importing it (the review reads other
    layers' sources; the ownership package does not depend on them)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _default_paths() -> list[Path]:
    return [p for p in (_package_dir("ownership"), _package_dir("binder")) if p is not None]


def _proofs_text() -> str | None:
    d = _package_dir("proofs")
    if d is None:
        return None
    return "\n".join(f.read_text(encoding="utf-8") for f in sorted(d.glob("*.py")))


def _claim_exists(proofs_src: str | None, claim: str) -> bool:
    """Whether `claim` is named (as a string literal) in the proofs' sources."""
    if proofs_src is None:
        return False
    return f'"{claim}"' in proofs_src or f"'{claim}'" in proofs_src


def _resolve_calls(
    calls: Iterable[tuple[str | None, str]], by_short: dict[str, list[str]]
) -> list[str]:
    """The qualified names of the unsafe functions among `calls` (owner, name) pairs.

    `X.f(...)` matches a contract named `...X.f` if there is one, else every contract
    whose name ends in `.f` (the review does not infer types).
    """
    found: list[str] = []
    for owner, name in calls:
        cands = by_short.get(name, [])
        if owner is not None:
            exact = [q for q in cands if q.endswith(f".{owner}.{name}")]
            cands = exact or cands
        for q in cands:
            if q not in found:
                found.append(q)
    return found


def _import_for_registry(files: Iterable[Path]) -> list[str]:
    """Import the scanned modules, so their declarations reach the runtime registry."""
    errors: list[str] = []
    for f in files:
        mod = _module_name(f.resolve())
        if mod.rsplit(".", 1)[-1] == "__main__":
            continue  # Importing a package's __main__ would run its command line.
        try:
            importlib.import_module(mod)
        except Exception as e:  # Reported; the review goes on.
            errors.append(f"{mod}: import failed: {type(e).__name__}: {e}")
    return errors


def review(paths: Sequence[str] | None = None, *, import_modules: bool = True) -> Review:
    """Scan `paths` (default: the ownership and binder packages) and build the review."""
    roots = [Path(p) for p in paths] if paths else _default_paths()
    for r in roots:
        if not r.exists():
            raise FileNotFoundError(f"no such file or directory: {r}")
    files = list(_iter_files(roots))
    contracts: list[ContractInfo] = []
    raw_blocks: list[tuple[BlockInfo, list[tuple[str | None, str]]]] = []
    markers: list[MarkerInfo] = []
    errors: list[str] = []
    for f in files:
        try:
            found_c, found_b, found_m = scan_file(f)
        except (SyntaxError, UnicodeDecodeError) as e:
            errors.append(f"{_display(f)}: cannot parse: {e}")
            continue
        contracts += found_c
        raw_blocks += found_b
        markers += found_m

    if import_modules:
        declaring = {c.path for c in contracts} | {m.path for m in markers}
        errors += _import_for_registry(f for f in files if _display(f) in declaring)
    registered = {c.qualname: c for c in runtime_contracts()}
    proofs_src = _proofs_text()
    for c in contracts:
        c.registered = c.qualname in registered
        c.proofs_missing = [p for p in c.proved if not _claim_exists(proofs_src, p)]
        if c.proved and c.checked:
            c.enforcement = "checked at runtime and proved"
        elif c.proved:
            c.enforcement = "proved"
        elif c.checked:
            c.enforcement = "checked at runtime"
        else:
            c.enforcement = "documented only"

    # Calls resolve against the scanned contracts and those the runtime registry knows
    # (declared in modules outside the scanned paths, such as the core's `ARef.from_raw`).
    by_name = {c.qualname: c for c in contracts}
    by_short: dict[str, list[str]] = {}
    for q in sorted(set(by_name) | set(registered)):
        by_short.setdefault(q.rsplit(".", 1)[-1], []).append(q)
    ran = {(os.path.realpath(s.site.filename), s.site.lineno): s for s in unsafe_sites()}
    blocks: list[BlockInfo] = []
    for info, calls in raw_blocks:
        info.calls = _resolve_calls(calls, by_short)
        for q in info.calls:
            if q in by_name:
                by_name[q].call_sites.append(f"{info.path}:{info.line}")
        info.ran = (os.path.realpath(info.path), info.line) in ran
        if info.string:
            info.status = "ok"
        elif info.deliberate:
            info.status = "deliberately undocumented"
        else:
            info.status = "missing"
        blocks.append(info)

    seen = {c.qualname for c in contracts}
    runtime = {
        "contracts_registered": len(registered),
        "contracts_not_in_sources": sorted(q for q in registered if q not in seen),
        "blocks_ran": [
            {"site": s.site.short(), "justification": s.justification} for s in unsafe_sites()
        ],
        "marker_declarations": len(declarations()),
    }
    return Review([_display(r) for r in roots], contracts, blocks, markers, runtime, errors)


# ---------------------------------------------------------------------------------------
# Output.


def render_json(r: Review) -> str:
    data = {
        "paths": r.paths,
        "contracts": [asdict(c) for c in r.contracts],
        "unsafe_blocks": [{**asdict(b), "justification": b.justification} for b in r.blocks],
        "markers": [asdict(m) for m in r.markers],
        "runtime": r.runtime,
        "errors": r.errors,
        "summary": r.summary(),
    }
    return json.dumps(data, indent=2)


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def render_md(r: Review) -> str:
    s = r.summary()
    out = [
        "# Safety contract review",
        "",
        f"Scanned: {', '.join(r.paths)}",
        "",
        f"- {s['contracts']} unsafe functions: {s['checked_at_runtime']} checked at runtime, "
        f"{s['proved']} proved, {s['documented_only']} documented only",
        f"- {s['unsafe_blocks']} unsafe blocks: {s['blocks_missing_justification']} missing a "
        f"justification string, {s['blocks_deliberately_undocumented']} deliberately "
        f"undocumented (a demo of the bug); {s['blocks_ran']} ran in this process",
        f"- {s['markers']} Send/Sync declarations",
        "",
        "## Unsafe functions",
        "",
        "| function | declared at | Safety | enforcement | called from |",
        "|---|---|---|---|---|",
    ]
    for c in sorted(r.contracts, key=lambda c: c.qualname):
        enf = c.enforcement
        if c.checked:
            enf += f": {c.checked}"
        if c.proved:
            enf += f" (claims: {', '.join(c.proved)})"
        if c.proofs_missing:
            enf += f" **claims not found in proofs/: {', '.join(c.proofs_missing)}**"
        calls = ", ".join(c.call_sites) or "-"
        out.append(
            f"| `{c.qualname}` | {c.path}:{c.line} | {_cell(c.safety)} | {_cell(enf)} | {calls} |"
        )
    out += [
        "",
        "## Unsafe blocks",
        "",
        "| block | SAFETY | status | calls | ran |",
        "|---|---|---|---|---|",
    ]
    for b in sorted(r.blocks, key=lambda b: (b.path, b.line)):
        out.append(
            f"| {b.path}:{b.line} | {_cell(b.string) or 'missing'} "
            f"| {b.status} | {', '.join(f'`{c}`' for c in b.calls) or '-'} | "
            f"{'yes' if b.ran else 'no'} |"
        )
    out += [
        "",
        "## Send / Sync declarations",
        "",
        "| type | declared at | marker | reason |",
        "|---|---|---|---|",
    ]
    for m in sorted(r.markers, key=lambda m: (m.cls, m.trait)):
        mark = ("" if m.implemented else "!") + m.trait
        out.append(f"| `{m.cls}` | {m.path}:{m.line} | {mark} | {_cell(m.reason) or 'missing'} |")
    rt = r.runtime
    out += [
        "",
        "## Runtime registry (this process)",
        "",
        f"- {rt['contracts_registered']} unsafe functions registered by imported modules",
    ]
    if rt["contracts_not_in_sources"]:
        out.append(
            "- registered but not in the scanned sources: "
            + ", ".join(f"`{q}`" for q in rt["contracts_not_in_sources"])
        )
    out.append(f"- {len(rt['blocks_ran'])} unsafe blocks ran")
    for b in rt["blocks_ran"]:
        out.append(f"  - {b['site']}: {_cell(b['justification'])}")
    out.append(f"- {rt['marker_declarations']} Send/Sync declarations registered")
    if r.errors:
        out += ["", "## Errors", ""] + [f"- {_cell(e)}" for e in r.errors]
    return "\n".join(out) + "\n"


def render_sarif(r: Review) -> str:
    """SARIF 2.1.0, by `ownership.static.sarif` (ImportError if it is not there)."""
    # Imported here, not at module level: only `--format sarif` needs the writer, and a
    # tree without it (or with it broken) still reviews in Markdown and JSON.
    from ..static import sarif

    contracts = [
        sarif.ContractEntry(c.qualname, c.safety, c.path, c.line, c.enforcement)
        for c in r.contracts
    ]
    sites = [
        sarif.UnsafeSiteEntry(b.path, b.line, b.justification, tuple(b.calls)) for b in r.blocks
    ]
    return sarif.dumps(sarif.contracts_to_sarif(contracts, sites))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ownership contracts",
        description="List every unsafe function, unsafe block and Send/Sync declaration.",
    )
    ap.add_argument("paths", nargs="*", help="files or directories (default: ownership, binder)")
    ap.add_argument("--format", choices=("md", "json", "sarif"), default="md")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a block lacks a justification")
    ap.add_argument(
        "--no-import",
        action="store_true",
        help="do not import the scanned modules (source scan only)",
    )
    args = ap.parse_args(argv)
    try:
        r = review(args.paths or None, import_modules=not args.no_import)
    except FileNotFoundError as e:
        print(f"contracts: {e}", file=sys.stderr)
        return 2
    if args.format == "sarif":
        try:
            text = render_sarif(r)
        except ImportError as e:
            print(
                "contracts: --format sarif needs ownership.static.sarif (the SARIF writer), "
                f"which could not be imported: {e}",
                file=sys.stderr,
            )
            return 2
    elif args.format == "json":
        text = render_json(r)
    else:
        text = render_md(r)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    incomplete = any(b.status not in ("ok", "deliberately undocumented") for b in r.blocks)
    unparsed = [msg for msg in r.errors if ": cannot parse: " in msg]
    for msg in unparsed:
        print(f"contracts: {msg}", file=sys.stderr)
    # Under --strict, a file that could not be read is a file whose blocks went unchecked.
    return 1 if args.strict and (incomplete or unparsed) else 0
