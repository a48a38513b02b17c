"""Unusual constructs the checker must walk without a false positive (or a crash)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, overload

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, KBox
from ownership.sync import Mutex, SpinLock

if TYPE_CHECKING:
    from ownership.sync import SpinLockGuard

COUNTER = 0


class Registry:
    def __init__(self) -> None:
        self.lock: SpinLock[dict[str, int]] = SpinLock({}, name="Registry.lock")
        self.slow = Mutex(0, name="Registry.slow")
        self.hooks: list[Callable[[], None]] = []

    @property
    def size(self) -> int:
        with self.lock.lock() as g:
            return len(g.data)

    @overload
    def get(self, key: str) -> int | None: ...

    @overload
    def get(self, key: str, default: int) -> int: ...

    def get(self, key: str, default: int | None = None) -> int | None:
        with self.lock.lock() as g:
            return g.data.get(key, default)

    def snapshot(self) -> dict[str, int]:
        with self.lock.lock() as g:
            copy = {k: v for k, v in g.data.items() if v >= 0}
            total = sum(v for v in g.data.values())
            copy["total"] = total if total else 0
        # The lambda runs later, outside the lock: it may sleep.
        self.hooks.append(lambda: self.slow.lock().drop())
        return copy

    def update(self, pairs: list[tuple[str, int]]) -> int:
        global COUNTER
        boxes = [KBox.new(v, GFP_KERNEL) for _, v in pairs]
        with self.lock.lock() as g:
            for (key, _), box in zip(pairs, boxes):
                g.data[key] = box.into_inner()
            COUNTER += len(pairs)
            match len(pairs):
                case 0:
                    pass
                case n if n > 10:
                    g.data["big"] = n
                case _:
                    g.data["small"] = (w := len(pairs)) and w
            try:
                g.data["x"] = 1 // len(pairs)
            except ZeroDivisionError:
                g.data["x"] = 0
            else:
                g.data["y"] = 1
            finally:
                g.data["z"] = 2
        return COUNTER

    def nested(self) -> None:
        def later() -> None:
            self.slow.lock().drop()

        class Local:
            def run(self, reg: Registry) -> None:
                reg.slow.lock().drop()

        with self.lock.lock():
            self.hooks.append(later)
            local = Local()
        local.run(self)
        later()

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, int]]:
        with self.lock.lock() as g:
            yield g.data

    def use_locked(self) -> None:
        with self.locked() as data:
            data["k"] = KBox.new(1, GFP_ATOMIC).into_inner()

    def peek(self, g: SpinLockGuard[dict[str, int]], *keys: str, **defaults: int) -> list[int]:
        return [g.data.get(k, defaults.get(k, 0)) for k in keys]

    def run_hooks(self) -> None:
        while self.hooks:
            self.hooks.pop()()


def main() -> None:
    r = Registry()
    r.update([("a", 1), ("b", 2)])
    assert r.get("a") == 1 and r.get("zz", 5) == 5
    assert r.size == 6
    r.snapshot()
    r.nested()
    r.use_locked()
    with r.lock.lock() as g:
        r.peek(g, "a", "q", q=3)
    r.run_hooks()
