"""Claim 2: VM_MIXEDMAP and VM_PFNMAP exclude each other, whichever is set first.

Upstream `VmaNew::set_mixedmap` sets the bit without a check, with the justification
"We don't yet provide a way to set VM_PFNMAP, so this cannot put the flags in an
invalid state". The model does provide ways to set VM_PFNMAP (`set_pfnmap`, Jann
Horn's item 3; `remap_pfn_range`; a validated `set_flags`), so the justification
becomes: every operation that turns VM_PFNMAP on refuses a VM_MIXEDMAP VMA (by its
guard or by the runtime check), and `set_mixedmap`'s own check refuses a VM_PFNMAP
one. The twins remove those checks one at a time.
"""

from __future__ import annotations

from ownership.include import vm_flags as F

from .claim import Claim, Expect
from .decide import decide
from .invariant import state_candidates
from .outcome import Outcome
from .step import Step, SymState, encode_op, rule_holds
from .system import Property, System
from .table import Table, drop_check, drop_guard
from .z3api import Bool, Solver, and_, bool_val, bool_var, bv_var, has, not_

__all__ = ["CLAIMS", "SET_MIXEDMAP_SOUND", "SET_PFNMAP_REFUSES_MIXEDMAP"]


def _sets_pfnmap_on_mixedmap(st: Step) -> Bool:
    """The step turns VM_PFNMAP on while VM_MIXEDMAP is set."""
    return and_(
        has(st.pre.flags, F.MIXEDMAP),
        not_(has(st.pre.flags, F.PFNMAP)),
        has(st.post.flags, F.PFNMAP),
    )


def _who_refuses(t: Table) -> str:
    """For each operation that can turn VM_PFNMAP on, what refuses a VM_MIXEDMAP VMA."""
    pre = SymState(bv_var("w.old"), bool_var("w.ptes"))
    parts: list[str] = []
    s = Solver()
    s.add(not_(has(pre.flags, F.PFNMAP)))
    for op in t.step_ops:
        st = encode_op(t, op, pre, f"w.{op.name}")
        with s.scope():
            s.add(st.guard, st.domain, has(st.post.flags, F.PFNMAP))
            if s.check() != "sat":
                continue
            s.add(has(pre.flags, F.MIXEDMAP))
            by = "runtime check" if s.check() == "sat" else "guard"
        parts.append(f"{op.name} ({by})")
    return "VM_PFNMAP setters refusing VM_MIXEDMAP: " + ", ".join(parts)


def _check_sound(t: Table, hint: Expect) -> Outcome:
    pfn_rule = t.rule("mixedmap-pfnmap")

    def bad(s: SymState) -> Bool:
        return not_(rule_holds(pfn_rule, s.flags, s.flags))

    prop = Property(
        "VM_MIXEDMAP|VM_PFNMAP, or VM_PFNMAP set on a VM_MIXEDMAP VMA",
        bad_state=bad,
        bad_step=_sets_pfnmap_on_mixedmap,
        attempt=lambda st: and_(
            has(st.pre.flags, F.MIXEDMAP),
            has(st.post.flags, F.PFNMAP),
            not_(has(st.pre.flags, F.PFNMAP)),
        ),
        headline=lambda pre, post: F.names(post & (F.MIXEDMAP | F.PFNMAP)),
    )
    out = decide(
        t,
        System(t.initial_ops, (), t.step_ops),
        prop,
        state_candidates(t),
        expect_holds=hint == "holds",
        show=F.MIXEDMAP | F.PFNMAP,
    )
    if out.verdict == "proved":
        return Outcome(out.verdict, None, f"{out.detail}; {_who_refuses(t)}", out.queries)
    return out


SET_MIXEDMAP_SOUND = Claim(
    name="set_mixedmap_sound",
    expect="holds",
    doc="""set_mixedmap is sound: nothing can have set VM_PFNMAP first without the check.

    "4. set VM_MIXEDMAP (only valid if not VM_PFNMAP)"; "3. set VM_PFNMAP (only valid
    if not VM_MIXEDMAP and no PTEs have been installed yet)" (Jann Horn, review of v6).
    Upstream: "We don't yet provide a way to set VM_PFNMAP, so this cannot put the flags
    in an invalid state" (VmaNew::set_mixedmap). Over every reachable state: no
    operation turns VM_PFNMAP on in a VM_MIXEDMAP VMA (each setter's guard or runtime
    check refuses it; the detail names which), and VM_MIXEDMAP|VM_PFNMAP is never
    reached, so set_mixedmap never finds VM_PFNMAP set behind a check's back.""",
    check=_check_sound,
    rules=("mixedmap-pfnmap",),
)


def _check_refuses(t: Table, hint: Expect) -> Outcome:
    def attempt(st: Step) -> Bool:
        return and_(bool_val(st.op.name == "set_pfnmap"), has(st.pre.flags, F.MIXEDMAP))

    def bad_step(st: Step) -> Bool:
        # A step is only taken when enabled: a succeeding set_pfnmap on a MIXEDMAP VMA.
        return attempt(st)

    prop = Property(
        "let set_pfnmap succeed on a VM_MIXEDMAP VMA",
        bad_step=bad_step,
        attempt=attempt,
        headline=lambda pre, post: (
            f"set_pfnmap accepted on {F.names(pre & (F.MIXEDMAP | F.PFNMAP))}"
        ),
    )
    return decide(
        t,
        System(t.initial_ops, (), t.step_ops),
        prop,
        state_candidates(t),
        expect_holds=hint == "holds",
        show=F.MIXEDMAP | F.PFNMAP,
    )


SET_PFNMAP_REFUSES_MIXEDMAP = Claim(
    name="set_pfnmap_refuses_mixedmap",
    expect="holds",
    doc="""set_pfnmap refuses a VM_MIXEDMAP VMA.

    "3. set VM_PFNMAP (only valid if not VM_MIXEDMAP and no PTEs have been installed
    yet)" (Jann Horn, review of v6). In every reachable state where set_pfnmap is
    attempted on a VM_MIXEDMAP VMA (such states exist: checked), it does not succeed.""",
    check=_check_refuses,
    rules=("mixedmap-pfnmap", "pfnmap-no-ptes"),
)

CLAIMS: tuple[Claim, ...] = (
    SET_MIXEDMAP_SOUND,
    SET_MIXEDMAP_SOUND.twin(drop_check("set_mixedmap")),
    SET_MIXEDMAP_SOUND.twin(drop_guard("remap_pfn_range")),
    SET_PFNMAP_REFUSES_MIXEDMAP,
    SET_PFNMAP_REFUSES_MIXEDMAP.twin(drop_check("set_pfnmap")),
)
