"""The demo's mm snippets (ownership/tools/demo/snippets_mm.py) through the demo machinery.

Every mm snippet is registered the way `python -m ownership demo` registers it (by
importing `ownership.tools.demo`). A buggy form the runtime can catch must raise the
snippet's class with its rule, reported at a line of the snippet module; a buggy form
beyond the runtime's checks must return the damage it did; every fixed form must run
clean, and `demo.run` must accept each snippet.
"""

from __future__ import annotations

import pytest

from ownership.__main__ import main as cli
from ownership.tools import demo
from tests.expect import assert_splat

SNIPPETS_FILE = "snippets_mm.py"

# rule -> (the source of the violation line, the source of the conflicting origin's line).
CAUGHT: dict[str, tuple[str, str]] = {
    "lifetime": ("return vma.flags()", "with mm.mmap_read_lock() as guard:"),
    "send": ("spawn(lambda g: g.drop(), guard)", "guard = _mm().mmap_read_lock()"),
    "mixedmap-pfnmap": ("vma.set_pfnmap()", "vma.set_mixedmap()"),
    "write-maywrite": (
        "vma.set_flags(vma.flags() & ~flags.MAYWRITE)",
        "return proc.mmap(None, PAGE_SIZE",
    ),
    "atomic-sleep": ("user.drop()", "with lru.lock() as g:"),
    "lock-order": ("mm.mmap_read_lock()", "vma = mm.lock_vma_under_rcu(addr)"),
    "borrowed-page-outlived-owner": ("page.nid()", "vbox.drop()"),
}

# rule -> (a fragment of the damage the buggy form reports, what the fixed form gets instead).
DAMAGE: dict[str, str] = {
    "maywrite-not-cleared": "userspace wrote the driver's read-only page: b'status: pwned'",
    "stale-vma": "stranger's writable VMA; userspace wrote b'owned by userspace'",
}


def _mm_snippets() -> dict[str, demo.Snippet]:
    found = [s for s in demo.registry() if s.layer == "mm"]
    by_rule = {s.rule: s for s in found}
    assert len(by_rule) == len(found), "two mm snippets share a rule id"
    return by_rule


def test_every_rule_of_the_brief_has_one_mm_snippet() -> None:
    assert set(_mm_snippets()) == set(CAUGHT) | set(DAMAGE)


@pytest.mark.parametrize("rule", sorted(CAUGHT))
def test_buggy_form_is_caught_and_fixed_form_runs_clean(rule: str) -> None:
    s = _mm_snippets()[rule]
    assert s.expect is not None
    with pytest.raises(s.expect) as e:
        s.buggy()
    site_src, origin_src = CAUGHT[rule]
    assert_splat(e, rule, cls=s.expect, site=site_src, origin=origin_src, sites_in=SNIPPETS_FILE)
    s.fixed()


@pytest.mark.parametrize("rule", sorted(DAMAGE))
def test_buggy_form_beyond_the_runtime_shows_its_damage(rule: str) -> None:
    s = _mm_snippets()[rule]
    assert s.expect is None
    damage = s.buggy()
    assert isinstance(damage, str) and DAMAGE[rule] in damage, damage
    s.fixed()


@pytest.mark.parametrize("rule", sorted(CAUGHT) + sorted(DAMAGE))
def test_demo_run_accepts_the_snippet(rule: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run(_mm_snippets()[rule]) is True
    out = capsys.readouterr().out
    assert f"=== [{rule}]" in out and "(mm)" in out and "--- fixed: ok" in out
    assert "!!!" not in out
    if rule in DAMAGE:
        assert DAMAGE[rule] in out
    else:
        assert f"{SNIPPETS_FILE}:" in out, "the splat points into the snippet module"


def test_demo_command_runs_the_mm_snippets_with_the_core(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = sorted(set(CAUGHT) | set(DAMAGE))
    assert cli(["demo", "--only", *rules]) == 0
    out = capsys.readouterr().out
    assert out.count("(mm)") == len(rules)
    assert "beyond the runtime's checks showed their damage, every fix clean." in out


def test_demo_core_skips_an_imported_layer(capsys: pytest.CaptureFixture[str]) -> None:
    _mm_snippets()
    assert cli(["demo", "--core", "--list"]) == 0
    assert " mm " not in capsys.readouterr().out
