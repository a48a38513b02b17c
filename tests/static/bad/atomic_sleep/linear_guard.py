"""A guard taken with `g = lock.lock()` is held until `g.drop()`, across branches."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KBox, KVec
from ownership.sync import SpinLock


class Queue:
    def __init__(self) -> None:
        self.items: SpinLock[list[int]] = SpinLock([], name="Queue.items")
        self.log: KVec[KBox[int]] = KVec.new()

    def push(self, value: int, urgent: bool) -> None:
        g = self.items.lock()  # runtime-origin
        try:
            g.data.append(value)
            if urgent:
                g.drop()
                self.log.push(KBox.new(value, GFP_KERNEL), GFP_KERNEL)
                return
            # Still under the lock on this path: the allocation may sleep.
            self.log.push(KBox.new(value, GFP_KERNEL), GFP_KERNEL)  # expect: atomic-sleep; runtime-site
        finally:
            if g.is_held():
                g.drop()


def main() -> None:
    q = Queue()
    q.push(1, True)
    q.push(2, False)
