"""A simulated machine with /dev/binder, processes, looper threads and leak checks.

`World` is what every end-to-end test of the IPC layer starts from: a fresh `Kernel`
with binder registered, a service manager, and helpers to start processes (each a
`BinderClient`), run looper threads in them, kill them, and at the end check that the
driver kept nothing behind: every process released, no node, handle, thread, pending
work, outstanding transaction or buffer left, no page of the pool lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import binder
from binder.client import BinderClient, Handler
from binder.servicemanager import ServiceManager, add_service, get_service
from ownership.bindings import Kernel
from ownership.bindings.task import Task
from ownership.workqueue import flush

JOIN_TIMEOUT = 10.0


class World:
    """One simulated machine for one test."""

    def __init__(self) -> None:
        self.kernel = Kernel()
        binder.register(self.kernel)
        self.clients: list[BinderClient] = []
        self.procs: dict[int, Any] = {}
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.sm_client = self.spawn("servicemanager")
        self.sm = ServiceManager(self.sm_client)
        self.looper(self.sm_client)

    # --- processes -------------------------------------------------------------

    def spawn(self, name: str, **kw: Any) -> BinderClient:
        task = self.kernel.spawn_process(name)
        c = BinderClient(task, **kw)
        self.clients.append(c)
        # The driver's Process, remembered for the checks (the file forgets it at release).
        self.procs[id(c)] = _proc_of(c)
        return c

    def process(self, c: BinderClient) -> Any:
        """The driver's `Process` behind a client's binder fd."""
        return self.procs[id(c)]

    def run(self, fn: Callable[[], object], name: str = "userspace") -> threading.Thread:
        """Run `fn` on a new userspace thread; exceptions are re-raised by `finish`."""

        def body() -> None:
            try:
                fn()
            except BaseException as e:
                self.errors.append(e)

        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def looper(self, c: BinderClient, register: bool = False) -> threading.Thread:
        return self.run(lambda: c.loop(register=register), f"looper-{c.pid}")

    def thread_pool(self, c: BinderClient, max_threads: int) -> None:
        """Serve with a pool: the driver asks for loopers (BR_SPAWN_LOOPER) up to the max."""
        c.set_max_threads(max_threads)
        c.on_spawn_looper = lambda: self.looper(c, register=True)

    def service(self, name: str, ptr: int, handler: Handler, loopers: int = 1) -> BinderClient:
        c = self.spawn(name)
        c.add_object(ptr, handler)
        for _ in range(loopers):
            self.looper(c)
        assert add_service(c, name, ptr) == 0
        return c

    def lookup(self, c: BinderClient, name: str) -> int:
        h = get_service(c, name)
        assert h is not None, f"service {name!r} not found"
        return h

    def kill(self, c: BinderClient) -> None:
        """The process dies: its fds close, its mapping goes, release is deferred."""
        t = task_of(c)
        if not t.exited:
            t.exit()
        flush()

    # --- teardown ----------------------------------------------------------------

    def finish(self) -> None:
        for c in self.clients:
            task = task_of(c)
            if not task.exited:
                task.exit()
        flush()
        for th in self.threads:
            th.join(JOIN_TIMEOUT)
        stuck = [th.name for th in self.threads if th.is_alive()]
        assert not stuck, f"userspace threads did not finish: {stuck}"
        flush()
        if self.errors:
            raise self.errors[0]
        for c in self.clients:
            assert_released(self.procs[id(c)])
        # The machine itself: consistent, and every page of every buffer given back.
        assert self.kernel.check_consistency() == []
        assert self.kernel.nr_used_pages() == 0, f"{self.kernel.nr_used_pages()} pages leaked"


def task_of(c: BinderClient) -> Task:
    return cast(Task, c.task)


def _proc_of(c: BinderClient) -> Any:
    from binder.process import Process

    p = cast(Any, c.file).private_data
    if isinstance(p, Process):
        return p
    get = getattr(p, "get", None)
    return get() if callable(get) else p


def assert_released(proc: Any) -> None:
    """The driver's state of a released process is empty."""
    with proc.inner.lock() as g:
        i = g.data
        assert i.is_dead
        assert len(i.threads) == 0, "threads left"
        assert len(i.nodes) == 0, "nodes left"
        assert not i.work, f"work left: {list(i.work)}"
        assert not i.delivered_deaths
        assert i.outstanding_txns == 0, f"outstanding transactions: {i.outstanding_txns}"
    assert proc.handle_count() == 0, "handles left"


@contextmanager
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.finish()
