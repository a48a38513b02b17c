"""`python -m proofs`: lines, JSON, selection, exit status, benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

import proofs
import proofs.__main__ as cli
import proofs.bench as bench
from proofs.claim import Claim
from proofs.outcome import Outcome
from proofs.table import Table

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = {
    "type": "object",
    "required": ["claims", "ok"],
    "additionalProperties": False,
    "properties": {
        "ok": {"type": "boolean"},
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "expect", "verdict", "counterexample", "seconds"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "expect": {"enum": ["holds", "fails"]},
                    "verdict": {"enum": ["proved", "counterexample", "unknown"]},
                    "counterexample": {"type": ["string", "null"]},
                    "seconds": {"type": "number", "minimum": 0},
                },
            },
        },
    },
}

PICK = "binder_mmap_postcondition,v6_set_flags_mixedmap_pfnmap"


def test_json_is_exactly_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--json", "--only", PICK]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["ok"] is True
    by_name = {c["name"]: c for c in doc["claims"]}
    assert by_name["binder_mmap_postcondition"]["verdict"] == "proved"
    assert by_name["binder_mmap_postcondition"]["counterexample"] is None
    cex = by_name["v6_set_flags_mixedmap_pfnmap"]["counterexample"]
    assert cex.startswith("VM_PFNMAP|VM_MIXEDMAP via mmap(")
    assert "-> v6_set_flags(value=" in cex


def test_one_line_per_claim_with_flag_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--only", "v6_set_flags_hugetlb", "--only", "split_merge"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "v6_set_flags_hugetlb" in lines[0] and "counterexample" in lines[0]
    assert "VM_HUGETLB" in lines[0] and "v6_set_flags(" in lines[0]
    assert "split_merge" in lines[1] and "proved" in lines[1]
    assert lines[2].endswith("2/2 as expected -> OK")


def test_unknown_claim_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--only", "no_such_claim"]) == 2
    assert "unknown claim(s): no_such_claim" in capsys.readouterr().err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for c in proofs.CLAIMS:
        assert c.name in out
    assert cli.main(["--list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in doc["claims"]] == [c.name for c in proofs.CLAIMS]


def _undecided(t: Table, hint: str) -> Outcome:
    return Outcome("unknown", detail="solver gave up")


def test_exit_status_is_1_when_a_claim_misses_its_expectation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    undecided = Claim("undecided", "holds", 'Never decided: "unknown fails".', _undecided)
    monkeypatch.setattr(cli, "CLAIMS", (undecided, proofs.claim("binder_mmap_postcondition")))
    assert cli.main([]) == 1
    out = capsys.readouterr().out
    assert "BAD undecided" in out and "(solver gave up)" in out and "FAILED" in out
    assert cli.main(["--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_bench_reports_suite_slowest_and_scaling(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    few = (proofs.claim("binder_mmap_postcondition"), proofs.claim("special_never_merged"))
    monkeypatch.setattr(bench, "CLAIMS", few)
    assert cli.main(["--bench", "--repeat", "2", "--bits", "2,4"]) == 0
    out = capsys.readouterr().out
    assert "suite: 2 claims" in out and "slowest claim:" in out
    assert "cross-check" in out
    rows = [ln.split() for ln in out.splitlines() if ln.strip().split()[:1] in (["2"], ["4"])]
    assert [r[0] for r in rows] == ["2", "4"] and all(r[-1] == "yes" for r in rows)
    assert cli.main(["--bench", "--repeat", "1", "--bits", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["claims"] == 2 and rep["crosscheck_scaling"][0]["bits"] == 2
    assert rep["slowest_claim"]["name"] in {c.name for c in few}


@pytest.mark.parametrize("bits", ["x", "99"])
def test_bench_refuses_bad_arguments(bits: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--bench", "--bits", bits]) == 2
    assert "--bits" in capsys.readouterr().err


def test_python_dash_m_proofs_runs() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "proofs", "--only", "write_check_without_maywrite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "-> mprotect(prot=" in p.stdout and "PROT_WRITE" in p.stdout
    assert "!writable()" in p.stdout
