"""Make the shipped summaries: `python -m ownership.static.build_summaries OUT`.

Runs the check (mypy with the plugin) over the sources of `ownership` and `binder`
under `--root` (the project's root, by default the current directory) with a fresh,
private cache, takes the records the plugin stored there for every module of those
packages, and writes them to OUT (`ownership.static.shipped` says what the file is).
setup.py's `build_py` runs it, so that every wheel carries the summaries of exactly
the sources it ships.

Exit status: 0 when written; 1 when the plugin could not analyse a module (the file
would miss its summaries) or a package has no module; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile

from .cli import CheckError, run_check
from .shipped import PACKAGES, write_shipped
from .summary import ModuleRecord

__all__ = ["collect", "main"]

_CONFIG = """\
[mypy]
python_version = {major}.{minor}
plugins = ownership.static.plugin
"""


def collect(root: str) -> list[ModuleRecord]:
    """The records of every module of PACKAGES under `root`, computed from the sources.

    Raises CheckError when the check cannot run or the plugin fails on a module.
    """
    root = os.path.abspath(root)
    with tempfile.TemporaryDirectory(prefix="ownership-summaries-") as tmp:
        config = os.path.join(tmp, "mypy.ini")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_CONFIG.format(major=sys.version_info[0], minor=sys.version_info[1]))
        cache = os.path.join(tmp, "cache")
        cwd = os.getcwd()
        # mypy names modules after the directories it is given, relative to here.
        os.chdir(root)
        try:
            result = run_check(list(PACKAGES), config_file=config, cache_dir=cache)
        finally:
            os.chdir(cwd)
        failed = [r for r in result.reports if r.code == "ownership-static"]
        if failed:
            raise CheckError(
                "the plugin could not analyse: "
                + "; ".join(f"{r.path}:{r.line}: {r.message}" for r in failed)
            )
        records: list[ModuleRecord] = []
        for fn in sorted(glob.glob(os.path.join(cache, "*", "ownership-static", "*.json"))):
            with open(fn, encoding="utf-8") as f:
                rec = ModuleRecord.from_json(json.load(f))
            if rec is None or rec.module.split(".", 1)[0] not in PACKAGES:
                continue
            rec.path = os.path.join(root, rec.path) if not os.path.isabs(rec.path) else rec.path
            rec.deps = {
                k: (os.path.join(root, p) if not os.path.isabs(p) else p, h)
                for k, (p, h) in rec.deps.items()
                if k.split(".", 1)[0] in PACKAGES
            }
            records.append(rec)
    found = {r.module.split(".", 1)[0] for r in records}
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        raise CheckError(f"no module of {', '.join(missing)} was summarised under {root}")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ownership.static.build_summaries",
        description="Write the static summaries of ownership and binder that the wheel ships.",
    )
    parser.add_argument(
        "out", metavar="OUT", help="the file to write (ownership/static/summaries.json)"
    )
    parser.add_argument(
        "--root", default=".", help="the project's root (holds ownership/ and binder/)"
    )
    parser.add_argument(
        "--package-version", required=True, help="the version of the package being built"
    )
    opts = parser.parse_args(argv)
    try:
        records = collect(opts.root)
    except CheckError as e:
        sys.stderr.write(f"build_summaries: error: {e}\n")
        return 1
    write_shipped(opts.out, records, os.path.abspath(opts.root), opts.package_version)
    print(f"build_summaries: {len(records)} module records written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
