"""One simulated machine with `/dev/binder`, for every binder test, with leak checks.

`Machine` is the common part: a fresh `Kernel` with binder registered (optionally with
a `Process` subclass, to run an unfixed variant of the driver), the tasks started in
it, the driver's `Process` behind an open binder file, and the end of the test: every
task exited, the deferred work run, the device unregistered, and nothing leaked (the
machine consistent, no `Process`, `Thread`, `Node` or `NodeDeath` left alive, every page
of the pool back).

Two views of it:

* `BinderWorld` (tests/binder, the memory layer): processes that open and map
  `/dev/binder` (`Opened`), driving the driver's `Process` directly.
* `World` (tests/binder_ipc, end to end): a service manager and userspace processes,
  each a `BinderClient`, with looper threads; at the end it also checks that the
  driver kept nothing behind for any process (no node, handle, thread, pending work or
  outstanding transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from binder.client import BinderClient, Handler
from binder.process import Process
from binder.rust_binder_main import BinderDevice, BinderRegistration, register
from binder.servicemanager import ServiceManager, add_service, get_service
from ownership import sched
from ownership.bindings import MAP_PRIVATE, PROT_READ, Kernel, Task
from ownership.bindings.fs import File as CFile
from ownership.miscdevice import File
from ownership.sched import ThreadHandle
from ownership.sync import live_arcs
from ownership.workqueue import flush

__all__ = [
    "DRIVER_ARCS",
    "JOIN_TIMEOUT",
    "KUNIT_MMAP_SIZE",
    "BinderWorld",
    "Machine",
    "Opened",
    "World",
    "assert_released",
    "driver_arcs",
    "process_of",
    "task_of",
    "world",
]

KUNIT_MMAP_SIZE = 128 * 1024
JOIN_TIMEOUT = 10.0
# The driver objects that live in `Arc`s and must all be freed once every process of a
# machine is released (`live_arcs` counts them by type name).
DRIVER_ARCS = ("Process", "Thread", "Node", "NodeDeath")


def driver_arcs() -> dict[str, int]:
    """How many of each `DRIVER_ARCS` type are alive now."""
    live = live_arcs()
    return {name: live.get(name, 0) for name in DRIVER_ARCS}


def process_of(file: CFile) -> Process:
    """The driver's `Process` behind an open binder file."""
    return BinderDevice.process_of(File._view(file))


def task_of(c: BinderClient) -> Task:
    """The simulated task a client runs as."""
    return cast(Task, c.task)


def assert_released(proc: Process) -> None:
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


class Machine:
    """A fresh kernel with binder registered, and the tasks a test starts in it."""

    def __init__(
        self,
        *,
        process_type: type[Process] = Process,
        pages_per_node: int = 4096,
        per_vma_lock: bool = True,
    ) -> None:
        self.kernel = Kernel(pages_per_node=pages_per_node, per_vma_lock=per_vma_lock)
        self.baseline_pages = self.kernel.nr_used_pages()
        self.baseline_arcs = driver_arcs()
        self.reg: BinderRegistration = register(self.kernel, process_type=process_type)
        self.tasks: list[Task] = []

    def spawn_task(self, name: str) -> Task:
        """Start a process (a task of the machine), exited at the end of the test."""
        task = self.kernel.spawn_process(name)
        self.tasks.append(task)
        return task

    def exit_all(self) -> None:
        """Exit every task still running and run the deferred release work."""
        for t in self.tasks:
            if not t.exited:
                t.exit()
        flush()

    def check_no_leaks(self) -> None:
        """Unregister binder, then check that the machine got everything back."""
        self.reg.unregister()
        problems = self.kernel.check_consistency()
        assert not problems, problems
        now = driver_arcs()
        before = self.baseline_arcs
        leaked = {k: now[k] - before[k] for k in DRIVER_ARCS if now[k] != before[k]}
        assert not leaked, f"driver objects leaked (live Arcs more than before): {leaked}"
        assert self.kernel.nr_used_pages() == self.baseline_pages, (
            f"{self.kernel.nr_used_pages() - self.baseline_pages} pages leaked"
        )


@dataclass
class Opened:
    """A process that opened (and usually mapped) `/dev/binder`."""

    task: Task
    file: CFile
    addr: int
    proc: Process
    map_size: int = 0

    @contextmanager
    def current(self) -> Iterator[Opened]:
        with self.task.as_current():
            yield self


class BinderWorld(Machine):
    """The memory-layer tests' machine: processes that open and map `/dev/binder`."""

    def __init__(
        self,
        *,
        process_type: type[Process] = Process,
        pages_per_node: int = 4096,
        per_vma_lock: bool = True,
    ) -> None:
        super().__init__(
            process_type=process_type, pages_per_node=pages_per_node, per_vma_lock=per_vma_lock
        )
        self.opened: list[Opened] = []

    def open(
        self, name: str = "app", map_size: int | None = KUNIT_MMAP_SIZE, prot: int = PROT_READ
    ) -> Opened:
        """Start a process that opens `/dev/binder` and maps `map_size` bytes of it."""
        task = self.spawn_task(name)
        with task.as_current():
            f = task.open("binder")
            addr = task.mmap(f, map_size, prot, MAP_PRIVATE) if map_size else 0
        o = Opened(task, f, addr, process_of(f), map_size or 0)
        self.opened.append(o)
        return o

    def close(self, o: Opened) -> None:
        """Unmap and close the binder fd (the VMA holds a file reference), run the release."""
        with o.task.as_current():
            if o.addr:
                o.task.munmap(o.addr, o.map_size)
            o.file.close()
        flush()

    def teardown(self) -> None:
        """Exit every process, run the deferred work, and check nothing leaked."""
        self.exit_all()
        self.check_no_leaks()


class World(Machine):
    """The end-to-end tests' machine: a service manager and userspace processes."""

    def __init__(self, process_type: type[Process] = Process) -> None:
        super().__init__(process_type=process_type)
        self.clients: list[BinderClient] = []
        self.procs: dict[int, Process] = {}
        self.threads: list[tuple[str, ThreadHandle]] = []
        self.errors: list[BaseException] = []
        self.sm_client = self.spawn("servicemanager")
        self.sm = ServiceManager(self.sm_client)
        self.looper(self.sm_client)

    # --- processes -------------------------------------------------------------

    def spawn(self, name: str, **kw: Any) -> BinderClient:
        """Start a process with a `BinderClient` (it opens and maps `/dev/binder`)."""
        c = BinderClient(self.spawn_task(name), **kw)
        self.clients.append(c)
        # The driver's Process, remembered for the checks (the file forgets it at release).
        self.procs[id(c)] = process_of(cast(CFile, c.file))
        return c

    def process(self, c: BinderClient) -> Process:
        """The driver's `Process` behind a client's binder fd."""
        return self.procs[id(c)]

    def run(self, fn: Callable[[], object], name: str = "userspace") -> ThreadHandle:
        """Run `fn` on a new userspace thread; exceptions are re-raised by `finish`.

        The thread is started through the scheduling seam, so under the interleaving
        explorer it is one of its model threads (under the default scheduler, an OS
        thread)."""

        def body() -> None:
            try:
                fn()
            except BaseException as e:
                self.errors.append(e)

        t = sched.active().spawn(body, name)
        self.threads.append((name, t))
        return t

    def looper(self, c: BinderClient, register: bool = False) -> ThreadHandle:
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
        """Exit every process, join the userspace threads, and check nothing leaked."""
        self.exit_all()
        for _, th in self.threads:
            th.join(JOIN_TIMEOUT)
        stuck = [name for name, th in self.threads if th.is_alive()]
        assert not stuck, f"userspace threads did not finish: {stuck}"
        flush()
        if self.errors:
            raise self.errors[0]
        for c in self.clients:
            assert_released(self.procs[id(c)])
        self.check_no_leaks()


@contextmanager
def world(process_type: type[Process] = Process) -> Iterator[World]:
    """A `World` for one test, finished (and checked) when the block ends.

    `process_type` substitutes a `Process` subclass (an unfixed variant of the driver).
    """
    w = World(process_type)
    try:
        yield w
    finally:
        w.finish()
