"""A closure handed to another thread carries what it captures: here a guard."""

from __future__ import annotations

from ownership.sync import Mutex
from ownership.task import spawn


class Config:
    def __init__(self) -> None:
        self.lock = Mutex({"mode": 0}, name="Config.lock")

    def reset_later(self) -> None:
        g = self.lock.lock()  # runtime-origin
        try:
            spawn(lambda: g.data.clear()).join()  # expect: send-handoff; runtime-site
        finally:
            g.drop()


def main() -> None:
    Config().reset_later()
