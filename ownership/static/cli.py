"""`python -m ownership check PATH... [--format text|json|sarif]`.

Runs mypy `--strict` with the ownership plugin over the given files and packages (in
this process, through mypy's build API) and reports every finding: the plugin's rules
and mypy's own type errors alike, since both are bugs the compiler would reject. The
project's mypy configuration (mypy.ini, setup.cfg or pyproject.toml, or the file given
with `--config-file`) is read as `mypy` reads it, and mypy's incremental cache is
shared with plain `mypy` runs. The check always runs with its plugin: when there is no
configuration, or the configuration does not list the plugin, the check's own
settings apply (`--strict` and the plugin, added to the configuration's plugins).

It never reports success it did not check: a configuration that mypy or the plugin
cannot read, a mypy too old for the plugin, or a build in which the plugin analysed
nothing is an error (exit status 2, the reason on stderr), not "no findings".

Exit status: 0 when there is no finding, 1 when there are findings, 2 on a usage
error, a configuration error, or when mypy itself fails.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import mypy.version
from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options

from .plugin import MIN_MYPY, OwnershipPlugin, mypy_supported, take_probe
from .report import Report, parse_messages, render_json, render_text
from .sarif import dumps, findings_to_sarif
from .settings import SettingsError, read_settings

__all__ = ["PLUGIN", "CheckError", "CheckResult", "main", "run_check"]

PLUGIN = "ownership.static.plugin"


class CheckError(Exception):
    """The check could not run as asked: its message says why (exit status 2)."""


@dataclass
class CheckResult:
    """What one check found: the findings, and how many source files mypy checked.

    Invariants: `reports` are in mypy's output order (by file, then line);
    `files_checked` counts the sources given on the command line, not their imports;
    `config_file` is the mypy configuration used (None: the check's own settings).
    """

    reports: list[Report]
    files_checked: int
    config_file: str | None = None

    @property
    def ok(self) -> bool:
        return not self.reports


def run_check(
    paths: Sequence[str],
    *,
    config_file: str | None = None,
    cache_dir: str | None = None,
    extra_args: Sequence[str] = (),
) -> CheckResult:
    """Run mypy --strict with the plugin over `paths` and collect its findings.

    Raises CheckError when mypy is too old for the plugin, a configuration file cannot
    be read, or the plugin did not run; SystemExit when mypy rejects the arguments.
    """
    if not mypy_supported(mypy.version.__version__):
        raise CheckError(
            f"the ownership plugin needs mypy {MIN_MYPY[0]}.{MIN_MYPY[1]} or newer; "
            f"this is mypy {mypy.version.__version__}, on which it would find nothing"
        )
    if config_file is not None and not os.path.isfile(config_file):
        raise CheckError(f"configuration file not found: {config_file}")
    args = [
        "--strict",
        "--show-column-numbers",
        "--show-error-codes",
        "--no-pretty",
        "--no-color-output",
    ]
    if config_file is not None:
        args += ["--config-file", config_file]
    if cache_dir is not None:
        args += ["--cache-dir", cache_dir]
    args += list(extra_args)
    args += list(paths)
    # mypy reports a configuration it cannot parse, and settings it does not know, on
    # stderr and goes on without them: here that is an error, not a silent default.
    complaints = io.StringIO()
    try:
        sources, options = process_options(args, require_targets=True, stderr=complaints)
    except SystemExit:
        sys.stderr.write(complaints.getvalue())
        raise
    if complaints.getvalue().strip():
        where = options.config_file or config_file or "the mypy configuration"
        raise CheckError(f"cannot read {where}:\n{complaints.getvalue().rstrip()}")
    try:
        read_settings(options.config_file)
    except SettingsError as e:
        raise CheckError(str(e)) from e
    extra = []
    if options.config_file is None or PLUGIN not in options.plugins:
        # mypy loads the plugins a configuration file lists, and none without one.
        extra.append(OwnershipPlugin(options))
    messages: list[str] = []

    def flush(_filename: str | None, new_messages: list[str], _serious: bool) -> None:
        messages.extend(new_messages)

    # mypy's own command line raises these limits for large programs; restore them
    # afterwards, since this may run inside another program (the tests).
    limit, thresholds = sys.getrecursionlimit(), gc.get_threshold()
    sys.setrecursionlimit(max(limit, 2**14))
    gc.set_threshold(200 * 1000, 30, 30)
    blocked = False
    try:
        build.build(sources, options, flush_errors=flush, extra_plugins=extra)
    except CompileError as e:
        blocked = True
        if not messages:
            messages.extend(e.messages)
    finally:
        sys.setrecursionlimit(limit)
        gc.set_threshold(*thresholds)
    probe = take_probe(options)
    if probe is None:
        detail = "\n".join(messages)
        raise CheckError("the ownership plugin was not loaded" + (f":\n{detail}" if detail else ""))
    if sources and not blocked and not probe.modules_seen:
        raise CheckError("the ownership plugin was loaded but analysed no module")
    return CheckResult(parse_messages(messages), len(sources), options.config_file)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ownership check",
        description="Static checks of driver code: mypy --strict with the ownership plugin "
        "(atomic-sleep, undocumented-unsafe, unsafe-call, send-handoff, guard-escape).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or packages to check")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write the report here instead of stdout"
    )
    parser.add_argument("--config-file", metavar="FILE", help="mypy configuration file to use")
    parser.add_argument("--cache-dir", metavar="DIR", help="mypy incremental cache directory")
    opts = parser.parse_args(argv)
    missing = [p for p in opts.paths if not os.path.exists(p)]
    if missing:
        parser.print_usage(sys.stderr)
        sys.stderr.write(
            f"python -m ownership check: error: no such file or directory: {', '.join(missing)}\n"
        )
        return 2
    try:
        result = run_check(opts.paths, config_file=opts.config_file, cache_dir=opts.cache_dir)
    except CheckError as e:
        sys.stderr.write(f"python -m ownership check: error: {e}\n")
        return 2
    except SystemExit as e:
        # mypy's option parser exits on bad arguments (an unknown path, ...).
        return int(e.code) if isinstance(e.code, int) else 2
    if opts.format == "text":
        out = render_text(result.reports, result.files_checked) + "\n"
    elif opts.format == "json":
        out = json.dumps(render_json(result.reports, result.files_checked), indent=2) + "\n"
    else:
        out = dumps(findings_to_sarif(result.reports))
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return 0 if result.ok else 1
