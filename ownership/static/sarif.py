"""SARIF 2.1.0 logs: for `python -m ownership check` and `python -m ownership contracts`.

SARIF (OASIS Static Analysis Results Interchange Format 2.1.0) is what code-scanning
services and editors read. Both tools produce one run with the tool's rules in
`tool.driver.rules` and one result per finding, each with its location and its
related locations (for an atomic sleep: where the lock was taken and each step of the
call chain; for an unsafe block: the declarations of the unsafe functions it calls).

Two entry points:

* `findings_to_sarif(reports, ...)` for the static check (`ownership.static.report`);
* `contracts_to_sarif(contracts, sites, ...)` for the contract review: every unsafe
  function with its Safety text and how it is enforced, and every unsafe block with its
  justification, a block without one being an error. The review builds its entries
  with `ContractEntry`/`UnsafeSiteEntry` (or `from_contract`/`from_site` from the
  runtime records of `ownership.unsafe`).

The tests validate both against the published JSON schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .codes import RULES, RULES_BY_CODE, Rule
from .report import Report

if TYPE_CHECKING:
    from ..unsafe import UnsafeContract, UnsafeSite

__all__ = [
    "SARIF_SCHEMA_URI",
    "SARIF_VERSION",
    "ContractEntry",
    "UnsafeSiteEntry",
    "contracts_to_sarif",
    "dumps",
    "findings_to_sarif",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL_URI = "https://github.com/Rust-for-Linux/linux"
SRCROOT = "%SRCROOT%"


def dumps(log: dict[str, Any]) -> str:
    """The log as indented JSON text."""
    return json.dumps(log, indent=2, sort_keys=False) + "\n"


def _uri(path: str) -> tuple[str, str | None]:
    """A SARIF artifact URI: relative (to %SRCROOT%, the working directory) or file://."""
    if os.path.isabs(path):
        rel = os.path.relpath(path)
        if rel.startswith(".."):
            return PurePosixPath(path).as_uri(), None
        path = rel
    posix = path.replace(os.sep, "/")
    return quote(posix, safe="/-._~"), SRCROOT


def _location(
    path: str, line: int, column: int = 0, message: str | None = None, ident: int | None = None
) -> dict[str, Any]:
    uri, base = _uri(path)
    artifact: dict[str, Any] = {"uri": uri}
    if base is not None:
        artifact["uriBaseId"] = base
    region: dict[str, Any] = {"startLine": max(line, 1)}
    if column > 0:
        region["startColumn"] = column
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": artifact, "region": region}}
    if ident is not None:
        loc["id"] = ident
    if message:
        loc["message"] = {"text": message}
    return loc


def _rule_descriptor(rule: Rule) -> dict[str, Any]:
    props: dict[str, Any] = {"tags": ["ownership", "safety"]}
    if rule.runtime_class is not None:
        props["runtimeCheck"] = (
            f"ownership.errors.{rule.runtime_class} (rule {rule.runtime_rule!r})"
        )
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help},
        "defaultConfiguration": {"level": "error"},
        "properties": props,
    }


def _other_descriptor(code: str) -> dict[str, Any]:
    description = "A type error reported by mypy --strict."
    try:
        # Imported here, not at module level: the contract review writes SARIF without
        # loading the type checker, and a tree without mypy still gets a description.
        from mypy.errorcodes import error_codes

        ec = error_codes.get(code)
        if ec is not None:
            description = ec.description
    except ImportError:
        pass
    return {
        "id": code,
        "shortDescription": {"text": description},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["mypy"]},
    }


def _run(
    name: str, version: str, rules: list[dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "tool": {
            "driver": {
                "name": name,
                "version": version,
                "informationUri": TOOL_URI,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": PurePosixPath(os.getcwd()).as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }


def _log(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": runs}


def findings_to_sarif(
    reports: Sequence[Report], *, tool_name: str = "ownership-check", version: str = "0.1.0"
) -> dict[str, Any]:
    """A SARIF log of the static check's findings (one run)."""
    rules: list[dict[str, Any]] = [_rule_descriptor(r) for r in RULES]
    index = {r.code: i for i, r in enumerate(RULES)}
    for rep in reports:
        code = rep.code or "error"
        if code not in index:
            index[code] = len(rules)
            rules.append(_other_descriptor(code))
    results: list[dict[str, Any]] = []
    for rep in reports:
        code = rep.code or "error"
        text = rep.message
        if rep.notes:
            text += "\n" + "\n".join(f"note: {n.render()}" for n in rep.notes)
        result: dict[str, Any] = {
            "ruleId": code,
            "ruleIndex": index[code],
            "level": "error" if rep.severity == "error" else "warning",
            "message": {"text": text},
            "locations": [_location(rep.path, rep.line, rep.column)],
        }
        related = [
            _location(n.path, n.line, 0, n.text, i)
            for i, n in enumerate(rep.related(), start=1)
            if n.path is not None
        ]
        if related:
            result["relatedLocations"] = related
        if rep.code in RULES_BY_CODE:
            result["properties"] = {"notes": [n.text for n in rep.notes]}
        results.append(result)
    return _log([_run(tool_name, version, rules, results)])


# ---------------------------------------------------------------------------
# The contract review.


def _check_types(obj: object, **fields: type) -> None:
    """A clear TypeError for an entry built with a wrong type (never a broken log)."""
    for name, typ in fields.items():
        value: object = getattr(obj, name)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise TypeError(
                f"{type(obj).__name__}.{name} must be {typ.__name__}, got {type(value).__name__}"
            )
        if isinstance(value, int) and value < 0:
            raise TypeError(f"{type(obj).__name__}.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class ContractEntry:
    """One `unsafe fn`: its Safety section and how the contract is enforced.

    Invariants: `enforcement` is one of "checked at runtime", "proved", "checked at
    runtime and proved", "documented only" (as `ownership.unsafe.UnsafeContract`).
    """

    qualname: str
    safety: str
    path: str
    line: int
    enforcement: str

    def __post_init__(self) -> None:
        _check_types(self, qualname=str, safety=str, path=str, line=int, enforcement=str)

    @staticmethod
    def from_contract(c: UnsafeContract) -> ContractEntry:
        return ContractEntry(c.qualname, c.safety, c.site.filename, c.site.lineno, c.enforcement)


@dataclass(frozen=True)
class UnsafeSiteEntry:
    """One unsafe block: its justification ("" when it has none) and the unsafe
    functions it calls (qualified names).

    Invariants: `line` >= 0 and `calls` is a tuple of str (checked when built).
    """

    path: str
    line: int
    justification: str
    calls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_types(self, path=str, line=int, justification=str, calls=tuple)
        if not all(isinstance(c, str) for c in self.calls):
            raise TypeError("UnsafeSiteEntry.calls must be a tuple of qualified names (str)")

    @staticmethod
    def from_site(s: UnsafeSite) -> UnsafeSiteEntry:
        return UnsafeSiteEntry(
            s.site.filename, s.site.lineno, s.justification, tuple(sorted(s.calls))
        )


_CONTRACT_RULES: tuple[dict[str, Any], ...] = (
    {
        "id": "unsafe-contract",
        "name": "UnsafeContract",
        "shortDescription": {"text": "An unsafe function and its Safety contract."},
        "fullDescription": {
            "text": "Each function declared with @ownership.unsafe.unsafe_fn, with the Safety "
            "text its callers must uphold and whether the contract is checked at runtime, "
            "proved in proofs/, or only documented."
        },
        "defaultConfiguration": {"level": "note"},
    },
    {
        "id": "unsafe-site",
        "name": "UnsafeSite",
        "shortDescription": {"text": "An unsafe block and its SAFETY justification."},
        "fullDescription": {
            "text": "Each `with unsafe(...)` block, with the justification it gives."
        },
        "defaultConfiguration": {"level": "note"},
    },
    _rule_descriptor(RULES_BY_CODE["undocumented-unsafe"]),
)


def contracts_to_sarif(
    contracts: Iterable[ContractEntry],
    sites: Iterable[UnsafeSiteEntry],
    *,
    tool_name: str = "ownership-contracts",
    version: str = "0.1.0",
) -> dict[str, Any]:
    """A SARIF log of the contract review: contracts and unsafe blocks (one run).

    Every contract is a `note` result (rule `unsafe-contract`) whose properties carry
    `qualname`, `safety` and `enforcement`; every unsafe block is a `note` (rule
    `unsafe-site`) or, when its justification is empty, an `error` (rule
    `undocumented-unsafe`), with the called contracts' declarations as related
    locations.
    """
    contract_list = list(contracts)
    by_name = {c.qualname: c for c in contract_list}
    index = {r["id"]: i for i, r in enumerate(_CONTRACT_RULES)}
    results: list[dict[str, Any]] = []
    for c in sorted(contract_list, key=lambda c: c.qualname):
        results.append(
            {
                "ruleId": "unsafe-contract",
                "ruleIndex": index["unsafe-contract"],
                "level": "note",
                "message": {
                    "text": f"unsafe fn {c.qualname}: Safety: {c.safety} [{c.enforcement}]"
                },
                "locations": [_location(c.path, c.line)],
                "properties": {
                    "qualname": c.qualname,
                    "safety": c.safety,
                    "enforcement": c.enforcement,
                },
            }
        )
    for s in sorted(sites, key=lambda s: (s.path, s.line)):
        documented = bool(s.justification.strip())
        rule = "unsafe-site" if documented else "undocumented-unsafe"
        calls = ", ".join(s.calls) if s.calls else "no recorded unsafe call"
        text = (
            f"unsafe block (calls {calls}): SAFETY: {s.justification.strip()}"
            if documented
            else f"unsafe block without a SAFETY justification (calls {calls})"
        )
        result: dict[str, Any] = {
            "ruleId": rule,
            "ruleIndex": index[rule],
            "level": "note" if documented else "error",
            "message": {"text": text},
            "locations": [_location(s.path, s.line)],
            "properties": {"justification": s.justification, "calls": list(s.calls)},
        }
        related = [
            _location(by_name[q].path, by_name[q].line, 0, f"{q}: Safety: {by_name[q].safety}", i)
            for i, q in enumerate(s.calls, start=1)
            if q in by_name
        ]
        if related:
            result["relatedLocations"] = related
        results.append(result)
    return _log([_run(tool_name, version, list(_CONTRACT_RULES), results)])
