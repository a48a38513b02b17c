"""Allocations next to spinlocks that never sleep in atomic context."""

from __future__ import annotations

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, GFP_ZERO, Flags, KBox, KVec
from ownership.sync import SpinLock


def boxed(value: int, gfp: Flags) -> KBox[int]:
    return KBox.new(value, gfp)


class Log:
    def __init__(self) -> None:
        self.lock: SpinLock[KVec[int]] = SpinLock(KVec.new(), name="Log.lock")

    def record_atomic(self, value: int) -> None:
        with self.lock.lock() as g:
            g.data.push(value, GFP_ATOMIC)
            boxed(value, GFP_NOWAIT | GFP_ZERO).drop()

    def record_reserved(self, value: int) -> None:
        # Reserve outside the lock; pushing within capacity never allocates.
        with self.lock.lock() as g:
            room = g.data.push_within_capacity(value)
        if not room:
            extra: KVec[int] = KVec.with_capacity(1, GFP_KERNEL)
            extra.drop()
            with self.lock.lock() as g:
                g.data.push(value, GFP_ATOMIC)

    def record_masked(self, value: int, gfp: Flags) -> None:
        # Masking the reclaim bit out of the caller's flags makes the call atomic.
        with self.lock.lock() as g:
            g.data.push(value, gfp & ~Flags.DIRECT_RECLAIM)


def main() -> None:
    log = Log()
    log.record_atomic(1)
    log.record_reserved(2)
    log.record_masked(3, GFP_KERNEL)
