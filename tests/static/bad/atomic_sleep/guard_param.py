"""A function given a `SpinLockGuard` runs with the lock held: it must not sleep."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KBox
from ownership.sync import SpinLock, SpinLockGuard


class Cache:
    def __init__(self) -> None:
        self.lock: SpinLock[list[KBox[int]]] = SpinLock([], name="Cache.lock")

    def refill(self, g: SpinLockGuard[list[KBox[int]]]) -> None:
        g.data.append(KBox.new(0, GFP_KERNEL))  # expect: atomic-sleep; runtime-site

    def update(self) -> None:
        with self.lock.lock() as g:  # runtime-origin
            self.refill(g)


def main() -> None:
    Cache().update()
