"""GFP flags (include/linux/gfp_types.h) and allocation fault injection (mm/fail_page_alloc.c).

The C side of every allocation. `Flags` is `gfp_t`; only what decides the model's
behaviour is represented: whether the allocation may sleep (`__GFP_DIRECT_RECLAIM`,
part of `GFP_KERNEL`), whether memory is zeroed (`__GFP_ZERO`), and
`__GFP_HIGHMEM`/`__GFP_NOWARN` so driver code reads as upstream. Bit values follow the
kernel's `___GFP_*` layout. `__GFP_ZERO` and friends keep their kernel names; inside a
class body Python would mangle a `__name`, so each also has an alias without the leading
underscores (`GFP_ZERO`, `GFP_HIGHMEM`, `GFP_NOWARN`).

`alloc_check(gfp, what)` is the common entry of every allocation of the model, C or
Rust: it validates the flags, calls `might_sleep()` when they allow direct reclaim (so
`GFP_KERNEL` under a spinlock is an `AtomicSleepError`), and consults the failure
injector (`fail_after`, `fail_nth`, `fail_probability`, as the kernel's
`fail_page_alloc`/`failslab`), so a failed allocation surfaces as `KernelError(ENOMEM)`
exactly where the kernel would return `-ENOMEM`. `ownership.alloc` re-exports all of it
for the Rust side.

Lock order: the injector's lock is a leaf, never held while anything else is taken.
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..context import may_sleep, might_sleep
from ..errors import ENOMEM, KernelError

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
    "alloc_check",
    "allocation_count",
    "fail_after",
    "fail_nth",
    "fail_probability",
    "injected_failures",
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


class _Injector:
    """Failure injection state, shared by all threads (as the kernel's fail_page_alloc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.fail_after: int | None = None
        self.fail_nth: int | None = None
        self.prob = 0.0
        self.rng = random.Random(0)
        self.failures = 0


_inj = _Injector()
_KNOWN_GFP = 0
for _f in Flags:
    _KNOWN_GFP |= int(_f)


def allocation_count() -> int:
    """How many allocations the model has attempted since start."""
    return _inj.count


def injected_failures() -> int:
    return _inj.failures


@may_sleep(gfp="gfp")
def alloc_check(gfp: Flags, what: str) -> None:
    """The common entry of every allocation; raises `KernelError(ENOMEM)` on failure.

    Declared `@may_sleep(gfp="gfp")`: the static checker reads this declaration and
    infers that every allocator passing its own GFP flags here (`KBox.new`,
    `KVec.push`, `Arc.new`, ...) sleeps exactly when those flags allow reclaim.
    """
    if not isinstance(gfp, Flags):
        raise TypeError(
            f"{what}: gfp flags must be ownership.alloc.Flags, got {type(gfp).__name__}"
        )
    if int(gfp) & ~_KNOWN_GFP:
        # Rust's `Flags` can only be built from the named constants.
        raise TypeError(f"{what}: unknown GFP bits {int(gfp) & ~_KNOWN_GFP:#x}")
    if gfp & Flags.DIRECT_RECLAIM:
        might_sleep()
    inj = _inj
    with inj.lock:
        inj.count += 1
        fail = False
        if inj.fail_after is not None:
            if inj.fail_after <= 0:
                fail = True
            else:
                inj.fail_after -= 1
        if inj.fail_nth is not None:
            inj.fail_nth -= 1
            if inj.fail_nth == 0:
                fail = True
                inj.fail_nth = None
        if inj.prob and inj.rng.random() < inj.prob:
            fail = True
        if fail:
            inj.failures += 1
    if fail:
        raise KernelError(ENOMEM, f"{what}: allocation failure injected")


def _count_arg(fn: str, n: object, least: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{fn} needs an int, got {type(n).__name__}")
    if n < least:
        raise ValueError(f"{fn} needs a value >= {least}, got {n!r}")


@contextmanager
def _injecting(**settings: object) -> Iterator[None]:
    """Set the named `_Injector` fields for the block, then put back what they were.

    Only the named fields are put back: a counter of an enclosing block that the
    allocations inside went on counting keeps its count.
    """
    with _inj.lock:
        prev = {name: getattr(_inj, name) for name in settings}
        for name, value in settings.items():
            setattr(_inj, name, value)
    try:
        yield
    finally:
        with _inj.lock:
            for name, value in prev.items():
                setattr(_inj, name, value)


@contextmanager
def fail_after(n: int) -> Iterator[None]:
    """Let `n` allocations succeed, then fail every one until the block ends."""
    _count_arg("fail_after", n, 0)
    with _injecting(fail_after=n):
        yield


@contextmanager
def fail_nth(n: int) -> Iterator[None]:
    """Fail only the `n`-th allocation (1-based) made inside the block."""
    _count_arg("fail_nth", n, 1)
    with _injecting(fail_nth=n):
        yield


@contextmanager
def fail_probability(p: float, seed: int = 0) -> Iterator[None]:
    """Fail each allocation with probability `p` (reproducible with `seed`)."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        raise TypeError(f"fail_probability needs a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"fail_probability seed must be an int, got {type(seed).__name__}")
    with _injecting(prob=p, rng=random.Random(seed)):
        yield
