"""`ownership.testing`: each strategy generates what it says, and drives a real mapping."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Kernel
from ownership.bindings.consts import MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE
from ownership.include import vm_flags as F
from ownership.include.vma_rules import STATE_RULES, violations
from ownership.testing import (
    KNOWN_VM_BITS,
    arbitrary_vma_flags,
    user_addresses,
    user_buffers,
    user_ranges,
    vma_flag_changes,
    vma_flags,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(vma_flags())
def test_valid_vma_flags_keep_every_state_rule(v: int) -> None:
    assert violations(None, v) == []
    assert v & ~F.KNOWN == 0


@FAST
@given(st.lists(vma_flags(valid=False), min_size=40, max_size=40))
def test_arbitrary_known_flags_break_the_rules_sometimes(vs: list[int]) -> None:
    assert all(v & ~F.KNOWN == 0 for v in vs)


def test_invalid_draws_do_occur() -> None:
    seen: list[int] = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(vma_flags(valid=False))
    def draw(v: int) -> None:
        seen.append(v)

    draw()
    assert any(violations(None, v) for v in seen), "no draw broke a state rule"
    broken = {r.id for v in seen for r in violations(None, v)}
    assert broken <= {r.id for r in STATE_RULES}


@FAST
@given(arbitrary_vma_flags())
def test_arbitrary_flags_are_64_bit(v: int) -> None:
    assert 0 <= v <= F.VM_FLAGS_MAX


@FAST
@given(vma_flag_changes({"ptes_installed": False, "in_use": False}))
def test_flag_changes_keep_every_rule(change: tuple[int, int]) -> None:
    old, new = change
    assert violations(old, new, {"ptes_installed": False, "in_use": False}) == []


def test_known_bits_are_single_bits() -> None:
    assert all(b and b & (b - 1) == 0 for b in KNOWN_VM_BITS)


@FAST
@given(user_addresses(aligned=True), user_addresses(aligned=False), user_addresses())
def test_user_addresses(aligned: int, unaligned: int, either: int) -> None:
    for a in (aligned, unaligned, either):
        assert MMAP_MIN_ADDR <= a < TASK_SIZE
    assert aligned % PAGE_SIZE == 0
    assert unaligned % PAGE_SIZE != 0


@FAST
@given(user_ranges(aligned=True), user_ranges())
def test_user_ranges(aligned: tuple[int, int], any_range: tuple[int, int]) -> None:
    for addr, length in (aligned, any_range):
        assert length > 0 and MMAP_MIN_ADDR <= addr and addr + length <= TASK_SIZE
    assert aligned[0] % PAGE_SIZE == 0 and aligned[1] % PAGE_SIZE == 0


@FAST
@given(user_buffers(max_size=3 * PAGE_SIZE), st.integers(0, 64))
def test_user_buffers_round_trip_through_a_mapping(data: bytes, skew: int) -> None:
    k = Kernel(pages_per_node=64)
    t = k.spawn_process("app")
    with t.as_current():
        addr = t.mmap(None, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        t.write_user(addr + skew, data)
        assert t.read_user(addr + skew, len(data)) == data
    t.exit()
    assert k.leaks() == []
