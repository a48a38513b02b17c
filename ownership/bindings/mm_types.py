"""`struct mm_struct`, `struct vm_area_struct` and page-table entries (include/linux/mm_types.h).

These are the C objects; the logic that changes them is in `ownership.bindings.mm`.
What each field is protected by follows Documentation/mm/process_addrs.rst:

* the VMA tree of an mm (`vmas`) changes only under the mmap write lock; a lookup holds
  the mmap lock, or runs under RCU (`lock_vma_under_rcu`), which the model serialises
  with `tree_lock` (the maple tree's internal spinlock);
* `vm_start`, `vm_end`, `vm_pgoff` and `vm_flags` of a VMA in the tree change only with
  the mmap write lock *and* the VMA write-locked (`vma_start_write`);
* a VMA is write-locked while `vm_lock_seq == mm.mm_lock_seq`; `mmap_write_unlock`
  advances `mm_lock_seq`, which unlocks every VMA at once (`vma_end_write_all`);
* the page tables (`ptes`) change under `ptl`, the page-table lock;
* `mm_users` counts users of the address space (`mmget`/`mmput`), `mm_count` references
  to the `struct mm_struct` itself (`mmgrab`/`mmdrop`); all users together hold one
  `mm_count`.

Lock order: mmap_lock -> vma lock -> ptl; `tree_lock` and `vma_state` are leaves.
"""

from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING, Protocol

from .. import lockdep, sched
from ..include.vm_flags import names
from ..refcount import Refcount
from ..site import Site
from .consts import PAGE_SIZE
from .page_alloc import StructPage
from .rwsem import RwSemaphore

if TYPE_CHECKING:
    from .fs import File
    from .kernel import Kernel

__all__ = [
    "MMAP_LOCK_CLASS",
    "VMA_LOCK_CLASS",
    "MmStruct",
    "Pte",
    "ShmemObject",
    "VmAreaStruct",
    "VmOperationsStruct",
]

MMAP_LOCK_CLASS = lockdep.lock_class("&mm->mmap_lock", "rw_semaphore")
VMA_LOCK_CLASS = lockdep.lock_class("vm_lock", "rw_semaphore")
lockdep.declare_order(
    MMAP_LOCK_CLASS,
    VMA_LOCK_CLASS,
    "Documentation/mm/process_addrs.rst: taking a VMA read lock while holding the mmap "
    "read lock is fine; the reverse order is invalid (vma_start_write runs under the mmap "
    "write lock)",
)

_ids = itertools.count(1)


class VmOperationsStruct(Protocol):
    """`struct vm_operations_struct`: the callbacks a driver installs on its VMAs.

    `fault` returns a page with a reference taken for the caller (`vmf->page`), or None
    when the handler installed the PTE itself or the access is refused (`VM_FAULT_SIGBUS`).
    """

    def open(self, vma: VmAreaStruct) -> None: ...

    def close(self, vma: VmAreaStruct) -> None: ...

    def fault(self, vma: VmAreaStruct, address: int, write: bool) -> StructPage | None: ...


class ShmemObject:
    """The shmem file behind a `MAP_SHARED|MAP_ANONYMOUS` mapping: pages by page offset.

    Invariants: each page in `pages` holds one reference owned by this object.
    """

    __slots__ = ("pages", "users")

    def __init__(self) -> None:
        self.pages: dict[int, StructPage] = {}
        self.users = 1


class Pte:
    """A present page-table entry.

    Invariants: unless `special` (a `remap_pfn_range` mapping, which the MM does not
    refcount), the PTE owns one reference and one map count of `page`.
    """

    __slots__ = ("page", "special", "writable")

    def __init__(self, page: StructPage, writable: bool, special: bool = False) -> None:
        self.page = page
        self.writable = writable
        self.special = special


class VmAreaStruct:
    """One `struct vm_area_struct`: `[vm_start, vm_end)` of an address space.

    Invariants: `vm_start < vm_end`, both page aligned; while `attached`, the VMA is in
    `vm_mm.vmas`; `flag_origins` maps flag bits to the driver call that set them, for
    reports. `readers` counts VMA read locks held (`lock_vma_under_rcu`), by thread.
    """

    __slots__ = (
        "anon",
        "attached",
        "created_site",
        "detached_at",
        "flag_origins",
        "id",
        "readers",
        "shmem",
        "vm_end",
        "vm_file",
        "vm_flags",
        "vm_lock_seq",
        "vm_mm",
        "vm_ops",
        "vm_pgoff",
        "vm_private_data",
        "vm_start",
        "wrappers",
        "writer_waiting",
    )

    def __init__(self, mm: MmStruct, start: int, end: int, flags: int, pgoff: int) -> None:
        self.id = next(_ids)
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = pgoff
        self.vm_file: File | None = None
        self.vm_ops: VmOperationsStruct | None = None
        self.vm_private_data: object = None
        self.anon = False
        self.shmem: ShmemObject | None = None
        self.flag_origins: dict[int, Site] = {}
        self.vm_lock_seq = -1
        self.readers: dict[int, int] = {}
        self.writer_waiting = False
        self.attached = False
        self.detached_at: Site | None = None
        self.created_site: Site | None = None
        self.wrappers: dict[type, object] = {}

    def contains(self, addr: int) -> bool:
        return self.vm_start <= addr < self.vm_end

    def pages(self) -> range:
        return range(self.vm_start, self.vm_end, PAGE_SIZE)

    def is_write_locked(self) -> bool:
        return self.vm_lock_seq == self.vm_mm.mm_lock_seq

    def describe(self) -> str:
        what = (
            "anon"
            if self.anon
            else "shmem"
            if self.shmem
            else (f"file '{self.vm_file.name}'" if self.vm_file is not None else "special")
        )
        return (
            f"vm_area_struct #{self.id} [{self.vm_start:#x}, {self.vm_end:#x}) {what} "
            f"{names(self.vm_flags)}"
        )

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class MmStruct:
    """One `struct mm_struct`: an address space.

    Invariants: `vmas` is sorted by `vm_start` and the VMAs do not overlap; `_starts`
    mirrors their start addresses; every key of `ptes` is a page address inside some VMA
    of `vmas`; `mm_count >= 1` while `mm_users >= 1`; `freed` once `mm_count` reached 0.
    """

    __slots__ = (
        "_starts",
        "exited",
        "freed_at",
        "id",
        "kernel",
        "mm_count",
        "mm_lock_seq",
        "mm_users",
        "mmap_lock",
        "owner_comm",
        "owner_pid",
        "page_tables",
        "ptes",
        "ptl",
        "tree_lock",
        "vma_state",
        "vma_wq",
        "vmas",
        "wrappers",
    )

    def __init__(self, kernel: Kernel, owner_pid: int, owner_comm: str) -> None:
        self.id = next(_ids)
        self.kernel = kernel
        self.owner_pid = owner_pid
        self.owner_comm = owner_comm
        what = f"mm_struct #{self.id} of {owner_comm}:{owner_pid}"
        self.mm_users = Refcount(f"{what} mm_users", 1)
        self.mm_count = Refcount(f"{what} mm_count", 1)
        self.mmap_lock = RwSemaphore(f"mmap_lock of {owner_comm}:{owner_pid}", MMAP_LOCK_CLASS)
        self.mm_lock_seq = 0
        self.vmas: list[VmAreaStruct] = []
        self._starts: list[int] = []
        self.ptes: dict[int, Pte] = {}
        self.page_tables: set[int] = set()
        raw = sched.active()
        self.tree_lock = raw.raw_lock()
        self.ptl = raw.raw_lock()
        self.vma_state = raw.raw_lock()
        self.vma_wq = raw.wait_queue()
        self.exited = False
        self.freed_at: Site | None = None
        self.wrappers: dict[type, object] = {}

    @property
    def freed(self) -> bool:
        return self.freed_at is not None

    def describe(self) -> str:
        return (
            f"mm_struct #{self.id} of {self.owner_comm}:{self.owner_pid} "
            f"(mm_users {self.mm_users.read()}, mm_count {self.mm_count.read()})"
        )

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # --- the VMA tree (callers hold the mmap lock; writers also `tree_lock`) ----------

    def find_vma(self, addr: int) -> VmAreaStruct | None:
        """The VMA containing `addr` (`vma_lookup`)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            vma = self.vmas[i]
            if addr < vma.vm_end:
                return vma
        return None

    def vmas_in(self, start: int, end: int) -> list[VmAreaStruct]:
        """The VMAs intersecting `[start, end)`, in address order."""
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        for vma in self.vmas[i:]:
            if vma.vm_start >= end:
                break
            if vma.vm_end > start:
                out.append(vma)
        return out

    def insert_vma(self, vma: VmAreaStruct) -> None:
        i = bisect.bisect_left(self._starts, vma.vm_start)
        self._starts.insert(i, vma.vm_start)
        self.vmas.insert(i, vma)
        vma.attached = True

    def remove_vma(self, vma: VmAreaStruct) -> None:
        i = bisect.bisect_left(self._starts, vma.vm_start)
        while self.vmas[i] is not vma:
            i += 1
        del self._starts[i]
        del self.vmas[i]
        vma.attached = False

    def resort(self) -> None:
        """Re-sort after a VMA's bounds changed in place (split or merge)."""
        self.vmas.sort(key=lambda v: v.vm_start)
        self._starts = [v.vm_start for v in self.vmas]
