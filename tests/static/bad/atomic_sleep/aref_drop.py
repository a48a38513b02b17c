"""Dropping an `ARef[T]` runs `T.dec_ref`, which here may sleep (as `mmput` does)."""

from __future__ import annotations

from ownership.aref import ARef
from ownership.context import may_sleep
from ownership.sync import SpinLock


class Channel:
    """An always-refcounted object whose last put tears down state and may sleep."""

    def __init__(self) -> None:
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    @may_sleep
    def dec_ref(self) -> None:
        self.refs -= 1


class Holder:
    def __init__(self, chan: ARef[Channel]) -> None:
        self.lock: SpinLock[ARef[Channel] | None] = SpinLock(chan, name="Holder.lock")

    def release(self) -> None:
        with self.lock.lock() as g:  # runtime-origin
            chan = g.replace(None)
            if chan is not None:
                chan.drop()  # expect: atomic-sleep; runtime-site


def main() -> None:
    Holder(ARef.from_ref(Channel())).release()
