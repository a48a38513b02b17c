"""`python -m ownership <command>`: the model's command-line tools.

    contracts   the safety-contract review (every unsafe fn and unsafe block)
    demo        one buggy and one correct driver snippet per rule, with the splats
    bench       the cost of the checks, as ratios measured in one run
    explore     explore the interleavings of a scenario (MODULE:FUNCTION)
    check       static checks of driver code (mypy with the project's plugin)
    rules       the catalogue of rule ids, what each models, and its error class
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "contracts": "ownership.tools.contracts",
    "demo": "ownership.tools.demo",
    "bench": "ownership.tools.bench",
    "explore": "ownership.explore.cli",
    "check": "ownership.static.cli",
    "rules": "ownership.rule_catalogue",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(__doc__)
        return 0 if not args or args[0] in ("-h", "--help") else 2
    mod = importlib.import_module(COMMANDS[args[0]])
    rc: int = mod.main(args[1:])
    return rc


if __name__ == "__main__":
    sys.exit(main())
