"""What the proofs conclude is what the runtime does, on random runs.

Hypothesis state machines drive one VMA through the runtime's concrete
`vma_rules.apply` (the function the simulated kernel uses), with the table's
operations, random parameters and random context facts. The runtime refuses some
steps (`KernelError` from a guard, `VmaFlagError` from the rule check) and those
leave the flags as they were. At every step the claims' conclusions must be
observed: the state rules hold (claim 1), and a VMA set up by Binder's handler is
never writable (claim 3).
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ownership.errors import EACCES, KernelError, VmaFlagError
from ownership.include import vm_flags as F
from ownership.mm import vma_rules as R
from proofs import TABLE

STEP_OPS = TABLE.step_ops
DRIVER_BITS = [1 << i for i in range(F.VM_FLAGS_BITS) if (1 << i) & F.KNOWN]


class OneVma(RuleBasedStateMachine):
    """A VMA created by `mmap`, then changed by any operation of the table."""

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0
        self.ptes = False
        self.created = False
        self.refused = 0

    def _mmap(self, prot: int, facts: dict[str, bool]) -> None:
        try:
            self.flags = R.apply(TABLE.op("mmap"), 0, params={"prot": prot}, ctx=facts) or 0
        except KernelError as e:
            # do_mmap: a read-only file cannot back a writable shared mapping.
            assert e.errno == EACCES
            return
        self.created = True

    @precondition(lambda self: not self.created)
    @rule(
        prot=st.integers(0, 7),
        shared=st.booleans(),
        file=st.booleans(),
        file_writable=st.booleans(),
        noreserve=st.booleans(),
        locked=st.booleans(),
    )
    def create(
        self,
        prot: int,
        shared: bool,
        file: bool,
        file_writable: bool,
        noreserve: bool,
        locked: bool,
    ) -> None:
        facts = {
            "shared": shared,
            "file": file,
            "file_writable": file_writable,
            "noreserve": noreserve,
            "locked": locked,
        }
        self._mmap(prot, facts)

    @precondition(lambda self: self.created)
    @rule(op=st.sampled_from(STEP_OPS), data=st.data())
    def step(self, op: R.VmaOp, data: st.DataObject) -> None:
        params: dict[str, int] = {}
        for p in op.params:
            if p.name == "value":
                # set_flags: the current flags with a few driver-visible bits toggled.
                toggle = data.draw(st.lists(st.sampled_from(DRIVER_BITS), max_size=3))
                v = self.flags
                for b in toggle:
                    v ^= b
                params[p.name] = v & p.mask
            else:
                params[p.name] = data.draw(st.integers(0, F.VM_FLAGS_MAX)) & p.mask
        ctx = {c: data.draw(st.booleans(), label=c) for c in op.ctx}
        ctx["ptes_installed"] = self.ptes
        ctx["in_use"] = data.draw(st.booleans(), label="in_use")
        before = self.flags
        try:
            new = R.apply(op, self.flags, params=params, ctx=ctx)
        except (KernelError, VmaFlagError):
            # Refused before taking effect.
            assert self.flags == before
            self.refused += 1
            return
        if new is None:
            return
        self.flags = new
        if op.name in TABLE.installs_ptes:
            self.ptes = True

    @invariant()
    def state_rules_hold(self) -> None:
        if self.created:
            broken = [r.id for r in R.violations(None, self.flags)]
            assert not broken, f"{F.names(self.flags)} breaks {broken}"


class BinderVma(OneVma):
    """A VMA of the Binder file after `Process::mmap`'s handler."""

    @precondition(lambda self: not self.created)
    @rule(prot=st.integers(0, 7), shared=st.booleans(), file_writable=st.booleans())
    def create(self, prot: int, shared: bool, file_writable: bool) -> None:
        facts = {"shared": shared, "file": True, "file_writable": file_writable}
        self._mmap(prot, facts)
        if not self.created:
            return
        try:
            for name in ("try_clear_maywrite", "set_dontcopy", "set_mixedmap"):
                self.flags = R.apply(TABLE.op(name), self.flags) or self.flags
        except KernelError:
            # try_clear_maywrite refuses a writable mapping: binder's mmap fails (EPERM).
            self.created = False

    @invariant()
    def never_writable(self) -> None:
        if self.created:
            assert not self.flags & (F.WRITE | F.MAYWRITE), F.names(self.flags)
            assert self.flags & F.MIXEDMAP


TestOneVma = OneVma.TestCase
TestOneVma.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestBinderVma = BinderVma.TestCase
TestBinderVma.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
