"""`unsafe`: functions whose safety the caller must argue, and the blocks that argue it.

`@unsafe_fn(safety="...")` marks a function as `unsafe fn`: calling it outside a
`with unsafe("SAFETY: ..."):` block raises `UnsafeError`, naming the call and the
declaration; calling it in a block whose justification is empty raises `UnsafeError`
(rule `undocumented-unsafe`), naming the call and the block. The block's string is the
one place for the reason, as Rust keeps one `// SAFETY:` comment: the static checker
and the contract review read it too. Inside an unsafe function's body the caller's
block is still open, so the runtime lets an unsafe call there through; the static
checker still asks for a block of its own (`unsafe_op_in_unsafe_fn`). Every
declaration (with its Safety text) and every block that runs (with its justification
and the unsafe functions it called) is recorded for the contract review,
`python -m ownership contracts`, which also finds them statically in source files that
never ran.

A contract may say how it is enforced beyond documentation: `checked="..."` names the
runtime check that verifies the checkable part of the precondition, `proved=(...)`
names the `proofs/` claims that establish it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from .config import STATE
from .context import ctx
from .errors import UnsafeError
from .site import Site, caller, here

__all__ = [
    "UnsafeContract",
    "UnsafeSite",
    "contracts",
    "in_unsafe",
    "unsafe",
    "unsafe_fn",
    "unsafe_sites",
]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class UnsafeContract:
    """One `unsafe fn` declaration."""

    qualname: str
    safety: str
    site: Site
    checked: str | None = None
    proved: tuple[str, ...] = ()

    @property
    def enforcement(self) -> str:
        if self.proved and self.checked:
            return "checked at runtime and proved"
        if self.proved:
            return "proved"
        if self.checked:
            return "checked at runtime"
        return "documented only"


@dataclass
class UnsafeSite:
    """One `unsafe(...)` block that ran, with its justification."""

    site: Site
    justification: str
    calls: set[str] = field(default_factory=set)


_lock = threading.Lock()
_contracts: dict[str, UnsafeContract] = {}
_sites: dict[tuple[int, int], UnsafeSite] = {}


def contracts() -> list[UnsafeContract]:
    """Every `unsafe fn` declared so far (imported modules)."""
    return sorted(_contracts.values(), key=lambda c: c.qualname)


def unsafe_sites() -> list[UnsafeSite]:
    """Every `unsafe` block that has run so far."""
    return list(_sites.values())


def in_unsafe() -> bool:
    return ctx.st.unsafe_depth > 0


class unsafe:
    """`with unsafe("SAFETY: why the contract holds"):` - an unsafe block.

    The justification is required: an unsafe operation (a call to an `unsafe fn`)
    inside a block whose justification is empty is an `UnsafeError` (rule
    `undocumented-unsafe`) naming the call and the block, raised before the call runs.
    A block that calls nothing unsafe is only a review finding (`python -m ownership
    contracts`, the static checker), as Rust's `unused_unsafe` is only a warning.

    Invariants: `justification` is the text without its `SAFETY:` prefix; `_site` is
    the line of the `unsafe(...)` call; `_record` is this block's entry in the
    registry while it is open.
    """

    __slots__ = ("_record", "_site", "justification")

    def __init__(self, justification: str) -> None:
        if not isinstance(justification, str):
            raise TypeError("unsafe() takes the SAFETY justification as a string")
        text = justification.strip()
        if text.upper().startswith("SAFETY:"):
            text = text[len("SAFETY:") :].strip()
        self._site = caller()
        self.justification = text
        self._record: UnsafeSite | None = None

    def __enter__(self) -> unsafe:
        st = ctx.st
        site = self._site
        key = (id(site.code), site.lineno)
        rec = _sites.get(key)
        if rec is None:
            with _lock:
                rec = _sites.setdefault(key, UnsafeSite(site, self.justification))
        self._record = rec
        st.unsafe_blocks.append(self)
        st.unsafe_depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        st = ctx.st
        st.unsafe_depth -= 1
        blocks = st.unsafe_blocks
        if blocks and blocks[-1] is self:
            blocks.pop()


def unsafe_fn(
    *, safety: str, checked: str | None = None, proved: tuple[str, ...] = ()
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare an `unsafe fn` with its `# Safety` section."""
    if not isinstance(safety, str) or not safety.strip():
        raise TypeError("unsafe_fn needs a non-empty safety= text")

    def deco(f: Callable[P, R]) -> Callable[P, R]:
        qual = f"{f.__module__}.{f.__qualname__}"
        code = f.__code__
        decl = Site(code, code.co_firstlineno)
        _contracts[qual] = UnsafeContract(qual, safety.strip(), decl, checked, tuple(proved))

        @functools.wraps(f)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if STATE.on:
                st = ctx.st
                if st.unsafe_depth <= 0:
                    raise UnsafeError(
                        f"call to unsafe function {f.__qualname__}() outside an unsafe block",
                        rule="unsafe-call",
                        obj=qual,
                        site=here(),
                        origin=decl,
                        origin_label=f"declared unsafe (Safety: {safety.strip()})",
                    )
                blocks = st.unsafe_blocks
                if blocks:
                    block = blocks[-1]
                    if not block.justification:
                        raise UnsafeError(
                            f"call to unsafe function {f.__qualname__}() in an unsafe block "
                            "without a SAFETY justification",
                            rule="undocumented-unsafe",
                            obj=qual,
                            site=here(),
                            origin=block._site,
                            origin_label="the unsafe block without a justification",
                            notes=[(f"declared unsafe (Safety: {safety.strip()})", decl)],
                        )
                    rec = block._record
                    if rec is not None and qual not in rec.calls:
                        rec.calls.add(qual)
            return f(*args, **kwargs)

        wrapper.__ownership_unsafe__ = safety.strip()  # type: ignore[attr-defined]
        return wrapper

    return deco
