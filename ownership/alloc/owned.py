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
from ..errors import LifetimeError
from ..handle import DropRules, Handle
from ..site import Site, here

__all__ = ["_Owned"]


class _Owned(Handle):
    """Common part of owned allocations: dropped once, unusable after."""

    __slots__ = ("_lt", "_site")

    # A second drop is a use ("drop") after drop, as `_drop` reports it.
    _drop_rules = DropRules(
        LifetimeError,
        rule=None,
        use_message="{use} after drop",
        dropped_label="it was dropped",
        made_label="it was allocated",
    )

    def __init__(self, site: Site) -> None:
        self._site = site
        self._dropped_at = None
        self._lt: Lifetime | None = None

    def _handle_obj(self) -> str:
        return type(self).__name__

    def _made_at(self) -> Site:
        return self._site

    # The allocation types' name for the use check.
    _alive = Handle._check

    @property
    def lifetime(self) -> Lifetime:
        """The owner's life, for references borrowed from it."""
        lt = self._lt
        if lt is None:
            lt = self._lt = Lifetime(type(self).__name__, self._site)
            if self._dropped_at is not None:
                lt.end(self._dropped_at, "the owner was dropped")
        return lt

    def _drop(self) -> None:
        self._alive("drop")
        self._dropped_at = here()
        if self._lt is not None:
            self._lt.end(self._dropped_at, "the owner was dropped")
