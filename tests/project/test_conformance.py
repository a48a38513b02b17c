"""docs/conformance.md stays true: every model name its table lists can be imported.

The table's second column names the model's counterpart of an upstream item as
`module:qualified.name` in backticks (several, comma-separated, for one row); `-` marks
an item not modelled yet. Each name is imported and looked up attribute by attribute.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
NAME = re.compile(r"`([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)`")


def _rows() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| Upstream item"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a conformance row has three columns: {line!r}"
        rows.append((cells[0], cells[1]))
    return rows


def _names() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for upstream, model in _rows():
        found = NAME.findall(model)
        assert found or model == "-", f"row {upstream!r}: no `module:name` in {model!r}"
        out.extend(found)
    return out


def test_the_table_has_rows_for_every_group() -> None:
    rows = _rows()
    assert len(rows) > 60
    headings = [ln for ln in DOC.read_text().splitlines() if ln.startswith("## ")]
    for section in (
        "kernel::ioctl",
        "kernel::rbtree",
        "kernel::sync",
        "kernel::workqueue",
        "kernel::mm",
        "kernel::task",
        "kernel::page",
    ):
        assert any(h.startswith(f"## {section}") for h in headings), section


@pytest.mark.parametrize(("module", "qualname"), _names(), ids=lambda x: str(x))
def test_every_listed_name_imports(module: str, qualname: str) -> None:
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        assert hasattr(obj, part), f"{module}:{qualname}: no {part!r}"
        obj = getattr(obj, part)
