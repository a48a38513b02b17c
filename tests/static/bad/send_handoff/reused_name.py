"""One name for two guards, one per branch: the note names the guard the call hands over.

The walk sees the `else` branch after the `if` branch; the hand-off in the `if` branch
must still say the guard was made in its own branch, not on the later assignment.
The locks are `Mutex`es, so that waiting for the thread under them is allowed.
"""

from __future__ import annotations

from ownership.sync import Mutex, MutexGuard
from ownership.task import spawn


def bump(g: MutexGuard[int]) -> None:
    g.data += 1


class Pair:
    def __init__(self) -> None:
        self.left = Mutex(0, name="Pair.left")
        self.right = Mutex(0, name="Pair.right")

    def bump_elsewhere(self, left: bool) -> None:
        if left:
            g = self.left.lock()  # runtime-origin
            try:
                spawn(bump, g).join()  # expect: send-handoff; runtime-site
            finally:
                g.drop()
        else:
            g = self.right.lock()
            g.data += 1
            g.drop()


def main() -> None:
    Pair().bump_elsewhere(True)
