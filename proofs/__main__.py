"""`python -m proofs`: the invariant solver runs.

    python -m proofs [--json] [--only NAME]... [--list] [--verbose]
    python -m proofs --bench [--repeat N] [--bits 4,8,12] [--json] [--progress]
    python -m proofs --version

One line per claim: name, expectation, verdict, time, and for a counterexample the
flag names and the operation sequence that reaches it. Exit status 0 iff every claim
meets its expectation (`unknown` never does); 2 for a usage error. `--json` prints
`{"claims": [{"name", "expect", "verdict", "counterexample", "seconds"}], "ok": bool}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata

from . import CLAIMS, Claim, Result
from .bench import main as bench_main
from .bench import stop_at_steps

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m proofs",
        description=(
            "Z3 proofs of the VMA flag rules and of Binder's allocator and offset checks, "
            "and the counterexamples of the v6 API and of Binder's historical bugs."
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this claim (repeatable; comma-separated names allowed)",
    )
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="print each claim's detail")
    p.add_argument("--bench", action="store_true", help="benchmark the suite and the cross-check")
    p.add_argument("--repeat", type=int, default=3, help="bench: suite runs (default 3)")
    p.add_argument(
        "--bits",
        default="4,6,8,10,12",
        help="bench: cross-check domain sizes in bits (default 4,6,8,10,12)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bench: a progress bar with ETA on stderr (default: when stderr is a terminal)",
    )
    return p


def _version() -> str:
    try:
        return metadata.version("rust-mm-model")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _select(names: list[str]) -> list[Claim] | str:
    wanted = [n.strip() for arg in names for n in arg.split(",") if n.strip()]
    if not wanted:
        return list(CLAIMS)
    by_name = {c.name: c for c in CLAIMS}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        return f"unknown claim(s): {', '.join(missing)} (see --list)"
    return [by_name[n] for n in dict.fromkeys(wanted)]


def _line(r: Result, width: int) -> str:
    mark = "ok " if r.ok else "BAD"
    out = f"{mark} {r.name:<{width}}  {r.expect:<5}  {r.verdict:<14} {r.seconds:7.3f}s"
    if r.counterexample is not None:
        out += f"  {r.counterexample}"
    elif not r.ok and r.detail:
        out += f"  ({r.detail})"
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bench:
        return bench_main(args.repeat, args.bits, args.json, args.progress)
    sel = _select(args.only)
    if isinstance(sel, str):
        print(f"python -m proofs: {sel}", file=sys.stderr)
        return 2
    width = max(len(c.name) for c in sel)
    if args.list:
        if args.json:
            print(
                json.dumps(
                    {
                        "claims": [
                            {
                                "name": c.name,
                                "expect": c.expect,
                                "summary": c.summary(),
                                "twin_of": c.twin_of,
                                "rules": list(c.rules),
                            }
                            for c in sel
                        ]
                    },
                    indent=2,
                )
            )
        else:
            for c in sel:
                print(f"{c.name:<{width}}  {c.expect:<5}  {c.summary()}")
        return 0
    t0 = time.perf_counter()
    results: list[Result] = []
    interrupted = False
    try:
        with stop_at_steps() as check:
            for c in sel:
                check()
                r = c.run()
                results.append(r)
                if not args.json:
                    print(_line(r, width), flush=True)
                    if args.verbose and r.detail:
                        print(f"    {r.detail}")
            check()
    except KeyboardInterrupt:
        # Ctrl-C: report the claims that finished, not a traceback.
        interrupted = True
    total = time.perf_counter() - t0
    ok = not interrupted and all(r.ok for r in results)
    if args.json:
        doc: dict[str, object] = {"claims": [r.as_json() for r in results], "ok": ok}
        if interrupted:
            doc["interrupted"] = True
        print(json.dumps(doc, indent=2))
    else:
        proved = sum(r.verdict == "proved" for r in results)
        cex = sum(r.verdict == "counterexample" for r in results)
        unknown = sum(r.verdict == "unknown" for r in results)
        met = sum(r.ok for r in results)
        print(
            f"{len(results)} claims in {total:.2f}s: {proved} proved, {cex} counterexamples, "
            f"{unknown} unknown; {met}/{len(results)} as expected -> {'OK' if ok else 'FAILED'}"
            + (f" (interrupted after {len(results)} of {len(sel)} claims)" if interrupted else "")
        )
    if interrupted:
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
