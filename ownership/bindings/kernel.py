"""`Kernel`: one isolated simulated machine (page pool, tasks, devices, shrinkers).

Every test builds its own `Kernel()`; nothing is shared between two kernels. A page of
one kernel cannot be mapped into another's address space (`vm_insert_page` says
`EINVAL`), so a test cannot accidentally mix worlds.

How Rust-side code finds its kernel (`Kernel.current()`): the kernel of the task the
calling thread runs as (`task.as_current()`), else the process-wide default kernel,
which is the one installed with `with kernel.as_default():` or, failing that, one made
on first use. `Page.alloc_page(gfp)` and `VBox::new` allocate from `Kernel.current()`.

The page allocator reclaims like the kernel's: when a reclaiming allocation
(`GFP_KERNEL`) finds no free page it runs the shrinkers once and retries.

Lock order: `_lock` (the task and device tables) is a leaf.
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

from .. import sched
from ..context import ctx
from ..errors import EBUSY, EINVAL, ENOMEM, KernelError
from . import mm as mmops
from ._raw import locked
from .fs import FileOperations
from .mm_types import MmStruct
from .page_alloc import PageKind, PagePool, StructPage
from .shrinker import Shrinker, ShrinkerList
from .task import Task

__all__ = ["Kernel", "MiscDriver", "default_kernel"]

_Reg_co = TypeVar("_Reg_co", covariant=True)


class MiscDriver(Protocol[_Reg_co]):
    """A driver as `Kernel.register_miscdevice` takes it: one that registers itself.

    C's `misc_register()` takes a name and a `struct file_operations` (`add_device`
    here) and knows nothing of the language the driver is written in. A driver written
    against another API adapts itself: `misc_register(kernel, name)` builds its
    `FileOperations` vtable, installs it with `kernel.add_device(name, fops)` and returns
    its own registration handle (the Rust `MiscDevice` returns a
    `MiscDeviceRegistration`), which `register_miscdevice` hands back unchanged.
    """

    def misc_register(self, kernel: Kernel, name: str) -> _Reg_co: ...


_kernel_ids = itertools.count(1)


class Kernel:
    """A simulated machine.

    Invariants: `pool` holds every page of this kernel; `tasks` every task not yet
    reaped; `devices` maps a misc-device name to its file operations.
    """

    def __init__(
        self,
        *,
        nr_nodes: int = 2,
        pages_per_node: int = 1 << 18,
        per_vma_lock: bool = True,
        name: str | None = None,
    ) -> None:
        if not isinstance(nr_nodes, int) or not isinstance(pages_per_node, int):
            raise TypeError("nr_nodes and pages_per_node must be ints")
        self.id = next(_kernel_ids)
        self.name = name or f"kernel-{self.id}"
        self.per_vma_lock = bool(per_vma_lock)
        self.pool = PagePool(self, nr_nodes, pages_per_node)
        self.shrinkers = ShrinkerList()
        self.devices: dict[str, FileOperations] = {}
        self.tasks: dict[int, Task] = {}
        self.mms: list[MmStruct] = []
        self._lock = sched.active().raw_lock()
        self._pids = itertools.count(1)
        self._next_node = 0

    def __repr__(self) -> str:
        return f"<Kernel {self.name}>"

    # --- finding the kernel -------------------------------------------------------

    @staticmethod
    def current() -> Kernel:
        """The kernel of the current task, else the default kernel."""
        t = ctx.task
        k = getattr(t, "kernel", None)
        if isinstance(k, Kernel):
            return k
        return default_kernel()

    @contextmanager
    def as_default(self) -> Iterator[Kernel]:
        """Make this the process-wide default kernel for the body (kthreads, workqueues)."""
        global _default
        with _default_lock:
            prev, _default = _default, self
        try:
            yield self
        finally:
            with _default_lock:
                _default = prev

    # --- tasks ------------------------------------------------------------------------

    def _alloc_pid(self) -> int:
        with locked(self._lock):
            return next(self._pids)

    def _new_task(self, comm: str, with_mm: bool = True) -> Task:
        with locked(self._lock):
            pid = next(self._pids)
            nid = self._next_node
            self._next_node = (nid + 1) % self.pool.nr_nodes
        mm = MmStruct(self, pid, comm) if with_mm else None
        t = Task(self, pid, comm, mm, nid)
        with locked(self._lock):
            self.tasks[pid] = t
            if mm is not None:
                self.mms.append(mm)
        return t

    def spawn_process(self, name: str) -> Task:
        """A new process with an empty address space."""
        if not isinstance(name, str) or not name:
            raise TypeError("a process needs a non-empty name (its comm)")
        return self._new_task(name[:15])

    def spawn_kthread(self, name: str) -> Task:
        """A kernel thread: a task without an address space (`current->mm == NULL`)."""
        if not isinstance(name, str) or not name:
            raise TypeError("a kernel thread needs a non-empty name")
        return self._new_task(name[:15], with_mm=False)

    # --- pages ------------------------------------------------------------------------

    def alloc_page(
        self,
        *,
        reclaim: bool,
        nid: int | None = None,
        kind: PageKind = "normal",
        zero: bool = False,
    ) -> StructPage | None:
        """`__alloc_pages(gfp, 0)`: a page, running the shrinkers once if allowed to reclaim."""
        node = nid if nid is not None else self._local_node()
        page = self.pool.alloc(node, kind, zero)
        if page is None and reclaim:
            self.shrinkers.shrink(128)
            page = self.pool.alloc(node, kind, zero)
        return page

    def _local_node(self) -> int:
        t = ctx.task
        if isinstance(t, Task) and t.kernel is self:
            return t.nid % self.pool.nr_nodes
        return 0

    def alloc_special_page(self, kind: PageKind) -> StructPage:
        """A page of another kind (slab, typed, anon), as other subsystems would own it."""
        if kind not in ("normal", "anon", "slab", "typed"):
            raise KernelError(EINVAL, f"no page kind {kind!r}")
        page = self.pool.alloc(self._local_node(), kind)
        if page is None:
            raise KernelError(ENOMEM, "out of pages")
        return page

    def put_page(self, page: StructPage) -> None:
        self.pool.put_page(page)

    def nr_free_pages(self) -> int:
        return self.pool.nr_free()

    def nr_used_pages(self) -> int:
        return self.pool.nr_allocated

    # --- devices ------------------------------------------------------------------------

    def register_miscdevice(self, name: str, driver: MiscDriver[_Reg_co]) -> _Reg_co:
        """Register `driver` (e.g. an `ownership.miscdevice.MiscDevice`) as `/dev/<name>`.

        The driver builds its file operations and calls `add_device` itself (see
        `MiscDriver`); what it returns (its registration) is returned.
        """
        register = getattr(driver, "misc_register", None)
        if not callable(register):
            raise TypeError(f"register_miscdevice takes a MiscDevice, got {type(driver).__name__}")
        return driver.misc_register(self, name)

    def add_device(self, name: str, fops: FileOperations) -> None:
        """`misc_register()`: install `fops` as `/dev/<name>` (EBUSY if taken)."""
        if not isinstance(name, str) or not name or "/" in name:
            raise KernelError(EINVAL, f"bad device name {name!r}")
        with locked(self._lock):
            if name in self.devices:
                raise KernelError(EBUSY, f"/dev/{name} is already registered")
            self.devices[name] = fops

    def remove_device(self, name: str) -> None:
        """`misc_deregister()`: open files keep working; new opens fail."""
        with locked(self._lock):
            self.devices.pop(name, None)

    # --- shrinkers ------------------------------------------------------------------------

    def register_shrinker(
        self, name: str, count_objects: Callable[[], int], scan_objects: Callable[[int], int]
    ) -> Shrinker:
        return self.shrinkers.register(name, count_objects, scan_objects)

    def shrink(self, nr_to_scan: int) -> int:
        """Run every registered shrinker (`count_objects` in atomic context); objects freed."""
        return self.shrinkers.shrink(nr_to_scan)

    # --- consistency --------------------------------------------------------------------

    def check_consistency(self) -> list[str]:
        """Every broken invariant of the world (empty when it is consistent)."""
        problems: list[str] = []
        mapped: dict[int, int] = {}
        pages: dict[int, StructPage] = {}
        for mm in list(self.mms):
            if mm.freed:
                continue
            problems.extend(f"{mm.describe()}: {p}" for p in mmops.check_mm(mm))
            for pte in list(mm.ptes.values()):
                if not pte.special:
                    key = id(pte.page)
                    mapped[key] = mapped.get(key, 0) + 1
                    pages[key] = pte.page
        for key, n in mapped.items():
            page = pages[key]
            if page.mapcount != n:
                problems.append(f"{page.describe()}: mapcount {page.mapcount}, but {n} PTEs map it")
            if page.refcount < n:
                problems.append(f"{page.describe()}: refcount {page.refcount} < {n} mappings")
        for page in self.pool.allocated_pages():
            if id(page) not in mapped and page.mapcount:
                problems.append(f"{page.describe()}: mapcount {page.mapcount} but no PTE maps it")
        return problems

    def leaks(self) -> list[str]:
        """What is still held once every task has exited (`kmemleak`, for teardown).

        An `mm_struct` that is not freed after its task exited is held by a leaked `mmget`
        or `mmgrab` reference (an `ARef` never dropped). A page still allocated that
        nothing refers to (its `Page` or `VBox` was forgotten without `drop()`) is an
        "unreferenced object", with where it was allocated.
        """
        out = []
        if any(not t.exited for t in self.tasks.values()):
            return ["tasks are still running: exit them first"]
        for mm in self.mms:
            if not mm.freed:
                out.append(f"leaked reference: {mm.describe()}")
        for page in self._unreferenced_pages():
            where = page.alloc_site.describe() if page.alloc_site is not None else "(unknown)"
            out.append(f"unreferenced object: {page.describe()}, allocated at {where}")
        return out

    def _unreferenced_pages(self) -> list[StructPage]:
        """Allocated pages that nothing refers to any more: kmemleak's scan.

        kmemleak reports a block no pointer in memory refers to; here the pointers are
        Python references. A page whose only references are the allocator's own (its pfn
        table) and its own wrapper views can never be freed: its owner (a `Page`, a
        `VBox`, a driver's struct) was forgotten without `drop()`. Pages still reachable
        from live objects (a registered driver's state) are not reported, as kmemleak
        does not report them. Costs a garbage collection when pages are still allocated.
        """
        if not self.pool.nr_allocated:
            return []
        gc.collect()
        pages = self.pool.allocated_pages()
        # The references every allocated page has in the loop below: the pool's pfn table,
        # the list `pages`, the loop variable and getrefcount's argument. They are counted
        # on a probe held the same way, so the count does not depend on the interpreter.
        table: dict[int, object] = {0: object()}
        probes = [table[0]]
        for p in probes:
            base = sys.getrefcount(p)
        del p
        wrapper_base = base - 1  # A wrapper: its page's table, the loop variable, the argument.
        out = []
        for page in pages:
            extra = sys.getrefcount(page) - base
            for w in page.wrappers.values():
                # A wrapper view only the page's own table keeps is the page's, not a referrer.
                if sys.getrefcount(w) <= wrapper_base and any(
                    r is page for r in gc.get_referents(w)
                ):
                    extra -= 1
            if extra <= 0:
                out.append(page)
        return out


_default_lock = threading.Lock()
_default: Kernel | None = None


def default_kernel() -> Kernel:
    """The process-wide default kernel (made on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Kernel(name="default")
        return _default
