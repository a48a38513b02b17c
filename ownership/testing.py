"""Hypothesis strategies for what drivers take: VMA flags, user addresses and buffers.

A driver's `mmap` handler gets a VMA whose flags the core MM set, its `ioctl` gets user
addresses and the bytes behind them. These strategies generate such inputs for property
tests of a driver written against `ownership`:

* `vma_flags(valid=True)`: `vm_flags_t` values. Valid ones satisfy every state rule of
  the rule table (`ownership.include.vma_rules`: `VM_READ` implies `VM_MAYREAD`, never
  `VM_MIXEDMAP|VM_PFNMAP`, ...), as a VMA the core MM hands a driver does;
  `valid=False` draws any combination of the known `VM_*` bits (`arbitrary_vma_flags()`
  any 64-bit value), for the driver's own rejection paths.
* `vma_flag_changes(ctx)`: `(old, new)` pairs a driver may make (every transition rule
  holds, for the context `ctx`, e.g. `{"ptes_installed": False, "in_use": False}`).
* `user_addresses(aligned=...)`: addresses in the user half (`[MMAP_MIN_ADDR,
  TASK_SIZE)`), page-aligned or not; `user_ranges()` an `(addr, length)` inside it;
  `user_buffers()` the bytes a user passes.

The strategies for Binder transactions (objects and their offsets) are in
`binder.testing`: this package imports nothing of `binder`.

Needs `hypothesis` (the `test` extra). The module wraps no C object; it takes no lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import strategies as st

from .bindings.consts import MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE
from .include import vm_flags as F
from .include.vma_rules import violations

__all__ = [
    "KNOWN_VM_BITS",
    "arbitrary_vma_flags",
    "user_addresses",
    "user_buffers",
    "user_ranges",
    "vma_flag_changes",
    "vma_flags",
]

#: Every `VM_*` bit the model names, one int each.
KNOWN_VM_BITS: tuple[int, ...] = tuple(sorted(F.NAMES))

# The implications of the state rules, applied to a draw before it is filtered: they
# make most draws valid at once (the filter, which reads the rule table itself, decides).
_IMPLIED = ((F.READ, F.MAYREAD), (F.WRITE, F.MAYWRITE), (F.EXEC, F.MAYEXEC), (F.SHARED, F.MAYSHARE))


def _combine(bits: list[int]) -> int:
    v = 0
    for b in bits:
        v |= b
    return v


def _known_flags() -> st.SearchStrategy[int]:
    return st.lists(st.sampled_from(KNOWN_VM_BITS), unique=True).map(_combine)


def _repair(v: int) -> int:
    for bit, needs in _IMPLIED:
        if v & bit:
            v |= needs
    if v & F.MIXEDMAP:
        v &= ~(F.PFNMAP | F.UFFD_MASK)
    return v


def _valid_state(v: int) -> bool:
    return not violations(None, v)


def vma_flags(*, valid: bool = True) -> st.SearchStrategy[int]:
    """`vm_flags_t` values of known bits: valid per the state rules, or any combination."""
    if not valid:
        return _known_flags()
    return _known_flags().map(_repair).filter(_valid_state)


def arbitrary_vma_flags() -> st.SearchStrategy[int]:
    """Any 64-bit `vm_flags_t`, named bits or not."""
    return st.integers(min_value=0, max_value=F.VM_FLAGS_MAX)


# What a driver may set and clear (the allowlists of the transition rules), to draw
# changes that usually hold; the filter against the rule table decides.
_DRIVER_SET = (F.MIXEDMAP, F.PFNMAP, F.IO, F.DONTEXPAND, F.DONTCOPY, F.DONTDUMP)
_DRIVER_CLEAR = (F.MAYREAD, F.MAYWRITE, F.MAYEXEC)


def vma_flag_changes(
    ctx: Mapping[str, bool] | None = None,
) -> st.SearchStrategy[tuple[int, int]]:
    """`(old, new)`: a valid VMA's flags and a change a driver may make to them in `ctx`."""
    c = dict(ctx or {})

    @st.composite
    def change(draw: st.DrawFn) -> tuple[int, int]:
        old = draw(vma_flags())
        sets = draw(st.lists(st.sampled_from(_DRIVER_SET), unique=True))
        clears = draw(st.lists(st.sampled_from(_DRIVER_CLEAR), unique=True))
        new = (old | _combine(sets)) & ~_combine(clears)
        return old, new

    return change().filter(lambda p: not violations(p[0], p[1], c))


def user_addresses(*, aligned: bool | None = None) -> st.SearchStrategy[int]:
    """User-space addresses in `[MMAP_MIN_ADDR, TASK_SIZE)`.

    `aligned=True`: page-aligned only; `False`: never page-aligned; None: either.
    """
    lo, hi = MMAP_MIN_ADDR, TASK_SIZE - 1
    if aligned is True:
        return st.integers(lo // PAGE_SIZE, hi // PAGE_SIZE).map(lambda p: p * PAGE_SIZE)
    anywhere = st.integers(lo, hi)
    if aligned is False:
        return anywhere.filter(lambda a: a % PAGE_SIZE != 0)
    return st.one_of(user_addresses(aligned=True), anywhere)


def user_ranges(
    *, max_pages: int = 16, aligned: bool | None = None
) -> st.SearchStrategy[tuple[int, int]]:
    """`(addr, length)` with `0 < length` and the range inside user space.

    Page-aligned ranges (`aligned=True`) have a length that is a whole number of pages.
    """

    @st.composite
    def rng(draw: st.DrawFn) -> tuple[int, int]:
        addr = draw(user_addresses(aligned=aligned))
        room = TASK_SIZE - addr
        if aligned:
            pages = draw(st.integers(1, max(1, min(max_pages, room // PAGE_SIZE))))
            return addr, pages * PAGE_SIZE
        return addr, draw(st.integers(1, min(max_pages * PAGE_SIZE, room)))

    return rng()


def user_buffers(*, max_size: int = 2 * PAGE_SIZE, min_size: int = 0) -> st.SearchStrategy[bytes]:
    """The bytes a user passes (`write`, an ioctl argument), up to `max_size` long."""
    return st.binary(min_size=min_size, max_size=max_size)
