"""The core mm of the simulated kernel: mm refcounts, mmap lock, VMA locks, the VMA tree
operations (mmap, munmap, mprotect, madvise, fork, exit), page tables and page faults.

This is the C code under `kernel::mm`. It follows mm/mmap.c, mm/vma.c, mm/memory.c,
mm/mprotect.c, mm/madvise.c and kernel/fork.c closely enough that every rule of the
Rust abstractions is observable: a page inserted through a stale VMA becomes visible to
userspace, a writable PTE lets userspace write a driver's page, `mprotect(PROT_WRITE)`
fails with `EACCES` once `VM_MAYWRITE` is gone.

Every change of `vm_flags` is computed by `ownership.include.vma_ops.apply` with the
operation's entry of `OPS_BY_NAME` (no flag rule is restated here), and adjacent VMAs
merge only when `vma_ops.can_merge` says their flags allow it.

Checks kept from the kernel's debug options (they raise `SafetyViolation`s / `KernelBug`):
`mmap_assert_locked` in `vma_lookup`, `mmap_assert_write_locked` in `vma_start_write`,
the `BUG_ON`s of `vm_insert_page` on a VMA without `VM_MIXEDMAP`, and the `BUG_ON` of a
wrapping `zap_page_range_single`.

Lock order (Documentation/mm/process_addrs.rst): mmap_lock -> VMA lock -> page-table
lock (`ptl`); `tree_lock` and `vma_state` are leaves taken for short sections. Driver
callbacks (`vm_ops`, `f_op->mmap`) run with the mmap lock held and no leaf lock held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import lockdep, sched
from ..config import STATE
from ..context import enter_atomic, exit_atomic, might_sleep
from ..errors import (
    EACCES,
    EBADF,
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOMEM,
    EPERM,
    KernelBug,
    KernelError,
    LockError,
    RefcountError,
)
from ..include import vm_flags as F
from ..include import vma_ops, vma_rules
from ..include.vma_expr import evaluate
from ..site import Site, here
from . import workqueue as _wq
from ._raw import locked
from .consts import (
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_NORMAL,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    MMAP_BASE,
    MMAP_MIN_ADDR,
    PAGE_MASK,
    PAGE_SIZE,
    PMD_SHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    USIZE_MAX,
    user_ulong,
)
from .fops import file_operation
from .gfp import GFP_KERNEL, alloc_check
from .mm_types import VMA_LOCK_CLASS, MmStruct, Pte, ShmemObject, VmAreaStruct
from .page_alloc import StructPage
from .rwsem import HUNG_TASK_TIMEOUT

if TYPE_CHECKING:
    from .fs import File

__all__ = [
    "access_user",
    "check_mm",
    "do_madvise",
    "do_mmap",
    "do_mprotect",
    "do_munmap",
    "dup_mmap",
    "exit_mmap",
    "lock_vma_under_rcu",
    "mmap_read_lock",
    "mmap_read_trylock",
    "mmap_read_unlock",
    "mmap_write_lock",
    "mmap_write_unlock",
    "mmdrop",
    "mmget",
    "mmget_not_zero",
    "mmgrab",
    "mmput",
    "mmput_async",
    "remap_pfn_range",
    "userfaultfd_register",
    "vm_insert_page",
    "vma_end_read",
    "vma_lookup",
    "vma_start_write",
    "zap_page_range_single",
]

PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC
MAP_KNOWN = (
    MAP_TYPE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_FIXED_NOREPLACE
)


def page_align_up(n: int) -> int | None:
    v = (n + PAGE_SIZE - 1) & PAGE_MASK
    return None if n + PAGE_SIZE - 1 > USIZE_MAX else v


# ======================================================================================
# mm_struct reference counts (include/linux/sched/mm.h, kernel/fork.c)


def mmgrab(mm: MmStruct) -> None:
    """Take an `mm_count` reference; the `struct mm_struct` stays allocated."""
    mm.mm_count.inc()


def mmdrop(mm: MmStruct) -> None:
    """Drop an `mm_count` reference; the last one frees the `struct mm_struct`."""
    if mm.mm_count.dec_and_test():
        mm.freed_at = here()


def mmget(mm: MmStruct) -> None:
    """Take an `mm_users` reference; the caller must already own one (or hold the mm)."""
    mm.mm_users.inc()


def mmget_not_zero(mm: MmStruct) -> bool:
    """Take an `mm_users` reference unless the address space is already gone."""
    if mm.freed and STATE.on:
        raise RefcountError(
            "mmget_not_zero() on a freed mm_struct (use after the last mmdrop)",
            rule="mm-use-after-free",
            obj=mm.describe(),
            site=here(),
            origin=mm.freed_at,
            origin_label="the mm_struct was freed by the last mmdrop()",
        )
    return mm.mm_users.inc_not_zero()


def mmput(mm: MmStruct) -> None:
    """Drop an `mm_users` reference; the last one tears the address space down. May sleep."""
    might_sleep(what="mmput()")
    if mm.mm_users.dec_and_test():
        exit_mmap(mm)
        mmdrop(mm)


def mmput_async(mm: MmStruct) -> None:
    """`mmput` that defers the teardown to a workqueue; safe in atomic context."""
    if mm.mm_users.dec_and_test():

        def teardown() -> None:
            exit_mmap(mm)
            mmdrop(mm)

        # The queue is read at each call: the explorer gives every run its own.
        _wq.system_wq.enqueue(teardown, mm, here())


# ======================================================================================
# The mmap lock (include/linux/mmap_lock.h)

LockToken = lockdep.HeldLock | None


def mmap_read_lock(mm: MmStruct, site: Site | None = None) -> LockToken:
    return mm.mmap_lock.down_read(site)


def mmap_read_trylock(mm: MmStruct, site: Site | None = None) -> tuple[bool, LockToken]:
    return mm.mmap_lock.down_read_trylock(site)


def mmap_read_unlock(mm: MmStruct, token: LockToken, site: Site | None = None) -> None:
    mm.mmap_lock.up_read(token, site)


def mmap_write_lock(mm: MmStruct, site: Site | None = None) -> LockToken:
    return mm.mmap_lock.down_write(site)


def mmap_write_unlock(mm: MmStruct, token: LockToken, site: Site | None = None) -> None:
    """Release the write lock; this also ends every VMA write lock (`vma_end_write_all`)."""
    if not mm.mmap_lock.write_held_by_current():
        mm.mmap_lock.up_write(token, site)  # Raises the owner-semantics report.
    with locked(mm.vma_state):
        mm.mm_lock_seq += 1
    mm.mmap_lock.up_write(token, site)
    mm.vma_wq.wake_all()


def _assert_mmap_locked(mm: MmStruct, what: str, write: bool = False) -> None:
    if not STATE.on:
        return
    ok = mm.mmap_lock.write_held_by_current() if write else mm.mmap_lock.held_by_current()
    if not ok:
        raise LockError(
            f"{what} without the mmap {'write ' if write else ''}lock held "
            f"(mmap_assert_{'write_' if write else ''}locked)",
            rule="mmap-lock-not-held",
            obj=mm.mmap_lock.describe(),
            site=here(),
            origin=mm.mmap_lock.holder_site(),
            origin_label="the mmap lock is held by another thread, taken",
        )


def vma_lookup(mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """The VMA containing `addr`; the caller holds the mmap lock."""
    _assert_mmap_locked(mm, "vma_lookup()")
    if not isinstance(addr, int) or addr < 0 or addr > USIZE_MAX:
        return None
    return mm.find_vma(addr)


# ======================================================================================
# Per-VMA locks (include/linux/mmap_lock.h, CONFIG_PER_VMA_LOCK)


def lock_vma_under_rcu(
    mm: MmStruct, addr: int, site: Site | None = None
) -> tuple[VmAreaStruct, LockToken] | None:
    """Read-lock the VMA at `addr` without the mmap lock; None under contention. Never sleeps."""
    s = site if site is not None else here()
    if not mm.kernel.per_vma_lock:
        return None
    sec = enter_atomic("rcu", "rcu_read_lock()", s)
    try:
        with locked(mm.tree_lock):
            vma = mm.find_vma(addr)
        if vma is None:
            return None
        tid = sched.current_id()
        with locked(mm.vma_state):
            if not vma.attached or vma.is_write_locked() or vma.writer_waiting:
                return None
            vma.readers[tid] = vma.readers.get(tid, 0) + 1
    finally:
        exit_atomic(sec)
    held = lockdep.acquire(VMA_LOCK_CLASS, vma, s, read=True, trylock=True) if STATE.on else None
    return (vma, held)


def vma_end_read(vma: VmAreaStruct, token: LockToken, site: Site | None = None) -> None:
    mm = vma.vm_mm
    tid = sched.current_id()
    with locked(mm.vma_state):
        n = vma.readers.get(tid, 0)
        if n <= 0:
            raise LockError(
                "vma_end_read() by a thread that does not hold the VMA read lock",
                rule="rwsem-owner",
                obj=vma.describe(),
                site=site if site is not None else here(),
            )
        if n == 1:
            del vma.readers[tid]
        else:
            vma.readers[tid] = n - 1
    if token is not None:
        lockdep.release(token)
    mm.vma_wq.wake_all()


def vma_start_write(vma: VmAreaStruct, site: Site | None = None) -> None:
    """Write-lock a VMA until `mmap_write_unlock`; waits for its readers. May sleep."""
    s = site if site is not None else here()
    mm = vma.vm_mm
    might_sleep(what="vma_start_write()")
    _assert_mmap_locked(mm, "vma_start_write()", write=True)
    if vma.is_write_locked():
        return
    held = lockdep.acquire(VMA_LOCK_CLASS, vma, s) if STATE.on else None
    try:
        deadline = sched.monotonic() + HUNG_TASK_TIMEOUT
        mm.vma_state.acquire()
        try:
            vma.writer_waiting = True
            while vma.readers:
                w = mm.vma_wq.prepare()
                mm.vma_state.release()
                try:
                    w.wait(0.5)
                finally:
                    mm.vma_wq.cancel(w)
                    mm.vma_state.acquire()
                if vma.readers and sched.monotonic() > deadline:
                    raise LockError(
                        f"task blocked for more than {HUNG_TASK_TIMEOUT:.0f} seconds in "
                        "vma_start_write() (hung task)",
                        rule="hung-task",
                        obj=vma.describe(),
                        site=s,
                    )
            vma.vm_lock_seq = mm.mm_lock_seq
        finally:
            vma.writer_waiting = False
            mm.vma_state.release()
    finally:
        if held is not None:
            lockdep.release(held)


# ======================================================================================
# Page tables (mm/memory.c)


def _page_table_alloc(mm: MmStruct, addr: int) -> None:
    """`pte_alloc()`: the page-table page for `addr` may need allocating (ENOMEM)."""
    key = addr >> PMD_SHIFT
    if key not in mm.page_tables:
        alloc_check(GFP_KERNEL, "pte_alloc")
        mm.page_tables.add(key)


def _zap(mm: MmStruct, start: int, end: int) -> int:
    """Clear the PTEs of pages overlapping `[start, end)`; returns how many were present."""
    first = start & PAGE_MASK
    zapped: list[Pte] = []
    with locked(mm.ptl):
        ptes = mm.ptes
        if (end - first) // PAGE_SIZE > len(ptes):
            keys = [a for a in ptes if first <= a < end]
        else:
            keys = [a for a in range(first, end, PAGE_SIZE) if a in ptes]
        for a in keys:
            zapped.append(ptes.pop(a))
    pool = mm.kernel.pool
    for pte in zapped:
        if not pte.special:
            pte.page.mapcount -= 1
            pool.put_page(pte.page)
    return len(zapped)


def _ptes_installed(vma: VmAreaStruct) -> bool:
    mm = vma.vm_mm
    with locked(mm.ptl):
        if (vma.vm_end - vma.vm_start) // PAGE_SIZE > len(mm.ptes):
            return any(vma.vm_start <= a < vma.vm_end for a in mm.ptes)
        return any(a in mm.ptes for a in vma.pages())


def ptes_installed(vma: VmAreaStruct) -> bool:
    """Whether any PTE is present in the VMA (the `ptes_installed` fact of the flag rules)."""
    return _ptes_installed(vma)


def validate_page_before_insert(vma: VmAreaStruct, page: StructPage) -> bool:
    """Whether `page` may be mapped by `vm_insert_page` (mm/memory.c)."""
    return page.kernel is vma.vm_mm.kernel and page.refcount > 0 and page.kind == "normal"


def vm_insert_page(vma: VmAreaStruct, addr: int, page: StructPage) -> None:
    """Map `page` at `addr` (takes its own reference). EFAULT, EINVAL, EBUSY or ENOMEM."""
    mm = vma.vm_mm
    if not vma.vm_start <= addr < vma.vm_end:
        raise KernelError(
            EFAULT, f"vm_insert_page: {addr:#x} outside [{vma.vm_start:#x}, {vma.vm_end:#x})"
        )
    if not validate_page_before_insert(vma, page):
        raise KernelError(EINVAL, f"vm_insert_page: {page.describe()} is not insertable")
    if not vma.vm_flags & F.MIXEDMAP:
        # C: BUG_ON(mmap_read_trylock(vma->vm_mm)); BUG_ON(vma->vm_flags & VM_PFNMAP);
        if not mm.mmap_lock.write_held_by_current():
            raise KernelBug(
                "vm-insert-page-locking",
                "vm_insert_page() on a VMA without VM_MIXEDMAP needs the mmap write lock",
            )
        if vma.vm_flags & F.PFNMAP:
            raise KernelBug("vm-insert-page-pfnmap", "vm_insert_page() on a VM_PFNMAP VMA")
        vma.vm_flags |= F.MIXEDMAP
    addr &= PAGE_MASK
    _page_table_alloc(mm, addr)
    with locked(mm.ptl):
        if addr in mm.ptes:
            raise KernelError(EBUSY, f"vm_insert_page: a PTE is already present at {addr:#x}")
        mm.kernel.pool.get_page(page)
        page.mapcount += 1
        mm.ptes[addr] = Pte(page, writable=bool(vma.vm_flags & F.WRITE and vma.vm_flags & F.SHARED))


def zap_page_range_single(vma: VmAreaStruct, addr: int, size: int) -> None:
    """Clear the PTEs of `[addr, addr + size)` in `vma`. A wrapping range is a `BUG_ON`."""
    end = addr + size
    if end > USIZE_MAX or end < addr:
        raise KernelBug("zap-wrap", f"zap_page_range_single({addr:#x}, {size:#x}): end wraps")
    start = max(addr, vma.vm_start)
    end = min(end, vma.vm_end)
    if start < end:
        _zap(vma.vm_mm, start, end)


def remap_pfn_range(
    vma: VmAreaStruct, addr: int, pfn: int, size: int, origin: Site | None = None
) -> None:
    """Map `size` bytes of physical memory starting at `pfn` (a VM_PFNMAP mapping)."""
    mm = vma.vm_mm
    if addr & ~PAGE_MASK or size & ~PAGE_MASK or size == 0:
        raise KernelError(EINVAL, "remap_pfn_range: unaligned address or size")
    if addr < vma.vm_start or addr + size > vma.vm_end:
        raise KernelError(EINVAL, "remap_pfn_range: range outside the VMA")
    npages = size // PAGE_SIZE
    pool = mm.kernel.pool
    if pfn < 0 or pfn + npages > pool.max_pfn:
        raise KernelError(
            EINVAL, f"remap_pfn_range: pfn {pfn:#x}+{npages} is not RAM of this machine"
        )
    new = vma_ops.apply(
        vma_ops.OPS_BY_NAME["remap_pfn_range"],
        vma.vm_flags,
        ctx={"ptes_installed": _ptes_installed(vma)},
    )
    assert new is not None
    set_vm_flags(vma, new, origin)
    writable = bool(new & F.WRITE and new & F.SHARED)
    for i in range(npages):
        a = addr + i * PAGE_SIZE
        _page_table_alloc(mm, a)
        page = pool.pfn_to_page_any(pfn + i)
        with locked(mm.ptl):
            mm.ptes[a] = Pte(page, writable=writable, special=True)


def set_vm_flags(vma: VmAreaStruct, new: int, origin: Site | None) -> None:
    """Store new flags, remembering `origin` for the bits that became set."""
    added = new & ~vma.vm_flags
    if origin is not None and added:
        bit = 1
        while bit <= added:
            if added & bit:
                vma.flag_origins[bit] = origin
            bit <<= 1
    vma.vm_flags = new


# ======================================================================================
# VMA lifecycle: creation, splitting, merging, removal (mm/vma.c)


def _vma_open(vma: VmAreaStruct) -> None:
    ops = vma.vm_ops
    if ops is not None:
        ops.open(vma)


def _vma_close(vma: VmAreaStruct) -> None:
    ops = vma.vm_ops
    if ops is not None:
        ops.close(vma)


def _dup_vma(vma: VmAreaStruct, mm: MmStruct, flags: int) -> VmAreaStruct:
    new = VmAreaStruct(mm, vma.vm_start, vma.vm_end, flags, vma.vm_pgoff)
    new.vm_file = vma.vm_file
    if new.vm_file is not None:
        new.vm_file.get_file()
    new.vm_ops = vma.vm_ops
    new.vm_private_data = vma.vm_private_data
    new.anon = vma.anon
    new.shmem = vma.shmem
    if new.shmem is not None:
        new.shmem.users += 1
    new.flag_origins = dict(vma.flag_origins)
    new.created_site = vma.created_site
    return new


def _split_vma(vma: VmAreaStruct, addr: int) -> VmAreaStruct:
    """Split `vma` at `addr`: it keeps `[start, addr)`, the returned VMA gets the rest."""
    mm = vma.vm_mm
    flags = vma_ops.apply(vma_ops.OPS_BY_NAME["split_vma"], vma.vm_flags)
    assert flags is not None
    new = _dup_vma(vma, mm, flags)
    new.vm_start = addr
    new.vm_pgoff = vma.vm_pgoff + (addr - vma.vm_start) // PAGE_SIZE
    new.vm_lock_seq = mm.mm_lock_seq
    with locked(mm.tree_lock):
        vma.vm_end = addr
        mm.insert_vma(new)
    _vma_open(new)
    return new


def _release_vma_refs(vma: VmAreaStruct) -> None:
    if vma.vm_file is not None:
        f, vma.vm_file = vma.vm_file, None
        f.fput()
    sh = vma.shmem
    if sh is not None:
        vma.shmem = None
        sh.users -= 1
        if sh.users == 0:
            pool = vma.vm_mm.kernel.pool
            pages, sh.pages = sh.pages, {}
            for p in pages.values():
                pool.put_page(p)


def _remove_vma(vma: VmAreaStruct, site: Site | None) -> None:
    """Unmap a VMA entirely: zap, detach, `vm_ops->close`, drop the file."""
    mm = vma.vm_mm
    _zap(mm, vma.vm_start, vma.vm_end)
    with locked(mm.tree_lock):
        if vma.attached:
            mm.remove_vma(vma)
    vma.detached_at = site
    try:
        _vma_close(vma)
    finally:
        _release_vma_refs(vma)


def _mergeable(a: VmAreaStruct, b: VmAreaStruct) -> bool:
    """Whether adjacent `a` (below) and `b` may merge (mm/vma.c is_mergeable_vma)."""
    if a.vm_end != b.vm_start or not vma_ops.can_merge(a.vm_flags, b.vm_flags):
        return False
    if a.vm_ops is not None or b.vm_ops is not None:
        return False
    if a.vm_file is not b.vm_file or a.shmem is not b.shmem or a.anon != b.anon:
        return False
    if a.vm_private_data is not b.vm_private_data:
        return False
    if a.vm_file is not None or a.shmem is not None:
        return a.vm_pgoff + (a.vm_end - a.vm_start) // PAGE_SIZE == b.vm_pgoff
    return True


def _merged_flags(a: VmAreaStruct, b: VmAreaStruct) -> int:
    for bit, site in b.flag_origins.items():
        a.flag_origins.setdefault(bit, site)
    return int(evaluate(vma_ops.MERGE_RESULT, {"a": a.vm_flags, "b": b.vm_flags}))


def _try_merge(mm: MmStruct, vma: VmAreaStruct) -> VmAreaStruct:
    """Merge `vma` with its neighbours where allowed; returns the surviving VMA."""
    with locked(mm.tree_lock):
        i = mm.vmas.index(vma)
        prev = mm.vmas[i - 1] if i > 0 else None
        nxt = mm.vmas[i + 1] if i + 1 < len(mm.vmas) else None
    victims: list[VmAreaStruct] = []
    if nxt is not None and _mergeable(vma, nxt):
        vma_start_write(nxt)
        with locked(mm.tree_lock):
            mm.remove_vma(nxt)
            vma.vm_end = nxt.vm_end
            vma.vm_flags = _merged_flags(vma, nxt)
        victims.append(nxt)
    if prev is not None and _mergeable(prev, vma):
        vma_start_write(prev)
        with locked(mm.tree_lock):
            mm.remove_vma(vma)
            prev.vm_end = vma.vm_end
            prev.vm_flags = _merged_flags(prev, vma)
        victims.append(vma)
        vma = prev
    for v in victims:
        v.detached_at = None
        _release_vma_refs(v)
    return vma


# ======================================================================================
# System calls


def _check_len(length: int, what: str) -> int:
    n = user_ulong(length, what)
    aligned = page_align_up(n)
    if aligned is None:
        raise KernelError(ENOMEM, f"{what}={n:#x} overflows when page aligned")
    return aligned


def _get_unmapped_area(mm: MmStruct, hint: int, length: int) -> int:
    if hint and not hint & ~PAGE_MASK and MMAP_MIN_ADDR <= hint and hint + length <= TASK_SIZE:
        if not mm.vmas_in(hint, hint + length):
            return hint
    top = MMAP_BASE
    for vma in reversed(mm.vmas):
        if vma.vm_start >= top:
            top = min(top, vma.vm_start)
            continue
        if vma.vm_end <= top - length:
            return top - length
        top = vma.vm_start
    if top - length >= MMAP_MIN_ADDR:
        return top - length
    raise KernelError(ENOMEM, f"no free range of {length:#x} bytes in the address space")


def do_mmap(
    mm: MmStruct,
    file: File | None,
    addr: int,
    length: int,
    prot: int,
    flags: int,
    offset: int = 0,
) -> int:
    """`mmap(2)`: create a mapping and return its address."""
    addr = user_ulong(addr, "addr")
    prot = user_ulong(prot, "prot")
    flags = user_ulong(flags, "flags")
    offset = user_ulong(offset, "offset")
    if prot & ~PROT_ALL:
        raise KernelError(EINVAL, f"mmap: unknown prot bits {prot & ~PROT_ALL:#x}")
    if flags & ~MAP_KNOWN:
        raise KernelError(EINVAL, f"mmap: unknown flag bits {flags & ~MAP_KNOWN:#x}")
    maptype = flags & MAP_TYPE
    if maptype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise KernelError(EINVAL, "mmap: neither MAP_SHARED nor MAP_PRIVATE")
    length = user_ulong(length, "length")
    if length == 0:
        raise KernelError(EINVAL, "mmap: zero length")
    length = _check_len(length, "length")
    if length > TASK_SIZE:
        raise KernelError(ENOMEM, "mmap: length larger than the address space")
    if offset & ~PAGE_MASK:
        raise KernelError(EINVAL, "mmap: unaligned offset")
    pgoff = offset >> 12
    anonymous = bool(flags & MAP_ANONYMOUS)
    if anonymous:
        if file is not None:
            raise KernelError(EINVAL, "mmap: MAP_ANONYMOUS with a file (the model refuses the mix)")
    else:
        if file is None:
            raise KernelError(EBADF, "mmap: no file and no MAP_ANONYMOUS")
        if file.kernel is not mm.kernel or file.released:
            raise KernelError(EBADF, "mmap: the file is not open in this kernel")
        if not file.has_mmap():
            raise KernelError(ENODEV, f"mmap: '{file.name}' has no mmap file operation")
        if not file.readable:
            raise KernelError(EACCES, "mmap: the file is not open for reading")
    fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
    if fixed:
        if addr & ~PAGE_MASK:
            raise KernelError(EINVAL, "mmap: MAP_FIXED address not page aligned")
        if addr + length > TASK_SIZE:
            raise KernelError(ENOMEM, "mmap: MAP_FIXED range beyond TASK_SIZE")
        if addr < MMAP_MIN_ADDR:
            raise KernelError(EPERM, "mmap: MAP_FIXED below mmap_min_addr")
    shared = maptype != MAP_PRIVATE
    vm_flags = vma_ops.apply(
        vma_ops.OPS_BY_NAME["mmap"],
        0,
        params={"prot": prot},
        ctx={
            "shared": shared,
            "file": file is not None,
            "file_writable": file is not None and file.writable,
            "noreserve": bool(flags & MAP_NORESERVE),
            "locked": bool(flags & MAP_LOCKED),
        },
    )
    assert vm_flags is not None
    site = here()
    token = mmap_write_lock(mm, site)
    try:
        if mm.exited:
            raise KernelError(EINVAL, "mmap: the address space has been torn down")
        if fixed:
            if flags & MAP_FIXED_NOREPLACE and mm.vmas_in(addr, addr + length):
                raise KernelError(EEXIST, "mmap: MAP_FIXED_NOREPLACE range is in use")
            _unmap_range(mm, addr, addr + length, site)
        else:
            addr = _get_unmapped_area(mm, addr, length)
        vma = VmAreaStruct(mm, addr, addr + length, 0, pgoff)
        set_vm_flags(vma, vm_flags, site)
        vma.created_site = site
        # INVARIANT: a VMA under construction is write-locked until mmap_write_unlock.
        vma.vm_lock_seq = mm.mm_lock_seq
        if anonymous:
            if shared:
                vma.shmem = ShmemObject()
            else:
                vma.anon = True
        else:
            assert file is not None
            file.get_file()
            vma.vm_file = file
            try:
                with file_operation(file, "mmap"):
                    file.f_op.mmap(file, vma)
                vma_rules.check_state(vma.vm_flags, "f_op->mmap()")
            except BaseException:
                # mmap_region() error path: unmap what the handler installed, drop the file.
                _zap(mm, vma.vm_start, vma.vm_end)
                _release_vma_refs(vma)
                raise
        with locked(mm.tree_lock):
            mm.insert_vma(vma)
        _try_merge(mm, vma)
    finally:
        mmap_write_unlock(mm, token, site)
    if flags & MAP_POPULATE:
        for a in range(addr, addr + length, PAGE_SIZE):
            try:
                access_user(mm, a, 1, None)
            except KernelError:
                break
    return addr


def _unmap_range(mm: MmStruct, start: int, end: int, site: Site | None) -> None:
    """Unmap `[start, end)`, splitting VMAs at the edges (mmap write lock held)."""
    for vma in mm.vmas_in(start, end):
        vma_start_write(vma)
    victims: list[VmAreaStruct] = []
    for vma in mm.vmas_in(start, end):
        if vma.vm_start < start:
            vma = _split_vma(vma, start)
        if vma.vm_end > end:
            _split_vma(vma, end)
        victims.append(vma)
    for vma in victims:
        _remove_vma(vma, site)


def do_munmap(mm: MmStruct, start: int, length: int) -> None:
    """`munmap(2)`."""
    start = user_ulong(start, "addr")
    length = user_ulong(length, "length")
    if start & ~PAGE_MASK:
        raise KernelError(EINVAL, "munmap: unaligned address")
    if length == 0:
        raise KernelError(EINVAL, "munmap: zero length")
    aligned = page_align_up(length)
    if aligned is None or start + aligned > TASK_SIZE:
        raise KernelError(EINVAL, "munmap: range beyond TASK_SIZE")
    site = here()
    token = mmap_write_lock(mm, site)
    try:
        _unmap_range(mm, start, start + aligned, site)
    finally:
        mmap_write_unlock(mm, token, site)


def _covered(mm: MmStruct, start: int, end: int) -> list[VmAreaStruct] | None:
    vmas = mm.vmas_in(start, end)
    at = start
    for v in vmas:
        if v.vm_start > at:
            return None
        at = v.vm_end
    return vmas if at >= end else None


def _isolate(vma: VmAreaStruct, start: int, end: int) -> VmAreaStruct:
    """Split `vma` so that a VMA covers exactly its part inside `[start, end)`."""
    vma_start_write(vma)
    if vma.vm_start < start:
        vma = _split_vma(vma, start)
    if vma.vm_end > end:
        _split_vma(vma, end)
    return vma


def _range_end(start: int, length: int, err: int, what: str) -> int:
    """`start + PAGE_ALIGN(length)`; the error `err` when that wraps the address space."""
    aligned = page_align_up(length)
    if aligned is None or start + aligned > USIZE_MAX:
        raise KernelError(err, f"{what}: range wraps")
    return start + aligned


def do_mprotect(mm: MmStruct, start: int, length: int, prot: int) -> None:
    """`mprotect(2)`: `EACCES` when a requested access bit lacks its MAY bit."""
    start = user_ulong(start, "addr")
    length = user_ulong(length, "length")
    prot = user_ulong(prot, "prot")
    if start & ~PAGE_MASK:
        raise KernelError(EINVAL, "mprotect: unaligned address")
    if prot & ~PROT_ALL:
        raise KernelError(EINVAL, f"mprotect: unknown prot bits {prot & ~PROT_ALL:#x}")
    end = _range_end(start, length, ENOMEM, "mprotect")
    if end == start:
        return
    site = here()
    token = mmap_write_lock(mm, site)
    try:
        vmas = _covered(mm, start, end)
        if vmas is None:
            raise KernelError(ENOMEM, "mprotect: range not fully mapped")
        op = vma_ops.OPS_BY_NAME["mprotect"]
        for vma in vmas:
            new = vma_ops.apply(op, vma.vm_flags, params={"prot": prot})
            assert new is not None
            if new == vma.vm_flags:
                continue
            piece = _isolate(vma, start, end)
            removed_write = piece.vm_flags & F.WRITE and not new & F.WRITE
            set_vm_flags(piece, new, site)
            if removed_write:
                with locked(mm.ptl):
                    for a, pte in mm.ptes.items():
                        if piece.vm_start <= a < piece.vm_end:
                            pte.writable = False
            _try_merge(mm, piece)
    finally:
        mmap_write_unlock(mm, token, site)


_MADV_OPS = {
    MADV_DOFORK: "madvise_dofork",
    MADV_DONTFORK: "madvise_dontfork",
    MADV_DODUMP: "madvise_dodump",
    MADV_DONTDUMP: "madvise_dontdump",
}


def do_madvise(mm: MmStruct, start: int, length: int, advice: int) -> None:
    """`madvise(2)` for the advice values that change flags, `MADV_DONTNEED` and `MADV_NORMAL`."""
    start = user_ulong(start, "addr")
    length = user_ulong(length, "length")
    advice = user_ulong(advice, "advice")
    if advice not in _MADV_OPS and advice not in (MADV_NORMAL, MADV_DONTNEED):
        raise KernelError(EINVAL, f"madvise: unknown advice {advice}")
    if start & ~PAGE_MASK:
        raise KernelError(EINVAL, "madvise: unaligned address")
    end = _range_end(start, length, EINVAL, "madvise")
    if end == start:
        return
    site = here()
    token = mmap_write_lock(mm, site)
    try:
        vmas = mm.vmas_in(start, end)
        if advice == MADV_DONTNEED:
            for vma in vmas:
                if vma.vm_flags & (F.LOCKED | F.PFNMAP | F.HUGETLB):
                    raise KernelError(EINVAL, "madvise(MADV_DONTNEED) on a locked or PFN mapping")
                _zap(mm, max(start, vma.vm_start), min(end, vma.vm_end))
        elif advice in _MADV_OPS:
            op = vma_ops.OPS_BY_NAME[_MADV_OPS[advice]]
            for vma in vmas:
                new = vma_ops.apply(op, vma.vm_flags)
                assert new is not None
                if new != vma.vm_flags:
                    piece = _isolate(vma, start, end)
                    set_vm_flags(piece, new, site)
                    _try_merge(mm, piece)
        if _covered(mm, start, end) is None:
            raise KernelError(ENOMEM, "madvise: range not fully mapped")
    finally:
        mmap_write_unlock(mm, token, site)


def userfaultfd_register(mm: MmStruct, start: int, length: int, mode: int) -> None:
    """`ioctl(uffd, UFFDIO_REGISTER)`: attach a userfaultfd context to `[start, start + len)`.

    Only anonymous and shmem VMAs can have one (`vma_can_userfault`), never a driver's
    VM_MIXEDMAP mapping; `mode` is VM_UFFD_* bits. `EINVAL` otherwise.
    """
    start = user_ulong(start, "start")
    length = user_ulong(length, "len")
    mode = user_ulong(mode, "mode")
    if start & ~PAGE_MASK or length & ~PAGE_MASK or length == 0 or start + length > TASK_SIZE:
        raise KernelError(EINVAL, "UFFDIO_REGISTER: bad range")
    end = start + length
    site = here()
    token = mmap_write_lock(mm, site)
    try:
        vmas = _covered(mm, start, end)
        if vmas is None:
            raise KernelError(EINVAL, "UFFDIO_REGISTER: range not fully mapped")
        op = vma_ops.OPS_BY_NAME["userfaultfd_register"]
        news = [
            vma_ops.apply(
                op,
                v.vm_flags,
                params={"mode": mode},
                ctx={"uffd_capable": v.anon or v.shmem is not None},
            )
            for v in vmas
        ]
        for vma, new in zip(vmas, news, strict=True):
            assert new is not None
            if new != vma.vm_flags:
                piece = _isolate(vma, start, end)
                set_vm_flags(piece, new, site)
    finally:
        mmap_write_unlock(mm, token, site)


def dup_mmap(old: MmStruct, new: MmStruct) -> None:
    """`fork()`'s copy of the address space: DONTCOPY VMAs stay behind, anon pages go COW."""
    site = here()
    token = mmap_write_lock(old, site)
    try:
        op = vma_ops.OPS_BY_NAME["fork"]
        pool = old.kernel.pool
        for vma in list(old.vmas):
            flags = vma_ops.apply(op, vma.vm_flags)
            if flags is None:
                continue
            child = _dup_vma(vma, new, flags)
            child.vm_lock_seq = -1
            copy_ptes = vma.anon or bool(vma.vm_flags & (F.MIXEDMAP | F.PFNMAP))
            if copy_ptes:
                cow = not vma.vm_flags & F.SHARED
                with locked(old.ptl):
                    for a in vma.pages():
                        pte = old.ptes.get(a)
                        if pte is None:
                            continue
                        if not pte.special:
                            pool.get_page(pte.page)
                            pte.page.mapcount += 1
                        if cow:
                            pte.writable = False
                        new.ptes[a] = Pte(pte.page, pte.writable, pte.special)
                        new.page_tables.add(a >> PMD_SHIFT)
            with locked(new.tree_lock):
                new.insert_vma(child)
            _vma_open(child)
    finally:
        mmap_write_unlock(old, token, site)


def exit_mmap(mm: MmStruct) -> None:
    """Tear the address space down after the last `mmput`: unmap everything."""
    site = here()
    errors: list[BaseException] = []
    token = mmap_write_lock(mm, site)
    try:
        mm.exited = True
        for vma in list(mm.vmas):
            vma_start_write(vma)
            try:
                _remove_vma(vma, site)
            except BaseException as e:
                errors.append(e)
        _zap(mm, 0, TASK_SIZE)
        mm.page_tables.clear()
    finally:
        mmap_write_unlock(mm, token, site)
    if errors:
        raise errors[0]


# ======================================================================================
# Page faults and user accesses (arch/x86/mm/fault.c, mm/memory.c)


def _readable(flags: int) -> bool:
    # x86 cannot express write-only or exec-only PTEs: any access bit makes a page readable.
    return bool(flags & F.ACCESS)


def _fault_page(vma: VmAreaStruct, addr: int, write: bool) -> Pte:
    """Resolve the PTE for a user access at page address `addr` (a lock keeps `vma` stable)."""
    mm = vma.vm_mm
    pool = mm.kernel.pool
    with locked(mm.ptl):
        pte = mm.ptes.get(addr)
    if pte is None:
        if vma.vm_ops is not None:
            page = vma.vm_ops.fault(vma, addr, write)
            if page is not None:
                try:
                    _page_table_alloc(mm, addr)
                    with locked(mm.ptl):
                        if addr not in mm.ptes:
                            page.mapcount += 1
                            mm.ptes[addr] = Pte(
                                page, bool(vma.vm_flags & F.WRITE and vma.vm_flags & F.SHARED)
                            )
                            page = None
                finally:
                    if page is not None:
                        pool.put_page(page)
        elif vma.anon or vma.shmem is not None:
            sh = vma.shmem
            if sh is not None:
                idx = vma.vm_pgoff + (addr - vma.vm_start) // PAGE_SIZE
                page = sh.pages.get(idx)
                if page is None:
                    page = mm.kernel.alloc_page(reclaim=True, zero=True)
                    if page is None:
                        raise KernelError(EFAULT, "out of memory in the page fault handler")
                    sh.pages[idx] = page
                pool.get_page(page)
                writable = bool(vma.vm_flags & F.WRITE)
            else:
                page = mm.kernel.alloc_page(reclaim=True, kind="anon", zero=True)
                if page is None:
                    raise KernelError(EFAULT, "out of memory in the page fault handler")
                writable = bool(vma.vm_flags & F.WRITE)
            with locked(mm.ptl):
                if addr in mm.ptes:
                    pool.put_page(page)
                else:
                    page.mapcount += 1
                    mm.ptes[addr] = Pte(page, writable)
                    mm.page_tables.add(addr >> PMD_SHIFT)
        with locked(mm.ptl):
            pte = mm.ptes.get(addr)
        if pte is None:
            raise KernelError(EFAULT, f"SIGBUS: nothing to map at {addr:#x}")
    if write and not pte.writable:
        if vma.vm_flags & F.SHARED:
            pte.writable = True
        else:
            old = pte.page
            if old.kind == "anon" and old.mapcount == 1 and old.refcount == 1 and not pte.special:
                pte.writable = True
            else:
                copy = mm.kernel.alloc_page(reclaim=True, kind="anon")
                if copy is None:
                    raise KernelError(EFAULT, "out of memory breaking copy-on-write")
                copy.copy_from(old)
                copy.mapcount = 1
                new = Pte(copy, True)
                with locked(mm.ptl):
                    mm.ptes[addr] = new
                if not pte.special:
                    old.mapcount -= 1
                    pool.put_page(old)
                pte = new
    return pte


@contextmanager
def _fault_lock(mm: MmStruct, addr: int) -> Iterator[VmAreaStruct | None]:
    """The fault path's locking: the VMA lock if it can be had, else the mmap read lock."""
    site = here()
    got = lock_vma_under_rcu(mm, addr, site)
    if got is not None:
        vma, token = got
        try:
            yield vma
        finally:
            vma_end_read(vma, token, site)
        return
    token2 = mmap_read_lock(mm, site)
    try:
        yield mm.find_vma(addr)
    finally:
        mmap_read_unlock(mm, token2, site)


def access_user(mm: MmStruct, addr: int, length: int, data: bytes | None) -> bytes:
    """Read `length` bytes at `addr` (`data is None`) or write `data` there, faulting pages in.

    Fails with `EFAULT` at the first page that is unmapped, not accessible or cannot be
    faulted in; the bytes before it have been transferred, as with `copy_to_user`.
    """
    might_sleep(what="copy_{to,from}_user()")
    addr = user_ulong(addr, "addr")
    write = data is not None
    n = len(data) if data is not None else user_ulong(length, "length")
    if addr + n > TASK_SIZE:
        raise KernelError(EFAULT, f"user access [{addr:#x}, {addr + n:#x}) beyond TASK_SIZE")
    out = bytearray()
    done = 0
    while done < n:
        a = addr + done
        page_addr = a & PAGE_MASK
        off = a - page_addr
        chunk = min(PAGE_SIZE - off, n - done)
        with _fault_lock(mm, a) as vma:
            if mm.exited or vma is None:
                raise KernelError(EFAULT, f"SIGSEGV: no mapping at {a:#x}")
            if write and not vma.vm_flags & F.WRITE:
                raise KernelError(EFAULT, f"SIGSEGV: write to a read-only mapping at {a:#x}")
            if not write and not _readable(vma.vm_flags):
                raise KernelError(EFAULT, f"SIGSEGV: read of an inaccessible mapping at {a:#x}")
            pte = _fault_page(vma, page_addr, write)
            with locked(mm.ptl):
                if data is not None:
                    pte.page.write(off, data[done : done + chunk])
                else:
                    out += pte.page.read(off, chunk)
        done += chunk
    return bytes(out)


# ======================================================================================
# Consistency


def check_mm(mm: MmStruct) -> list[str]:
    """Every broken invariant of `mm` (empty when the address space is consistent)."""
    problems: list[str] = []
    prev_end = 0
    for vma in mm.vmas:
        if vma.vm_start & ~PAGE_MASK or vma.vm_end & ~PAGE_MASK or vma.vm_start >= vma.vm_end:
            problems.append(f"bad bounds: {vma.describe()}")
        if vma.vm_start < prev_end:
            problems.append(f"overlap: {vma.describe()}")
        prev_end = vma.vm_end
        if vma.vm_mm is not mm or not vma.attached:
            problems.append(f"not attached to this mm: {vma.describe()}")
        bad = vma_rules.violations(None, vma.vm_flags)
        if bad:
            problems.append(f"flags break {[r.id for r in bad]}: {vma.describe()}")
        if vma.readers:
            problems.append(f"VMA read lock left held: {vma.describe()}")
    if [v.vm_start for v in mm.vmas] != mm._starts:
        problems.append("the tree index is out of sync")
    for a, pte in mm.ptes.items():
        if mm.find_vma(a) is None:
            problems.append(f"PTE at {a:#x} outside every VMA")
        if not pte.special and pte.page.refcount <= 0:
            problems.append(f"PTE at {a:#x} maps a freed page {pte.page.describe()}")
    if mm.mmap_lock.is_locked():
        problems.append("the mmap lock is held")
    return problems
