"""The work item of a critical zero-to-one increment (drivers/android/binder/node/wrapper.rs).

A node has one work item of its own (the `Node`), which can be in one todo list at a
time. When a strong zero-to-one increment must be delivered to a particular thread
(the one taking the count, so that userspace sees `BR_ACQUIRE` before it uses the
object) while the node is already queued elsewhere, the increment needs a second
work item: a `NodeWrapper`. It must not be allocated under the owner's spinlock, so
the caller allocates a `CritIncrWrapper` first (`CritIncrWrapper.new`, after
`CouldNotDeliverCriticalIncrement` told it to) and retries; `init` turns the
allocation into the `NodeWrapper` under the lock.

Lock order: `NodeWrapper.do_work` takes the node owner's `Process.inner` (SpinLock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ownership.marker import impl_send, impl_sync

from ..work import BinderReturnWriter, DeliverToRead, DLArc, new_dlarc

if TYPE_CHECKING:
    from ..thread import Thread
    from . import Node

__all__ = ["CritIncrWrapper", "NodeWrapper"]


class CritIncrWrapper:
    """The allocation of a `NodeWrapper`, made before the owner's lock is taken.

    Invariants: `_la` is the `DLArc` of the not yet initialised `NodeWrapper` (upstream
    a `UniqueArc<MaybeUninit<..>>`) until `init` takes it, once.
    """

    __slots__ = ("_la",)

    def __init__(self, la: DLArc) -> None:
        self._la: DLArc | None = la

    @classmethod
    def new(cls) -> CritIncrWrapper:
        """Allocate the wrapper (may sleep; `ENOMEM`)."""
        return cls(new_dlarc(NodeWrapper()))

    def init(self, node: Node) -> DLArc:
        """The work item for `node`'s critical increment (under the owner's lock)."""
        la, self._la = self._la, None
        if la is None:
            raise ValueError("CritIncrWrapper::init called twice")
        wrapper = la.get()
        assert isinstance(wrapper, NodeWrapper)
        wrapper.node = node
        return la


@impl_send("holds only an Arc-like reference to a Send + Sync Node")
@impl_sync("immutable after init")
class NodeWrapper(DeliverToRead):
    """A work item delivering a node's critical strong zero-to-one.

    Invariants: made by `CritIncrWrapper.init`, under the owner's inner lock, for a node
    whose delivery state has `has_pushed_wrapper` and `has_strong_zero2one` set.
    """

    __slots__ = ("node",)

    def __init__(self) -> None:
        super().__init__()
        # Set by `CritIncrWrapper.init`, before the wrapper is ever queued.
        self.node: Node | None = None

    def do_work(self, thread: Thread, writer: BinderReturnWriter) -> bool:
        node = self.node
        assert node is not None
        guard = node.owner.inner.lock()
        try:
            ds = node.inner.access(guard).delivery_state
            assert ds.has_pushed_wrapper and ds.has_strong_zero2one
            ds.has_pushed_wrapper = False
            ds.has_strong_zero2one = False
            return node.do_work_locked(writer, guard)
        finally:
            if guard.is_held():
                guard.drop()
