"""Checking mode: the runtime checks are on unless switched off, to measure their cost.

`checking(False)` (or `OWNERSHIP_CHECKS=0` in the environment) turns every check off:
no lockdep, no atomic-context validation, no lifetime, borrow or Send bookkeeping.
The behaviour of a correct program is identical either way; only what is *checked*
changes. Each guard and reference remembers whether it was made with checks on, so
switching mode while objects are live never corrupts the bookkeeping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["STATE", "checking", "checks_enabled"]


class _State:
    """The one switch read on hot paths (`STATE.on`)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = os.environ.get("OWNERSHIP_CHECKS", "1").strip().lower() not in {
            "0",
            "off",
            "false",
            "no",
        }


STATE = _State()


def checks_enabled() -> bool:
    """Whether the runtime checks are on."""
    return STATE.on


@contextmanager
def checking(enabled: bool) -> Iterator[None]:
    """Run the body with the checks switched on or off, restoring the mode after."""
    if not isinstance(enabled, bool):
        raise TypeError(f"checking() takes a bool, got {type(enabled).__name__}")
    prev = STATE.on
    STATE.on = enabled
    try:
        yield
    finally:
        STATE.on = prev
