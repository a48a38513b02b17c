"""`python -m ownership check`: exit status, text/JSON/SARIF reports, and SARIF for the
contract review, validated against the published SARIF 2.1.0 schema shipped here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from ownership.aref import ARef
from ownership.static import cli
from ownership.static.cli import CheckResult
from ownership.static.report import Report, ReportNote
from ownership.static.sarif import (
    ContractEntry,
    UnsafeSiteEntry,
    contracts_to_sarif,
    findings_to_sarif,
)
from ownership.tools import contracts as contract_review
from ownership.unsafe import contracts, unsafe_sites

from .bad.unsafe_call import in_unsafe_fn_body
from .corpus import BAD, GOOD, PROJECT, CorpusFile

SCHEMA_PATH = Path(__file__).with_name("sarif-schema-2.1.0.json")


def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_sarif(log: dict[str, Any]) -> None:
    errors = sorted(sarif_validator().iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def run_cli(
    args: list[str], corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    cfg = corpus_dir / "mypy.ini"
    rc = cli.main([*args, "--config-file", str(cfg), "--cache-dir", str(corpus_dir / "cache")])
    return rc, capsys.readouterr().out


def test_schema_file_is_the_oasis_sarif_2_1_0_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    jsonschema.Draft4Validator.check_schema(schema)


def test_text_report_and_exit_status_on_findings(
    corpus_result: CheckResult, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = BAD / "atomic_sleep" / "mutex_under_spinlock.py"
    rc, out = run_cli([str(target)], corpus_dir, capsys)
    assert rc == 1
    lines = out.splitlines()
    f = CorpusFile(target)
    ((_code, line),) = f.expected()
    assert lines[0].endswith(
        f"mutex_under_spinlock.py:{line}: error: sleeping function called from atomic context: "
        "`self.config.lock()` may sleep  [atomic-sleep]"
    )
    assert (
        f"mutex_under_spinlock.py:{line}: note: this call expects the preemption count to be 0"
        in out
    )
    assert lines[-1] == "Found 1 finding in 1 file (checked 1 source file)"


def test_clean_file_exits_zero(
    corpus_result: CheckResult, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = run_cli([str(GOOD / "get_thread.py")], corpus_dir, capsys)
    assert rc == 0
    assert out.strip() == "Success: no findings (checked 1 source file)"


def test_json_report(
    corpus_result: CheckResult, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = run_cli([str(BAD / "guard_escape"), "--format", "json"], corpus_dir, capsys)
    assert rc == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    expected = [e for p in (BAD / "guard_escape").glob("*.py") for e in CorpusFile(p).expected()]
    assert doc["count"] == len(doc["findings"]) == len(expected)
    assert {f["rule"] for f in doc["findings"]} == {"guard-escape"}
    first = doc["findings"][0]
    assert set(first) == {"rule", "path", "line", "column", "severity", "message", "notes"}
    assert any(n["path"] is not None and n["line"] for n in first["notes"])


def test_sarif_report_validates_and_carries_related_locations(
    corpus_result: CheckResult, corpus_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "check.sarif"
    rc, _ = run_cli(
        [str(BAD / "atomic_sleep"), "--format", "sarif", "--output", str(out_file)],
        corpus_dir,
        capsys,
    )
    assert rc == 1
    log = json.loads(out_file.read_text(encoding="utf-8"))
    validate_sarif(log)
    run = log["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules[:5] == [
        "atomic-sleep",
        "undocumented-unsafe",
        "unsafe-call",
        "send-handoff",
        "guard-escape",
    ]
    f = CorpusFile(BAD / "atomic_sleep" / "get_thread.py")
    lock = next(
        n for n, t in enumerate(f.text.splitlines(), 1) if "with self.inner.lock() as inner:" in t
    )
    results = [
        r
        for r in run["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
            "get_thread.py"
        )
    ]
    assert len(results) == 2
    for res in results:
        assert res["ruleId"] == "atomic-sleep" and rules[res["ruleIndex"]] == "atomic-sleep"
        first_related = res["relatedLocations"][0]
        assert first_related["physicalLocation"]["region"]["startLine"] == lock
        assert "was taken here" in first_related["message"]["text"]


def test_bad_path_is_a_usage_error(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run_cli([str(PROJECT / "no_such_dir_here")], corpus_dir, capsys)
    assert rc == 2


def test_module_entry_point(corpus_result: CheckResult, corpus_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ownership",
            "check",
            "--config-file",
            str(corpus_dir / "mypy.ini"),
            "--cache-dir",
            str(corpus_dir / "cache"),
            str(BAD / "unsafe_call" / "from_raw.py"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "from_raw.py:" in proc.stdout and "[unsafe-call]" in proc.stdout


def test_findings_to_sarif_includes_mypy_type_errors() -> None:
    reports = [
        Report(
            "arg-type", "pkg/mod.py", 3, 5, 'Argument 1 has incompatible type "str"; expected "int"'
        ),
        Report(
            "atomic-sleep",
            "pkg/mod.py",
            9,
            9,
            "sleeping function called from atomic context",
            notes=[ReportNote("the SpinLock guard of `x` was taken here", "pkg/mod.py", 8)],
        ),
    ]
    log = findings_to_sarif(reports)
    validate_sarif(log)
    rules = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    assert "arg-type" in rules
    atomic = log["runs"][0]["results"][1]
    assert atomic["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 8


def test_contracts_to_sarif_from_runtime_records() -> None:
    in_unsafe_fn_body.main()
    entries = [ContractEntry.from_contract(c) for c in contracts()]
    # Only this scenario's blocks: other tests record theirs in the same registry.
    sites = [
        UnsafeSiteEntry.from_site(s)
        for s in unsafe_sites()
        if s.site.filename.endswith("in_unsafe_fn_body.py")
    ]
    sites.append(
        UnsafeSiteEntry(
            "drivers/x.py", 10, "", ("tests.static.bad.unsafe_call.in_unsafe_fn_body.read_header",)
        )
    )
    log = contracts_to_sarif(entries, sites)
    validate_sarif(log)
    results = log["runs"][0]["results"]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_rule.setdefault(r["ruleId"], []).append(r)
    names = {r["properties"]["qualname"] for r in by_rule["unsafe-contract"]}
    assert "tests.static.bad.unsafe_call.in_unsafe_fn_body.read_header" in names
    assert f"{ARef.__module__}.ARef.from_raw" in names
    undocumented = by_rule["undocumented-unsafe"]
    assert len(undocumented) == 1 and undocumented[0]["level"] == "error"
    assert undocumented[0]["relatedLocations"][0]["message"]["text"].startswith(
        "tests.static.bad.unsafe_call.in_unsafe_fn_body.read_header: Safety:"
    )
    assert all(r["level"] == "note" for r in by_rule["unsafe-site"])


def test_contracts_command_writes_valid_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    rc = contract_review.main(["--format", "sarif"])
    assert rc == 0
    log = json.loads(capsys.readouterr().out)
    validate_sarif(log)
    results = log["runs"][0]["results"]
    assert any(r["ruleId"] == "unsafe-contract" for r in results)
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in results)


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("def broken(:\n    pass\n", "syntax"),
        ("x: int = 'not an int'\n", "assignment"),
    ],
)
def test_broken_input_is_a_finding_not_a_crash(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str, code: str
) -> None:
    target = tmp_path / "broken_input.py"
    target.write_text(source, encoding="utf-8")
    rc, out = run_cli([str(target)], corpus_dir, capsys)
    assert rc == 1
    assert f"[{code}]" in out or (code == "syntax" and "error: " in out)


def test_empty_and_non_utf8_files(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty_module.py"
    empty.write_text("", encoding="utf-8")
    rc, out = run_cli([str(empty)], corpus_dir, capsys)
    assert (rc, out.strip()) == (0, "Success: no findings (checked 1 source file)")
    latin = tmp_path / "latin_module.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\nNAME = '\xe9t\xe9'\n")
    rc, out = run_cli([str(latin)], corpus_dir, capsys)
    assert rc == 0, out


def test_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--format", "xml", str(GOOD)])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"qualname": 3, "safety": "s", "path": "p.py", "line": 1, "enforcement": "proved"},
        {"qualname": "q", "safety": "s", "path": "p.py", "line": -1, "enforcement": "proved"},
        {"qualname": "q", "safety": "s", "path": "p.py", "line": True, "enforcement": "proved"},
    ],
)
def test_contract_entries_reject_wrong_types(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        ContractEntry(**kwargs)


def test_site_entries_reject_wrong_types() -> None:
    with pytest.raises(TypeError):
        UnsafeSiteEntry("p.py", 1, "why", ["not", "a", "tuple"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        UnsafeSiteEntry("p.py", 1, "why", (1, 2))  # type: ignore[arg-type]
