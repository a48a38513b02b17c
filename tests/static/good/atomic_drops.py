"""Drops that never sleep may happen under a spinlock."""

from __future__ import annotations

from ownership.aref import ARef
from ownership.sync import Arc, SpinLock


class Token:
    """An always-refcounted object whose put is atomic (like `mmput_async`)."""

    def __init__(self) -> None:
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1


class Payload:
    def __init__(self, n: int) -> None:
        self.n = n


class Owner:
    def __init__(self) -> None:
        self.lock: SpinLock[list[ARef[Token]]] = SpinLock([], name="Owner.lock")
        self.shared: SpinLock[Arc[Payload] | None] = SpinLock(None, name="Owner.shared")

    def release_all(self) -> None:
        with self.lock.lock() as g:
            while g.data:
                g.data.pop().drop()

    def replace_payload(self, n: int) -> None:
        new = Arc.new(Payload(n))
        with self.shared.lock() as g:
            old = g.replace(new)
            if old is not None:
                old.drop()


def main() -> None:
    o = Owner()
    with o.lock.lock() as g:
        g.data.append(ARef.from_ref(Token()))
    o.release_all()
    o.replace_payload(1)
    o.replace_payload(2)
    with o.shared.lock() as g:
        last = g.replace(None)
    assert last is not None
    last.drop()
