"""The shipped summaries: written from records, read back, refused when they do not match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ownership.static import shipped
from ownership.static.shipped import SHIPPED_NAME, ShippedError, load_shipped, write_shipped
from ownership.static.store import Store, source_hash
from ownership.static.summary import STORE_VERSION, FuncSummary, ModuleRecord, Reason


def layout(tmp_path: Path, site: str = "site-packages") -> tuple[Path, Path, Path]:
    root = tmp_path / site
    static = root / "ownership" / "static"
    static.mkdir(parents=True)
    src = root / "ownership" / "alloc.py"
    src.write_text("def new() -> None: ...\n", encoding="utf-8")
    return root, static, src


def record(src: Path) -> ModuleRecord:
    fn = FuncSummary(
        "ownership.alloc.new",
        1,
        gfp=("gfp",),
        reason=Reason("call", 1, "x.alloc_check", "alloc_check()"),
    )
    return ModuleRecord("ownership.alloc", str(src), source_hash(str(src)), {fn.fullname: fn})


def test_round_trip_with_paths_under_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, static, src = layout(tmp_path)
    monkeypatch.setattr(shipped, "_installed_version", lambda: "1.2.3")
    write_shipped(str(static / SHIPPED_NAME), [record(src)], str(root), "1.2.3")
    doc = json.loads((static / SHIPPED_NAME).read_text(encoding="utf-8"))
    assert doc["store_version"] == STORE_VERSION and doc["package_version"] == "1.2.3"
    assert doc["modules"]["ownership.alloc"]["path"] == "ownership/alloc.py"
    loaded = load_shipped(str(static))
    assert loaded is not None
    rec = loaded.get("ownership.alloc")
    assert rec is not None and rec.path == str(src)
    assert rec.functions["ownership.alloc.new"].gfp == ("gfp",)
    store = Store(None, loaded)
    assert store.accept_shipped("ownership.alloc", str(src)) and store.is_current(
        "ownership.alloc", str(src)
    )
    assert store.get("ownership.alloc") == rec


def test_an_edited_source_is_not_described_by_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, static, src = layout(tmp_path)
    monkeypatch.setattr(shipped, "_installed_version", lambda: "1.2.3")
    write_shipped(str(static / SHIPPED_NAME), [record(src)], str(root), "1.2.3")
    src.write_text("def new() -> int: return 1\n", encoding="utf-8")
    store = Store(None, load_shipped(str(static)))
    assert not store.accept_shipped("ownership.alloc", str(src))
    assert store.get("ownership.alloc") is None


def test_another_package_version_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, static, src = layout(tmp_path)
    monkeypatch.setattr(shipped, "_installed_version", lambda: "2.0.0")
    write_shipped(str(static / SHIPPED_NAME), [record(src)], str(root), "1.2.3")
    with pytest.raises(
        ShippedError, match=r"made for rust-mm-model 1\.2\.3, but 2\.0\.0 is installed"
    ):
        load_shipped(str(static))


def test_another_record_format_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, static, src = layout(tmp_path)
    monkeypatch.setattr(shipped, "_installed_version", lambda: "1.2.3")
    path = static / SHIPPED_NAME
    write_shipped(str(path), [record(src)], str(root), "1.2.3")
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["store_version"] = STORE_VERSION + 1
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ShippedError, match="format"):
        load_shipped(str(static))


def test_an_installed_package_without_summaries_is_refused(tmp_path: Path) -> None:
    _root, static, _src = layout(tmp_path)
    with pytest.raises(ShippedError, match="installed without its static summaries"):
        load_shipped(str(static))


def test_a_source_checkout_without_summaries_analyses_its_sources(tmp_path: Path) -> None:
    _root, static, _src = layout(tmp_path, site="checkout")
    assert load_shipped(str(static)) is None
