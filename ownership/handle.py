"""Handles that are dropped once and unusable after (Rust's move semantics).

In Rust, a value that owns something (`ARef<T>`, `Arc<T>`, `ARef<File>`, `Page`,
`KBox<T>`, Binder's `NodeRef`) is consumed by `drop`: the compiler rejects any later use
and a second drop. The model's handles are Python objects that outlive their `drop()`,
so each records where it was dropped and checks its uses. `Handle` is that state and
those two checks, written once for every such type; each type says how it reports them
(`DropRules`: the error class, the rule ids, the texts) and supplies the object a report
names and where the handle was made.

Upstream counterpart: none (the borrow checker does this at compile time). The check
reads one attribute, so a type's hot path tests `_dropped_at is not None` inline and
calls `_check` only then.

Lock order: no locks.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from .config import STATE
from .errors import SafetyViolation
from .site import Site, here

__all__ = ["DropRules", "Handle"]


@dataclass(frozen=True, slots=True)
class DropRules:
    """How one handle type reports a use after drop and a double drop.

    `use_message` is formatted with `use` (what was attempted: "clone", "dereference")
    and `name` (the handle's class name). Without `double_message`, a second drop is
    reported as a use ("drop") after drop.
    """

    error: type[SafetyViolation]
    #: The rule id of a use after drop (None: the error class's default rule).
    rule: str | None
    use_message: str
    #: The origin label of a use after drop (the origin is where it was dropped).
    dropped_label: str
    #: The label of the note naming where the handle was made (`Handle._made_at`).
    made_label: str
    double_message: str | None = None
    #: The origin label of a double drop.
    already_label: str = ""
    #: Whether a double drop also names where the handle was made.
    double_notes: bool = True


class Handle:
    """A handle that owns something until it is dropped once, and is unusable after.

    Invariants: `_dropped_at` is None while the handle is live, else where it was
    dropped (or consumed: `into_raw`, `fd_install`). Every subclass sets it to None when
    it makes a handle and sets it to the drop site once the drop took effect.
    """

    __slots__ = ("_dropped_at",)

    _dropped_at: Site | None
    _drop_rules: ClassVar[DropRules]

    @abstractmethod
    def _handle_obj(self) -> str:
        """The object a report names (`ARef<Task>`, the `struct page`)."""

    @abstractmethod
    def _made_at(self) -> Site | None:
        """Where the handle was made (taken, allocated), for the report's note."""

    def is_dropped(self) -> bool:
        return self._dropped_at is not None

    def _check(self, use: str) -> None:
        """Refuse `use` of a dropped handle (when checks are on)."""
        if self._dropped_at is not None and STATE.on:
            raise self._use_after_drop(use)

    def _use_after_drop(self, use: str, site: Site | None = None) -> SafetyViolation:
        """The violation for `use` of this dropped handle at `site` (default: the caller)."""
        r = self._drop_rules
        return r.error(
            r.use_message.format(use=use, name=type(self).__name__),
            rule=r.rule,
            obj=self._handle_obj(),
            site=here() if site is None else site,
            origin=self._dropped_at,
            origin_label=r.dropped_label,
            notes=[(r.made_label, self._made_at())],
        )

    def _double_drop(self, site: Site | None = None) -> None:
        """Refuse a second drop at `site` (default: the caller) when checks are on.

        With checks off it returns and the caller ignores the drop.
        """
        if not STATE.on:
            return
        r = self._drop_rules
        if r.double_message is None:
            raise self._use_after_drop("drop", site)
        raise r.error(
            r.double_message,
            rule="double-drop",
            obj=self._handle_obj(),
            site=here() if site is None else site,
            origin=self._dropped_at,
            origin_label=r.already_label,
            notes=[(r.made_label, self._made_at())] if r.double_notes else [],
        )
