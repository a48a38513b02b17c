"""Values that may cross threads: plain data, `Arc`s of Send+Sync types, closures over them."""

from __future__ import annotations

from typing import Any

from ownership.marker import impl_send, impl_sync
from ownership.sync import Arc, SpinLock
from ownership.task import spawn
from ownership.workqueue import flush, queue_work


@impl_send("the counter is only reached through its lock")
@impl_sync("every access takes the lock")
class Counter:
    def __init__(self) -> None:
        self.lock = SpinLock(0, name="Counter.lock")

    def bump(self) -> None:
        with self.lock.lock() as g:
            g.data += 1

    @classmethod
    def run(cls, me: Arc[Any]) -> None:
        me.get().bump()
        me.drop()


def main() -> None:
    counter = Arc.new(Counter())
    other = counter.clone()
    spawn(lambda: other.get().bump()).join()
    spawn(counter.get().bump).join()
    queue_work(counter.clone())
    flush()
    with counter.get().lock.lock() as g:
        total = g.data
    spawn(abs, total).join()
    other.drop()
    counter.drop()
