"""Rust's `usize`, as the model checks it: an int in `[0, 2**64)` (x86-64).

Arguments that are `usize` upstream must be such ints: anything else is a `TypeError`
(it could not have been a `usize`). A leaf module, so that `ownership.page` and
`ownership.uaccess`, which read each other, both take it from here.

Lock order: no locks.
"""

from __future__ import annotations

__all__ = ["USIZE_MAX", "usize"]

USIZE_MAX = (1 << 64) - 1


def usize(value: object, what: str) -> int:
    """`value` as a Rust `usize`, or a `TypeError`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be a usize (int), got {type(value).__name__}")
    if value < 0 or value > USIZE_MAX:
        raise TypeError(f"{what}={value} does not fit a usize (0 <= {what} < 2**64)")
    return value
