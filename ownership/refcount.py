"""`refcount_t` (include/linux/refcount.h): a counter that never wraps.

Semantics kept from the kernel: an increment past `REFCOUNT_MAX` *saturates* the
counter (with a warning) and the object is then leaked, never freed: a leak is
survivable, a use-after-free is not. Incrementing from zero is a use after free;
decrementing from zero is an underflow. Both are `RefcountError`s, raised before the
counter changes.
"""

from __future__ import annotations

import threading

from . import sched
from .config import STATE
from .errors import RefcountError
from .site import Site, here
from .warn import warn

__all__ = ["REFCOUNT_MAX", "REFCOUNT_SATURATED", "Refcount"]

REFCOUNT_MAX = 0x7FFF_FFFF
REFCOUNT_SATURATED = 0xC000_0000


class Refcount:
    """One `refcount_t`.

    Invariants: `0 <= value <= REFCOUNT_MAX`, or `saturated` (then the object is never
    freed). `zero_site` is where the count last reached zero.
    """

    __slots__ = ("_lock", "saturated", "value", "what", "zero_site")

    def __init__(self, what: str, initial: int = 1) -> None:
        if not isinstance(initial, int) or isinstance(initial, bool):
            raise TypeError(f"refcount initial value must be an int, got {type(initial).__name__}")
        if not 0 <= initial <= REFCOUNT_MAX:
            raise ValueError(f"refcount initial value out of range: {initial!r}")
        self.what = what
        self.value = initial
        self.saturated = False
        self.zero_site: Site | None = None
        self._lock = threading.Lock()

    def _warn_saturate(self) -> None:
        """`refcount_warn_saturate`: pin the count at saturation and leak (`_lock` held)."""
        self.saturated = True
        self.value = REFCOUNT_SATURATED
        warn("refcount-saturated", f"refcount_t: saturated; leaking memory ({self.what})")

    def inc(self) -> None:
        """`refcount_inc`: +1, saturating; a `RefcountError` when incrementing from 0."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic operation is a preemption point under an explorer.
            hook(self)
        with self._lock:
            if self.saturated:
                return
            v = self.value
            if v == 0:
                if STATE.on:
                    raise RefcountError(
                        "refcount_t: addition on 0; use-after-free",
                        rule="refcount-inc-zero",
                        obj=self.what,
                        site=here(),
                        origin=self.zero_site,
                        origin_label="the count reached zero (object freed)",
                    )
                return
            if v >= REFCOUNT_MAX:
                self._warn_saturate()
                return
            self.value = v + 1

    def inc_not_zero(self) -> bool:
        """`refcount_inc_not_zero`: +1 unless the count is 0."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic operation is a preemption point under an explorer.
            hook(self)
        with self._lock:
            if self.saturated:
                return True
            if self.value == 0:
                return False
            if self.value >= REFCOUNT_MAX:
                self._warn_saturate()
                return True
            self.value += 1
            return True

    def _underflow(self) -> None:
        """A decrement of a zero count: `refcount_warn_saturate(REFCOUNT_SUB_UAF)`."""
        if STATE.on:
            raise RefcountError(
                "refcount_t: underflow; use-after-free",
                rule="refcount-underflow",
                obj=self.what,
                site=here(),
                origin=self.zero_site,
                origin_label="the count already reached zero",
            )

    def dec_and_test(self) -> bool:
        """`refcount_dec_and_test`: -1, True when it reached zero (free the object)."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic operation is a preemption point under an explorer.
            hook(self)
        with self._lock:
            if self.saturated:
                return False
            if self.value == 0:
                self._underflow()
                return False
            self.value -= 1
            if self.value == 0:
                self.zero_site = here()
                return True
            return False

    def dec_not_one(self) -> bool:
        """`refcount_dec_not_one`: -1 unless the count is 1; False (untouched) if it is 1."""
        hook = sched.atomic_hook
        if hook is not None:
            # An atomic operation is a preemption point under an explorer.
            hook(self)
        with self._lock:
            if self.saturated:
                return True
            if self.value == 1:
                return False
            if self.value == 0:
                self._underflow()
                return False
            self.value -= 1
            return True

    def read(self) -> int:
        return self.value

    def set_for_test(self, value: int) -> None:
        """Put the counter at `value` (to reach saturation in a test)."""
        with self._lock:
            self.value = value
