"""The common part of every owned allocation (`KBox`, `KVec`, `VBox`, `VVec`).

An owned allocation is dropped once and unusable after: a use or a second drop is a
`LifetimeError` naming where it was dropped, and references borrowed from it (its
`lifetime`) end with it. Upstream each of `Box`, `Vec` and their vmalloc variants frees
its memory in `Drop`; the model keeps the shared bookkeeping here, in its own module so
that `ownership.alloc` and `ownership.alloc.vmalloc` both read it without importing
each other.

Lock order: no locks.
"""

from __future__ import annotations

from ..borrow import Lifetime
from ..config import STATE
from ..errors import LifetimeError
from ..site import Site, here

__all__ = ["_Owned"]


class _Owned:
    """Common part of owned allocations: dropped once, unusable after."""

    __slots__ = ("_freed_at", "_lt", "_site")

    def __init__(self, site: Site) -> None:
        self._site = site
        self._freed_at: Site | None = None
        self._lt: Lifetime | None = None

    def _alive(self, use: str) -> None:
        if self._freed_at is not None and STATE.on:
            raise LifetimeError(
                f"{use} after drop",
                obj=type(self).__name__,
                site=here(),
                origin=self._freed_at,
                origin_label="it was dropped",
                notes=[("it was allocated", self._site)],
            )

    @property
    def lifetime(self) -> Lifetime:
        """The owner's life, for references borrowed from it."""
        lt = self._lt
        if lt is None:
            lt = self._lt = Lifetime(type(self).__name__, self._site)
            if self._freed_at is not None:
                lt.end(self._freed_at, "the owner was dropped")
        return lt

    def _drop(self) -> None:
        self._alive("drop")
        self._freed_at = here()
        if self._lt is not None:
            self._lt.end(self._freed_at, "the owner was dropped")
