"""Claims 5 and 6: the v6 API was unsound, reproduced mechanically from the review.

The v6 patch gave drivers `VmAreaMut::set_flags(flags: usize)` (an unchecked write of
any value) and `VmAreaMut::vm_insert_page` under the mmap write lock (C's
`vm_insert_page` then sets VM_MIXEDMAP itself). `vma_ops.V6_OPS` records both. Each
claim below runs the bounded model checker over the v6 API (the table's operations
with `set_flags` and `vm_insert_page` replaced by their v6 versions) and must find the
state or step Jann Horn's review describes; the counterexample prints the operation
sequence with flag names.
"""

from __future__ import annotations

from ownership.include import vm_flags as F

from .claim import Check, Claim, Expect
from .decide import decide
from .invariant import state_candidates
from .outcome import Outcome
from .step import Step, SymState, rule_holds
from .system import Property, System
from .table import Table
from .z3api import Bool, and_, bool_val, has, not_

__all__ = [
    "CLAIMS",
    "V6_HUGETLB_BY_DRIVER",
    "V6_INSERT_PAGE_UFFD",
    "V6_MIXEDMAP_CLEARED_AFTER_INSERT",
    "V6_MIXEDMAP_PFNMAP",
    "V6_WRITE_WITHOUT_MAYWRITE",
]


def _v6_system(t: Table) -> System:
    return System(t.initial_ops, (), t.v6_api())


def _state_rule_broken(rule_id: str, shown: int) -> Check:
    def check(t: Table, hint: Expect) -> Outcome:
        rule = t.rule(rule_id)

        def bad(s: SymState) -> Bool:
            return not_(rule_holds(rule, s.flags, s.flags))

        prop = Property(
            f"breaking {rule_id}",
            bad_state=bad,
            headline=lambda pre, post: F.names(post & shown),
        )
        return decide(
            t, _v6_system(t), prop, state_candidates(t), expect_holds=hint == "holds", show=shown
        )

    return check


V6_MIXEDMAP_PFNMAP = Claim(
    name="v6_set_flags_mixedmap_pfnmap",
    expect="fails",
    doc="""The v6 set_flags(flags: usize) reaches VM_MIXEDMAP|VM_PFNMAP.

    "There are ways to set VMA flags that are dangerous and invalid; I think
    VM_PFNMAP|VM_MIXEDMAP would be an example" (Jann Horn, review of v6).""",
    check=_state_rule_broken("mixedmap-pfnmap", F.MIXEDMAP | F.PFNMAP),
    rules=("mixedmap-pfnmap",),
)

V6_WRITE_WITHOUT_MAYWRITE = Claim(
    name="v6_set_flags_write_without_maywrite",
    expect="fails",
    doc="""The v6 set_flags(flags: usize) reaches VM_WRITE without VM_MAYWRITE.

    "you'd have to at least allowlist which bits the driver may clear and which bits it
    may set" (Jann Horn, review of v6); mprotect relies on VM_MAYWRITE >> 4 ==
    VM_WRITE.""",
    check=_state_rule_broken("write-maywrite", F.WRITE | F.MAYWRITE),
    rules=("write-maywrite",),
)


def _driver_step_breaks(rule_id: str, shown: int, needs_ptes: bool, what: str) -> Check:
    def check(t: Table, hint: Expect) -> Outcome:
        rule = t.rule(rule_id)

        def bad_step(st: Step) -> Bool:
            broken = not_(rule_holds(rule, st.pre.flags, st.post.flags, st.ctx))
            parts = [bool_val(st.op.actor == "driver"), broken]
            if needs_ptes:
                parts.append(st.pre.ptes)
            return and_(*parts)

        prop = Property(
            what,
            bad_step=bad_step,
            headline=lambda pre, post: f"{F.names(pre & shown)} -> {F.names(post & shown)}",
        )
        return decide(
            t, _v6_system(t), prop, state_candidates(t), expect_holds=hint == "holds", show=shown
        )

    return check


V6_HUGETLB_BY_DRIVER = Claim(
    name="v6_set_flags_hugetlb",
    expect="fails",
    doc="""The v6 set_flags(flags: usize) lets a driver set VM_HUGETLB.

    "VM_HUGETLB is also a flag you really shouldn't be touching from driver code, that
    would cause type confusion through a bad cast in unmap_single_vma ->
    __unmap_hugepage_range -> hstate_vma -> hstate_file -> hstate_inode" (Jann Horn,
    review of v6).""",
    check=_driver_step_breaks(
        "hugetlb-untouchable", F.HUGETLB, False, "change VM_HUGETLB from a driver"
    ),
    rules=("hugetlb-untouchable",),
)

V6_MIXEDMAP_CLEARED_AFTER_INSERT = Claim(
    name="v6_set_flags_clear_mixedmap_after_insert",
    expect="fails",
    doc="""The v6 set_flags(flags: usize) clears VM_MIXEDMAP after a page was inserted.

    "Clearing VM_MIXEDMAP after calling vm_insert_page() might be another one" (Jann
    Horn, review of v6).""",
    check=_driver_step_breaks(
        "mixedmap-sticky", F.MIXEDMAP, True, "clear VM_MIXEDMAP with PTEs installed"
    ),
    rules=("mixedmap-sticky",),
)


def _check_insert_page_uffd(t: Table, hint: Expect) -> Outcome:
    # The safe API with only vm_insert_page taken from v6: set_flags stays validated,
    # so the counterexample is vm_insert_page's own doing.
    ops = tuple(t.op("v6_vm_insert_page") if o.name == "vm_insert_page" else o for o in t.step_ops)
    rule = t.rule("uffd-mixedmap")
    shown = F.MIXEDMAP | F.UFFD_MASK

    def made_mixedmap(st: Step) -> Bool:
        # The offending step: v6_vm_insert_page silently turns VM_MIXEDMAP on, and the
        # result breaks the table's uffd-mixedmap rule.
        return and_(
            bool_val(st.op.name == "v6_vm_insert_page"),
            not_(has(st.pre.flags, F.MIXEDMAP)),
            not_(rule_holds(rule, st.post.flags, st.post.flags)),
        )

    prop = Property(
        "make a VMA with a userfaultfd context VM_MIXEDMAP",
        bad_step=made_mixedmap,
        headline=lambda pre, post: F.names(post & shown),
    )
    return decide(
        t,
        System(t.initial_ops, (), ops),
        prop,
        state_candidates(t),
        expect_holds=hint == "holds",
        show=shown,
    )


V6_INSERT_PAGE_UFFD = Claim(
    name="v6_vm_insert_page_uffd",
    expect="fails",
    doc="""The v6 vm_insert_page makes a userfaultfd-registered VMA VM_MIXEDMAP.

    "I think nothing would immediately crash if you called vm_insert_page() on a VMA
    that does not yet have VM_MIXEDMAP while holding the mmap lock in write mode; but
    that would permit weird scenarios where you could, for example, have a userfaultfd
    context associated with a VMA which becomes VM_MIXEDMAP, while normally you can't
    attach userfaultfd contexts to VM_MIXEDMAP VMAs" (Jann Horn, review of v6).""",
    check=_check_insert_page_uffd,
    rules=("uffd-mixedmap",),
)

CLAIMS: tuple[Claim, ...] = (
    V6_MIXEDMAP_PFNMAP,
    V6_WRITE_WITHOUT_MAYWRITE,
    V6_HUGETLB_BY_DRIVER,
    V6_MIXEDMAP_CLEARED_AFTER_INSERT,
    V6_INSERT_PAGE_UFFD,
)
