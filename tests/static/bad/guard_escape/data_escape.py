"""Returning the data a lock protects, by reference, out of the critical section."""

from __future__ import annotations

from ownership.sync import SpinLock

STATIC_ONLY = "the model hands out the protected object itself; only a borrow checker sees the escape"


class Peers:
    def __init__(self) -> None:
        self.lock: SpinLock[dict[int, str]] = SpinLock({}, name="Peers.lock")

    def all(self) -> dict[int, str]:
        with self.lock.lock() as g:
            return g.data  # expect: guard-escape

    def count(self) -> int:
        with self.lock.lock() as g:
            return len(g.data)


def main() -> None:
    p = Peers()
    p.all()[1] = "x"
    p.count()
