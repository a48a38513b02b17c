"""`raw_spin_lock()` as a `with` statement over a scheduling-seam raw lock.

The seam promises only `acquire()`/`release()` on a raw lock, so the C side's internal
locks (zone lock, page-table lock, maple-tree lock, rwsem state words) are taken through
this helper. They are leaves: nothing that may sleep or take another lock runs under them.
"""

from __future__ import annotations

from types import TracebackType

from ..sched import RawLock

__all__ = ["locked"]


class locked:
    """Hold `lock` for the body of a `with` statement.

    Invariants: the lock is held exactly while the body runs.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: RawLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
