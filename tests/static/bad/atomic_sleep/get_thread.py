"""The slides' `get_thread`, written the wrong way: it allocates under the spinlock.

Binder's `Process::get_thread` looks a thread up under `inner`, and creates it when it
is missing. Allocating the new `Thread` and its tree node with `GFP_KERNEL` while
`inner` (a spinlock) is held may sleep in atomic context; the fixed form allocates
first and re-checks under the lock (tests/static/good/get_thread.py).
"""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL
from ownership.rbtree import RBTree, RBTreeNodeReservation
from ownership.sync import Arc, SpinLock


class Thread:
    def __init__(self, id: int) -> None:
        self.id = id


class ProcessInner:
    def __init__(self) -> None:
        self.threads: RBTree[int, Arc[Thread]] = RBTree()


class Process:
    def __init__(self) -> None:
        self.inner = SpinLock(ProcessInner(), name="Process.inner")

    def get_thread(self, id: int) -> Arc[Thread]:
        with self.inner.lock() as inner:  # runtime-origin
            thread = inner.data.threads.get(id)
            if thread is not None:
                return thread.clone()
            ta = Arc.new(Thread(id), GFP_KERNEL)  # expect: atomic-sleep; runtime-site
            node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(id, ta.clone())  # expect: atomic-sleep
            inner.data.threads.insert(node)
            return ta


def main() -> None:
    Process().get_thread(7)
