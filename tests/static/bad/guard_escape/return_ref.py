"""Returning a reference obtained through a guard from the function that took it."""

from __future__ import annotations

from ownership.borrow import Ref
from ownership.sync import SpinLock


class Settings:
    def __init__(self) -> None:
        self.lock: SpinLock[dict[str, int]] = SpinLock({"mtu": 1500}, name="Settings.lock")

    def current(self) -> Ref[dict[str, int]]:
        with self.lock.lock() as g:  # runtime-origin
            return g.ref()  # expect: guard-escape


def main() -> None:
    ref = Settings().current()
    ref.get()  # runtime-site
