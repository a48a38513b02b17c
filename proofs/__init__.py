"""proofs: Z3 proves the VMA flag rules of `ownership` and Binder's allocator and offset
checks, and shows why v6 was unsound.

`ownership.include` states every VMA flag rule and every flag-changing operation
once, as data; the runtime evaluates it concretely. This package interprets the same
objects as Z3 formulas over 64-bit `vm_flags` with the real x86-64 bit values
(`encode`), builds one VMA's life as a transition system from the operation table
(`step` encodes one operation, `system` defines the systems and properties, `unroll`
encodes their runs), decides properties by bounded model checking (`bmc`) and by an
inductive invariant found by Houdini (`houdini`), both run by `decide`, with readable
counterexample traces (`trace`), and runs named claims (`claim`):

* must hold (unbounded, by inductive invariants): the safe API keeps every state rule
  (`invariant`); VM_MIXEDMAP and VM_PFNMAP exclude each other whichever comes first
  (`mixedmap`); Binder's mmap handler leaves MIXEDMAP & DONTCOPY & !WRITE & !MAYWRITE
  and nothing makes the mapping writable later (`binder_mmap`); VM_SPECIAL VMAs never
  merge and splits keep every piece within the rules (`merge`);
* must fail with a counterexample: the v6 `set_flags(usize)` and write-locked
  `vm_insert_page` (`v6`), and a driver that checks VM_WRITE without clearing
  VM_MAYWRITE (`binder_mmap`).

Beyond the flags, the Binder driver's own allocator and offset checks: the pure cores
`binder.range_core` and `binder.validate` (the only binder modules this package may
import; they import nothing) are run symbolically on every path (`symexec`), proving
that ranges stay disjoint and inside the mapping, the oneway budget exact and spam
detected after the insert (`binder_alloc`), and that accepted objects and fixups stay
inside the data and their parents (`binder_offsets`); the historical mistakes put back
(CVE-2020-0041, 4df153652cc4, CVE-2026-43435, CVE-2026-23194) yield their exploits.

Every must-hold claim has mutated twins (`table.Mutation`) that must fail, so no
proof holds for want of a precondition; `crosscheck` checks that Z3 and the concrete
evaluator agree. Run `python -m proofs` (see `proofs.__main__`).
"""

from __future__ import annotations

from . import binder_alloc, binder_mmap, binder_offsets, invariant, merge, mixedmap, v6
from .claim import Claim, Result, run_claims
from .outcome import Outcome
from .table import TABLE, Mutation, Table

__all__ = [
    "CLAIMS",
    "TABLE",
    "Claim",
    "Mutation",
    "Outcome",
    "Result",
    "Table",
    "claim",
    "proved_rules",
    "run_claims",
]

CLAIMS: tuple[Claim, ...] = (
    *invariant.CLAIMS,
    *mixedmap.CLAIMS,
    *binder_mmap.CLAIMS,
    *merge.CLAIMS,
    *v6.CLAIMS,
    *binder_alloc.CLAIMS,
    *binder_offsets.CLAIMS,
)
"""Every claim and twin, in the order `python -m proofs` runs them."""


def claim(name: str) -> Claim:
    """The claim called `name` (KeyError if there is none)."""
    for c in CLAIMS:
        if c.name == name:
            return c
    raise KeyError(f"no claim {name!r}")


def proved_rules() -> dict[str, tuple[str, ...]]:
    """For each rule id, the must-hold claims that cover it (without running Z3).

    This is what a contract review reads to say a rule is "proved in proofs/".
    """
    out: dict[str, list[str]] = {}
    for c in CLAIMS:
        if c.expect == "holds":
            for r in c.rules:
                out.setdefault(r, []).append(c.name)
    return {r: tuple(names) for r, names in out.items()}
