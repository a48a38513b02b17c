"""GFP flags the checker cannot evaluate: a driver keeps its allocation flags in a field.

At run time the field holds `GFP_ATOMIC` and nothing sleeps; statically the value of an
attribute is not known, so the checker assumes it allows direct reclaim, reports the
allocation under the spinlock and says in the finding's note that this is its limit.
"""

from __future__ import annotations

from ownership.alloc import GFP_ATOMIC, Flags, KBox
from ownership.sync import SpinLock

STATIC_ONLY = "the field holds GFP_ATOMIC at run time; the checker cannot read a field's value"


class Pool:
    def __init__(self) -> None:
        self.gfp: Flags = GFP_ATOMIC
        self.lock: SpinLock[list[KBox[int]]] = SpinLock([], name="Pool.lock (static)")

    def refill(self) -> None:
        with self.lock.lock() as g:
            g.data.append(KBox.new(1, self.gfp))  # expect: atomic-sleep

    def drain(self) -> None:
        with self.lock.lock() as g:
            while g.data:
                g.data.pop().drop()


def main() -> None:
    p = Pool()
    p.refill()
    p.drain()
