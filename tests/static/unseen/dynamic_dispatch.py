"""What the static checker cannot see: a sleeping call through dynamic dispatch.

`notify` is a plain `Callable` attribute; which function it holds is only known at run
time, so the checker has no summary for `self.notify()` and stays silent, while the
runtime check catches the sleep under the spinlock. Protocol methods and overridden
methods are the same case: the checker follows the statically resolved target only.
"""

from __future__ import annotations

from collections.abc import Callable

from ownership.alloc import GFP_KERNEL, KBox
from ownership.sync import SpinLock


def log_event() -> None:
    KBox.new(0, GFP_KERNEL).drop()  # runtime-site


class Watcher:
    def __init__(self, notify: Callable[[], None]) -> None:
        self.lock = SpinLock(0, name="Watcher.lock")
        self.notify = notify

    def fire(self) -> None:
        with self.lock.lock() as g:  # runtime-origin
            g.data += 1
            self.notify()


def main() -> None:
    Watcher(log_event).fire()
