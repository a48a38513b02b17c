"""`CondVar.wait` releases its own guard, not the other spinlock the caller holds."""

from __future__ import annotations

from ownership.sync import CondVar, SpinLock


class Worker:
    def __init__(self) -> None:
        self.state = SpinLock(0, name="Worker.state")
        self.stats = SpinLock(0, name="Worker.stats")
        self.wake = CondVar("Worker.wake")

    def wait_for_work(self) -> None:
        with self.stats.lock():  # runtime-origin
            with self.state.lock() as g:
                while g.data == 0:
                    self.wake.wait(g)  # expect: atomic-sleep; runtime-site


def main() -> None:
    Worker().wait_for_work()
