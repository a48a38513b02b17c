"""Sleeping in atomic context inside nested functions.

Factories of demo-style snippets define nested functions of the same name (`buggy` in
each): every one of them is checked, not only the last. A nested helper that sleeps
is summarised like any function, so calling it under a spinlock is reported.
"""

from __future__ import annotations

from collections.abc import Callable

from ownership.alloc import GFP_KERNEL, KBox
from ownership.context import rcu_read_lock
from ownership.sync import Mutex, SpinLock


def make_mutex_under_rcu() -> Callable[[], None]:
    config = Mutex({"debug": False}, name="nested.config")

    def buggy() -> None:
        with rcu_read_lock(), config.lock() as g:  # expect: atomic-sleep; runtime-site, runtime-origin
            g.data["debug"] = True

    return buggy


def make_helper_under_spinlock() -> Callable[[], None]:
    stats = SpinLock(0, name="nested.stats")

    def log() -> None:
        KBox.new(0, GFP_KERNEL).drop()

    def buggy() -> None:
        with stats.lock() as s:
            s.data += 1
            log()  # expect: atomic-sleep

    return buggy


def make_fine() -> Callable[[], None]:
    config = Mutex({"debug": False}, name="nested.fine")

    def buggy() -> None:  # Same name as the nested functions above, and harmless.
        with config.lock() as g:
            g.data["debug"] = True

    return buggy


def main() -> None:
    make_mutex_under_rcu()()
