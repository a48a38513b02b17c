"""Waiting on a condition variable releases the guard it is given."""

from __future__ import annotations

from ownership.sync import CondVar, SpinLock
from ownership.task import spawn


class Mailbox:
    def __init__(self) -> None:
        self.lock: SpinLock[list[int]] = SpinLock([], name="Mailbox.lock")
        self.ready = CondVar("Mailbox.ready")

    def put(self, value: int) -> None:
        with self.lock.lock() as g:
            g.data.append(value)
        self.ready.notify_all()

    def take(self) -> int:
        with self.lock.lock() as g:
            while not g.data:
                self.ready.wait_timeout(g, 0.01)
            return g.data.pop(0)


def main() -> None:
    box = Mailbox()
    h = spawn(box.put, 5)
    assert box.take() == 5
    h.join()
