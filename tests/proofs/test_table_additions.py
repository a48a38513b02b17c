"""The operations and predicates proofs/ appended to `vma_rules`, at run time.

`userfaultfd_register`, `vm_insert_page`, `split_vma`, `MERGE_RESULT` and
`INSTALLS_PTES` were added to the rule table for claims 1, 4 and 6. The runtime
evaluates them with `apply` like every other entry: a refused operation raises its
errno (or leaves the VMA alone) and the allowed pattern changes exactly what the
kernel changes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ownership.errors import EINVAL
from ownership.include import vm_flags as F
from ownership.mm import vma_rules as R
from tests.expect import raises_errno

ANON_RW = F.READ | F.WRITE | F.MAYREAD | F.MAYWRITE | F.MAYEXEC
BINDER = F.READ | F.MAYREAD | F.MAYEXEC | F.DONTCOPY | F.MIXEDMAP
UFFD = R.OPS_BY_NAME["userfaultfd_register"]


def test_userfaultfd_register_on_anonymous_memory() -> None:
    new = R.apply(UFFD, ANON_RW, params={"mode": F.UFFD_MISSING}, ctx={"uffd_capable": True})
    assert new == ANON_RW | F.UFFD_MISSING


def test_userfaultfd_register_refuses_a_mixedmap_vma() -> None:
    flags = BINDER | F.MAYWRITE
    with raises_errno(EINVAL):
        R.apply(UFFD, flags, params={"mode": F.UFFD_MISSING}, ctx={"uffd_capable": True})


def test_userfaultfd_register_needs_maywrite_and_a_capable_vma() -> None:
    with raises_errno(EINVAL):
        R.apply(
            UFFD,
            ANON_RW & ~F.MAYWRITE & ~F.WRITE,
            params={"mode": F.UFFD_WP},
            ctx={"uffd_capable": True},
        )
    with raises_errno(EINVAL):
        R.apply(UFFD, ANON_RW, params={"mode": F.UFFD_WP}, ctx={"uffd_capable": False})


@given(mode=st.integers(0, F.VM_FLAGS_MAX).filter(lambda m: m & ~F.UFFD_MASK))
def test_userfaultfd_register_mode_outside_uffd_bits_is_einval(mode: int) -> None:
    with raises_errno(EINVAL):
        R.apply(UFFD, ANON_RW, params={"mode": mode}, ctx={"uffd_capable": True})


def test_vm_insert_page_needs_mixedmap_and_changes_no_flag() -> None:
    op = R.OPS_BY_NAME["vm_insert_page"]
    assert R.apply(op, BINDER) == BINDER
    # Without VM_MIXEDMAP there is no VmAreaMixedMap to call it on: nothing happens.
    assert R.apply(op, BINDER & ~F.MIXEDMAP) is None
    assert "vm_insert_page" in R.INSTALLS_PTES


def test_split_vma_pieces_keep_the_flags() -> None:
    assert R.apply(R.OPS_BY_NAME["split_vma"], BINDER) == BINDER


def test_every_pte_installing_operation_exists() -> None:
    names = {op.name for op in (*R.OPS, *R.V6_OPS)}
    assert names >= R.INSTALLS_PTES


def test_merge_keeps_softdirty_and_never_joins_special() -> None:
    a = ANON_RW
    b = ANON_RW | F.SOFTDIRTY
    assert R.can_merge(a, b)
    assert R.evaluate(R.MERGE_RESULT, {"a": a, "b": b}) == b
    assert not R.can_merge(BINDER, BINDER)
    assert not R.can_merge(a, a | F.DONTCOPY)
