"""Returning the guard of a `with` block: the block releases it on the way out."""

from __future__ import annotations

from ownership.sync import SpinLock, SpinLockGuard


class Slot:
    def __init__(self) -> None:
        self.lock = SpinLock(0, name="Slot.lock")

    def locked(self) -> SpinLockGuard[int]:
        with self.lock.lock() as g:  # runtime-origin
            return g  # expect: guard-escape


def main() -> None:
    g = Slot().locked()
    g.data += 1  # runtime-site
