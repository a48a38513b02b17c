"""The compact, replayable schedule string of the explorer.

A schedule is the list of its non-default choices (see `ownership.explore.strategies`):
`x1:` (or `x1s:` when spurious wakeups were among the choices, which changes where
decisions fall) followed by comma-separated `DECISION.THREAD` pairs, a `~` after a
spurious wakeup. `x1:` alone is the schedule that never preempts; `x1:3.1,7.0` switches
to thread 1 at the fourth decision and back to thread 0 at the eighth.

No C counterpart (shuttle's and loom's schedule strings play the same role).

Lock order: none (pure functions).
"""

from __future__ import annotations

__all__ = ["Choice", "decode", "encode"]

Choice = tuple[int, int, bool]
"""(decision index, thread index, spurious wakeup)."""


def encode(choices: list[Choice], spurious: bool) -> str:
    body = ",".join(f"{d}.{t}{'~' if sp else ''}" for d, t, sp in choices)
    return f"x1{'s' if spurious else ''}:{body}"


def decode(text: str) -> tuple[list[Choice], bool]:
    """The choices of a schedule string and whether spurious wakeups were choices."""
    head, sep, body = text.strip().partition(":")
    if not sep or head not in ("x1", "x1s"):
        raise ValueError(f"not an explorer schedule string: {text!r}")
    out: list[Choice] = []
    for part in filter(None, body.split(",")):
        sp = part.endswith("~")
        d, dot, t = part.rstrip("~").partition(".")
        if not dot or not d.isdigit() or not t.isdigit():
            raise ValueError(f"bad choice {part!r} in schedule {text!r}")
        out.append((int(d), int(t), sp))
    return out, head == "x1s"
