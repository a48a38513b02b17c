"""Handing a lock guard to another thread: guards are `!Send`.

The lock is a `Mutex`, so that waiting for the thread under it is allowed.
"""

from __future__ import annotations

from ownership.sync import Mutex, MutexGuard
from ownership.task import spawn


def bump(g: MutexGuard[int]) -> None:
    g.data += 1


class Counter:
    def __init__(self) -> None:
        self.lock = Mutex(0, name="Counter.lock")

    def bump_elsewhere(self) -> None:
        with self.lock.lock() as g:  # runtime-origin
            spawn(bump, g).join()  # expect: send-handoff; runtime-site


def main() -> None:
    Counter().bump_elsewhere()
