"""Findings as the command line reports them, read back from mypy's messages.

`python -m ownership check` gets its findings from mypy's output rather than from the
plugin's memory: mypy replays the errors of modules it loads from its incremental
cache without running the plugin again, so its messages are the one complete list.
The plugin writes every location a note refers to as a trailing `(path:line)`, which
`parse_messages` turns back into related locations (the lock acquisition site of an
atomic sleep, the steps of a call chain).

`Report` is one finding, `ReportNote` one line under it; `render_text` and
`render_json` print them. SARIF is in `ownership.static.sarif`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codes import RULES_BY_CODE

__all__ = ["Report", "ReportNote", "parse_messages", "render_json", "render_text"]

_LINE_RE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<sev>error|warning|note): "
    r"(?P<msg>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
_FILE_ONLY_RE = re.compile(r"^(?P<path>[^:\s][^:]*): (?P<sev>error|warning|note): (?P<msg>.*)$")
_LOC_RE = re.compile(r"^(?P<text>.*) \((?P<path>[^()]+?\.pyi?):(?P<line>\d+)\)$")


@dataclass(frozen=True)
class ReportNote:
    """A note under a finding; `path`/`line` when it points at another source line.

    Invariants: `line` > 0 when `path` is set, 0 otherwise.
    """

    text: str
    path: str | None = None
    line: int = 0

    def render(self) -> str:
        return f"{self.text} ({self.path}:{self.line})" if self.path is not None else self.text


@dataclass
class Report:
    """One finding: a rule broken at `path`:`line`.

    Invariants: `line` and `column` are 1-based (0 when mypy gave none); `code` is
    the mypy error code (one of `ownership.static.codes` for the plugin's rules, a
    mypy code such as `arg-type` for ordinary type errors, "" for a blocking error).
    """

    code: str
    path: str
    line: int
    column: int
    message: str
    severity: str = "error"
    notes: list[ReportNote] = field(default_factory=list)

    @property
    def is_ownership_rule(self) -> bool:
        return self.code in RULES_BY_CODE

    def related(self) -> list[ReportNote]:
        return [n for n in self.notes if n.path is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.code,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
            "notes": [
                {"message": n.text, "path": n.path, "line": n.line if n.path is not None else None}
                for n in self.notes
            ],
        }


def _note(text: str) -> ReportNote:
    m = _LOC_RE.match(text)
    if m is None:
        return ReportNote(text)
    return ReportNote(m.group("text"), m.group("path"), int(m.group("line")))


def parse_messages(lines: Iterable[str]) -> list[Report]:
    """Group mypy's formatted messages into findings: each error with its notes."""
    out: list[Report] = []
    current: Report | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        m = _LINE_RE.match(line)
        if m is None:
            f = _FILE_ONLY_RE.match(line)
            if f is None:
                continue
            path, lineno, col, sev, msg, code = (
                f.group("path"),
                0,
                0,
                f.group("sev"),
                f.group("msg"),
                "",
            )
        else:
            path = m.group("path")
            lineno = int(m.group("line"))
            col = int(m.group("col") or 0)
            sev, msg, code = m.group("sev"), m.group("msg"), m.group("code") or ""
        if sev == "note":
            if current is not None and current.path == path:
                current.notes.append(_note(msg))
            continue
        current = Report(code, path, lineno, col, msg, sev)
        out.append(current)
    return out


def render_text(reports: Sequence[Report], files_checked: int) -> str:
    """mypy's own layout: `path:line: error: what  [code]`, then the notes."""
    lines: list[str] = []
    for r in reports:
        where = f"{r.path}:{r.line}" if r.line else r.path
        code = f"  [{r.code}]" if r.code else ""
        lines.append(f"{where}: {r.severity}: {r.message}{code}")
        lines.extend(f"{where}: note: {n.render()}" for n in r.notes)
    n = len(reports)
    files = len({r.path for r in reports})
    if n:
        lines.append(
            f"Found {n} finding{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''} "
            f"(checked {files_checked} source file{'s' if files_checked != 1 else ''})"
        )
    else:
        lines.append(
            f"Success: no findings (checked {files_checked} source "
            f"file{'s' if files_checked != 1 else ''})"
        )
    return "\n".join(lines)


def render_json(reports: Sequence[Report], files_checked: int) -> dict[str, Any]:
    return {
        "findings": [r.to_json() for r in reports],
        "count": len(reports),
        "files_checked": files_checked,
        "ok": not reports,
    }
