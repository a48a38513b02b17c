"""Sleeping inside `rcu_read_lock()`, `preempt_disabled()`, `preempt_disable()` and
`local_irq_disable()`."""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KVec
from ownership.context import (
    local_irq_disable,
    preempt_disable,
    preempt_disabled,
    preempt_enable,
    rcu_read_lock,
)
from ownership.sync import Mutex


class Table:
    def __init__(self) -> None:
        self.entries: KVec[int] = KVec.new()
        self.lock = Mutex(0, name="Table.lock")

    def add_under_rcu(self, value: int) -> None:
        with rcu_read_lock():  # runtime-origin
            self.entries.push(value, GFP_KERNEL)  # expect: atomic-sleep; runtime-site

    def lock_without_preemption(self) -> None:
        with preempt_disabled():
            self.lock.lock().drop()  # expect: atomic-sleep

    def lock_with_preemption_off(self) -> None:
        sec = preempt_disable()
        self.lock.lock().drop()  # expect: atomic-sleep
        preempt_enable(sec)
        self.lock.lock().drop()

    def lock_with_irqs_off(self) -> None:
        with local_irq_disable():
            self.lock.lock().drop()  # expect: atomic-sleep


def main() -> None:
    Table().add_under_rcu(1)
