"""Guards released on every path before anything sleeps."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KBox
from ownership.sync import Mutex, SpinLock, SpinLockGuard


class Table:
    def __init__(self) -> None:
        self.lock: SpinLock[dict[int, int]] = SpinLock({}, name="Table.lock")
        self.slow = Mutex(0, name="Table.slow")

    def lookup_or_insert(self, key: int) -> int:
        g = self.lock.lock()
        value = g.data.get(key)
        if value is not None:
            g.drop()
            return value
        g.drop()
        box = KBox.new(key * 2, GFP_KERNEL)
        with self.lock.lock() as g2:
            g2.data[key] = box.get()
        return box.into_inner()

    def maybe_locked(self, key: int) -> None:
        g = self.lock.try_lock()
        if g is None:
            # Contended: fall back to the sleeping path, holding nothing.
            self.slow.lock().drop()
            return
        g.data[key] = 0
        g.drop()
        self.slow.lock().drop()

    def drop_in_loop(self, keys: list[int]) -> None:
        for key in keys:
            g = self.lock.lock()
            g.data.pop(key, None)
            g.drop()
            KBox.new(key, GFP_KERNEL).drop()

    def drain(self) -> list[int]:
        # `break` and `continue` leave the `with` block, which releases the lock.
        drained: list[int] = []
        while True:
            with self.lock.lock() as g:
                if not g.data:
                    break
                key, value = g.data.popitem()
                if value < 0:
                    continue
            KBox.new(value, GFP_KERNEL).drop()
            drained.append(key)
        self.slow.lock().drop()
        return drained

    def under_caller_lock(self, g: SpinLockGuard[dict[int, int]]) -> int:
        # The caller holds the spinlock: only atomic work here.
        return len(g.data)

    def count(self) -> int:
        with self.lock.lock() as g:
            return self.under_caller_lock(g)


def main() -> None:
    t = Table()
    t.lookup_or_insert(1)
    t.lookup_or_insert(1)
    t.maybe_locked(2)
    t.drop_in_loop([1, 2])
    t.count()
    t.lookup_or_insert(3)
    t.drain()
