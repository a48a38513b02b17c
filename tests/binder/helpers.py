"""A simulated machine with `/dev/binder` registered, for the memory-layer tests.

`BinderWorld` builds a fresh `Kernel`, registers binder (optionally with a `Process`
subclass, to run an unfixed variant of the driver), starts processes that open and
map `/dev/binder`, and at teardown checks that nothing leaked: every process released,
every page of the pool back, the world consistent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from binder.process import Process
from binder.rust_binder_main import BinderDevice, BinderRegistration, register
from ownership.bindings import MAP_PRIVATE, PROT_READ, Kernel, Task
from ownership.bindings.fs import File as CFile
from ownership.miscdevice import File
from ownership.sync import live_arcs
from ownership.workqueue import flush

KUNIT_MMAP_SIZE = 128 * 1024


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


def process_of(file: CFile) -> Process:
    """The driver's `Process` behind an open binder file."""
    return BinderDevice.process_of(File._view(file))


class BinderWorld:
    """One machine for one test."""

    def __init__(
        self, *, process_type: type[Process] = Process, pages_per_node: int = 4096, per_vma_lock: bool = True
    ) -> None:
        self.kernel = Kernel(pages_per_node=pages_per_node, per_vma_lock=per_vma_lock)
        self.baseline_pages = self.kernel.nr_used_pages()
        self.baseline_processes = live_arcs().get("Process", 0)
        self.reg: BinderRegistration = register(self.kernel, process_type=process_type)
        self.opened: list[Opened] = []
        self.tasks: list[Task] = []

    def open(self, name: str = "app", map_size: int | None = KUNIT_MMAP_SIZE, prot: int = PROT_READ) -> Opened:
        """Start a process that opens `/dev/binder` and maps `map_size` bytes of it."""
        task = self.kernel.spawn_process(name)
        self.tasks.append(task)
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
        for t in self.tasks:
            if not t.exited:
                t.exit()
        flush()
        self.reg.unregister()
        problems = self.kernel.check_consistency()
        assert not problems, problems
        assert live_arcs().get("Process", 0) == self.baseline_processes, "a Process was leaked"
        assert self.kernel.nr_used_pages() == self.baseline_pages, (
            f"{self.kernel.nr_used_pages() - self.baseline_pages} pages leaked"
        )
