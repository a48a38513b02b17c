"""The good twins of `bad/*/nested_functions.py`: nested functions of one name in
several factories, and lambdas, that break no rule.

A lambda runs when it is called, not where it is written: one that allocates, written
under a spinlock and called after the lock is released, does not sleep in atomic
context. A lambda written in an unsafe block shares it (a Rust closure does).
"""

from __future__ import annotations

from collections.abc import Callable

from ownership.alloc import GFP_KERNEL, KBox
from ownership.context import rcu_read_lock
from ownership.sync import Mutex, SpinLock
from ownership.task import spawn
from ownership.unsafe import unsafe, unsafe_fn


class RawRing:
    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)

    @unsafe_fn(safety="`at + len(data)` is within the ring.")
    def write_unchecked(self, at: int, data: bytes) -> None:
        self.buf[at : at + len(data)] = data


def make_mutex_outside_rcu() -> Callable[[], None]:
    config = Mutex({"debug": False}, name="good.nested.config")

    def fixed() -> None:
        with config.lock() as g:
            g.data["debug"] = True
        with rcu_read_lock():
            pass

    return fixed


def make_helper_outside_spinlock() -> Callable[[], None]:
    stats = SpinLock(0, name="good.nested.stats")

    def log() -> None:
        KBox.new(0, GFP_KERNEL).drop()

    def fixed() -> None:
        log()
        with stats.lock() as s:
            s.data += 1
            count = s.data
            later: Callable[[], object] = lambda: KBox.new(count, GFP_KERNEL).drop()
        later()

    return fixed


def make_send_handoff() -> Callable[[], None]:
    lock = Mutex([0], name="good.nested.send")

    def fixed() -> None:
        def worker(m: Mutex[list[int]]) -> None:
            with m.lock() as g:
                g.data.append(1)

        spawn(worker, lock).join()
        later: Callable[[], object] = lambda: spawn(lambda m: m.lock().drop(), lock).join()
        later()

    return fixed


def make_unsafe_closure() -> Callable[[], None]:
    ring = RawRing(4)

    def fixed() -> None:
        with unsafe(
            "SAFETY: one byte at offset 0 of a 4-byte ring, written by the lambda below: 0 + 1 <= "
            "4."
        ):
            write: Callable[[], None] = lambda: ring.write_unchecked(0, b"x")
            write()

    return fixed


def main() -> None:
    make_mutex_outside_rcu()()
    make_helper_outside_spinlock()()
    make_send_handoff()()
    make_unsafe_closure()()
