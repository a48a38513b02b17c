"""Properties of the checker's parts, over generated inputs.

* GFP flags: the static evaluation of any `|`/`&`/`^`/`~` expression over the flags of
  `ownership.bindings.gfp` (and a forwarded parameter) agrees with the runtime's own
  `Flags.may_sleep` on the value the expression computes.
* `unsafe("SAFETY: ...")` strings: a justification only with text after the prefix.
* Reports survive mypy's text format (render, then parse), whatever the message.
* Any findings and any contract entries make a SARIF log valid against the schema.
* Summaries survive the store's JSON, and a damaged store file reads as missing.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from mypy.nodes import Expression, MemberExpr, NameExpr, OpExpr, StrExpr, UnaryExpr, Var

from ownership.bindings import gfp as gfp_flags
from ownership.static import gfp
from ownership.static.codes import RULES
from ownership.static.report import Report, ReportNote, parse_messages, render_text
from ownership.static.resolve import Typer
from ownership.static.safety import argument_state
from ownership.static.sarif import (
    ContractEntry,
    UnsafeSiteEntry,
    contracts_to_sarif,
    findings_to_sarif,
)
from ownership.static.store import Store
from ownership.static.summary import ClassDecl, FuncSummary, ModuleRecord, Reason

SCHEMA = json.loads(Path(__file__).with_name("sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)

CONSTANTS = [
    "GFP_KERNEL",
    "GFP_ATOMIC",
    "GFP_NOWAIT",
    "__GFP_ZERO",
    "__GFP_HIGHMEM",
    "__GFP_NOWARN",
    "GFP_ZERO",
]
MEMBERS = ["DIRECT_RECLAIM", "KSWAPD_RECLAIM", "IO", "FS", "ZERO", "HIGH"]


def _const(name: str) -> tuple[Expression, int]:
    e = NameExpr(name)
    e.fullname = f"{gfp.FLAGS_MODULE}.{name}"
    return e, int(getattr(gfp_flags, name))


def _member(name: str) -> tuple[Expression, int]:
    base = NameExpr("Flags")
    base.fullname = gfp.FLAGS_TYPE
    return MemberExpr(base, name), int(getattr(gfp_flags.Flags, name))


PARAM = Var("gfp")


def _param() -> tuple[Expression, int | None]:
    e = NameExpr("gfp")
    e.node = PARAM
    return e, None


leaves = st.one_of(
    st.sampled_from(CONSTANTS).map(_const),
    st.sampled_from(MEMBERS).map(_member),
)


def _combine(
    children: st.SearchStrategy[tuple[Expression, int]],
) -> st.SearchStrategy[tuple[Expression, int]]:
    def binop(
        op: str, a: tuple[Expression, int], b: tuple[Expression, int]
    ) -> tuple[Expression, int]:
        value = {"|": a[1] | b[1], "&": a[1] & b[1], "^": a[1] ^ b[1]}[op]
        return OpExpr(op, a[0], b[0]), value

    def invert(a: tuple[Expression, int]) -> tuple[Expression, int]:
        return UnaryExpr("~", a[0]), ~a[1]

    return st.one_of(
        st.builds(binop, st.sampled_from(["|", "&", "^"]), children, children),
        children.map(invert),
    )


flag_exprs = st.recursive(leaves, _combine, max_leaves=6)


def runtime_may_sleep(value: int) -> bool:
    return bool(gfp_flags.Flags(value & ((1 << 64) - 1)).may_sleep)


@given(flag_exprs)
def test_static_gfp_evaluation_matches_the_runtime(expr: tuple[Expression, int]) -> None:
    node, value = expr
    assert gfp.classify(node, Typer(None), {}, {}) == (
        "sleep" if runtime_may_sleep(value) else "nosleep",
        "",
    )


@given(
    flag_exprs,
    st.sampled_from(["|", "&"]),
    st.sampled_from(["GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT"]),
)
def test_forwarded_gfp_matches_the_runtime_for_every_caller(
    expr: tuple[Expression, int], op: str, caller: str
) -> None:
    """`gfp | X` / `gfp & X`: whatever the caller passes, static and runtime agree."""
    node, value = expr
    param, _ = _param()
    combined = OpExpr(op, param, node)
    cls, fwd = gfp.classify(combined, Typer(None), {PARAM: "gfp"}, {}) or ("none", "")
    passed = int(getattr(gfp_flags, caller))
    actual = runtime_may_sleep(passed | value if op == "|" else passed & value)
    if cls == "fwd":
        assert fwd == "gfp"
        assert actual == runtime_may_sleep(passed)
    else:
        assert cls == ("sleep" if actual else "nosleep")


def test_non_flags_expressions_are_not_gfp_values() -> None:
    e = NameExpr("count")
    e.fullname = "pkg.count"
    assert gfp.classify(e, Typer(None), {}, {}) is None


# --- SAFETY justifications -------------------------------------------------------------

comment_text = st.text(
    alphabet=string.ascii_letters + string.digits + " .,`()", min_size=1, max_size=30
).filter(lambda s: s.strip() != "" and "SAFETY" not in s)


@given(comment_text, st.sampled_from(["SAFETY:", "safety: ", "", "  "]))
def test_unsafe_argument_is_justified_by_its_text_after_the_prefix(text: str, prefix: str) -> None:
    assert argument_state([StrExpr(f"{prefix}{text}")]) == "ok"
    assert argument_state([StrExpr(prefix)]) == "empty"
    assert argument_state([]) == "missing"


# --- reports ---------------------------------------------------------------------------

path_part = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
paths = st.lists(path_part, min_size=1, max_size=3).map(lambda parts: "/".join(parts) + ".py")
message = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(lambda s: s != "" and not s.endswith("]") and not s.endswith(")"))
)
notes = st.lists(
    st.one_of(
        st.builds(ReportNote, message),
        st.builds(ReportNote, message, paths, st.integers(1, 10_000)),
    ),
    max_size=4,
)
codes = st.sampled_from([r.code for r in RULES] + ["arg-type", "misc"])
reports = st.builds(
    lambda code, path, line, msg, ns: Report(code, path, line, 0, msg, "error", ns),
    codes,
    paths,
    st.integers(1, 10_000),
    message,
    notes,
)


@given(st.lists(reports, max_size=6))
def test_reports_survive_the_text_format(rs: list[Report]) -> None:
    text = render_text(rs, 3)
    assert parse_messages(text.splitlines()) == rs


@given(st.lists(st.text(max_size=80), max_size=20))
def test_parsing_arbitrary_output_never_fails(lines: list[str]) -> None:
    for r in parse_messages(lines):
        assert r.severity in ("error", "warning")


# --- SARIF -------------------------------------------------------------------------------

any_path = st.one_of(
    paths, st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s and s.strip() != "")
)


@settings(max_examples=30)
@given(
    st.lists(
        st.builds(
            lambda code, path, line, col, msg, ns: Report(code, path, line, col, msg, "error", ns),
            codes,
            any_path,
            st.integers(0, 10_000),
            st.integers(0, 500),
            st.text(max_size=60),
            notes,
        ),
        max_size=5,
    )
)
def test_any_findings_make_a_valid_sarif_log(rs: list[Report]) -> None:
    log: dict[str, Any] = findings_to_sarif(rs)
    assert not list(VALIDATOR.iter_errors(log))
    assert len(log["runs"][0]["results"]) == len(rs)


contract = st.builds(
    ContractEntry,
    st.text(min_size=1, max_size=30),
    st.text(max_size=60),
    any_path,
    st.integers(0, 5000),
    st.sampled_from(
        ["checked at runtime", "proved", "checked at runtime and proved", "documented only"]
    ),
)
site = st.builds(
    UnsafeSiteEntry,
    any_path,
    st.integers(0, 5000),
    st.text(max_size=40),
    st.lists(st.text(min_size=1, max_size=20), max_size=3).map(tuple),
)


@settings(max_examples=30)
@given(st.lists(contract, max_size=5), st.lists(site, max_size=5))
def test_any_contracts_make_a_valid_sarif_log(
    cs: list[ContractEntry], ss: list[UnsafeSiteEntry]
) -> None:
    log = contracts_to_sarif(cs, ss)
    assert not list(VALIDATOR.iter_errors(log))
    results = log["runs"][0]["results"]
    assert len(results) == len(cs) + len(ss)
    assert sum(1 for r in results if r["level"] == "error") == sum(
        1 for s in ss if not s.justification.strip()
    )


# --- the store ---------------------------------------------------------------------------

names = st.text(alphabet=string.ascii_lowercase + "._", min_size=1, max_size=20)


def _summary(
    fullname: str,
    line: int,
    always: bool,
    gfp_params: tuple[str, ...],
    reason: Reason | None,
    defaults: dict[str, str],
    declared: str,
    unsafe: str | None,
    unsafe_line: int,
    handoff: tuple[str, ...],
) -> FuncSummary:
    # Invariants of FuncSummary: `always` excludes a GFP condition; a Safety text has a line.
    return FuncSummary(
        fullname,
        line,
        always,
        () if always else gfp_params,
        reason,
        defaults,
        declared,
        unsafe,
        unsafe_line if unsafe is not None else 0,
        handoff,
    )


summaries = st.builds(
    _summary,
    names,
    st.integers(0, 5000),
    st.booleans(),
    st.lists(names, max_size=2).map(tuple),
    st.one_of(
        st.none(),
        st.builds(
            Reason, st.sampled_from(["declared", "call"]), st.integers(0, 999), names, names, names
        ),
    ),
    st.dictionaries(names, st.sampled_from(["sleep", "nosleep", "unknown"]), max_size=2),
    names,
    st.one_of(st.none(), st.text(max_size=20)),
    st.integers(0, 999),
    st.lists(names, max_size=2).map(tuple),
)


@settings(max_examples=40)
@given(
    st.lists(summaries, max_size=4),
    st.dictionaries(
        names,
        st.builds(
            ClassDecl, st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.booleans())
        ),
        max_size=3,
    ),
)
def test_records_survive_the_store(
    tmp_path_factory: Any, fs: list[FuncSummary], classes: dict[str, ClassDecl]
) -> None:
    directory = tmp_path_factory.mktemp("store")
    rec = ModuleRecord(
        "pkg.mod",
        "pkg/mod.py",
        "abc",
        {f.fullname: f for f in fs},
        classes,
        {"pkg.dep": ("pkg/dep.py", "def")},
    )
    Store(str(directory)).put(rec)
    back = Store(str(directory)).get("pkg.mod")
    assert back == rec


def test_a_damaged_store_file_reads_as_missing(tmp_path: Path) -> None:
    (tmp_path / "pkg.mod.json").write_text('{"version": 3, "module": ', encoding="utf-8")
    assert Store(str(tmp_path)).get("pkg.mod") is None
    assert not Store(str(tmp_path)).is_current("pkg.mod", str(tmp_path / "mod.py"))
