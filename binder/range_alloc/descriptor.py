"""The descriptors shared by both range-allocator representations (range_alloc/mod.rs).

Upstream defines these in `mod.rs` next to `RangeAllocator`; they live in their own
module here so that `array.py` and `tree.py` can use them without importing the
package that imports them. A range is either `Reserved` (the kernel is using it) or
`Allocated` (delivered to userspace, holding the driver's data until it is freed).
`FreedRange` is what freeing a range gives back: the pages no range touches any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ownership.errors import EINVAL, KernelError
from ownership.page import PAGE_SIZE

__all__ = [
    "TREE_THRESHOLD",
    "Allocated",
    "DescriptorState",
    "FreedRange",
    "Range",
    "RangeInfo",
    "Reserved",
    "check_offset",
    "check_size",
]

T = TypeVar("T")

TREE_THRESHOLD = 8
"""The array representation switches to the tree beyond this many ranges."""


class Reserved:
    """A range the kernel is using (`DescriptorState::Reserved(Reservation)`).

    Invariants: `pid` is the sender's pid; `is_oneway` says whether the range counts
    against the oneway space.
    """

    __slots__ = ("debug_id", "is_oneway", "pid")

    def __init__(self, debug_id: int, is_oneway: bool, pid: int) -> None:
        self.debug_id = debug_id
        self.is_oneway = is_oneway
        self.pid = pid

    def allocate(self, data: T | None) -> Allocated[T]:
        """Hand the range to userspace, keeping `data` until it comes back."""
        return Allocated(self, data)

    @property
    def reservation(self) -> Reserved:
        return self


class Allocated(Generic[T]):
    """A range delivered to userspace (`DescriptorState::Allocated`).

    Invariants: `reservation` is the reservation the range was committed from; `data`
    is the driver's bookkeeping, taken back by `reserve_existing`.
    """

    __slots__ = ("data", "reservation")

    def __init__(self, reservation: Reserved, data: T | None) -> None:
        self.reservation = reservation
        self.data = data

    @property
    def debug_id(self) -> int:
        return self.reservation.debug_id

    @property
    def is_oneway(self) -> bool:
        return self.reservation.is_oneway

    @property
    def pid(self) -> int:
        return self.reservation.pid

    def take(self) -> T | None:
        """`Option::take` on the data."""
        data, self.data = self.data, None
        return data


DescriptorState = Reserved | Allocated[T]


class Range(Generic[T]):
    """One reserved or allocated range of the array representation.

    Invariants: `offset >= 0`, `size > 0`, `[offset, offset + size)` lies inside the area.
    """

    __slots__ = ("offset", "size", "state")

    def __init__(self, offset: int, size: int, state: DescriptorState[T]) -> None:
        self.offset = offset
        self.size = size
        self.state = state

    def endpoint(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class FreedRange:
    """Pages `[start_page_idx, end_page_idx)` that no live range touches any more.

    The caller marks them unused (`ShrinkablePageRange.stop_using_range`), so the
    shrinker may reclaim them.
    """

    start_page_idx: int
    end_page_idx: int

    @staticmethod
    def interior_pages(offset: int, size: int) -> FreedRange:
        """The pages lying wholly inside `[offset, offset + size)`."""
        # The start rounds up and the end rounds down: partial pages are decided by
        # looking at the neighbours.
        return FreedRange(-(-offset // PAGE_SIZE), (offset + size) // PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class RangeInfo:
    """A snapshot of one live range, for debug output and invariant checks."""

    offset: int
    size: int
    state: Literal["reserved", "allocated"]
    is_oneway: bool
    pid: int
    debug_id: int


def check_size(size: object) -> int:
    """Validate a requested size: a positive int, else `TypeError` / `EINVAL`."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"range size must be an int, got {type(size).__name__}")
    if size <= 0:
        raise KernelError(EINVAL, f"range size {size} is not positive")
    return size


def check_offset(offset: object) -> int:
    """Validate an offset argument's type (unknown offsets are the callee's errno)."""
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"range offset must be an int, got {type(offset).__name__}")
    return offset
