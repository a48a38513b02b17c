"""The slides' `get_thread`, the right way: allocate without holding any lock.

The lookup runs under `inner`; when the thread is missing, the new `Thread` and its
RBTree node are allocated with `GFP_KERNEL` after the guard is gone, and the tree is
re-checked under the lock before the (infallible) insertion, because another thread may
have created it meanwhile.
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
        with self.inner.lock() as inner:
            thread = inner.data.threads.get(id)
            if thread is not None:
                return thread.clone()

        # Allocate a new `Thread` without holding any locks.
        ta = Arc.new(Thread(id), GFP_KERNEL)
        node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(id, ta.clone())

        inner = self.inner.lock()

        # Recheck. It's possible the thread was created while we were not holding the lock.
        thread = inner.data.threads.get(id)
        if thread is not None:
            found = thread.clone()
            inner.drop()
            return found

        inner.data.threads.insert(node)
        inner.drop()
        return ta


def main() -> None:
    p = Process()
    a = p.get_thread(7)
    b = p.get_thread(7)
    assert Arc.ptr_eq(a, b)
