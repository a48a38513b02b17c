"""What every command line of the project shares: subcommand dispatch, `--version`, progress.

`dispatch(prog, usage, commands, argv)` runs `prog COMMAND ARGS...`: `-h`/`--help` print
the usage (rc 0), `--version` prints the distribution's version from its installed
metadata (rc 0), no command or an unknown one is a usage error named on stderr (rc 2).
`progress(total, desc, enabled)` is a tqdm bar with an ETA on stderr (so `--json` output
on stdout stays clean); `enabled=None` shows it only when stderr is a terminal.
`INTERRUPTED` is the exit status after Ctrl-C (128 + SIGINT), once the partial result
has been printed.

The module wraps no C object and takes no lock.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from tqdm import tqdm

__all__ = ["DISTRIBUTION", "INTERRUPTED", "dispatch", "progress", "version"]

#: The distribution the packages `ownership`, `binder` and `proofs` ship in.
DISTRIBUTION = "rust-mm-model"
#: The exit status after a Ctrl-C that printed a partial result.
INTERRUPTED = 130


def version() -> str:
    """The installed distribution's version (`0+unknown` when it is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def dispatch(
    prog: str,
    usage: str,
    commands: Mapping[str, Callable[[list[str]], int]],
    argv: list[str] | None,
) -> int:
    """Run the subcommand named by `argv[0]` with the rest; the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(usage)
        return 0
    if args and args[0] == "--version":
        print(f"{prog} {version()}")
        return 0
    if not args:
        print(usage, file=sys.stderr)
        print(f"{prog}: error: a command is required", file=sys.stderr)
        return 2
    fn = commands.get(args[0])
    if fn is None:
        print(
            f"{prog}: error: unknown command {args[0]!r} (choose from {', '.join(commands)})",
            file=sys.stderr,
        )
        return 2
    return fn(args[1:])


def progress(total: int, desc: str, enabled: bool | None = None, unit: str = "it") -> tqdm[Any]:
    """A progress bar with rate and ETA on stderr; `enabled=None`: only on a terminal."""
    show = sys.stderr.isatty() if enabled is None else enabled
    bar: tqdm[Any] = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    )
    return bar
