"""A bound method carries its object: releasing a guard from another thread.

The lock is a `Mutex`, so that waiting for the thread under it is allowed.
"""

from __future__ import annotations

from ownership.sync import Mutex
from ownership.task import spawn


class Gate:
    def __init__(self) -> None:
        self.lock = Mutex(False, name="Gate.lock")

    def open_elsewhere(self) -> None:
        g = self.lock.lock()  # runtime-origin
        try:
            spawn(g.drop).join()  # expect: send-handoff; runtime-site
        finally:
            g.drop()


def main() -> None:
    Gate().open_elsewhere()
