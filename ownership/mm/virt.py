"""Virtual memory areas (rust/kernel/mm/virt.rs): one `vm_area_struct`, four views of it.

The C type is one struct; which Rust type you hold says what you may do with it, which
is the point of splitting it (seed 003):

* `VmAreaRef` - the mmap read lock or the VMA read lock is held: read the bounds and
  flags, zap PTEs, check for `VM_MIXEDMAP`. It has no setters.
* `VmAreaMixedMap` - a `VmAreaRef` whose `VM_MIXEDMAP` flag is known to be set: only
  here is `vm_insert_page` available (Jann Horn's review: inserting into a VMA without
  `VM_MIXEDMAP` needs the write lock and can set flags behind the driver's back).
* `VmAreaMut` - the mmap write lock *and* the VMA write lock (`vma_start_write`) are held:
  `set_flags`, checked against every rule of `ownership.include.vma_rules`. `!Sync`.
* `VmAreaNew` - the VMA is being set up in a driver's `mmap` file operation: the flag
  setters of upstream `VmaNew`, each computed with `vma_ops.apply`. `!Sync`.

Every view holds the `Lifetime` of what makes it valid (the guard's critical section,
the `mmap` handler's run) and every method checks it first: a view used after its guard
was released is a `LifetimeError` naming where the reference was made and where the guard
was released. Flag changes record where they were made, so a broken rule names the
driver line that set the conflicting bit.

`VmOperations` is the driver side of `vm_ops` (`open`, `close`, `fault`); drivers install
it with `VmAreaNew.set_vm_ops` and recognise their own VMAs by comparing `vm_ops()` and
`vm_private_data()` (what Rust Binder's `check_vma` does).

`flags` is `ownership.include.vm_flags`, the `VM_*` bits with their real x86-64 values.

Upstream names: `VmaRef`, `VmaMixedMap` and `VmaNew` are upstream's names of
`VmAreaRef`, `VmAreaMixedMap` and `VmAreaNew` (the seeds' v6 names), and are the same
classes. `zap_vma_range` is the 2026 upstream name of the zap (the documented one here);
`zap_page_range_single` is kept as its older alias. What the model has and upstream
lacks: `VmAreaMut` and its `set_flags` (the v6 API, kept so that the seeds' flag rules
can be broken on purpose), `VmaNew.set_pfnmap`, `vm_ops()`/`vm_private_data()` and
`set_vm_ops`/`set_private_data` (upstream drivers reach these through raw bindings),
`mm()` returning `MmWithUser`, and the `from_raw` constructors' runtime checks.

Lock order: no lock is taken here; the views rely on the lock their guard holds
(`ownership.mm`), and `MmapWriteGuard.vma_lookup` write-locks the VMA under the mmap
write lock (mmap lock -> VMA lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import sched
from ..bindings import mm as _c
from ..bindings.mm_types import VmAreaStruct
from ..bindings.mm_types import VmOperationsStruct as _VmOpsStruct
from ..bindings.page_alloc import StructPage
from ..borrow import Lifetime
from ..config import STATE
from ..context import may_sleep
from ..errors import EINVAL, KernelError, SyncError, UnsafeError, VmaFlagError
from ..include import vm_flags as flags
from ..include import vma_ops
from ..include.vma_expr import evaluate
from ..include.vma_rules import RULES_BY_ID
from ..marker import impl_send, impl_sync, not_send, not_sync
from ..page import PAGE_MASK, Page
from ..prim import USIZE_MAX, usize
from ..site import Site, here
from ..unsafe import unsafe_fn
from ..warn import warn

if TYPE_CHECKING:
    from . import MmWithUser

__all__ = [
    "VmAreaMixedMap",
    "VmAreaMut",
    "VmAreaNew",
    "VmAreaRef",
    "VmOperations",
    "VmaMixedMap",
    "VmaNew",
    "VmaRef",
    "flags",
]


def _apply(
    op_name: str,
    vma: VmAreaStruct,
    ctx: dict[str, bool],
    params: dict[str, int] | None = None,
) -> int:
    """New flags for a driver's change, computed and checked by `vma_ops.apply`.

    A broken rule is a `VmaFlagError`; when the rule does not name the bit to blame, the
    report names where the conflicting bit was set, found by asking the rule table which
    bit of the old flags, were it clear, would have let the change through.
    """
    op = vma_ops.OPS_BY_NAME[op_name]
    old = vma.vm_flags
    try:
        new = vma_ops.apply(op, old, params=params, ctx=ctx, origins=vma.flag_origins)
    except VmaFlagError as e:
        if e.origin is not None or not STATE.on:
            raise
        origin, label = _blame(e.rule, op, old, params or {}, ctx, vma)
        raise VmaFlagError(
            e.message,
            rule=e.rule,
            obj=e.obj,
            site=e.site,
            origin=origin,
            origin_label=label,
            details=e.details,
        ) from None
    assert new is not None
    return new


def _blame(
    rule_id: str,
    op: vma_ops.VmaOp,
    old: int,
    params: dict[str, int],
    ctx: dict[str, bool],
    vma: VmAreaStruct,
) -> tuple[Site | None, str]:
    rule = RULES_BY_ID[rule_id]
    env: dict[str, int | bool] = {"old": old, **params, **ctx}
    new = int(evaluate(op.result, env))
    bit = 1
    while bit <= old:
        if old & bit and bit in vma.flag_origins:
            if evaluate(rule.expr, {**ctx, "old": old & ~bit, "new": new & ~bit}):
                return vma.flag_origins[bit], f"the conflicting flag {flags.names(bit)} was set"
        bit <<= 1
    return vma.created_site, "the VMA was mapped"


def _lock_held_for(vma: VmAreaStruct, write: bool) -> bool:
    """Whether the calling thread holds a lock that keeps `vma` stable (or writable)."""
    sem = vma.vm_mm.mmap_lock
    if write:
        return sem.write_held_by_current() and vma.is_write_locked()
    return sem.held_by_current() or vma.readers.get(sched.current_id(), 0) > 0


@impl_send("VmAreaRef is a shared reference; the lock it needs is held for its whole lifetime")
@impl_sync("VmAreaRef methods only read, or call C functions that need only read access")
class VmAreaRef:
    """A `vm_area_struct` with read access.

    Invariants: for the duration of `_lt`, the mmap read lock or the VMA read lock of
    `_vma` (or stronger) is held.
    """

    __slots__ = ("_lt", "_vma", "origin_site")

    def __init__(self, vma: VmAreaStruct, lt: Lifetime, site: Site) -> None:
        self._vma = vma
        self._lt = lt
        self.origin_site = site

    @classmethod
    @unsafe_fn(
        safety="`vma` is valid for the duration of `lifetime`, and the mmap or VMA read lock "
        "(or stronger) is held for at least that long.",
        checked="the calling thread holds the mmap lock or this VMA's read lock, and the VMA "
        "is attached (UnsafeError otherwise); uses after `lifetime` ends are LifetimeErrors",
    )
    def from_raw(cls, vma: VmAreaStruct, lifetime: Lifetime) -> VmAreaRef:
        """Access a VMA given a raw pointer and the lifetime of the lock that keeps it valid.

        Safety: `vma` is valid for `lifetime`, and the mmap or VMA read lock (or stronger)
        is held for at least that long.
        """
        return cls._from_raw_checked(vma, lifetime, write=False, what="VmAreaRef::from_raw")

    @classmethod
    def _from_raw_checked(
        cls, vma: VmAreaStruct, lifetime: Lifetime, write: bool, what: str
    ) -> VmAreaRef:
        if not isinstance(vma, VmAreaStruct):
            raise TypeError(f"{what} takes a vm_area_struct, got {type(vma).__name__}")
        if not isinstance(lifetime, Lifetime):
            raise TypeError(f"{what} takes a Lifetime, got {type(lifetime).__name__}")
        if STATE.on:
            if not vma.attached or not lifetime.is_alive():
                raise UnsafeError(
                    f"{what} on a VMA that is not valid (unmapped, or the lifetime ended)",
                    rule="vma-from-raw-invalid",
                    obj=vma.describe(),
                    site=here(),
                    origin=vma.detached_at or lifetime.end_site,
                    origin_label="the VMA was unmapped" if vma.detached_at else lifetime.end_label,
                )
            if not _lock_held_for(vma, write):
                need = (
                    "the mmap write lock and the VMA write lock"
                    if write
                    else "the mmap or VMA read lock"
                )
                holder = vma.vm_mm.mmap_lock.holder_site()
                raise UnsafeError(
                    f"{what} without {need} held by this thread",
                    rule="vma-from-raw-unlocked",
                    obj=vma.describe(),
                    site=here(),
                    origin=holder if holder is not None else vma.created_site,
                    origin_label="the mmap lock that is held was taken (not what is needed)"
                    if holder is not None
                    else "the VMA was mapped (and no lock on it is held now)",
                )
        # INVARIANT: checked above: the lock is held, and the caller promises it stays held.
        return cls(vma, lifetime, here())

    # --- validity ------------------------------------------------------------------

    def _raw(self, use: str) -> VmAreaStruct:
        lt = self._lt
        if STATE.on and (not lt.alive or (lt.parent is not None and not lt.is_alive())):
            ended = lt if not lt.alive else lt.parent
            assert ended is not None
            ended.expired(f"{type(self).__name__}.{use}()", made=self.origin_site)
        return self._vma

    @property
    def lifetime(self) -> Lifetime:
        """The region for which this reference is valid (its guard's critical section)."""
        return self._lt

    def describe(self) -> str:
        return f"{type(self).__name__}({self._vma.describe()})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    # --- read access ------------------------------------------------------------------

    def as_ptr(self) -> VmAreaStruct:
        """The raw `vm_area_struct *`."""
        return self._raw("as_ptr")

    def mm(self) -> MmWithUser:
        """The address space of this VMA; the lock implies `mm_users > 0`."""
        vma = self._raw("mm")
        # A call-time import: ownership.mm imports this module before it defines
        # MmWithUser (whose guards hand out the VMA views defined here).
        from . import MmWithUser

        # SAFETY: the type invariant holds the mmap/VMA read lock, so `mm_users` is non-zero.
        return MmWithUser._view(vma.vm_mm)

    def flags(self) -> int:
        """The `vm_flags` of this VMA (a combination of the constants in `flags`)."""
        return self._raw("flags").vm_flags

    def start(self) -> int:
        """The (inclusive) start address."""
        return self._raw("start").vm_start

    def end(self) -> int:
        """The (exclusive) end address."""
        return self._raw("end").vm_end

    def vm_pgoff(self) -> int:
        """The offset of the VMA in its file, in pages."""
        return self._raw("vm_pgoff").vm_pgoff

    def vm_ops(self) -> VmOperations | None:
        """The driver's `VmOperations` installed on this VMA, if any (`vma->vm_ops`).

        Not in upstream (a model departure): upstream drivers read `vm_ops` raw."""
        ops = self._raw("vm_ops").vm_ops
        return ops.rust_ops if isinstance(ops, _VmOpsVtable) else None

    def vm_private_data(self) -> object:
        """The driver's private data (`vma->vm_private_data`)."""
        return self._raw("vm_private_data").vm_private_data

    @may_sleep
    def zap_vma_range(self, address: int, size: int) -> None:
        """Clear the PTEs of `[address, address + size)` (`zap_page_range_single` before
        the 2026 rename, which is kept as an alias).

        A range that wraps or is not inside the VMA does nothing (upstream returns
        silently; C would hit a `BUG_ON`) and records a `zap-out-of-range` warning.
        """
        vma = self._raw("zap_vma_range")
        a = usize(address, "address")
        s = usize(size, "size")
        end = a + s
        if end > USIZE_MAX or a < vma.vm_start or vma.vm_end < end:
            warn(
                "zap-out-of-range",
                f"zap_vma_range({a:#x}, {s:#x}) outside "
                f"[{vma.vm_start:#x}, {vma.vm_end:#x}){' (wraps)' if end > USIZE_MAX else ''}: "
                "ignored",
                here(),
            )
            return
        # SAFETY: the type invariant gives read access, which zapping needs; the range was
        # checked to be inside the VMA.
        _c.zap_page_range_single(vma, a, s)

    zap_page_range_single = zap_vma_range
    """The older name of `zap_vma_range`."""

    def as_mixedmap_vma(self) -> VmAreaMixedMap | None:
        """A `VmAreaMixedMap` view if `VM_MIXEDMAP` is set, else None."""
        vma = self._raw("as_mixedmap_vma")
        if vma.vm_flags & flags.MIXEDMAP:
            # INVARIANT: VM_MIXEDMAP is set (and never cleared); the lock is the same as ours.
            return VmAreaMixedMap(vma, self._lt, here())
        return None


class VmAreaMixedMap(VmAreaRef):
    """A `vm_area_struct` with read access and `VM_MIXEDMAP` set.

    Invariants: those of `VmAreaRef`, and `VM_MIXEDMAP` is set on the VMA.
    """

    __slots__ = ()

    @classmethod
    @unsafe_fn(
        safety="`vma` is valid for `lifetime`, the mmap read lock (or stronger) is held for "
        "that long, and VM_MIXEDMAP is set.",
        checked="the lock is held and VM_MIXEDMAP is set (UnsafeError otherwise)",
    )
    def from_raw(cls, vma: VmAreaStruct, lifetime: Lifetime) -> VmAreaMixedMap:
        """A `VmAreaMixedMap` view of a raw VMA.

        Safety: `vma` is valid for `lifetime`, the mmap read lock (or stronger) is held for
        that long, and `VM_MIXEDMAP` is set.
        """
        ref = cls._from_raw_checked(vma, lifetime, write=False, what="VmAreaMixedMap::from_raw")
        if STATE.on and not vma.vm_flags & flags.MIXEDMAP:
            raise UnsafeError(
                "VmAreaMixedMap::from_raw on a VMA without VM_MIXEDMAP",
                rule="mixedmap-from-raw",
                obj=vma.describe(),
                site=here(),
                origin=vma.created_site,
                origin_label="the VMA was mapped",
            )
        assert isinstance(ref, VmAreaMixedMap)
        return ref

    @may_sleep
    def vm_insert_page(self, address: int, page: Page) -> None:
        """Map `page` at `address` (the VMA takes its own reference; ours is unchanged).

        `EFAULT` if `address` is outside the VMA, `EINVAL` for a page that is not an
        order-0 normal page of this kernel (or an unaligned `address`; C would silently
        use the page containing it), `EBUSY` if a PTE is present, `ENOMEM`. May sleep.
        """
        vma = self._raw("vm_insert_page")
        if not isinstance(page, Page):
            raise TypeError(f"vm_insert_page takes a Page, got {type(page).__name__}")
        a = usize(address, "address")
        sp = page._live("vm_insert_page")
        if a & ~PAGE_MASK:
            raise KernelError(EINVAL, f"vm_insert_page: address {a:#x} is not page aligned")
        # SAFETY: by the type invariant the caller has read access and VM_MIXEDMAP is set;
        # by the invariant of `Page` the page has order 0.
        _c.vm_insert_page(vma, a, sp)


class _ThreadBound:
    """The `!Sync` part of `VmAreaMut` and `VmAreaNew`: usable only on the thread that made it.

    Invariants: a subclass records the thread that made it and checks it on every use.
    """

    __slots__ = ()

    def _check_thread(self, tid: int, use: str, site: Site, what: str) -> None:
        if STATE.on and sched.current_id() != tid:
            raise SyncError(
                f"{type(self).__name__} is !Sync but {use}() was called from another thread",
                rule="sync",
                obj=what,
                site=here(),
                origin=site,
                origin_label=f"the {type(self).__name__} was made on thread {tid}",
            )


@not_send("&VmAreaMut moved to another thread shares a !Sync VmAreaMut")
@not_sync("VmAreaMut writes flags through a shared reference: no parallel writers")
class VmAreaMut(VmAreaRef, _ThreadBound):
    """A `vm_area_struct` with write access (the v6 `VmAreaMut`, made safe).

    Not in upstream (a model departure): upstream has no write-locked view nor a raw
    `set_flags`; it is kept so that the seeds' flag rules can be exercised.

    Invariants: those of `VmAreaRef`, and for `_lt` the mmap write lock is held and the
    VMA is write-locked (`vma_start_write`); only the thread `_tid` uses it.
    """

    __slots__ = ("_tid",)

    def __init__(self, vma: VmAreaStruct, lt: Lifetime, site: Site) -> None:
        super().__init__(vma, lt, site)
        self._tid = sched.current_id()

    @classmethod
    @unsafe_fn(
        safety="`vma` is valid for `lifetime`, the mmap write lock is held and the VMA is "
        "write-locked (vma_start_write) for that long.",
        checked="the mmap write lock is held by this thread and the VMA is write-locked "
        "(UnsafeError otherwise)",
    )
    def from_raw(cls, vma: VmAreaStruct, lifetime: Lifetime) -> VmAreaMut:
        """A `VmAreaMut` view of a raw VMA.

        Safety: `vma` is valid for `lifetime`, and the mmap write lock is held and the VMA
        write-locked (`vma_start_write`) for that long.
        """
        ref = cls._from_raw_checked(vma, lifetime, write=True, what="VmAreaMut::from_raw")
        assert isinstance(ref, VmAreaMut)
        return ref

    def _raw(self, use: str) -> VmAreaStruct:
        vma = super()._raw(use)
        self._check_thread(self._tid, use, self.origin_site, vma.describe())
        return vma

    def set_flags(self, value: int) -> None:
        """Set `vm_flags` to `value`, checked against every flag rule (`VmaFlagError`).

        Not in upstream (a model departure, the v6 API): upstream sets flags only through
        `VmaNew`'s named setters.

        Only the bits a driver may touch can change (MIXEDMAP, PFNMAP, IO, DONTEXPAND,
        DONTCOPY, DONTDUMP set; MAYREAD/MAYWRITE/MAYEXEC cleared), and not the access bits
        of a VMA in use. Unknown bits are `EINVAL`.
        """
        vma = self._raw("set_flags")
        old = vma.vm_flags
        pfn_new = isinstance(value, int) and bool(value & flags.PFNMAP) and not old & flags.PFNMAP
        new = _apply(
            "set_flags",
            vma,
            {"ptes_installed": pfn_new and _c.ptes_installed(vma), "in_use": True},
            {"value": value},
        )
        # SAFETY: the mmap write lock and the VMA write lock are held (type invariant), and
        # the new value satisfies every flag rule.
        _c.set_vm_flags(vma, new, here())


@not_send("&VmaNew moved to another thread shares a !Sync VmaNew")
@not_sync("VmaNew is !Sync, so it cannot be used to write in parallel (rust/kernel/mm/virt.rs)")
class VmAreaNew(VmAreaRef, _ThreadBound):
    """A VMA being set up in a driver's `mmap` file operation (`VmaNew`).

    Invariants: for the duration of `_lt` the VMA is undergoing initialisation in an
    `f_op->mmap()` hook (the mmap write lock is held and the VMA is not yet shared);
    only the thread `_tid` uses it.
    """

    __slots__ = ("_tid",)

    def __init__(self, vma: VmAreaStruct, lt: Lifetime, site: Site) -> None:
        super().__init__(vma, lt, site)
        self._tid = sched.current_id()

    @classmethod
    @unsafe_fn(
        safety="`vma` is undergoing initial VMA setup for the duration of `lifetime`.",
        checked="the mmap write lock is held by this thread and the VMA is not yet in the tree "
        "(UnsafeError otherwise)",
    )
    def from_raw(cls, vma: VmAreaStruct, lifetime: Lifetime) -> VmAreaNew:
        """A `VmAreaNew` view of a raw VMA.

        Safety: `vma` is undergoing initial VMA setup (in an `f_op->mmap()` hook) for the
        duration of `lifetime`.
        """
        if not isinstance(vma, VmAreaStruct) or not isinstance(lifetime, Lifetime):
            raise TypeError("VmAreaNew.from_raw takes a vm_area_struct and a Lifetime")
        if STATE.on and (vma.attached or not vma.vm_mm.mmap_lock.write_held_by_current()):
            raise UnsafeError(
                "VmaNew::from_raw on a VMA that is not being set up by this thread",
                rule="vma-new-from-raw",
                obj=vma.describe(),
                site=here(),
                origin=vma.created_site,
                origin_label="the VMA was created",
            )
        # INVARIANT: checked above: the VMA is private to this mmap call.
        return cls(vma, lifetime, here())

    def _raw(self, use: str) -> VmAreaStruct:
        vma = super()._raw(use)
        self._check_thread(self._tid, use, self.origin_site, vma.describe())
        return vma

    def _update(self, op_name: str, pfn: bool = False) -> VmAreaStruct:
        vma = self._raw(op_name)
        ptes = pfn and not vma.vm_flags & flags.PFNMAP and _c.ptes_installed(vma)
        new = _apply(op_name, vma, {"ptes_installed": ptes})
        # SAFETY: the VMA is undergoing initial setup, so it is not shared yet, and this
        # type is !Sync; the new flags satisfy every flag rule (`vma_ops.apply` checked).
        _c.set_vm_flags(vma, new, here())
        return vma

    def set_mixedmap(self) -> VmAreaMixedMap:
        """Set `VM_MIXEDMAP`; the result can `vm_insert_page`. `VmaFlagError` if PFNMAP is set."""
        vma = self._update("set_mixedmap")
        # INVARIANT: VM_MIXEDMAP was just set; the VMA stays under our (write) lock for `_lt`.
        return VmAreaMixedMap(vma, self._lt, here())

    def set_pfnmap(self) -> None:
        """Set `VM_PFNMAP` (only valid without VM_MIXEDMAP and before any PTE is installed).

        Not in upstream's `VmaNew` (a model departure, kept for the PFNMAP flag rules)."""
        self._update("set_pfnmap", pfn=True)

    def set_io(self) -> None:
        """Set `VM_IO`: memory-mapped I/O; other kernel code must not look at the pages."""
        self._update("set_io")

    def set_dontexpand(self) -> None:
        """Set `VM_DONTEXPAND`: the VMA cannot grow with `mremap()`."""
        self._update("set_dontexpand")

    def set_dontcopy(self) -> None:
        """Set `VM_DONTCOPY`: not copied on fork (permanent only with VM_IO)."""
        self._update("set_dontcopy")

    def set_dontdump(self) -> None:
        """Set `VM_DONTDUMP`: not in core dumps (permanent only with VM_IO)."""
        self._update("set_dontdump")

    def readable(self) -> bool:
        """Whether `VM_READ` is set (userspace maps the VMA readable)."""
        return bool(self._raw("readable").vm_flags & flags.READ)

    def writable(self) -> bool:
        """Whether `VM_WRITE` is set."""
        return bool(self._raw("writable").vm_flags & flags.WRITE)

    def executable(self) -> bool:
        """Whether `VM_EXEC` is set."""
        return bool(self._raw("executable").vm_flags & flags.EXEC)

    def try_clear_mayread(self) -> None:
        """Clear `VM_MAYREAD` for good; `EINVAL` while `VM_READ` is set."""
        self._update("try_clear_mayread")

    def try_clear_maywrite(self) -> None:
        """Clear `VM_MAYWRITE` for good; `EINVAL` while `VM_WRITE` is set."""
        self._update("try_clear_maywrite")

    def try_clear_mayexec(self) -> None:
        """Clear `VM_MAYEXEC` for good; `EINVAL` while `VM_EXEC` is set."""
        self._update("try_clear_mayexec")

    def set_vm_ops(self, ops: VmOperations) -> None:
        """Install the driver's `vm_ops` (written once, by `f_op->mmap()`).

        Upstream Binder writes `vma->vm_ops` through `as_ptr()`; the model offers the write
        here, where it is valid.
        """
        if not isinstance(ops, VmOperations):
            raise TypeError(f"set_vm_ops takes a VmOperations, got {type(ops).__name__}")
        vma = self._raw("set_vm_ops")
        vtable: _VmOpsStruct = _VmOpsVtable(ops)
        # SAFETY: `vm_ops` is written once by the mmap hook, before the VMA is shared.
        vma.vm_ops = vtable

    def set_private_data(self, data: object) -> None:
        """Set `vma->vm_private_data` (handled by the driver)."""
        self._raw("set_private_data").vm_private_data = data


class VmOperations:
    """A driver's `vm_operations_struct`: callbacks on the VMAs of its mappings.

    Invariants: the object's identity names the driver's VMAs (`vma.vm_ops() is ops`);
    it outlives every VMA it is installed on.

    `open` runs when a VMA is duplicated (split, fork), `close` when one goes away
    (munmap, exit), both with the mmap write lock held. `fault` runs on a user access to
    a page with no PTE (mmap or VMA read lock held): return a `Page` to map (the core
    takes its own reference), or None after inserting the PTE yourself or to refuse the
    access (`SIGBUS`, the user sees `EFAULT`). The `VmAreaRef` passed in is valid only
    during the callback.
    """

    def open(self, vma: VmAreaRef) -> None:
        return None

    def close(self, vma: VmAreaRef) -> None:
        return None

    def fault(self, vma: VmAreaRef, address: int) -> Page | None:
        return None


class _VmOpsVtable:
    """The C `vm_operations_struct` built around a driver's `VmOperations`.

    Invariants: `rust_ops` is the driver object; each callback's `VmAreaRef` lives only
    for that callback.
    """

    __slots__ = ("rust_ops",)

    def __init__(self, ops: VmOperations) -> None:
        self.rust_ops = ops

    def _ref(self, vma: VmAreaStruct, what: str) -> tuple[VmAreaRef, Lifetime]:
        site = here()
        lt = Lifetime(f"VMA in vm_ops->{what}()", site)
        # INVARIANT: the C caller holds the mmap lock (or the VMA read lock) for the call.
        return VmAreaRef(vma, lt, site), lt

    def open(self, vma: VmAreaStruct) -> None:
        ref, lt = self._ref(vma, "open")
        try:
            self.rust_ops.open(ref)
        finally:
            lt.end(here(), "vm_ops->open() returned")

    def close(self, vma: VmAreaStruct) -> None:
        ref, lt = self._ref(vma, "close")
        try:
            self.rust_ops.close(ref)
        finally:
            lt.end(here(), "vm_ops->close() returned")

    def fault(self, vma: VmAreaStruct, address: int, write: bool) -> StructPage | None:
        ref, lt = self._ref(vma, "fault")
        try:
            page = self.rust_ops.fault(ref, address)
        finally:
            lt.end(here(), "vm_ops->fault() returned")
        if page is None:
            return None
        if not isinstance(page, Page):
            raise TypeError(f"vm_ops fault must return a Page or None, got {type(page).__name__}")
        sp = page._live("vm_ops->fault")
        # The fault path consumes one reference (`vmf->page`); the driver keeps its own.
        sp.kernel.pool.get_page(sp)
        return sp


VmaRef = VmAreaRef
"""Upstream's `kernel::mm::virt::VmaRef`: the same class as `VmAreaRef`."""
VmaMixedMap = VmAreaMixedMap
"""Upstream's `VmaMixedMap`: the same class as `VmAreaMixedMap`."""
VmaNew = VmAreaNew
"""Upstream's `VmaNew`: the same class as `VmAreaNew`."""
