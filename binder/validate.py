"""The offset and object checks of transaction translation, as pure arithmetic.

Upstream: drivers/android/binder/thread.rs (`copy_transaction_data`,
`translate_object`, `ScatterGatherState::validate_parent_fixup`, `apply_sg`), and the C
driver's `binder_transaction` / `binder_validate_ptr` / `binder_validate_fixup` for the
validated-object count. `binder.thread` calls these functions for every decision about
where an object, a raw-data copy or a fixup may go: one rule, one place. The module
imports nothing, so `proofs/` runs these very functions symbolically (the ints replaced
by solver terms, every branch explored) without loading the driver or the simulated
kernel; `proofs/binder_offsets.py` proves what they guarantee and shows the
historical mistakes' exploits when one is put back.

Each check returns None when the input is accepted, else the reason (the caller raises
EINVAL with it). No locks; nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "OBJECT_ALIGN",
    "OFFSET_ENTRY_SIZE",
    "POINTER_SIZE",
    "U64_MAX",
    "check_fixup",
    "check_fixup_in_buffer",
    "check_object_end",
    "check_object_offset",
    "check_parent",
    "fixup_plan",
    "validated_count",
]

OBJECT_ALIGN = 4
"""Objects start at offsets that are multiples of 4 (`offset % size_of::<u32>()`)."""

OFFSET_ENTRY_SIZE = 8
"""One entry of the offsets array (`binder_size_t`, a u64)."""

POINTER_SIZE = 8
"""A pointer fixup writes one u64 (the child buffer's address in the receiver)."""

U64_MAX = (1 << 64) - 1


def check_object_offset(offset: int, end_of_previous: int, data_size: int) -> str | None:
    """The next object's offset, read from the offsets array, before anything is copied.

    It must not go back into the previous object, must be aligned, and must lie inside
    the data: the raw data between the previous object and this one is copied next, and
    without `offset <= data_size` that copy runs over the offsets array (4df153652cc4).
    """
    if offset < end_of_previous or offset % OBJECT_ALIGN != 0:
        return "invalid object offset"
    if offset > data_size:
        return "object offset beyond the data"
    return None


def check_object_end(offset: int, object_size: int, data_size: int) -> str | None:
    """The object read at `offset` (its size known from its type) ends inside the data."""
    if offset + object_size > data_size:
        return "object beyond the data"
    return None


def validated_count(index_offset: int, offsets_start: int) -> int:
    """How many objects were validated before the one whose offset entry is at
    `index_offset` (C's `num_valid`; CVE-2020-0041 computed it with `*` for `/`)."""
    return (index_offset - offsets_start) // OFFSET_ENTRY_SIZE


def check_parent(parent: int, num_valid: int, ancestors: Sequence[int]) -> int | str:
    """A fixup's parent: an object validated before it that is the last buffer object
    or one of its ancestors. `ancestors` are those buffer objects' indices, outermost
    first. Returns the parent's position in `ancestors`, or why it was refused."""
    if parent >= num_valid:
        return "parent is not a validated object"
    for i in range(len(ancestors) - 1, -1, -1):
        if ancestors[i] == parent:
            return i
    return "parent is not a validated ancestor buffer"


def check_fixup(
    fixup_min_offset: int, parent_offset: int, length: int, parent_length: int
) -> int | str:
    """A fixup of `length` bytes at `parent_offset` in its parent buffer: at or after
    the previous fixup's end, and inside the parent. Returns the new minimum offset of
    the parent's next fixup, or why it was refused."""
    if fixup_min_offset > parent_offset:
        return "fixups must be at increasing offsets in their parent"
    new_min = parent_offset + length
    if new_min > parent_length or new_min > U64_MAX:
        return "fixup out of bounds of its parent buffer"
    return new_min


def fixup_plan(is_pointer: bool, skip: int) -> tuple[int, bool]:
    """How a fixup is applied when its parent buffer is copied: `(length, writes)`.

    A pointer fixup (a child `BINDER_TYPE_PTR`) replaces 8 bytes with the child's
    address; an fd-array fixup skips `skip` bytes (the fds are written when the
    transaction is received) and writes nothing. The kind is a flag of its own, never
    `skip == 0`: an fd array with zero fds skips nothing (CVE-2026-23194).
    """
    if is_pointer:
        return (POINTER_SIZE, True)
    return (skip, False)


def check_fixup_in_buffer(end_of_previous: int, target: int, length: int, end: int) -> str | None:
    """When a buffer is copied, each fixup must lie after the previous one and inside
    the buffer's copy `[.., end)` in the receiver's mapping."""
    if target < end_of_previous or end < target + length:
        return "scatter-gather fixups out of bounds"
    return None
