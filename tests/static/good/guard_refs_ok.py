"""What may leave a critical section: copies, clones, and references the caller's guard keeps alive."""

from __future__ import annotations

from ownership.borrow import Ref
from ownership.sync import Arc, SpinLock, SpinLockGuard


class Entry:
    def __init__(self, size: int) -> None:
        self.size = size


class Cache:
    def __init__(self) -> None:
        self.lock: SpinLock[dict[int, Arc[Entry]]] = SpinLock({}, name="Cache.lock")
        self.last_size = 0

    def size_of(self, key: int) -> int:
        with self.lock.lock() as g:
            entry = g.data.get(key)
            return entry.get().size if entry is not None else 0

    def entry(self, key: int) -> Arc[Entry] | None:
        with self.lock.lock() as g:
            entry = g.data.get(key)
            return entry.clone() if entry is not None else None

    def remember(self, key: int) -> None:
        with self.lock.lock() as g:
            entry = g.data.get(key)
            self.last_size = entry.get().size if entry is not None else 0

    def view(self, g: SpinLockGuard[dict[int, Arc[Entry]]]) -> Ref[dict[int, Arc[Entry]]]:
        # The caller's guard outlives the reference: the caller decides when it ends.
        return g.ref()

    def insert(self, key: int, size: int) -> None:
        entry = Arc.new(Entry(size))
        with self.lock.lock() as g:
            g.data[key] = entry


def main() -> None:
    c = Cache()
    c.insert(1, 10)
    assert c.size_of(1) == 10
    e = c.entry(1)
    assert e is not None
    e.drop()
    c.remember(1)
    with c.lock.lock() as g:
        assert len(c.view(g).get()) == 1
