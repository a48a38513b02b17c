"""Binder's transaction-offset checks, proved on their own code (`binder.validate`).

`binder.thread` translates a transaction's objects in offset order, asking
`binder.validate` at every step: is the next offset acceptable, does the object fit,
how many objects were validated before it, is a fixup's parent one of them, is the
fixup inside its parent, and how is the fixup applied when the parent is copied. The
harnesses below walk that loop as the driver does (one object, one fixup after the
other, with the driver's bookkeeping of the ancestor chain) and run the checks
symbolically (`proofs.symexec`) for every input within the bound in the claim's name:

* `binder_offsets_objects`: every accepted object lies inside the data, is aligned and
  disjoint from the others and from the offsets array, and the raw data copied between
  objects stays inside the data (up to 4 objects, offsets and sizes over all u64);
* `binder_offsets_parent`: a fixup's parent is an object validated before it (the
  validated-count bound is exact) on the last buffer's ancestor chain, and the fixup
  lies inside it (up to 4 objects);
* `binder_offsets_fixups`: validated fixups apply inside their parent's copy, in order,
  and only a pointer fixup writes: an fd array with zero fds is not a pointer fixup
  (up to 3 fixups in one parent, u64 offsets and lengths).

Each has a twin with the historical mistake put back, which must yield a
counterexample (a concrete transaction; tests/proofs/test_binder_twins.py replays each
through the driver): 4df153652cc4 (no `object_offset <= data_size`), CVE-2020-0041 (`*`
for `/` in the validated count), CVE-2026-23194 (`skip == 0` as "pointer fixup").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from binder import validate as V

from .claim import Claim, Expect
from .outcome import Outcome
from .symexec import Explorer, outcome
from .table import Table

__all__ = [
    "ALL_KINDS",
    "CLAIMS",
    "CORE",
    "FDA",
    "MUTANTS",
    "OTHER",
    "PTR_CHILD",
    "PTR_ROOT",
    "OffsetsCore",
    "fixups_harness",
    "objects_harness",
    "parent_harness",
]

U64_MAX = V.U64_MAX
OBJECT_SIZES = (24, 32, 40)
"""`flat_binder_object` and `binder_fd_object` (24), `binder_fd_array_object` (32),
`binder_buffer_object` (40): every size `_read_object` can return."""

PTR_ROOT, PTR_CHILD, FDA, OTHER = 0, 1, 2, 3
"""Object kinds of the parent harness: a buffer without a parent, a buffer with one, an
fd array, and any other object (a binder, handle or fd)."""


@dataclass(frozen=True)
class OffsetsCore:
    """The checks a harness runs: the real ones, or a mutant's."""

    check_object_offset: Callable[[int, int, int], str | None]
    check_object_end: Callable[[int, int, int], str | None]
    validated_count: Callable[[int, int], int]
    check_parent: Callable[[int, int, Sequence[int]], int | str]
    check_fixup: Callable[[int, int, int, int], int | str]
    fixup_plan: Callable[[bool, int], tuple[int, bool]]
    check_fixup_in_buffer: Callable[[int, int, int, int], str | None]


CORE = OffsetsCore(
    V.check_object_offset,
    V.check_object_end,
    V.validated_count,
    V.check_parent,
    V.check_fixup,
    V.fixup_plan,
    V.check_fixup_in_buffer,
)
"""The driver's own checks."""


# --- the mistakes put back --------------------------------------------------------------


def _offset_without_data_bound(offset: int, end_of_previous: int, data_size: int) -> str | None:
    """`check_object_offset` without `offset <= data_size` (before 4df153652cc4)."""
    if offset < end_of_previous or offset % V.OBJECT_ALIGN != 0:
        return "invalid object offset"
    return None


def _validated_count_star(index_offset: int, offsets_start: int) -> int:
    """`num_valid` computed with `*` for `/` (CVE-2020-0041)."""
    return (index_offset - offsets_start) * V.OFFSET_ENTRY_SIZE


def _fixup_plan_sentinel(is_pointer: bool, skip: int) -> tuple[int, bool]:
    """`skip == 0` meaning "pointer fixup" (CVE-2026-23194)."""
    return (skip if skip else V.POINTER_SIZE, skip == 0)


MUTANTS: dict[str, OffsetsCore] = {
    "no-offset-data-bound": replace(CORE, check_object_offset=_offset_without_data_bound),
    "num-valid-star": replace(CORE, validated_count=_validated_count_star),
    "skip-zero-sentinel": replace(CORE, fixup_plan=_fixup_plan_sentinel),
}
"""Each historical mistake, as the validation core with it put back."""


# --- harnesses ------------------------------------------------------------------------------


def objects_harness(
    c: OffsetsCore, n: int, top: int = U64_MAX, min_data_size: int = 0
) -> Callable[[Explorer], Callable[[], None]]:
    """`n` objects at arbitrary offsets (at most `top`) in at least `min_data_size` bytes
    of data, translated as `Thread._fill_allocation` does: check the offset, copy the raw
    data up to it, read the object, check its end."""

    def build(ex: Explorer) -> Callable[[], None]:
        data_size = ex.int_var("data_size", min_data_size, top)
        offsets = [ex.int_var(f"obj{i}_offset", 0, top) for i in range(n)]
        sizes = [ex.int_choice(f"obj{i}_size", OBJECT_SIZES) for i in range(n)]

        def run() -> None:
            # The offsets array follows the data, 8-aligned (`ptr_align(data_size)`).
            offsets_start = (data_size + 7) // 8 * 8
            end_prev = 0
            accepted: list[tuple[int, int]] = []
            for off, size in zip(offsets, sizes):
                if c.check_object_offset(off, end_prev, data_size) is not None:
                    return
                if end_prev < off:
                    ex.check(
                        off <= data_size,
                        "raw data copied beyond the data, toward the offsets array",
                    )
                if c.check_object_end(off, size, data_size) is not None:
                    return
                ex.check(off % V.OBJECT_ALIGN == 0, "an object is unaligned")
                ex.check(off + size <= data_size, "an object lies beyond the data")
                ex.check(off + size <= offsets_start, "an object overlaps the offsets array")
                for o, s in accepted:
                    ex.check((o + s <= off) | (off + size <= o), "two objects overlap")
                accepted.append((off, size))
                end_prev = off + size

        return run

    return build


ALL_KINDS = (PTR_ROOT, PTR_CHILD, FDA, OTHER)


def parent_harness(
    c: OffsetsCore, n: int, top: int = U64_MAX, kinds_allowed: tuple[int, ...] = ALL_KINDS
) -> Callable[[Explorer], Callable[[], None]]:
    """`n` objects of the `kinds_allowed`, with the driver's scatter-gather bookkeeping
    (`Thread._translate_object`): a buffer without a parent starts a new ancestor chain,
    a fixup truncates the chain after its parent, a child buffer joins it."""

    def build(ex: Explorer) -> Callable[[], None]:
        offsets_start = ex.int_var("offsets_start", 0, top)
        ex.require(offsets_start % 8 == 0)
        kinds = [ex.int_choice(f"obj{i}_kind", kinds_allowed) for i in range(n)]
        parents = [ex.int_var(f"obj{i}_parent", 0, top) for i in range(n)]
        parent_offsets = [ex.int_var(f"obj{i}_parent_offset", 0, top) for i in range(n)]
        lengths = [ex.int_var(f"obj{i}_length", 0, top) for i in range(n)]
        num_fds = [ex.int_var(f"obj{i}_num_fds", 0, top) for i in range(n)]

        def run() -> None:
            # Each scatter-gather entry: [object index, buffer length, next fixup's minimum].
            sg: list[list[int]] = []
            ancestors: list[int] = []
            for k in range(n):
                num_valid = c.validated_count(
                    offsets_start + V.OFFSET_ENTRY_SIZE * k, offsets_start
                )
                kind = kinds[k]
                if kind == OTHER:
                    continue
                if kind == PTR_ROOT:
                    sg.append([k, lengths[k], 0])
                    ancestors = [len(sg) - 1]
                    continue
                parent = parents[k]
                length = V.POINTER_SIZE if kind == PTR_CHILD else num_fds[k] * 4
                if parent < num_valid:
                    ex.check(parent < k, "the validated count admits an object not yet validated")
                pos = c.check_parent(parent, num_valid, [sg[a][0] for a in ancestors])
                if isinstance(pos, str):
                    return
                entry = sg[ancestors[pos]]
                ex.check(entry[0] == parent, "the fixup's parent is another object")
                ex.check(parent < k, "the fixup's parent was not validated before it")
                new_min = c.check_fixup(entry[2], parent_offsets[k], length, entry[1])
                if isinstance(new_min, str):
                    return
                ex.check(entry[2] <= parent_offsets[k], "fixups out of order in their parent")
                ex.check(parent_offsets[k] + length <= entry[1], "a fixup lies beyond its parent")
                entry[2] = new_min
                del ancestors[pos + 1 :]
                if kind == PTR_CHILD:
                    sg.append([k, lengths[k], 0])
                    ancestors.append(len(sg) - 1)

        return run

    return build


def fixups_harness(
    c: OffsetsCore, n: int, top: int = U64_MAX
) -> Callable[[Explorer], Callable[[], None]]:
    """`n` fixups (child buffers or fd arrays) validated into one parent, then applied
    when the parent is copied, as `Thread._apply_sg` does."""

    def build(ex: Explorer) -> Callable[[], None]:
        parent_length = ex.int_var("parent_length", 0, top)
        entry_offset = ex.int_var("entry_offset", 0, top)
        fixups = [
            (
                ex.bool_var(f"fix{i}_is_pointer"),
                ex.int_var(f"fix{i}_parent_offset", 0, top),
                ex.int_var(f"fix{i}_num_fds", 0, top),
            )
            for i in range(n)
        ]
        for is_pointer, parent_offset, _ in fixups:
            # The driver refuses an unaligned fd array before validating it (thread.py).
            ex.require(is_pointer | (parent_offset % 4 == 0))

        def run() -> None:
            fixup_min = 0
            validated: list[tuple[int, bool, int]] = []
            for is_pointer, parent_offset, fds in fixups:
                length = V.POINTER_SIZE if is_pointer else fds * 4
                new_min = c.check_fixup(fixup_min, parent_offset, length, parent_length)
                if isinstance(new_min, str):
                    break
                validated.append((entry_offset + parent_offset, is_pointer, length))
                fixup_min = new_min
            end_prev = entry_offset
            entry_end = entry_offset + parent_length
            for target, is_pointer, length in validated:
                # The driver records an fd array's length as its skip, a pointer's as 0.
                flen, writes = c.fixup_plan(is_pointer, 0 if is_pointer else length)
                ex.check(writes == is_pointer, "an fd array is applied as a pointer fixup")
                ex.check(flen == length, "a fixup is applied over more bytes than validated")
                ex.check(
                    c.check_fixup_in_buffer(end_prev, target, flen, entry_end) is None,
                    "a validated fixup is refused when its parent is copied",
                )
                end_prev = target + flen

        return run

    return build


# --- claims ---------------------------------------------------------------------------------

MAX_OBJECTS = 4
MAX_FIXUPS = 3


def _upto(
    harness: Callable[[OffsetsCore, int], Callable[[Explorer], Callable[[], None]]],
    c: OffsetsCore,
    top: int,
) -> Callable[[Table, Expect], Outcome]:
    def check(table: Table, expect: Expect) -> Outcome:
        paths = queries = 0
        for n in range(1, top + 1):
            out = outcome(harness(c, n))
            queries += out.queries
            if out.verdict != "proved":
                return out
            paths += int(out.detail.split()[0])
        return Outcome("proved", detail=f"{paths} paths, {queries} solver queries", queries=queries)

    return check


def _claims(
    name: str,
    doc: str,
    harness: Callable[[OffsetsCore, int], Callable[[Explorer], Callable[[], None]]],
    top: int,
    tag: str,
    what: str,
) -> list[Claim]:
    base = Claim(name, "holds", doc, _upto(harness, CORE, top), kind="binder")
    return [base, base.variant(tag, what, _upto(harness, MUTANTS[tag], top))]


CLAIMS: tuple[Claim, ...] = (
    *_claims(
        "binder_offsets_objects_4objects_u64",
        """Every accepted object lies inside the data, is aligned and disjoint from the
        others and from the offsets array, and the raw data copied between objects
        stays in the data (up to 4 objects; offsets and data size over all u64).
        4df153652cc4: "raw data between objects is copied with no object_offset <=
        data_size check, so it overwrites the offsets array".""",
        objects_harness,
        MAX_OBJECTS,
        "no-offset-data-bound",
        "without object_offset <= data_size (4df153652cc4)",
    ),
    *_claims(
        "binder_offsets_parent_4objects_u64",
        """A fixup's parent is an object validated before it, on the last buffer's ancestor
        chain, and the fixup lies inside it at a rising offset (up to 4 objects of any
        kind; indices, offsets and lengths over all u64). CVE-2020-0041: "num_valid
        computed with * instead of /" let "a not-yet-validated object serve as the
        PTR/FDA parent".""",
        parent_harness,
        MAX_OBJECTS,
        "num-valid-star",
        "num_valid computed with * for / (CVE-2020-0041)",
    ),
    *_claims(
        "binder_offsets_fixups_3fixups_u64",
        """Validated fixups apply inside their parent's copy, in order, over exactly the
        validated bytes, and only a pointer fixup writes: an fd array with zero fds is
        not a pointer fixup (up to 3 fixups in one parent; u64 offsets and lengths).
        CVE-2026-23194: "skip == 0 was overloaded as pointer fixup, so an empty FDA at
        buffer end made an 8-byte out-of-bounds write attempt".""",
        fixups_harness,
        MAX_FIXUPS,
        "skip-zero-sentinel",
        "skip == 0 read as a pointer fixup (CVE-2026-23194)",
    ),
)
"""The offset-validation claims and their twins, in the order `python -m proofs` runs them."""
