"""A `Mutex` guard is not atomic context: sleeping under it is allowed."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KBox, KVec
from ownership.context import may_sleep
from ownership.sync import Mutex, SpinLock


class Store:
    def __init__(self) -> None:
        self.items: Mutex[KVec[KBox[int]]] = Mutex(KVec.new(), name="Store.items")
        self.hits = SpinLock(0, name="Store.hits")

    @may_sleep
    def add(self, value: int) -> None:
        with self.items.lock() as g:
            g.data.push(KBox.new(value, GFP_KERNEL), GFP_KERNEL)
        with self.hits.lock() as h:
            h.data += 1

    def add_twice(self, value: int) -> None:
        self.add(value)
        with self.hits.lock() as h:
            h.data += 1
        self.add(value)


def main() -> None:
    Store().add_twice(1)
