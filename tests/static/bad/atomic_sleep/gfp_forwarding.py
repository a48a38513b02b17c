"""A helper that forwards its GFP flags sleeps only when its caller's flags allow it."""

from __future__ import annotations

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, Flags, KBox
from ownership.sync import SpinLock


def new_counter(value: int, gfp: Flags) -> KBox[int]:
    return KBox.new(value, gfp)  # runtime-site


class Stats:
    def __init__(self) -> None:
        self.lock = SpinLock(0, name="Stats.lock")

    def snapshot(self) -> KBox[int]:
        with self.lock.lock() as g:  # runtime-origin
            atomic = new_counter(g.data, GFP_ATOMIC)
            atomic.drop()
            return new_counter(g.data, GFP_KERNEL)  # expect: atomic-sleep


def main() -> None:
    Stats().snapshot()
