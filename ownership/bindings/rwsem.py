"""`struct rw_semaphore` (kernel/locking/rwsem.c), with strict owner semantics.

The mmap lock is one of these. It is built on the scheduling seam (`ownership.sched`):
a raw lock protects the semaphore's state word, and waiters sleep on a wait queue,
registered before the state lock is dropped so that no wakeup is lost.

Semantics kept from the kernel:

* any number of readers or one writer; a waiting writer blocks new readers (so a
  recursive read acquisition can deadlock, which is why lockdep reports it);
* owner semantics (Documentation/locking/locktypes.rst): a read or write lock is released
  by the thread that took it; anything else is a `LockError` (`CONFIG_DEBUG_RWSEMS`);
* `down_read`/`down_write` may sleep (`might_sleep()` first); the trylocks never sleep;
* every acquisition is validated by lockdep (`ownership.lockdep`) before it can
  block, and trylocks are recorded without adding a dependency;
* a waiter blocked for longer than `HUNG_TASK_TIMEOUT` seconds gives up with a
  `LockError` (the hung-task detector), so that a deadlocked test fails instead of hanging.

Lock order: `_state` is a leaf; callers order rw_semaphores by their lockdep classes.
"""

from __future__ import annotations

from .. import lockdep, sched
from ..config import STATE
from ..context import might_sleep
from ..errors import LockError
from ..site import Site, here
from ._raw import locked

__all__ = ["HUNG_TASK_TIMEOUT", "RwSemaphore"]

HUNG_TASK_TIMEOUT = 20.0


class RwSemaphore:
    """A reader-writer semaphore.

    Invariants: `_writer` is None or the thread id holding it for write, and then
    `_nreaders == 0`; `_readers` maps each reading thread to its (normally 1) read count,
    summing to `_nreaders`; `_write_site`/`_read_sites` are where the holders locked.
    """

    __slots__ = (
        "_nreaders",
        "_read_sites",
        "_readers",
        "_state",
        "_waiting_writers",
        "_wq",
        "_write_site",
        "_writer",
        "cls",
        "name",
    )

    def __init__(self, name: str, cls: lockdep.LockClass) -> None:
        self.name = name
        self.cls = cls
        self._state = sched.active().raw_lock()
        self._wq = sched.active().wait_queue()
        self._readers: dict[int, int] = {}
        self._read_sites: dict[int, Site] = {}
        self._nreaders = 0
        self._writer: int | None = None
        self._write_site: Site | None = None
        self._waiting_writers = 0

    def describe(self) -> str:
        return f"rw_semaphore '{self.name}'"

    # --- queries (lockdep_assert_held and friends) -----------------------------------

    def is_locked(self) -> bool:
        return self._writer is not None or self._nreaders > 0

    def is_write_locked(self) -> bool:
        return self._writer is not None

    def write_held_by_current(self) -> bool:
        return self._writer == sched.current_id()

    def read_held_by_current(self) -> bool:
        return self._readers.get(sched.current_id(), 0) > 0

    def held_by_current(self) -> bool:
        return self.write_held_by_current() or self.read_held_by_current()

    def holder_site(self) -> Site | None:
        """Where a current holder took the lock (the writer's, else some reader's)."""
        if self._write_site is not None:
            return self._write_site
        for s in self._read_sites.values():
            return s
        return None

    # --- blocking --------------------------------------------------------------------

    def _sleep_until(self, ready: str, site: Site) -> None:
        """Wait (with `_state` held on entry and exit) until the `ready` condition holds."""
        deadline = sched.monotonic() + HUNG_TASK_TIMEOUT
        while not self._ready(ready):
            w = self._wq.prepare()
            self._state.release()
            try:
                w.wait(0.5)
            finally:
                self._wq.cancel(w)
                self._state.acquire()
            if sched.monotonic() > deadline and not self._ready(ready):
                raise LockError(
                    f"task blocked for more than {HUNG_TASK_TIMEOUT:.0f} seconds in "
                    f"{'down_write' if ready != 'read' else 'down_read'}() (hung task)",
                    rule="hung-task",
                    obj=self.describe(),
                    site=site,
                    origin=self.holder_site(),
                    origin_label="the lock is held, taken",
                )

    def _ready(self, ready: str) -> bool:
        if ready == "read":
            return self._writer is None and self._waiting_writers == 0
        return self._writer is None and self._nreaders == 0

    def _add_reader(self, tid: int, site: Site) -> None:
        """Record a read hold of thread `tid` (with `_state` held)."""
        self._readers[tid] = self._readers.get(tid, 0) + 1
        self._read_sites.setdefault(tid, site)
        self._nreaders += 1

    def _set_writer(self, tid: int, site: Site) -> None:
        """Record thread `tid` as the writer (with `_state` held)."""
        self._writer = tid
        self._write_site = site

    # --- read side ---------------------------------------------------------------------

    def down_read(self, site: Site | None = None) -> lockdep.HeldLock | None:
        """Take the lock for read, sleeping if a writer holds or waits for it."""
        s = site if site is not None else here()
        might_sleep(what=f"down_read({self.name})")
        held = lockdep.acquire(self.cls, self, s, read=True) if STATE.on else None
        tid = sched.current_id()
        self._state.acquire()
        try:
            self._sleep_until("read", s)
            self._add_reader(tid, s)
        except BaseException:
            if held is not None:
                lockdep.release(held)
            raise
        finally:
            self._state.release()
        return held

    def down_read_trylock(self, site: Site | None = None) -> tuple[bool, lockdep.HeldLock | None]:
        """Take the lock for read if that needs no sleeping; never sleeps."""
        s = site if site is not None else here()
        tid = sched.current_id()
        with locked(self._state):
            if not self._ready("read"):
                return (False, None)
            self._add_reader(tid, s)
        held = lockdep.acquire(self.cls, self, s, read=True, trylock=True) if STATE.on else None
        return (True, held)

    def up_read(self, held: lockdep.HeldLock | None, site: Site | None = None) -> None:
        """Release a read hold of the calling thread."""
        tid = sched.current_id()
        with locked(self._state):
            n = self._readers.get(tid, 0)
            if n <= 0:
                raise LockError(
                    "up_read() by a thread that does not hold the read lock "
                    "(rw_semaphore owner semantics)",
                    rule="rwsem-owner",
                    obj=self.describe(),
                    site=site if site is not None else here(),
                    origin=self.holder_site(),
                    origin_label="the lock is held, taken",
                )
            if n == 1:
                del self._readers[tid]
                self._read_sites.pop(tid, None)
            else:
                self._readers[tid] = n - 1
            self._nreaders -= 1
        if held is not None:
            lockdep.release(held)
        self._wq.wake_all()
        sched.preempt_point()

    # --- write side --------------------------------------------------------------------

    def down_write(self, site: Site | None = None) -> lockdep.HeldLock | None:
        """Take the lock for write, sleeping until every holder is gone."""
        s = site if site is not None else here()
        might_sleep(what=f"down_write({self.name})")
        held = lockdep.acquire(self.cls, self, s) if STATE.on else None
        tid = sched.current_id()
        self._state.acquire()
        self._waiting_writers += 1
        try:
            self._sleep_until("write", s)
            self._set_writer(tid, s)
        except BaseException:
            if held is not None:
                lockdep.release(held)
            raise
        finally:
            self._waiting_writers -= 1
            self._state.release()
            # Readers held back by this waiter may go on if it gave up.
            self._wq.wake_all()
        return held

    def down_write_trylock(self, site: Site | None = None) -> tuple[bool, lockdep.HeldLock | None]:
        s = site if site is not None else here()
        tid = sched.current_id()
        with locked(self._state):
            if not self._ready("write"):
                return (False, None)
            self._set_writer(tid, s)
        held = lockdep.acquire(self.cls, self, s, trylock=True) if STATE.on else None
        return (True, held)

    def up_write(self, held: lockdep.HeldLock | None, site: Site | None = None) -> None:
        tid = sched.current_id()
        with locked(self._state):
            if self._writer != tid:
                raise LockError(
                    "up_write() by a thread that does not hold the write lock "
                    "(rw_semaphore owner semantics)",
                    rule="rwsem-owner",
                    obj=self.describe(),
                    site=site if site is not None else here(),
                    origin=self.holder_site(),
                    origin_label="the lock is held, taken",
                )
            self._writer = None
            self._write_site = None
        if held is not None:
            lockdep.release(held)
        self._wq.wake_all()
        sched.preempt_point()
