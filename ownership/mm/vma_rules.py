"""The VMA flag rules, stated once: evaluated here, proved in `proofs/`.

Every rule about `vm_flags` that the mm/vma review (seed 003: Jann Horn, Boqun Feng,
Alice Ryhl) and mm.h state lives in `RULES`, as a formula in a small expression
language over 64-bit flag values. `ownership` evaluates the formulas concretely
(`violations`, `check_transition`, `apply`); `proofs/` interprets the *same* objects
as Z3 bit-vector formulas. No rule is written twice.

The operations that change flags are data too (`OPS`): `mmap`'s initial flags, the
`VmAreaNew` setters, `try_clear_may*`, `VmAreaMut.set_flags`, `mprotect`,
`madvise(MADV_DOFORK/DODUMP/...)`, `remap_pfn_range`, `fork`. The simulated kernel
computes flags with them (`apply`), and the proofs quantify over them. `V6_OPS`
records the unsound v6 API (`set_flags(usize)`, `vm_insert_page` on a write-locked VMA)
so the proofs can show its counterexamples mechanically.

The language: bit-vector terms (`Var`, `Const`, `BAnd`, `BOr`, `BNot`, `Ite`) and
formulas (`Has`, `Eq`, `And`, `Or`, `Not`, `Implies`, `Ctx`, `Lit`). `Var("old")` and
`Var("new")` are the flags before and after a change; other `Var`s are an operation's
parameters (`Param` gives their allowed bits); `Ctx(name)` is a boolean fact about the
VMA (`ptes_installed`, `in_use`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..config import STATE
from ..errors import EACCES, EINVAL, KernelError, VmaFlagError
from ..site import Site, here
from . import flags as F

__all__ = [
    "CAN_MERGE",
    "INSTALLS_PTES",
    "MERGE_RESULT",
    "OPS",
    "RULES",
    "V6_OPS",
    "And",
    "BAnd",
    "BNot",
    "BOr",
    "Const",
    "Ctx",
    "Eq",
    "Expr",
    "Has",
    "Implies",
    "Ite",
    "Lit",
    "Not",
    "Or",
    "Param",
    "Var",
    "VmaOp",
    "VmaRule",
    "apply",
    "can_merge",
    "check_state",
    "check_transition",
    "evaluate",
    "violations",
]

MASK64 = F.VM_FLAGS_MAX

# --------------------------------------------------------------------------------------
# The expression language.


class Expr:
    """A node of a rule or operation formula (bit-vector term or boolean formula)."""

    __slots__ = ()


@dataclass(frozen=True)
class Var(Expr):
    """A 64-bit value: `old`, `new`, or an operation parameter."""

    name: str


@dataclass(frozen=True)
class Const(Expr):
    value: int


@dataclass(frozen=True)
class BAnd(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class BOr(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class BNot(Expr):
    a: Expr


@dataclass(frozen=True)
class Ite(Expr):
    """`cond ? a : b` over bit-vectors."""

    cond: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Has(Expr):
    """`(term & mask) != 0`: at least one bit of `mask` is set."""

    term: Expr
    mask: int


@dataclass(frozen=True)
class Eq(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class And(Expr):
    args: tuple[Expr, ...]

    def __init__(self, *args: Expr) -> None:
        object.__setattr__(self, "args", tuple(args))


@dataclass(frozen=True)
class Or(Expr):
    args: tuple[Expr, ...]

    def __init__(self, *args: Expr) -> None:
        object.__setattr__(self, "args", tuple(args))


@dataclass(frozen=True)
class Not(Expr):
    a: Expr


@dataclass(frozen=True)
class Implies(Expr):
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Ctx(Expr):
    """A boolean fact about the VMA or the call, supplied by the caller."""

    name: str


@dataclass(frozen=True)
class Lit(Expr):
    value: bool


OLD = Var("old")
NEW = Var("new")


def _bits_set(mask: int) -> Expr:
    """Bits of `mask` set in `new` that were clear in `old`."""
    return BAnd(BAnd(NEW, BNot(OLD)), Const(mask))


def _bits_cleared(mask: int) -> Expr:
    return BAnd(BAnd(OLD, BNot(NEW)), Const(mask))


def evaluate(e: Expr, env: Mapping[str, int | bool]) -> int | bool:
    """Evaluate a formula on concrete values (`env` maps Var and Ctx names)."""
    if isinstance(e, Var):
        return int(env[e.name])
    if isinstance(e, Const):
        return e.value
    if isinstance(e, BAnd):
        return int(evaluate(e.a, env)) & int(evaluate(e.b, env))
    if isinstance(e, BOr):
        return int(evaluate(e.a, env)) | int(evaluate(e.b, env))
    if isinstance(e, BNot):
        return ~int(evaluate(e.a, env)) & MASK64
    if isinstance(e, Ite):
        return evaluate(e.a if evaluate(e.cond, env) else e.b, env)
    if isinstance(e, Has):
        return (int(evaluate(e.term, env)) & e.mask) != 0
    if isinstance(e, Eq):
        return evaluate(e.a, env) == evaluate(e.b, env)
    if isinstance(e, And):
        return all(evaluate(a, env) for a in e.args)
    if isinstance(e, Or):
        return any(evaluate(a, env) for a in e.args)
    if isinstance(e, Not):
        return not evaluate(e.a, env)
    if isinstance(e, Implies):
        return (not evaluate(e.a, env)) or bool(evaluate(e.b, env))
    if isinstance(e, Ctx):
        return bool(env.get(e.name, False))
    if isinstance(e, Lit):
        return e.value
    raise TypeError(f"not a rule expression: {e!r}")


# --------------------------------------------------------------------------------------
# The rules.


@dataclass(frozen=True)
class VmaRule:
    """One flag rule.

    `kind` "state" rules constrain one flags value (`new`) and hold for every VMA at
    every moment. "transition" rules constrain a change `old -> new` made by a driver
    (core mm may do more, e.g. munmap). `blame` names the bits whose setter is the
    conflicting origin in a report.
    """

    id: str
    kind: Literal["state", "transition"]
    expr: Expr
    summary: str
    quote: str
    source: str
    blame: int = 0


RULES: tuple[VmaRule, ...] = (
    VmaRule(
        "mixedmap-pfnmap",
        "state",
        Not(And(Has(NEW, F.MIXEDMAP), Has(NEW, F.PFNMAP))),
        "VM_MIXEDMAP and VM_PFNMAP are never both set",
        "deny at least the bad combination VM_MIXEDMAP|VM_PFNMAP",
        "Jann Horn, review of v6 (seed 003)",
        blame=F.MIXEDMAP | F.PFNMAP,
    ),
    VmaRule(
        "read-mayread",
        "state",
        Implies(Has(NEW, F.READ), Has(NEW, F.MAYREAD)),
        "VM_READ implies VM_MAYREAD",
        "mprotect hard-codes VM_MAYREAD >> 4 == VM_READ: an access bit needs its MAY bit",
        "include/linux/mm.h; mm/mprotect.c",
    ),
    VmaRule(
        "write-maywrite",
        "state",
        Implies(Has(NEW, F.WRITE), Has(NEW, F.MAYWRITE)),
        "VM_WRITE implies VM_MAYWRITE",
        "clear VM_MAYWRITE after checking VM_WRITE is unset",
        "Jann Horn, review of v6 (seed 003); mm/mprotect.c",
    ),
    VmaRule(
        "exec-mayexec",
        "state",
        Implies(Has(NEW, F.EXEC), Has(NEW, F.MAYEXEC)),
        "VM_EXEC implies VM_MAYEXEC",
        "(you could do the same with the VM_EXEC/VM_MAYEXEC bits)",
        "Jann Horn, review of v6 (seed 003)",
    ),
    VmaRule(
        "shared-mayshare",
        "state",
        Implies(Has(NEW, F.SHARED), Has(NEW, F.MAYSHARE)),
        "VM_SHARED implies VM_MAYSHARE",
        "do_mmap: MAP_SHARED sets VM_SHARED | VM_MAYSHARE; only VM_SHARED is ever dropped",
        "mm/mmap.c",
    ),
    VmaRule(
        "uffd-mixedmap",
        "state",
        Not(And(Has(NEW, F.MIXEDMAP), Has(NEW, F.UFFD_MASK))),
        "a VMA with a userfaultfd context is never VM_MIXEDMAP",
        "you can't attach userfaultfd contexts to VM_MIXEDMAP VMAs",
        "Jann Horn, review of v6 (seed 003); mm/userfaultfd.c vma_can_userfault()",
        blame=F.MIXEDMAP,
    ),
    VmaRule(
        "may-only-clear",
        "transition",
        Eq(_bits_set(F.MAY_MASK), Const(0)),
        "VM_MAYREAD/MAYWRITE/MAYEXEC only go from set to clear",
        "clear VM_MAYWRITE ... once cleared it can never be set again",
        "Jann Horn, review of v6 (seed 003); rust/kernel/mm/virt.rs try_clear_maywrite",
    ),
    VmaRule(
        "mixedmap-sticky",
        "transition",
        Implies(Has(OLD, F.MIXEDMAP), Has(NEW, F.MIXEDMAP)),
        "VM_MIXEDMAP is never cleared once set",
        "Clearing VM_MIXEDMAP after calling vm_insert_page() might be another one",
        "Jann Horn, review of v6 (seed 003)",
        blame=F.MIXEDMAP,
    ),
    VmaRule(
        "pfnmap-sticky",
        "transition",
        Implies(Has(OLD, F.PFNMAP), Has(NEW, F.PFNMAP)),
        "VM_PFNMAP is never cleared once set",
        "refcounted pages installed in VM_PFNMAP regions that are supposed to only "
        "contain non-refcounted entries",
        "Jann Horn, review of v6 (seed 003)",
        blame=F.PFNMAP,
    ),
    VmaRule(
        "hugetlb-untouchable",
        "transition",
        Eq(BAnd(OLD, Const(F.HUGETLB)), BAnd(NEW, Const(F.HUGETLB))),
        "a driver never sets or clears VM_HUGETLB",
        "VM_HUGETLB is also a flag you really shouldn't be touching from driver code",
        "Jann Horn, review of v6 (seed 003)",
    ),
    VmaRule(
        "pfnmap-no-ptes",
        "transition",
        Implies(And(Not(Has(OLD, F.PFNMAP)), Has(NEW, F.PFNMAP)), Not(Ctx("ptes_installed"))),
        "VM_PFNMAP is set only while no PTE is installed",
        "set VM_PFNMAP (only valid if not VM_MIXEDMAP and no PTEs have been installed yet)",
        "Jann Horn, review of v6 (seed 003)",
    ),
    VmaRule(
        "access-frozen",
        "transition",
        Implies(Ctx("in_use"), Eq(BAnd(OLD, Const(F.ACCESS)), BAnd(NEW, Const(F.ACCESS)))),
        "an in-use VMA's READ/WRITE/EXEC bits do not change under a driver",
        "drivers normally don't change the flags of existing VMAs anyway, only the flags "
        "of newly created VMAs; only core MM code should be changing the flags",
        "Jann Horn, review of v6 (seed 003)",
    ),
    VmaRule(
        "driver-set-allowlist",
        "transition",
        Eq(
            _bits_set(
                MASK64 & ~(F.MIXEDMAP | F.PFNMAP | F.IO | F.DONTEXPAND | F.DONTCOPY | F.DONTDUMP)
            ),
            Const(0),
        ),
        "a driver sets only MIXEDMAP, PFNMAP, IO, DONTEXPAND, DONTCOPY, DONTDUMP",
        "you'd have to at least allowlist which bits the driver may clear and which bits "
        "it may set",
        "Jann Horn, review of v6 (seed 003)",
    ),
    VmaRule(
        "driver-clear-allowlist",
        "transition",
        Eq(_bits_cleared(MASK64 & ~F.MAY_MASK), Const(0)),
        "a driver clears only MAYREAD, MAYWRITE, MAYEXEC",
        "you'd have to at least allowlist which bits the driver may clear and which bits "
        "it may set",
        "Jann Horn, review of v6 (seed 003)",
    ),
)

RULES_BY_ID: dict[str, VmaRule] = {r.id: r for r in RULES}
STATE_RULES = tuple(r for r in RULES if r.kind == "state")
TRANSITION_RULES = tuple(r for r in RULES if r.kind == "transition")


def _env(old: int, new: int, ctx: Mapping[str, bool]) -> dict[str, int | bool]:
    env: dict[str, int | bool] = {"old": old, "new": new}
    env.update(ctx)
    return env


def violations(
    old: int | None, new: int, ctx: Mapping[str, bool] | None = None
) -> list[VmaRule]:
    """Rules broken by `new` (state rules) and by `old -> new` (when `old` is given)."""
    c = ctx or {}
    env = _env(new if old is None else old, new, c)
    out = [r for r in STATE_RULES if not evaluate(r.expr, env)]
    if old is not None:
        out.extend(r for r in TRANSITION_RULES if not evaluate(r.expr, env))
    return out


def _raise(
    rule: VmaRule,
    op: str,
    old: int | None,
    new: int,
    origins: Mapping[int, Site] | None,
    others: list[VmaRule],
) -> None:
    origin = None
    if origins and rule.blame and old is not None:
        for bit, s in origins.items():
            if bit & rule.blame & old:
                origin = s
                break
    details = [
        f"rule: {rule.summary}",
        f'  "{rule.quote}" ({rule.source})',
        f"flags before: {F.names(old) if old is not None else '(new VMA)'}",
        f"flags after:  {F.names(new)}",
    ]
    if others:
        details.append("also broken: " + ", ".join(r.id for r in others))
    raise VmaFlagError(
        f"{op} would break the VMA flag rule '{rule.id}'",
        rule=rule.id,
        obj=f"vm_area_struct flags {F.names(old if old is not None else new)}",
        site=here(),
        origin=origin,
        origin_label="the conflicting flag was set",
        details=details,
    )


def check_state(new: int, op: str = "vm_flags", ctx: Mapping[str, bool] | None = None) -> None:
    """Raise `VmaFlagError` if `new` breaks a state rule."""
    if not STATE.on:
        return
    bad = violations(None, new, ctx)
    if bad:
        _raise(bad[0], op, None, new, None, bad[1:])


def check_transition(
    old: int,
    new: int,
    op: str,
    ctx: Mapping[str, bool] | None = None,
    origins: Mapping[int, Site] | None = None,
) -> None:
    """Raise `VmaFlagError` if a driver's change `old -> new` breaks any rule."""
    if not STATE.on:
        return
    bad = violations(old, new, ctx)
    if bad:
        _raise(bad[0], op, old, new, origins, bad[1:])


# --------------------------------------------------------------------------------------
# Operations.


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
    guard: Expr = Lit(True)
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
        "set_dontexpand", "VmAreaNew.set_dontexpand()", _set(F.DONTEXPAND), actor="driver", checked=True
    ),
    VmaOp("set_dontcopy", "VmAreaNew.set_dontcopy()", _set(F.DONTCOPY), actor="driver", checked=True),
    VmaOp("set_dontdump", "VmAreaNew.set_dontdump()", _set(F.DONTDUMP), actor="driver", checked=True),
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
        source="mm/madvise.c: if (!is_vm_hugetlb_page(vma) && new_flags & VM_SPECIAL) return -EINVAL",
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
        "vma_can_userfault() and VM_MAYWRITE (one errno here; the kernel says EPERM for the latter)",
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
        source="mm/memory.c vm_insert_page(): if (!(vma->vm_flags & VM_MIXEDMAP)) vm_flags_set(...)",
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
            raise KernelError(EINVAL, f"{op.name}: {prm.name}={v:#x} has bits outside {prm.mask:#x}")
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


# --------------------------------------------------------------------------------------
# Merging.

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

INSTALLS_PTES: frozenset[str] = frozenset({"vm_insert_page", "v6_vm_insert_page", "remap_pfn_range"})
"""Operations after which the VMA has PTEs installed: the `ptes_installed` context fact
becomes (and stays) true. "Clearing VM_MIXEDMAP after calling vm_insert_page()" and
"set VM_PFNMAP (only valid if ... no PTEs have been installed yet)" refer to it."""
