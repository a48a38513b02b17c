"""One VMA's flags as a transition system built from the rule table: the definitions.

A `System` says how a VMA comes to exist (an initial operation such as `mmap`, then
the driver's mmap handler: a fixed sequence of `Call`s and `RefuseIf` checks) and what
may happen to it afterwards (any sequence of operations, each any number of times);
each operation is a `proofs.step.Step`. A `Property` says what must never happen (bad
states or bad steps), and a `Candidate` is a conjunct an inductive invariant may hold.
The proofs leave the ghost fact "a PTE was installed" free in the pre-state of every
step, so they hold whatever the runtime reports about PTEs (a zap may remove them); the
bounded checker tracks it, so that its counterexamples are runs the kernel can take.

The pieces that decide a `Property` live apart, one thing each: `proofs.unroll` encodes
a system's runs, `proofs.trace` renders a model as a readable run, `proofs.bmc` is the
bounded model checker, `proofs.houdini` the inductive prover, and `proofs.decide` runs
both and reports a `proofs.outcome.Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ownership.include import vm_flags as F
from ownership.include import vma_ops as O

from .step import Step, SymState
from .z3api import Bool

__all__ = ["Call", "Candidate", "DriverStep", "Property", "RefuseIf", "System"]


@dataclass(frozen=True)
class Call:
    """The mmap handler calls an operation; if it fails, so does the mmap."""

    op: str


@dataclass(frozen=True)
class RefuseIf:
    """The mmap handler refuses the VMA when any bit of `mask` is set (`query` names
    the `VmAreaNew` query, e.g. `writable()`)."""

    mask: int
    query: str


DriverStep = Call | RefuseIf


@dataclass(frozen=True)
class System:
    """How a VMA is created and what may happen to it afterwards.

    Invariants: `init_ops` is not empty (checked when the system is encoded); the
    handler's `Call`s and `ops` name operations of the table.
    """

    init_ops: tuple[O.VmaOp, ...]
    handler: tuple[DriverStep, ...] = ()
    ops: tuple[O.VmaOp, ...] = ()
    init_facts: tuple[tuple[str, bool], ...] = ()
    """Context facts fixed for the initial operation (a driver's mmap handler only runs
    for a mapping of the driver's file: `("file", True)`)."""


@dataclass(frozen=True)
class Property:
    """What must never happen: a bad state, or a bad step (`Step` with its op).

    Invariants: at least one of `bad_state`, `bad_step` and `bad_created` is set.
    """

    label: str
    bad_state: Callable[[SymState], Bool] | None = None
    bad_step: Callable[[Step], Bool] | None = None
    bad_created: Callable[[SymState], Bool] | None = None
    """A state that must not be the result of creating the VMA (mmap plus handler)."""
    attempt: Callable[[Step], Bool] | None = None
    """Vacuity guard for a step property: some reachable state must let an operation
    be *attempted* (guard and parameters satisfied, before the runtime check) with this
    formula true, or the proof would hold for want of a case."""
    headline: Callable[[int, int], str] = field(default=lambda pre, post: F.names(post))


@dataclass(frozen=True)
class Candidate:
    """A conjunct the invariant may contain."""

    label: str
    holds: Callable[[SymState], Bool]
