"""Binder device contexts: one per device file, with its context manager.

Upstream: drivers/android/binder/context.rs. The module is called `device_context` so
that it is not confused with `ownership.context`, the execution context (task, atomic
or sleepable, held locks) every part of the model runs in.

Every binder device (`/dev/binder`, `/dev/hwbinder`, ...) is a separate `Context`: the
processes that opened it, and the one node registered with `BINDER_SET_CONTEXT_MGR`
that handle 0 names (the service manager). Contexts are kept in a `ContextList`
(upstream the global `CONTEXTS` mutex); the model gives every registered device its
own list, so that independent simulated kernels in one Python process never see each
other's processes (`BINDER_FREEZE` looks processes up by pid across the list).

Types: `ContextList` (the registry, a `Mutex`), `Context` (name plus its `Manager`
under a `Mutex`).

Lock order: `ContextList.lock` -> `Context.manager`. `Context.manager` -> the manager
node's `NodeRef` clone, which takes the owner's `Process.inner` (SpinLock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ownership.context import may_sleep
from ownership.errors import EBUSY, EPERM, KernelError
from ownership.marker import impl_send, impl_sync
from ownership.sync import Mutex

from .error import BinderError

if TYPE_CHECKING:
    from .node import NodeRef
    from .process import Process

__all__ = ["Context", "ContextList"]


class _ContextListInner:
    """The registered contexts, behind `ContextList.lock`."""

    __slots__ = ("contexts",)

    def __init__(self) -> None:
        self.contexts: list[Context] = []


@impl_send("the list is behind a Mutex")
@impl_sync("the list is behind a Mutex")
class ContextList:
    """The registry of contexts (upstream the global `CONTEXTS: Mutex<ContextList>`).

    Invariants: every context of the list was not yet deregistered.
    """

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock: Mutex[_ContextListInner] = Mutex(_ContextListInner(), name="binder::CONTEXTS")

    def get_all_contexts(self) -> list[Context]:
        with self.lock.lock() as g:
            return list(g.data.contexts)


class Manager:
    """The context manager state (`Manager`): its node, its uid, and every process.

    Invariants: `uid` is set from the first manager on and never changes.
    """

    __slots__ = ("all_procs", "node", "uid")

    def __init__(self) -> None:
        self.node: NodeRef | None = None
        self.uid: int | None = None
        self.all_procs: list[Process] = []


@impl_send("all mutable state is behind Context.manager")
@impl_sync("all mutable state is behind Context.manager")
class Context:
    """One binder device's context (`Context`).

    Invariants: `manager.node`, when set, is a strong `NodeRef` on the context
    manager's node; `all_procs` lists the processes that opened this device and were
    not yet released.
    """

    __slots__ = ("list", "manager", "name")

    def __init__(self, name: str, registry: ContextList | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a binder context needs a non-empty name")
        self.name = name
        self.list = registry if registry is not None else ContextList()
        self.manager: Mutex[Manager] = Mutex(Manager(), name="Context::manager")
        with self.list.lock.lock() as g:
            g.data.contexts.append(self)

    def __repr__(self) -> str:
        return f"Context({self.name!r})"

    @may_sleep
    def deregister(self) -> None:
        """The device file was removed; no-op if called twice."""
        with self.list.lock.lock() as g:
            if self in g.data.contexts:
                g.data.contexts.remove(self)

    @may_sleep
    def register_process(self, proc: Process) -> None:
        if proc.ctx is not self:
            raise KernelError(EPERM, "Context::register_process called on the wrong context")
        with self.manager.lock() as g:
            g.data.all_procs.append(proc)

    @may_sleep
    def deregister_process(self, proc: Process) -> None:
        if proc.ctx is not self:
            return
        with self.manager.lock() as g:
            if proc in g.data.all_procs:
                g.data.all_procs.remove(proc)

    @may_sleep
    def set_manager_node(self, node_ref: NodeRef, caller_uid: int) -> None:
        """`BINDER_SET_CONTEXT_MGR`: `EBUSY` if set, `EPERM` for another uid than before."""
        with self.manager.lock() as g:
            m = g.data
            if m.node is not None:
                raise KernelError(EBUSY, "BINDER_SET_CONTEXT_MGR already set")
            if m.uid is not None and m.uid != caller_uid:
                raise KernelError(EPERM, "context manager uid changed")
            m.node = node_ref
            m.uid = caller_uid

    @may_sleep
    def unset_manager_node(self) -> None:
        with self.manager.lock() as g:
            node_ref, g.data.node = g.data.node, None
        # Dropping the ref takes the owner's spinlock: not under our mutex.
        if node_ref is not None:
            node_ref.drop()

    @may_sleep
    def get_manager_node(self, strong: bool) -> NodeRef:
        """A new ref on the manager's node; `BR_DEAD_REPLY` if there is none."""
        with self.manager.lock() as g:
            node = g.data.node
            if node is None:
                raise BinderError.new_dead()
            try:
                return node.clone(strong)
            except KernelError as e:
                raise BinderError.of(e) from None

    @may_sleep
    def manager_process(self) -> Process | None:
        with self.manager.lock() as g:
            return g.data.node.node.owner if g.data.node is not None else None

    @may_sleep
    def for_each_proc(self, func: Callable[[Process], None]) -> None:
        with self.manager.lock() as g:
            procs = list(g.data.all_procs)
        for p in procs:
            func(p)

    @may_sleep
    def get_all_procs(self) -> list[Process]:
        with self.manager.lock() as g:
            return list(g.data.all_procs)

    @may_sleep
    def get_procs_with_pid(self, pid: int) -> list[Process]:
        return [p for p in self.get_all_procs() if p.pid() == pid]
