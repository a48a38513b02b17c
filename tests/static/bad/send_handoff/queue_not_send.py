"""Queueing a work item whose type is declared `!Send`."""

from __future__ import annotations

from typing import Any

from ownership.marker import not_send
from ownership.sync import Arc
from ownership.workqueue import queue_work


@not_send("it holds a per-CPU pointer that is only valid on the CPU that made it")
class PerCpuFlush:
    def __init__(self, cpu: int) -> None:
        self.cpu = cpu

    @classmethod
    def run(cls, me: Arc[Any]) -> None:
        me.drop()


def flush_later() -> None:
    work = Arc.new(PerCpuFlush(0))
    queue_work(work)  # expect: send-handoff; runtime-site
    work.drop()


def main() -> None:
    flush_later()
