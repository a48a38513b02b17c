"""The VMA flag rules, stated once: evaluated by the simulated kernel, proved in `proofs/`.

Every rule about `vm_flags` that the mm/vma review (seed 003: Jann Horn, Boqun Feng,
Alice Ryhl) and include/linux/mm.h state lives in `RULES`, as a formula of
`ownership.include.vma_expr`. "state" rules (`STATE_RULES`) hold for every VMA at every
moment; "transition" rules (`TRANSITION_RULES`) constrain a driver's change `old -> new`.
`violations` lists the rules a value or change breaks; `check_state` and
`check_transition` raise `VmaFlagError` naming the first, in the style of a kernel splat.
No rule is written twice: `proofs/` reads the same objects.

Lock order: no locks; the tables are immutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..config import STATE
from ..errors import VmaFlagError
from ..site import Site, here
from . import vm_flags as F
from .vma_expr import (
    MASK64,
    NEW,
    OLD,
    And,
    BAnd,
    BNot,
    Const,
    Ctx,
    Eq,
    Expr,
    Has,
    Implies,
    Not,
    evaluate,
)

__all__ = [
    "RULES",
    "RULES_BY_ID",
    "STATE_RULES",
    "TRANSITION_RULES",
    "VmaRule",
    "check_state",
    "check_transition",
    "violations",
]


def _bits_set(mask: int) -> Expr:
    """Bits of `mask` set in `new` that were clear in `old`."""
    return BAnd(BAnd(NEW, BNot(OLD)), Const(mask))


def _bits_cleared(mask: int) -> Expr:
    return BAnd(BAnd(OLD, BNot(NEW)), Const(mask))


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


def violations(old: int | None, new: int, ctx: Mapping[str, bool] | None = None) -> list[VmaRule]:
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
