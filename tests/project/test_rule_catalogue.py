"""The rule catalogue lists every rule id the runtime raises, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ownership import errors
from ownership.mm.vma_rules import RULES as VMA_RULES
from ownership.rule_catalogue import all_rules, main

ROOT = Path(__file__).resolve().parents[2]
_LITERAL = re.compile(r'\brule="([a-z0-9-]+)"')


def _raised_ids() -> set[str]:
    ids: set[str] = set()
    for pkg in ("ownership", "binder"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "static" in path.parts:
                continue
            ids.update(_LITERAL.findall(path.read_text()))
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.SafetyViolation):
            ids.add(cls.default_rule)
    ids.discard("safety")
    return ids


def test_every_raised_rule_is_catalogued() -> None:
    listed = {r.id for r in all_rules()}
    missing = _raised_ids() - listed
    assert not missing, f"rule ids raised but not in ownership/rule_catalogue.py: {sorted(missing)}"


def test_every_catalogued_rule_is_raised_somewhere() -> None:
    raised = _raised_ids() | {r.id for r in VMA_RULES}
    stale = {r.id for r in all_rules()} - raised
    assert not stale, f"rule ids catalogued but raised nowhere: {sorted(stale)}"


def test_ids_are_unique() -> None:
    ids = [r.id for r in all_rules()]
    assert len(ids) == len(set(ids))


def test_markdown_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "| `mixedmap-pfnmap` |" in out
    assert "| `atomic-sleep` |" in out
