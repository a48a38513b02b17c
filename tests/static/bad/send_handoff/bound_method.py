"""A bound method carries its object: releasing a guard from another thread."""

from __future__ import annotations

from ownership.sync import SpinLock
from ownership.task import spawn


class Gate:
    def __init__(self) -> None:
        self.lock = SpinLock(False, name="Gate.lock")

    def open_elsewhere(self) -> None:
        g = self.lock.lock()  # runtime-origin
        try:
            spawn(g.drop).join()  # expect: send-handoff; runtime-site
        finally:
            g.drop()


def main() -> None:
    Gate().open_elsewhere()
