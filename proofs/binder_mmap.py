"""Claims 3 and 7: Binder's mmap handler, and the "common mistake" it avoids.

Rust Binder's `Process::mmap` (drivers/android/binder/process.rs) does, on the new
VMA: `vma.try_clear_maywrite().map_err(|_| EPERM)?; vma.set_dontcopy();
vma.set_mixedmap();`. The handler is a sequence of the table's operations; the VMA is
created by any `mmap` the table allows, then the handler runs (a failing step fails
the mmap). Claim 3 proves where that leaves the flags and that nothing afterwards -
`mprotect` in particular, but also every other operation of the table - makes the
mapping writable. Claim 7 is the driver that only *checks* VM_WRITE: a later
`mprotect(PROT_WRITE)` succeeds.
"""

from __future__ import annotations

from ownership.include import vm_flags as F
from ownership.include import vma_ops as O

from .claim import Check, Claim, Expect
from .decide import decide
from .invariant import state_candidates
from .outcome import Outcome
from .step import SymState
from .system import Call, Candidate, DriverStep, Property, RefuseIf, System
from .table import Table, drop_guard
from .z3api import Bool, and_, has, not_

__all__ = [
    "BINDER_HANDLER",
    "BINDER_MMAP_POSTCONDITION",
    "BINDER_NEVER_WRITABLE",
    "CHECK_WRITE_ONLY_HANDLER",
    "CLAIMS",
    "WRITE_CHECK_WITHOUT_MAYWRITE",
]

BINDER_HANDLER: tuple[DriverStep, ...] = (
    Call("try_clear_maywrite"),
    Call("set_dontcopy"),
    Call("set_mixedmap"),
)
"""`Process::mmap`: refuse VM_WRITE and clear VM_MAYWRITE, set DONTCOPY, set MIXEDMAP."""

CHECK_WRITE_ONLY_HANDLER: tuple[DriverStep, ...] = (
    RefuseIf(F.WRITE, "writable()"),
    Call("set_dontcopy"),
    Call("set_mixedmap"),
)
"""The same handler written with `if vma.writable() { return Err(EINVAL) }` instead of
`try_clear_maywrite()`: VM_WRITE is checked, VM_MAYWRITE stays."""

_POST_ATOMS: tuple[tuple[str, int, bool], ...] = (
    ("VM_MIXEDMAP", F.MIXEDMAP, True),
    ("VM_DONTCOPY", F.DONTCOPY, True),
    ("!VM_WRITE", F.WRITE, False),
    ("!VM_MAYWRITE", F.MAYWRITE, False),
)
"""The postcondition `MIXEDMAP & DONTCOPY & !WRITE & !MAYWRITE`, one atom per bit."""


def _system(t: Table, handler: tuple[DriverStep, ...], ops: tuple[O.VmaOp, ...]) -> System:
    """A mapping of the driver's file (the only kind its mmap handler sees)."""
    return System(t.initial_ops, handler, ops, init_facts=(("file", True),))


def _atom(label: str, bit: int, want: bool) -> Candidate:
    def holds(s: SymState) -> Bool:
        h = has(s.flags, bit)
        return h if want else not_(h)

    return Candidate(label, holds)


def _postcondition(s: SymState) -> Bool:
    return and_(*[_atom(*a).holds(s) for a in _POST_ATOMS])


def _post_check(handler: tuple[DriverStep, ...]) -> Check:
    def check(t: Table, hint: Expect) -> Outcome:
        prop = Property(
            "outside MIXEDMAP & DONTCOPY & !WRITE & !MAYWRITE",
            bad_created=lambda s: not_(_postcondition(s)),
            headline=lambda pre, post: f"{F.names(post & (F.WRITE | F.MAYWRITE))} left set",
        )
        return decide(
            t, _system(t, handler, ()), prop, (), expect_holds=hint == "holds", show=F.MAYWRITE
        )

    return check


def _never_writable(handler: tuple[DriverStep, ...], ops_filter: str | None) -> Check:
    def check(t: Table, hint: Expect) -> Outcome:
        ops = t.step_ops if ops_filter is None else (t.op(ops_filter),)
        cands = [*state_candidates(t), *(_atom(*a) for a in _POST_ATOMS)]
        prop = Property(
            "writable (VM_WRITE)",
            bad_state=lambda s: has(s.flags, F.WRITE),
            headline=lambda pre, post: F.names(post & F.WRITE),
        )
        return decide(
            t,
            _system(t, handler, ops),
            prop,
            cands,
            expect_holds=hint == "holds",
            show=F.WRITE,
        )

    return check


BINDER_MMAP_POSTCONDITION = Claim(
    name="binder_mmap_postcondition",
    expect="holds",
    doc="""Binder's mmap ends in MIXEDMAP & DONTCOPY & !WRITE & !MAYWRITE.

    "1. clear VM_MAYWRITE after checking VM_WRITE is unset" (Jann Horn, review of v6);
    Process::mmap: "vma.try_clear_maywrite().map_err(|_| EPERM)?; vma.set_dontcopy();
    vma.set_mixedmap();". For every VMA mmap can create on which the handler succeeds
    (there are such VMAs: checked), the flags end with VM_MIXEDMAP and VM_DONTCOPY set
    and VM_WRITE and VM_MAYWRITE clear.""",
    check=_post_check(BINDER_HANDLER),
    rules=("write-maywrite", "may-only-clear"),
)

BINDER_NEVER_WRITABLE = Claim(
    name="binder_never_writable",
    expect="holds",
    doc="""After Binder's mmap, no sequence of mprotect (or any other) calls reaches VM_WRITE.

    "clear VM_MAYWRITE after checking VM_WRITE is unset ... once cleared it can never
    be set again" (Jann Horn, review of v6; rust/kernel/mm/virt.rs try_clear_maywrite).
    Unbounded: from every state Binder's handler leaves, through any sequence of the
    table's operations (mprotect with any PROT bits, madvise, fork, validated set_flags,
    ...), VM_WRITE stays clear. The inductive invariant is found from the state rules
    and the postcondition's atoms (VM_DONTCOPY is dropped: MADV_DOFORK clears it).""",
    check=_never_writable(BINDER_HANDLER, None),
    rules=("write-maywrite", "may-only-clear"),
)

WRITE_CHECK_WITHOUT_MAYWRITE = Claim(
    name="write_check_without_maywrite",
    expect="fails",
    doc="""Checking VM_WRITE without clearing VM_MAYWRITE lets mprotect make it writable.

    "you might want to introduce higher-level helpers instead, so that a driver author
    doesn't blunder by checking VM_WRITE without also clearing VM_MAYWRITE, which is a
    somewhat common mistake that IIRC has led to several security bugs in the past"
    (Jann Horn, review of v6). The handler refuses writable() VMAs, sets DONTCOPY and
    MIXEDMAP; a later mprotect(PROT_WRITE) succeeds.""",
    check=_never_writable(CHECK_WRITE_ONLY_HANDLER, "mprotect"),
    rules=("write-maywrite",),
)

CLAIMS: tuple[Claim, ...] = (
    BINDER_MMAP_POSTCONDITION,
    BINDER_MMAP_POSTCONDITION.variant(
        "without-try_clear_maywrite",
        "the handler without try_clear_maywrite()",
        _post_check(BINDER_HANDLER[1:]),
    ),
    BINDER_NEVER_WRITABLE,
    BINDER_NEVER_WRITABLE.twin(drop_guard("mprotect")),
    WRITE_CHECK_WITHOUT_MAYWRITE,
)
