"""Calling an unsafe function without an unsafe block."""

from __future__ import annotations

from ownership.unsafe import unsafe_fn


class Ring:
    def __init__(self, size: int) -> None:
        self.slots = [0] * size

    @unsafe_fn(safety="`index` is below the ring's size.")  # runtime-origin
    def slot_unchecked(self, index: int) -> int:
        return self.slots[index]


def peek(ring: Ring) -> int:
    return ring.slot_unchecked(0)  # expect: unsafe-call; runtime-site


def main() -> None:
    peek(Ring(4))
