"""The operations that change `vm_flags`, as data: each one's guard, errno and result.

`OPS` lists `mmap`'s initial flags, the `VmAreaNew` setters, `try_clear_may*`,
`VmAreaMut.set_flags`, `mprotect`, `madvise(MADV_DOFORK/DODUMP/...)`,
`remap_pfn_range`, `fork`, `userfaultfd_register`, `vm_insert_page` and `split_vma`,
each as formulas of `ownership.include.vma_expr` over the old flags and its `Param`s.
The simulated kernel (`ownership.bindings.mm`) computes every flag change with `apply`,
and `proofs/` quantifies over the same table. `V6_OPS` records the unsound v6 API
(`set_flags(usize)`, `vm_insert_page` on a write-locked VMA) so the proofs can show its
counterexamples mechanically. `CAN_MERGE`/`MERGE_RESULT` state when adjacent VMAs merge
(mm/vma.c) and with which flags.

Lock order: no locks; the tables are immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import EACCES, EINVAL, KernelError
from ..site import Site
from . import vm_flags as F
from .vma_expr import (
    MASK64,
    OLD,
    And,
    BAnd,
    BOr,
    Const,
    Ctx,
    Eq,
    Expr,
    Has,
    Implies,
    Ite,
    Lit,
    Not,
    Or,
    Var,
    evaluate,
)
from .vma_rules import check_transition

__all__ = [
    "CAN_MERGE",
    "INSTALLS_PTES",
    "MERGE_RESULT",
    "OPS",
    "OPS_BY_NAME",
    "V6_OPS",
    "Param",
    "VmaOp",
    "apply",
    "can_merge",
]


@dataclass(frozen=True)
class Param:
    """A parameter of an operation: a 64-bit value restricted to the bits of `mask`."""

    name: str
    mask: int


@dataclass(frozen=True)
class VmaOp:
    """One way `vm_flags` change.

    If `guard` is false the operation fails with `errno` (or, with `errno=None`, does
    nothing to this VMA, e.g. fork not copying a DONTCOPY VMA). Otherwise the flags
    become `result`. `actor` "driver" means the change is made through a driver-facing
    API and is validated against every rule (`checked`); "core" changes are made by
    core mm and must preserve the state rules by construction (proved in `proofs/`).
    """

    name: str
    summary: str
    result: Expr
    # `Lit` is a frozen dataclass of vma_expr: one shared, immutable default is safe.
    guard: Expr = Lit(True)  # noqa: RUF009
    errno: int | None = None
    params: tuple[Param, ...] = ()
    ctx: tuple[str, ...] = ()
    actor: Literal["driver", "core"] = "core"
    checked: bool = False
    source: str = ""
    initial: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)


PROT = Var("prot")
PROT_PARAM = Param("prot", F.ACCESS)  # PROT_READ/WRITE/EXEC == VM_READ/WRITE/EXEC on x86.


def _access_allowed(flags_term: Expr) -> Expr:
    """Each requested access bit of `prot` has its MAY bit in `flags_term` (mprotect)."""
    return And(
        Implies(Has(PROT, F.READ), Has(flags_term, F.MAYREAD)),
        Implies(Has(PROT, F.WRITE), Has(flags_term, F.MAYWRITE)),
        Implies(Has(PROT, F.EXEC), Has(flags_term, F.MAYEXEC)),
    )


def _set(bit: int) -> Expr:
    return BOr(OLD, Const(bit))


def _clear(bit: int) -> Expr:
    return BAnd(OLD, Const(MASK64 & ~bit))


_MMAP_SHARED_BITS = Ite(
    Ctx("shared"),
    Ite(
        And(Ctx("file"), Not(Ctx("file_writable"))),
        Const(F.MAYSHARE),  # do_mmap: vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        Const(F.SHARED | F.MAYSHARE),
    ),
    Const(0),
)
_MMAP_MAY_BITS = Ite(
    And(Ctx("shared"), Ctx("file"), Not(Ctx("file_writable"))),
    Const(F.MAYREAD | F.MAYEXEC),
    Const(F.MAYREAD | F.MAYWRITE | F.MAYEXEC),
)

OPS: tuple[VmaOp, ...] = (
    VmaOp(
        "mmap",
        "do_mmap: calc_vm_prot_bits(prot) | MAP bits | VM_MAYREAD|VM_MAYWRITE|VM_MAYEXEC",
        BOr(
            BOr(BAnd(PROT, Const(F.ACCESS)), _MMAP_MAY_BITS),
            BOr(
                _MMAP_SHARED_BITS,
                BOr(
                    Ite(Ctx("noreserve"), Const(F.NORESERVE), Const(0)),
                    Ite(Ctx("locked"), Const(F.LOCKED), Const(0)),
                ),
            ),
        ),
        guard=Not(And(Ctx("shared"), Ctx("file"), Not(Ctx("file_writable")), Has(PROT, F.WRITE))),
        errno=EACCES,
        params=(PROT_PARAM,),
        ctx=("shared", "file", "file_writable", "noreserve", "locked"),
        source="mm/mmap.c do_mmap()",
        initial=True,
    ),
    VmaOp(
        "set_mixedmap",
        "VmAreaNew.set_mixedmap()",
        _set(F.MIXEDMAP),
        actor="driver",
        checked=True,
        source="rust/kernel/mm/virt.rs VmaNew::set_mixedmap",
    ),
    VmaOp(
        "set_pfnmap",
        "VmAreaNew.set_pfnmap()",
        _set(F.PFNMAP),
        ctx=("ptes_installed",),
        actor="driver",
        checked=True,
        source="Jann Horn's list, item 3 (seed 003)",
    ),
    VmaOp("set_io", "VmAreaNew.set_io()", _set(F.IO), actor="driver", checked=True),
    VmaOp(
        "set_dontexpand",
        "VmAreaNew.set_dontexpand()",
        _set(F.DONTEXPAND),
        actor="driver",
        checked=True,
    ),
    VmaOp(
        "set_dontcopy", "VmAreaNew.set_dontcopy()", _set(F.DONTCOPY), actor="driver", checked=True
    ),
    VmaOp(
        "set_dontdump", "VmAreaNew.set_dontdump()", _set(F.DONTDUMP), actor="driver", checked=True
    ),
    VmaOp(
        "try_clear_mayread",
        "VmAreaNew.try_clear_mayread(): EINVAL while VM_READ is set",
        _clear(F.MAYREAD),
        guard=Not(Has(OLD, F.READ)),
        errno=EINVAL,
        actor="driver",
        checked=True,
    ),
    VmaOp(
        "try_clear_maywrite",
        "VmAreaNew.try_clear_maywrite(): EINVAL while VM_WRITE is set",
        _clear(F.MAYWRITE),
        guard=Not(Has(OLD, F.WRITE)),
        errno=EINVAL,
        actor="driver",
        checked=True,
    ),
    VmaOp(
        "try_clear_mayexec",
        "VmAreaNew.try_clear_mayexec(): EINVAL while VM_EXEC is set",
        _clear(F.MAYEXEC),
        guard=Not(Has(OLD, F.EXEC)),
        errno=EINVAL,
        actor="driver",
        checked=True,
    ),
    VmaOp(
        "set_flags",
        "VmAreaMut.set_flags(value), validated against every rule",
        Var("value"),
        params=(Param("value", F.KNOWN),),
        ctx=("ptes_installed", "in_use"),
        actor="driver",
        checked=True,
        source="the v6 API, made safe by the rule table",
    ),
    VmaOp(
        "mprotect",
        "mprotect: newflags = prot bits | (flags & ~ACCESS); EACCES without the MAY bit",
        BOr(BAnd(PROT, Const(F.ACCESS)), BAnd(OLD, Const(MASK64 & ~F.ACCESS))),
        guard=_access_allowed(OLD),
        errno=EACCES,
        params=(PROT_PARAM,),
        source="mm/mprotect.c do_mprotect_pkey(): (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS",
    ),
    VmaOp(
        "madvise_dofork",
        "MADV_DOFORK clears VM_DONTCOPY; EINVAL on VM_IO",
        _clear(F.DONTCOPY),
        guard=Not(Has(OLD, F.IO)),
        errno=EINVAL,
        source="mm/madvise.c madvise_update_vma(): if (vma->vm_flags & VM_IO) return -EINVAL",
    ),
    VmaOp("madvise_dontfork", "MADV_DONTFORK sets VM_DONTCOPY", _set(F.DONTCOPY)),
    VmaOp(
        "madvise_dodump",
        "MADV_DODUMP clears VM_DONTDUMP; EINVAL on VM_SPECIAL unless hugetlb",
        _clear(F.DONTDUMP),
        guard=Or(Has(OLD, F.HUGETLB), Not(Has(OLD, F.SPECIAL))),
        errno=EINVAL,
        source="mm/madvise.c: "
        "if (!is_vm_hugetlb_page(vma) && new_flags & VM_SPECIAL) return -EINVAL",
    ),
    VmaOp("madvise_dontdump", "MADV_DONTDUMP sets VM_DONTDUMP", _set(F.DONTDUMP)),
    VmaOp(
        "remap_pfn_range",
        "remap_pfn_range sets IO|PFNMAP|DONTEXPAND|DONTDUMP; refused on MIXEDMAP or with PTEs",
        _set(F.IO | F.PFNMAP | F.DONTEXPAND | F.DONTDUMP),
        guard=And(Not(Has(OLD, F.MIXEDMAP)), Not(Ctx("ptes_installed"))),
        errno=EINVAL,
        ctx=("ptes_installed",),
        source="mm/memory.c remap_pfn_range_internal()",
    ),
    VmaOp(
        "fork",
        "dup_mmap: DONTCOPY VMAs are not copied; the copy drops VM_LOCKED* and uffd bits",
        _clear(F.LOCKED_MASK | F.UFFD_MASK),
        guard=Not(Has(OLD, F.DONTCOPY)),
        errno=None,
        source="kernel/fork.c dup_mmap(); fs/userfaultfd.c dup_userfaultfd()",
    ),
    # The three operations below were added for proofs/ (claims 1, 4 and 6).
    VmaOp(
        "userfaultfd_register",
        "UFFDIO_REGISTER: sets the requested VM_UFFD_* mode bits; refused unless "
        "vma_can_userfault() and VM_MAYWRITE "
        "(one errno here; the kernel says EPERM for the latter)",
        BOr(OLD, Var("mode")),
        # vma_can_userfault() accepts only anonymous, shmem and hugetlb VMAs ("uffd_capable").
        # A VM_MIXEDMAP VMA was set up by a driver's mmap handler, so it is none of those:
        # "you can't attach userfaultfd contexts to VM_MIXEDMAP VMAs" (Jann Horn, seed 003).
        guard=And(Ctx("uffd_capable"), Has(OLD, F.MAYWRITE), Not(Has(OLD, F.MIXEDMAP))),
        errno=EINVAL,
        params=(Param("mode", F.UFFD_MASK),),
        ctx=("uffd_capable",),
        source="fs/userfaultfd.c userfaultfd_register(); include/linux/userfaultfd_k.h "
        "vma_can_userfault()",
    ),
    VmaOp(
        "vm_insert_page",
        "VmAreaMixedMap.vm_insert_page(): installs a PTE; flags unchanged (MIXEDMAP is the "
        "type invariant, so as_mixedmap_vma() gives no handle otherwise)",
        OLD,
        guard=Has(OLD, F.MIXEDMAP),
        errno=None,
        actor="driver",
        source="rust/kernel/mm/virt.rs VmaMixedMap::vm_insert_page; mm/memory.c vm_insert_page()",
    ),
    VmaOp(
        "split_vma",
        "__split_vma (munmap/mprotect/madvise of a sub-range): each piece copies vm_flags",
        OLD,
        source="mm/vma.c __split_vma(): new = vm_area_dup(vma)",
    ),
)

OPS_BY_NAME: dict[str, VmaOp] = {op.name: op for op in OPS}

V6_OPS: tuple[VmaOp, ...] = (
    VmaOp(
        "v6_set_flags",
        "v6 VmAreaMut::set_flags(flags: usize): an arbitrary, unchecked write",
        Var("value"),
        params=(Param("value", F.VM_FLAGS_MAX),),
        ctx=("ptes_installed", "in_use"),
        actor="driver",
        checked=False,
        source="[PATCH v6 1/2] rust: mm: add abstractions for mm_struct and vm_area_struct",
    ),
    VmaOp(
        "v6_vm_insert_page",
        "v6 VmAreaMut::vm_insert_page under the mmap write lock: C sets VM_MIXEDMAP itself",
        _set(F.MIXEDMAP),
        guard=Not(Has(OLD, F.PFNMAP)),
        errno=EINVAL,
        ctx=("ptes_installed",),
        actor="driver",
        checked=False,
        source="mm/memory.c vm_insert_page(): "
        "if (!(vma->vm_flags & VM_MIXEDMAP)) vm_flags_set(...)",
    ),
)


def apply(
    op: VmaOp,
    old: int,
    *,
    params: Mapping[str, int] | None = None,
    ctx: Mapping[str, bool] | None = None,
    origins: Mapping[int, Site] | None = None,
) -> int | None:
    """Run `op` on concrete flags: the new flags, or None when the VMA is skipped.

    Raises `KernelError(op.errno)` when the guard fails, and `VmaFlagError` when a
    checked (driver) operation would break a rule. Bad parameters are `EINVAL`.
    """
    p = dict(params or {})
    for prm in op.params:
        if prm.name not in p:
            raise TypeError(f"{op.name}: missing parameter {prm.name!r}")
        v = p[prm.name]
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{op.name}: {prm.name} must be an int, got {type(v).__name__}")
        if v < 0 or v & ~prm.mask:
            raise KernelError(
                EINVAL, f"{op.name}: {prm.name}={v:#x} has bits outside {prm.mask:#x}"
            )
    env: dict[str, int | bool] = {"old": old}
    env.update(p)
    env.update(ctx or {})
    if not evaluate(op.guard, env):
        if op.errno is None:
            return None
        raise KernelError(op.errno, f"{op.name} refused on {F.names(old)}")
    new = int(evaluate(op.result, env))
    if op.checked:
        check_transition(old, new, f"{op.name}()", ctx, origins)
    return new


# Merging (mm/vma.c).

MERGE_A = Var("a")
MERGE_B = Var("b")

CAN_MERGE: Expr = And(
    Eq(BAnd(MERGE_A, Const(MASK64 & ~F.SOFTDIRTY)), BAnd(MERGE_B, Const(MASK64 & ~F.SOFTDIRTY))),
    Not(Has(MERGE_A, F.SPECIAL)),
    Not(Has(MERGE_B, F.SPECIAL)),
)
"""Whether two adjacent VMAs with flags `a` and `b` may merge (mm/vma.c).

`is_mergeable_vma()`: the flags must be equal ignoring VM_SOFTDIRTY; `vma_merge()`:
`if (vm_flags & VM_SPECIAL) return NULL` - VM_SPECIAL VMAs never merge. (The simulated
kernel also requires the same file, vm_ops and private data, which are not flags.)
"""


def can_merge(a: int, b: int) -> bool:
    """Concrete `CAN_MERGE`."""
    return bool(evaluate(CAN_MERGE, {"a": a, "b": b}))


MERGE_RESULT: Expr = BOr(MERGE_A, MERGE_B)
"""The flags of the VMA that results from merging `a` and `b` (when `CAN_MERGE` holds).

The flags agree except for VM_SOFTDIRTY (`is_mergeable_vma()`), and the merged VMA is
soft-dirty if either piece was: soft-dirty tracking may over-report, never under-report
(mm/vma.c `vma_merge_existing_range()`; mm/mmap.c `__mmap_complete()`:
`vm_flags_set(vma, VM_SOFTDIRTY)`).
"""

INSTALLS_PTES: frozenset[str] = frozenset(
    {"vm_insert_page", "v6_vm_insert_page", "remap_pfn_range"}
)
"""Operations after which the VMA has PTEs installed: the `ptes_installed` context fact
becomes (and stays) true. "Clearing VM_MIXEDMAP after calling vm_insert_page()" and
"set VM_PFNMAP (only valid if ... no PTEs have been installed yet)" refer to it."""
