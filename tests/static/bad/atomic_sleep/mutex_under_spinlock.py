"""Taking a `Mutex` (which may sleep) while a `SpinLock` is held."""

from __future__ import annotations

from ownership.sync import Mutex, SpinLock


class Device:
    def __init__(self) -> None:
        self.stats = SpinLock(0, name="Device.stats")
        self.config = Mutex(0, name="Device.config")

    def sync_stats(self) -> None:
        with self.stats.lock() as stats:  # runtime-origin
            with self.config.lock() as config:  # expect: atomic-sleep; runtime-site
                config.data = stats.data


def main() -> None:
    Device().sync_stats()
