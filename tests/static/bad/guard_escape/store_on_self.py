"""Keeping a guard's reference on `self`, where it outlives the critical section."""

from __future__ import annotations

from ownership.borrow import Ref
from ownership.sync import SpinLock


class Routes:
    def __init__(self) -> None:
        self.table: SpinLock[list[int]] = SpinLock([1, 2], name="Routes.table")
        self.cached: Ref[list[int]] | None = None

    def refresh(self) -> None:
        with self.table.lock() as g:  # runtime-origin
            view = g.ref()
            self.cached = view  # expect: guard-escape

    def first(self) -> int:
        cached = self.cached
        assert cached is not None
        return cached.get()[0]  # runtime-site


def main() -> None:
    r = Routes()
    r.refresh()
    r.first()
