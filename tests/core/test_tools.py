"""The three command-line tools: `contracts`, `demo`, `bench`.

`contracts` is tested on a small package written for the test (so the expected
entries are known exactly) and on the default scan; `demo` must catch every bug and
pass every fix; `bench` is run with a handful of iterations only to check its output
shape (its figures are measured by running it, not by tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import ownership.static
from ownership.__main__ import main as cli
from ownership.errors import LifetimeError
from ownership.tools import bench, contracts, demo
from ownership.tools.demo import runner as demo_runner
from ownership.unsafe import unsafe

DRIVER = '''\
"""A small driver for the contract review test."""

from ownership.marker import NotThreadSafe, impl_send, not_sync
from ownership.unsafe import unsafe, unsafe_fn


@impl_send("the buffer is owned")
@not_sync("interior mutability without a lock")
class Buffer:
    @unsafe_fn(safety="`i` < len(self.data).", checked="IndexError")
    def get_unchecked(self, i: int) -> int:
        return 0

    @unsafe_fn(safety="the caller holds the device lock.", proved=("claim-that-does-not-exist",))
    def poke(self) -> None:
        return None

    @unsafe_fn(safety="nothing is checked here.")
    def raw(self) -> None:
        return None


class Cursor(NotThreadSafe):
    """A cursor into a Buffer, tied to its thread."""


def use(b: Buffer) -> int:
    with unsafe("SAFETY: 0 < len(b.data)"):
        x = b.get_unchecked(0)
    with unsafe("SAFETY: lock held by the caller"):
        b.poke()
    # SAFETY: a comment, but no string: the string is the justification.
    with unsafe(""):
        b.raw()
    with unsafe(""):
        b.raw()
    # Deliberately undocumented: a demo of the bug.
    with unsafe(""):
        b.raw()
    return x
'''


@pytest.fixture
def driver_pkg(tmp_path: Path) -> Path:
    pkg = tmp_path / "contract_review_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "driver.py").write_text(DRIVER)
    return pkg


def test_contracts_finds_every_declaration_block_and_marker(driver_pkg: Path) -> None:
    r = contracts.review([str(driver_pkg)], import_modules=False)
    by_name = {
        c.qualname.rsplit(".", 2)[-2] + "." + c.qualname.rsplit(".", 1)[-1]: c for c in r.contracts
    }
    assert set(by_name) == {"Buffer.get_unchecked", "Buffer.poke", "Buffer.raw"}
    assert by_name["Buffer.get_unchecked"].enforcement == "checked at runtime"
    assert by_name["Buffer.get_unchecked"].safety == "`i` < len(self.data)."
    assert by_name["Buffer.poke"].enforcement == "proved"
    assert by_name["Buffer.poke"].proofs_missing == ["claim-that-does-not-exist"]
    assert by_name["Buffer.raw"].enforcement == "documented only"
    statuses = [(b.status, b.string) for b in sorted(r.blocks, key=lambda b: b.line)]
    assert statuses == [
        ("ok", "0 < len(b.data)"),
        ("ok", "lock held by the caller"),
        ("missing", None),
        ("missing", None),
        ("deliberately undocumented", None),
    ]
    first = min(r.blocks, key=lambda b: b.line)
    # Calls also resolve against the runtime registry, which holds the contracts of
    # whatever other tests imported in this process (a `get_unchecked` of the corpus).
    own = [q for q in first.calls if q.startswith("contract_review_pkg.")]
    assert own == ["contract_review_pkg.driver.Buffer.get_unchecked"]
    markers = {(m.cls.rsplit(".", 1)[-1], m.trait, m.implemented): m.reason for m in r.markers}
    assert markers[("Buffer", "Send", True)] == "the buffer is owned"
    assert markers[("Buffer", "Sync", False)] == "interior mutability without a lock"
    assert markers[("Cursor", "Send", False)].startswith("NotThreadSafe base: A cursor")
    assert r.summary()["blocks_missing_justification"] == 2


def test_contracts_markdown(driver_pkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["contracts", "--no-import", str(driver_pkg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Safety contract review")
    assert "| `contract_review_pkg.driver.Buffer.get_unchecked` |" in out
    assert "checked at runtime: IndexError" in out
    assert "**claims not found in proofs/: claim-that-does-not-exist**" in out
    assert "| missing | missing |" in out
    assert "## Send / Sync declarations" in out and "| !Sync | interior mutability" in out


def test_contracts_json_and_strict(driver_pkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["contracts", "--no-import", "--format", "json", "--strict", str(driver_pkg)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["contracts"] == 3
    assert data["summary"]["unsafe_blocks"] == 5
    assert data["summary"]["blocks_deliberately_undocumented"] == 1
    assert {b["status"] for b in data["unsafe_blocks"]} >= {"ok", "missing"}
    assert all(
        set(c) >= {"qualname", "safety", "enforcement", "path", "line"} for c in data["contracts"]
    )
    assert "runtime" in data and "blocks_ran" in data["runtime"]


def test_contracts_default_scan_covers_ownership_and_binder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(["contracts", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {c["qualname"] for c in data["contracts"]}
    assert "ownership.aref.ARef.from_raw" in names
    # The ownership package is read and imported cleanly (binder is others' work in
    # progress: its problems are reported, not asserted on here).
    assert not [e for e in data["errors"] if e.startswith("ownership")], data["errors"]
    # Importing the scanned modules registered every contract the scan found, and the
    # scan found every contract the runtime knows of in these packages.
    assert all(c["registered"] for c in data["contracts"] if c["qualname"].startswith("ownership."))
    unseen = data["runtime"]["contracts_not_in_sources"]
    assert [q for q in unseen if q.startswith(("ownership.", "binder."))] == []


def test_contracts_reports_blocks_that_ran(capsys: pytest.CaptureFixture[str]) -> None:
    with unsafe("SAFETY: the review must see this block run"):
        pass
    assert cli(["contracts", "--format", "json", "--no-import", __file__]) == 0
    data = json.loads(capsys.readouterr().out)
    ran = [b for b in data["unsafe_blocks"] if b["ran"]]
    assert len(ran) == 1 and ran[0]["string"] == "the review must see this block run"


def test_contracts_sarif(driver_pkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["contracts", "--no-import", "--format", "sarif", str(driver_pkg)]) == 0
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0"
    levels = [r["level"] for r in log["runs"][0]["results"]]
    # The blocks without a string (SARIF has no "deliberate" level).
    assert levels.count("error") == 3


def test_contracts_sarif_without_the_writer(
    driver_pkg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the SARIF writer were not written yet.
    monkeypatch.setitem(sys.modules, "ownership.static.sarif", None)
    monkeypatch.delattr(ownership.static, "sarif", raising=False)
    assert cli(["contracts", "--no-import", "--format", "sarif", str(driver_pkg)]) == 2
    assert "needs ownership.static.sarif" in capsys.readouterr().err


def test_contracts_bad_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["contracts", "/nonexistent/path"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_demo_catches_every_bug_and_passes_every_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["demo", "--core"]) == 0
    out = capsys.readouterr().out
    assert "every bug caught, every fix clean" in out
    assert "NOT CAUGHT" not in out and "FAILED" not in out
    assert out.count("--- fixed: ok") == len([s for s in demo.registry() if s.layer == "core"])
    # The get_thread snippet shows both sites inside the demo module.
    assert "get_thread: GFP_KERNEL allocation under a SpinLock" in out
    assert (
        "ownership/tools/demo/snippets_core.py:" in out and "atomic context began (spinlock" in out
    )


def test_demo_reports_an_uncaught_bug(capsys: pytest.CaptureFixture[str]) -> None:
    fake = demo.Snippet(
        "lifetime", "a bug the model cannot see", LifetimeError, lambda: None, lambda: None
    )
    assert demo.run(fake) is False
    assert "NOT CAUGHT" in capsys.readouterr().out


def test_demo_damage_snippets_must_show_their_damage(capsys: pytest.CaptureFixture[str]) -> None:
    silent = demo.Snippet("logic-bug", "a bug that shows nothing", None, lambda: None, lambda: None)
    assert demo.run(silent) is False
    assert "NO DAMAGE SHOWN" in capsys.readouterr().out
    shown = demo.Snippet(
        "logic-bug", "a bug that shows its damage", None, lambda: "user wrote it", lambda: None
    )
    assert demo.run(shown) is True
    out = capsys.readouterr().out
    assert "user wrote it" in out and "--- fixed: ok" in out and "!!!" not in out


def test_demo_list_and_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["demo", "--core", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "lock-order" in listed and "undocumented-unsafe" in listed
    assert cli(["demo", "--core", "--only", "pin"]) == 0
    assert "[pin]" in capsys.readouterr().out
    assert cli(["demo", "--core", "--only", "no-such-rule"]) == 2


def test_bench_output_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--json", "--iterations", "200", "--repeats", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["ops"]) == {
        "spinlock_lock_unlock",
        "spinlock_with_block",
        "ref_deref",
        "aref_clone_drop",
        "send_check_annotated",
        "send_check_unannotated",
        "pin_check_move",
    }
    for op in data["ops"].values():
        assert op["on_ns"] >= 0 and op["off_ns"] >= 0
    assert set(data["targets"]) == {"deref_over_plain_call", "lock_unlock_on_over_off"}
    assert bench.main(["--iterations", "200", "--repeats", "1"]) == 0
    text = capsys.readouterr().out
    assert "target: checked deref <= 2.0x a plain call" in text
    assert bench.main(["--iterations", "0"]) == 2


SNIPPETS = """\
from ownership.errors import RefcountError
from ownership.site import driver_module
from ownership.sync import Refcount
from ownership.tools.demo import snippet

driver_module(__file__)


@snippet("refcount-inc-zero", "a get on a freed object (extra layer)", RefcountError, layer="extra")
def make():
    def buggy():
        rc = Refcount("struct extra", 1)
        rc.dec_and_test()
        rc.inc()

    def fixed():
        rc = Refcount("struct extra", 1)
        rc.inc()

    return buggy, fixed
"""


def test_demo_loads_other_layers_snippets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "demo_layer_pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "demo_snippets.py").write_text(SNIPPETS)
    (pkg / "broken").mkdir()
    (pkg / "broken" / "__init__.py").write_text("")
    (pkg / "broken" / "demo_snippets.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = list(demo_runner._registry)
    monkeypatch.setattr(demo_runner, "_registry", before)
    problems = demo.load_extra_snippets(("demo_layer_pkg",))
    assert len(problems) == 1 and "half written" in problems[0]
    extra = [s for s in demo.registry() if s.layer == "extra"]
    assert len(extra) == 1
    assert demo.run(extra[0]) is True
    out = capsys.readouterr().out
    assert "(extra)" in out and "demo_snippets.py:" in out and "--- fixed: ok" in out
