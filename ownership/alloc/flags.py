"""GFP flags (include/linux/gfp_types.h): how an allocation may behave.

Only what decides the model's behaviour is represented: whether the allocation may
sleep (`__GFP_DIRECT_RECLAIM`, part of `GFP_KERNEL`), whether memory is zeroed
(`__GFP_ZERO`), and `__GFP_HIGHMEM`/`__GFP_NOWARN` so driver code reads as upstream.
Bit values follow the kernel's `___GFP_*` layout.

`__GFP_ZERO` and friends keep their kernel names; inside a class body Python would
mangle a `__name`, so each also has an alias without the leading underscores
(`GFP_ZERO`, `GFP_HIGHMEM`, `GFP_NOWARN`).
"""

from __future__ import annotations

import enum

__all__ = [
    "GFP_ATOMIC",
    "GFP_HIGHMEM",
    "GFP_KERNEL",
    "GFP_NOWAIT",
    "GFP_NOWARN",
    "GFP_ZERO",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_HIGH",
    "__GFP_HIGHMEM",
    "__GFP_NOWARN",
    "__GFP_ZERO",
    "Flags",
]


class Flags(enum.IntFlag):
    """`gfp_t`."""

    HIGHMEM = 0x02
    HIGH = 0x20
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    NOWARN = 0x2000

    @property
    def may_sleep(self) -> bool:
        """`gfpflags_allow_blocking()`: direct reclaim may sleep."""
        return bool(self & Flags.DIRECT_RECLAIM)

    def __str__(self) -> str:
        """The kernel spelling: `GFP_KERNEL|__GFP_ZERO`, as a report names the flags."""
        v = int(self)
        parts: list[str] = []
        for name, combo in _NAMED:
            if combo and v & combo == combo:
                parts.append(name)
                v &= ~combo
                break
        for bit in Flags:
            if v & int(bit):
                parts.append(f"__GFP_{bit.name}")
                v &= ~int(bit)
        if v:
            parts.append(hex(v))
        return "|".join(parts) or "0"


__GFP_HIGHMEM = Flags.HIGHMEM
__GFP_HIGH = Flags.HIGH
__GFP_ZERO = Flags.ZERO
__GFP_DIRECT_RECLAIM = Flags.DIRECT_RECLAIM
__GFP_NOWARN = Flags.NOWARN
GFP_HIGHMEM = __GFP_HIGHMEM
GFP_ZERO = __GFP_ZERO
GFP_NOWARN = __GFP_NOWARN

GFP_KERNEL = Flags.DIRECT_RECLAIM | Flags.KSWAPD_RECLAIM | Flags.IO | Flags.FS
GFP_ATOMIC = Flags.HIGH | Flags.KSWAPD_RECLAIM
GFP_NOWAIT = Flags.KSWAPD_RECLAIM

_NAMED: tuple[tuple[str, int], ...] = (
    ("GFP_KERNEL", int(GFP_KERNEL)),
    ("GFP_ATOMIC", int(GFP_ATOMIC)),
    ("GFP_NOWAIT", int(GFP_NOWAIT)),
)
