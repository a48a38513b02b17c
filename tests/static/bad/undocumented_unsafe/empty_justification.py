"""Unsafe blocks whose justification string is empty, or only its `SAFETY:` prefix."""

from __future__ import annotations

from ownership.unsafe import unsafe, unsafe_fn


@unsafe_fn(safety="`index` is below the length of `table`.")
def get_unchecked(table: list[int], index: int) -> int:
    return table[index]


def first_slot(table: list[int]) -> int:
    with unsafe("SAFETY:  "):  # expect: undocumented-unsafe
        return get_unchecked(table, 0)


def last_slot(table: list[int]) -> int:
    # A comment does not justify the block: only the string does.
    # SAFETY: `table` has at least one element, so `len - 1` is in bounds.
    with unsafe(""):  # expect: undocumented-unsafe; runtime-site
        return get_unchecked(table, len(table) - 1)


def main() -> None:
    last_slot([1, 2])
    first_slot([1, 2])
