"""`python -m ownership <command>` (or `ownership <command>`): the model's tools.

The usage text below is what `--help` prints; each command is a module with a
`main(argv) -> int`, imported only when it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from .tools.cli import dispatch

USAGE = """usage: ownership [--version] [-h] COMMAND [ARGS...]

commands:
  contracts   the safety-contract review (every unsafe fn and unsafe block)
  demo        one buggy and one correct driver snippet per rule, with the splats
  bench       the cost of the checks, as ratios measured in one run
  check       static checks of driver code (mypy with the project's plugin)
  rules       the catalogue of rule ids, what each models, its error class and fix

`ownership COMMAND --help` describes a command."""

COMMANDS = {
    "contracts": "ownership.tools.contracts",
    "demo": "ownership.tools.demo",
    "bench": "ownership.tools.bench",
    "explore": "ownership.explore.cli",
    "check": "ownership.static.cli",
    "rules": "ownership.rule_catalogue",
}


def _runner(module: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        rc: int = importlib.import_module(module).main(argv)
        return rc

    return run


def main(argv: list[str] | None = None) -> int:
    return dispatch("ownership", USAGE, {n: _runner(m) for n, m in COMMANDS.items()}, argv)


if __name__ == "__main__":
    sys.exit(main())
