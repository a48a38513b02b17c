"""The demo's runner: the snippet registry, running a snippet both ways, the command.

A `Snippet` shows one rule twice: its buggy form must be caught (the splat is printed:
the rule, the object, where it happened and the conflicting origin, the locks held),
its fixed form must run clean ("ok"). `run` runs one and checks that it left the
runtime consistent (no lock held, no atomic section open); `main` is
`python -m ownership demo`, which exits 1 if any bug goes uncaught, any fix is refused,
or a snippet leaves the runtime inconsistent.

The snippets themselves are driver code, in `snippets_core` (the core rules) and
`snippets_mm` (the mm/VMA rules), which register themselves when the `demo` package is
imported. Other layers may add their own: any module named `demo_snippets` in the
`ownership` or `binder` packages is imported by `load_extra_snippets` and calls
`register(Snippet(...))` (or uses the `snippet` decorator on a pair of functions).
Those modules should call `ownership.site.driver_module(__file__)`, so that the sites
in the splats point at them.

Some bugs are beyond any runtime check: such a snippet has `expect=None`: its buggy
form must run to completion and return a description of the damage it did, which is
printed instead of a splat; its fixed form must run clean as for any other snippet.

    python -m ownership demo [--list] [--only RULE ...] [--core]

Lock order: the runner takes no lock; each snippet has its own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...context import ctx
from ...errors import SafetyViolation

__all__ = ["Snippet", "load_extra_snippets", "main", "register", "registry", "run", "snippet"]


@dataclass(frozen=True)
class Snippet:
    """One rule, shown twice: `buggy` must raise `expect` with rule `rule`; `fixed`
    must run clean.

    With `expect=None` the bug is one no runtime check can see: `buggy` must return a
    non-empty description of the damage it did instead of raising.
    """

    rule: str
    title: str
    expect: type[SafetyViolation] | None
    buggy: Callable[[], object]
    fixed: Callable[[], object]
    layer: str = "core"


_registry: list[Snippet] = []


def register(s: Snippet) -> Snippet:
    """Add a snippet to the demo (other layers call this from their `demo_snippets`)."""
    if not isinstance(s, Snippet):
        raise TypeError(f"register() takes a Snippet, got {type(s).__name__}")
    _registry.append(s)
    return s


def snippet(
    rule: str, title: str, expect: type[SafetyViolation] | None, *, layer: str = "core"
) -> Callable[[Callable[[], tuple[Callable[[], object], Callable[[], object]]]], Snippet]:
    """Decorate a function returning `(buggy, fixed)` to register them as one snippet."""

    def deco(make: Callable[[], tuple[Callable[[], object], Callable[[], object]]]) -> Snippet:
        buggy, fixed = make()
        return register(Snippet(rule, title, expect, buggy, fixed, layer))

    return deco


def registry() -> list[Snippet]:
    return list(_registry)


def load_extra_snippets(packages: tuple[str, ...] = ("ownership", "binder")) -> list[str]:
    """Import every `demo_snippets` module of the given packages.

    Returns the problems met (a module that failed to import), for the report.
    """
    problems: list[str] = []
    roots: list[tuple[str, Path]] = []
    for pkg in packages:
        # Found without importing the package: the layers' snippets are plugins.
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.submodule_search_locations:
            roots.append((pkg, Path(next(iter(spec.submodule_search_locations)))))
    for pkg, root in roots:
        for f in sorted(root.rglob("demo_snippets.py")):
            rel = f.relative_to(root).with_suffix("")
            name = ".".join([pkg, *rel.parts])
            try:
                importlib.import_module(name)
            except Exception as e:  # A broken layer must not hide the core demo.
                problems.append(f"{name}: {type(e).__name__}: {e}")
    return problems


def _dirty() -> str | None:
    held = [h.describe() for h in ctx.held]
    secs = [s.describe() for s in ctx.sections]
    if held or secs:
        ctx.held.clear()
        ctx.sections.clear()
        ctx.preempt_count = ctx.rcu_depth = ctx.irq_depth = ctx.chain_key = 0
        return f"runtime left inconsistent: locks held {held}, atomic sections {secs}"
    return None


def _run_buggy_caught(s: Snippet, out: Callable[[str], object]) -> bool:
    """Run the buggy form of a snippet; True if the runtime caught it as `s.expect`."""
    assert s.expect is not None
    good = True
    out("--- buggy:")
    try:
        s.buggy()
    except SafetyViolation as e:
        out(str(e))
        if not isinstance(e, s.expect) or e.rule != s.rule:
            out(f"!!! expected {s.expect.__name__} [{s.rule}], got {type(e).__name__} [{e.rule}]")
            good = False
    except Exception as e:  # A snippet bug, reported as such.
        out(f"!!! the buggy form failed otherwise: {type(e).__name__}: {e}")
        good = False
    else:
        out(f"!!! NOT CAUGHT: expected {s.expect.__name__} [{s.rule}]")
        good = False
    return good


def _run_buggy_damage(s: Snippet, out: Callable[[str], object]) -> bool:
    """Run the buggy form of a snippet whose bug no runtime check sees; True if it showed damage."""
    out("--- buggy (no runtime check can see this bug; the damage it did):")
    try:
        damage = s.buggy()
    except Exception as e:  # Includes SafetyViolation: the snippet is not what it claims.
        out(f"!!! the buggy form failed: {type(e).__name__}: {e}")
        return False
    if not isinstance(damage, str) or not damage:
        out(f"!!! NO DAMAGE SHOWN: the buggy form returned {damage!r}, not a description")
        return False
    out(damage)
    return True


def run(s: Snippet, out: Callable[[str], object] = print) -> bool:
    """Run one snippet both ways, printing the splat and "ok"; True if both behaved."""
    out(f"=== [{s.rule}] {s.title}" + (f" ({s.layer})" if s.layer != "core" else ""))
    if s.expect is None:
        good = _run_buggy_damage(s, out)
    else:
        good = _run_buggy_caught(s, out)
    if (msg := _dirty()) is not None:
        out(f"!!! {msg}")
        good = False
    try:
        s.fixed()
    except Exception as e:  # Includes SafetyViolation: a false positive.
        out(f"--- fixed: FAILED\n{e}")
        good = False
    else:
        out("--- fixed: ok")
    if (msg := _dirty()) is not None:
        out(f"!!! {msg}")
        good = False
    out("")
    return good


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ownership demo",
        description="One buggy and one correct driver snippet per rule, with the splats.",
    )
    ap.add_argument("--list", action="store_true", help="list the snippets and exit")
    ap.add_argument("--only", nargs="+", metavar="RULE", help="run only these rules")
    ap.add_argument("--core", action="store_true", help="skip the other layers' snippets")
    args = ap.parse_args(argv)
    problems = [] if args.core else load_extra_snippets()
    # `--core` skips a layer's snippets even when the layer was imported before (by a test).
    chosen = [
        s
        for s in _registry
        if (not args.core or s.layer == "core") and (not args.only or s.rule in args.only)
    ]
    if args.list:
        for s in chosen:
            print(f"{s.rule:28} {s.layer:8} {s.title}")
        return 0
    if not chosen:
        print(f"demo: no snippet for {args.only}", file=sys.stderr)
        return 2
    failed = []
    for s in chosen:
        if not run(s):
            failed.append(f"[{s.rule}] {s.title}")
    for p in problems:
        print(f"demo: could not load extra snippets: {p}", file=sys.stderr)
    n = len(chosen)
    if failed:
        print(f"{len(failed)} of {n} snippets misbehaved:", *failed, sep="\n  ")
        return 1
    shown = sum(1 for s in chosen if s.expect is None)
    if shown:
        print(
            f"all {n} snippets behaved: {n - shown} bugs caught, {shown} beyond the runtime's "
            "checks showed their damage, every fix clean."
        )
    else:
        print(f"all {n} snippets behaved: every bug caught, every fix clean.")
    return 0
