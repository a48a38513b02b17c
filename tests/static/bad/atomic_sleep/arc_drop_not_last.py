"""Dropping one `Arc` of several under a spinlock, where `T.drop_arc` may sleep.

`drop_arc` runs only when the last reference goes, and here another handle always
outlives the one dropped. The checker cannot count references statically: it reports
the drop as if it were the last, and the finding's note states that limit.
"""

from __future__ import annotations

from ownership.context import may_sleep
from ownership.sync import Arc, SpinLock

STATIC_ONLY = "the dropped handle is never the last one: the runtime refuses only a last drop"


class Session:
    """Its teardown sleeps (it would flush a queue)."""

    def __init__(self) -> None:
        self.open = True

    @may_sleep
    def drop_arc(self) -> None:
        self.open = False


class Registry:
    def __init__(self) -> None:
        self.lock: SpinLock[Arc[Session] | None] = SpinLock(None, name="Registry.lock (static)")

    def publish(self, session: Arc[Session]) -> None:
        with self.lock.lock() as g:
            old = g.replace(session.clone())
            if old is not None:
                old.drop()  # expect: atomic-sleep

    def clear(self) -> Arc[Session] | None:
        with self.lock.lock() as g:
            return g.replace(None)


def main() -> None:
    s = Arc.new(Session())
    r = Registry()
    r.publish(s)
    r.publish(s)  # Drops the first clone while `s` still holds a count.
    last = r.clear()
    if last is not None:
        last.drop()
    s.drop()  # The last reference, outside the lock: drop_arc runs here.
