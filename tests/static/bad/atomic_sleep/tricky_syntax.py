"""Sleeping calls hidden in expressions: comprehensions, `:=`, `match`, `x if c else y`,
and a local helper function called under the lock."""

from __future__ import annotations

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, KBox
from ownership.sync import SpinLock


class Pool:
    def __init__(self) -> None:
        self.lock: SpinLock[list[KBox[int]]] = SpinLock([], name="Pool.lock")

    def fill(self, n: int) -> None:
        with self.lock.lock() as g:  # runtime-origin
            g.data.extend([KBox.new(i, GFP_KERNEL) for i in range(n)])  # expect: atomic-sleep; runtime-site

    def fill_one(self, urgent: bool) -> None:
        with self.lock.lock() as g:
            if (box := KBox.new(0, GFP_ATOMIC if urgent else GFP_KERNEL)) is not None:  # expect: atomic-sleep
                g.data.append(box)

    def fill_kind(self, kind: str) -> None:
        with self.lock.lock() as g:
            match kind:
                case "atomic":
                    g.data.append(KBox.new(0, GFP_ATOMIC))
                case _:
                    g.data.append(KBox.new(0, GFP_KERNEL))  # expect: atomic-sleep

    def fill_with_helper(self) -> None:
        def make() -> KBox[int]:
            return KBox.new(1, GFP_KERNEL)

        with self.lock.lock() as g:
            g.data.append(make())  # expect: atomic-sleep


def main() -> None:
    Pool().fill(2)
