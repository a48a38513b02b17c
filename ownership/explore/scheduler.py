"""The explorer's scheduler: model threads are greenlets, every seam point a decision.

`GreenletScheduler` implements the `ownership.sched.Scheduler` protocol (raw locks,
wait queues, spawn, preemption points) and the seam's optional slots (thread identity,
the clock, the failure hook, atomic-access points). Under it every model thread is a
greenlet on the one OS thread that called `explore()`; exactly one runs at a time, and
at every seam point the running thread asks the strategy which thread runs next. A
switch is one `greenlet.switch()` plus swapping the execution context
(`ownership.context.ctx.st`, the preempt count and held locks of the model thread), so
the context follows the model thread as it does under real threads.

What a seam point is, and the object it touches (used by the dfs pruning):

* `acquire`/`trylock` of a raw lock (the lock); a thread whose next operation is the
  acquisition of a held lock is *blocked* on it and cannot be chosen;
* the preemption point after a lock release (the lock released);
* `prepare` and `wake` of a wait queue (the queue); `wait` blocks until woken, timed
  out (virtual time) or woken spuriously (an explorer choice);
* `spawn` (None) and `join` (the thread joined);
* an atomic operation (`sched.atomic_hook`, refcount inc/dec): the atomic object;
* any other preemption point (`might_sleep`, the end of an atomic section): None.

A run ends with the first failure of any thread (a violation is reported through
`sched.failure_hook` as it is raised, and the run ends at the next seam point of any
thread, so a handler that swallows it cannot hide it; a second report of the same
rule before that point, a report re-raised with more context, replaces the first), with a
deadlock (a thread blocked and none can run: a `LockError` with rule `deadlock`), with
a livelock (more than `max_steps` seam points: rule `livelock`), or when the scenario's
main thread has returned and no thread can run (idle workers are left blocked). Then
every unfinished greenlet is unwound with `GreenletExit`, with the scheduler in
teardown mode (seam points do nothing; a blocking call raises `GreenletExit` again).

Time is virtual: `monotonic()` is the scheduler's clock, which advances only when no
thread can run and a thread waits with a timeout: to that waiter's deadline. A timed
wait of more than `POLL_TIMEOUT` seconds (a `join(30)`, a flush timeout) is a safety
net, not a poll: when every blocked thread waits untimed or on such a net, the state is
reported as a deadlock instead of advancing the clock to the net's expiry.

It wraps no C object: it stands in for the kernel's scheduler (kernel/sched/) as
loom's and shuttle's executors do for Rust's threads.

Lock order: the scheduler takes no locks; it runs one model thread at a time.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Protocol

import greenlet

from .. import context, sched
from ..context import ThreadState
from ..errors import LockError, SafetyViolation
from ..site import UNKNOWN, Site, here

__all__ = [
    "POLL_TIMEOUT",
    "TRAIL",
    "GreenletScheduler",
    "MThread",
    "Strategy",
    "describe",
]

POLL_TIMEOUT = 1.0
"""A timed wait at most this long is a poll: the clock advances for it."""

TRAIL = 4
"""How many seam points of each thread the failure report shows."""

_EXIT = greenlet.GreenletExit


def describe(obj: object) -> str:
    """A short description of a seam object (a lock, a queue, a thread, ...)."""
    if obj is None:
        return "-"
    owner = getattr(obj, "owner_obj", None)
    if owner is not None:
        obj = owner
    d = getattr(obj, "describe", None)
    if callable(d):
        try:
            return str(d())
        except Exception:  # A half-built object: fall back to its type.
            pass
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return f"{type(obj).__name__} '{name}'"
    return type(obj).__name__


class Blocker(Protocol):
    """What a blocked thread waits for."""

    def ready(self) -> bool: ...


class MThread:
    """One model thread: a greenlet, its execution context and its scheduling state.

    Invariants: `index` is the creation order within the run (0 is the scenario's main
    thread) and `tid` the id `sched.current_id()` returns on it; `wait_on` is None while
    the thread can run, else what it is blocked on (it can run again once
    `wait_on.ready()`, or at `deadline` on the virtual clock); `op`/`obj` are the seam
    operation it is stopped at; `trail` (recording runs only) its last seam points.
    """

    __slots__ = (
        "deadline",
        "done",
        "glet",
        "index",
        "joiners",
        "last_release",
        "name",
        "obj",
        "op",
        "spurious",
        "st",
        "tid",
        "timed_out",
        "timeout",
        "trail",
        "wait_obj",
        "wait_on",
        "wait_site",
    )

    def __init__(self, index: int, name: str, glet: greenlet.greenlet) -> None:
        self.index = index
        self.tid = index + 1
        self.name = name
        self.glet = glet
        self.st = ThreadState()
        self.st.tid = self.tid
        self.done = False
        self.wait_on: Blocker | None = None
        self.wait_obj: object = None
        self.wait_site: Site = UNKNOWN
        self.deadline: float | None = None
        self.timeout = 0.0
        self.timed_out = False
        self.spurious = False
        self.op = "start"
        self.obj: object = None
        self.last_release: object = None
        self.joiners = 0
        self.trail: deque[tuple[int, str, str, Site]] = deque(maxlen=TRAIL)

    # --- the ThreadHandle protocol ---------------------------------------------------

    def ready(self) -> bool:
        return self.done

    def is_alive(self) -> bool:
        return not self.done

    def join(self, timeout: float | None = None) -> None:
        s = _current_scheduler()
        if s is None or s.current is None:
            raise RuntimeError("join of a model thread from outside the explored scenario")
        s.block("join", self, self, timeout)

    def describe(self) -> str:
        return f"thread '{self.name}'"


class Strategy(Protocol):
    """Chooses the next thread at each decision (a seam point where several can run)."""

    spurious: bool
    """Whether threads blocked on a wait queue may be woken spuriously (a choice)."""

    def choose(
        self, s: GreenletScheduler, enabled: list[MThread], sleepers: list[MThread]
    ) -> tuple[MThread, bool]:
        """The thread to run, and whether it is a spurious wakeup of one of `sleepers`."""
        ...


class _Stopped(Exception):
    """The run ended (a failure, a deadlock, a pruned schedule): unwind the driver."""


class XLock:
    """A raw lock under the explorer: acquiring a held one blocks the model thread.

    Invariants: `holder` is the model thread holding it, or None.
    """

    __slots__ = ("holder", "owner_obj", "s", "site")

    def __init__(self, s: GreenletScheduler, owner_obj: object) -> None:
        self.s = s
        self.holder: MThread | None = None
        self.owner_obj = owner_obj
        self.site: Site = UNKNOWN

    def ready(self) -> bool:
        return self.holder is None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        s = self.s
        t = s.current
        if t is None:
            # The driver (teardown, or code outside any model thread): never blocks.
            if self.holder is not None:
                if s.teardown:
                    raise _EXIT()
                return False
            return True
        if blocking:
            s.block("acquire", self, self, timeout if timeout >= 0 else None)
            if self.holder is not None:
                return False  # Timed out.
        else:
            s.point("trylock", self)
            if self.holder is not None:
                return False
        self.holder = t
        if s.record:
            self.site = here()
        return True

    def release(self) -> None:
        self.holder = None
        t = self.s.current
        if t is not None:
            t.last_release = self

    def __enter__(self) -> XLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        self.release()

    def describe(self) -> str:
        return describe(self.owner_obj) if self.owner_obj is not None else "raw lock"


class XWaiter:
    """One registration on an `XWaitQueue`; `flag` is set by a wake."""

    __slots__ = ("flag", "q")

    def __init__(self, q: XWaitQueue) -> None:
        self.flag = False
        self.q = q

    def ready(self) -> bool:
        return self.flag

    def wait(self, timeout: float | None = None) -> bool:
        s = self.q.s
        if s.current is None:
            if s.teardown:
                raise _EXIT()
            return self.flag
        if self.flag:
            s.point("wait", self.q)
            return True
        t = s.block("wait", self.q, self, timeout)
        if self.ready():  # Woken while blocked.
            return True
        if t.spurious:
            t.spurious = False
            return True
        return False


class XWaitQueue:
    """A FIFO wait queue of `XWaiter`s; a wake before the wait is not lost."""

    __slots__ = ("owner_obj", "s", "waiters")

    def __init__(self, s: GreenletScheduler, owner_obj: object) -> None:
        self.s = s
        self.owner_obj = owner_obj
        self.waiters: deque[XWaiter] = deque()

    def prepare(self) -> sched.Waiter:
        # A seam point of its own: registering is an access to the queue, which a
        # concurrent wake must be ordered against (the dfs pruning relies on it).
        self.s.point("prepare", self)
        w = XWaiter(self)
        self.waiters.append(w)
        return w

    def cancel(self, waiter: sched.Waiter) -> None:
        try:
            self.waiters.remove(waiter)  # type: ignore[arg-type]
        except ValueError:
            pass

    def wake_one(self) -> bool:
        self.s.point("wake", self)
        if not self.waiters:
            return False
        self.waiters.popleft().flag = True
        return True

    def wake_all(self) -> int:
        self.s.point("wake", self)
        ws = self.waiters
        n = len(ws)
        for w in ws:
            w.flag = True
        ws.clear()
        return n

    def wake(self, waiter: sched.Waiter) -> bool:
        self.s.point("wake", self)
        try:
            self.waiters.remove(waiter)  # type: ignore[arg-type]
        except ValueError:
            return False
        assert isinstance(waiter, XWaiter)
        waiter.flag = True
        return True

    def describe(self) -> str:
        return f"wait queue of {describe(self.owner_obj)}"


_installed: list[GreenletScheduler] = []


def _current_scheduler() -> GreenletScheduler | None:
    return _installed[-1] if _installed else None


def _owner_of_new_primitive() -> object:
    """The model object whose constructor asks for a raw lock or wait queue (its `self`)."""
    try:
        f = sys._getframe(2)
    except ValueError:  # Called from the top of a greenlet: no constructor to name.
        return None
    return f.f_locals.get("self")


class GreenletScheduler:
    """One run of a scenario under a strategy (see the module docstring).

    Invariants: `current` is the running model thread (None while the driver runs);
    `context.ctx.st` is `current.st` while a model thread runs; `live` lists the
    unfinished threads in creation order; `failure` is the first failure of the run.
    """

    def __init__(self, strategy: Strategy, *, max_steps: int, record: bool = False) -> None:
        self.strategy = strategy
        self.max_steps = max_steps
        self.record = record
        self.threads: list[MThread] = []
        self.live: list[MThread] = []
        self.current: MThread | None = None
        self.failure: BaseException | None = None
        self.pending: BaseException | None = None
        """A failure reported by `on_failure`, which ends the run at the next seam point."""
        self.pruned = False
        self.ended = False
        self.interrupted = False
        self.teardown = False
        self.steps = 0
        self.decisions = 0
        self.preemptions = 0
        self.switches = 0
        self.clock = 0.0
        self.choices: list[tuple[int, int, bool]] = []
        """Non-default choices made: (decision, thread index, spurious)."""
        self.main: MThread | None = None
        self.final: dict[int, str] = {}
        """Each thread's state when the run ended (before the unwinding)."""
        self._driver: greenlet.greenlet = greenlet.getcurrent()
        self._building = False

    # --- the Scheduler protocol ------------------------------------------------------

    def raw_lock(self) -> sched.RawLock:
        return XLock(self, _owner_of_new_primitive())

    def wait_queue(self) -> sched.WaitQueue:
        return XWaitQueue(self, _owner_of_new_primitive())

    def spawn(self, fn: Callable[[], None], name: str) -> sched.ThreadHandle:
        t = self._new_thread(fn, name)
        if self.current is not None:
            self.point("spawn", None)
        return t

    def preempt_point(self) -> None:
        t = self.current
        if t is None:
            return
        obj = t.last_release
        t.last_release = None
        self.point("preempt" if obj is None else "release", obj)

    # --- the seam's optional slots ---------------------------------------------------

    def current_id(self) -> int:
        t = self.current
        return t.tid if t is not None else 0

    def current_name(self) -> str:
        t = self.current
        return t.name if t is not None else "explorer"

    def thread_name(self, tid: int) -> str | None:
        for t in self.threads:
            if t.tid == tid:
                return t.name
        return None

    def monotonic(self) -> float:
        return self.clock

    def atomic_point(self, obj: object) -> None:
        if self.current is not None:
            self.point("atomic", obj)

    def on_failure(self, e: BaseException) -> None:
        if self._building or self.teardown or self.current is None:
            return
        if isinstance(e, KeyboardInterrupt):
            self.interrupted = True
            self._end()
        if self.failure is not None:
            return
        p = self.pending
        if p is None or (
            isinstance(e, SafetyViolation) and isinstance(p, SafetyViolation) and e.rule == p.rule
        ):
            # The later of two reports of one rule before the next seam point is the
            # one the code meant to raise (a report re-raised with more context).
            self.pending = e

    # --- threads -----------------------------------------------------------------------

    def _new_thread(self, fn: Callable[[], None], name: str) -> MThread:
        idx = len(self.threads)
        g = greenlet.greenlet(parent=self._driver)
        t = MThread(idx, name, g)

        def body() -> None:
            try:
                fn()
            except _EXIT:
                raise
            except KeyboardInterrupt:
                self.interrupted = self.ended = True
            except BaseException as e:
                if not self.teardown and self.failure is None:
                    # A violation raised on the way was recorded (and a same-rule
                    # re-raise replaced it) by `on_failure`: it is the run's failure.
                    p = self.pending
                    self.failure = e if p is None else p
            t.done = True
            self.live.remove(t)
            t.op = "exit"

        g.run = body
        self.threads.append(t)
        self.live.append(t)
        return t

    def _switch(self, u: MThread) -> None:
        """Run `u` (from a model thread or the driver) until control comes back here."""
        self.current = u
        context.ctx.st = u.st
        self.switches += 1
        u.glet.switch()

    def _stop(self) -> None:
        """End the run from a model thread: back to the driver, never resumed."""
        self._driver.switch()
        raise _EXIT()  # Only reached if a dead run's greenlet is resumed by mistake.

    # --- decisions ---------------------------------------------------------------------

    def point(self, op: str, obj: object) -> None:
        """A seam point of the running thread: the strategy may switch to another."""
        t = self.current
        if t is None or self.teardown:
            return
        if self.pending is not None:
            # A violation was raised since the last seam point: the schedule ends here,
            # whether or not a handler swallowed it.
            self.failure = self.pending
            self._end()
        self.steps += 1
        t.op = op
        t.obj = obj
        if self.record:
            t.trail.append((self.steps, op, describe(obj), here()))
        if self.steps > self.max_steps:
            self._livelock()
        live = self.live
        if len(live) == 1 and t.wait_on is None:
            return
        u = self._pick(t)
        if u is not t:
            self._switch(u)

    def block(self, op: str, obj: object, on: Blocker, timeout: float | None) -> MThread:
        """Stop the running thread at a seam point until `on.ready()` (or the timeout)."""
        t = self.current
        assert t is not None
        if self.teardown:
            raise _EXIT()
        t.wait_on = on
        t.wait_obj = obj
        if self.record:
            t.wait_site = here()
        if timeout is not None:
            t.deadline = self.clock + max(timeout, 0.0)
            t.timeout = timeout
        t.timed_out = False
        self.point(op, obj)
        t.wait_on = None
        t.deadline = None
        return t

    def _pick(self, t: MThread | None) -> MThread:
        """The next thread to run after a seam point of `t` (None: a thread ended)."""
        while True:
            enabled = [u for u in self.live if (w := u.wait_on) is None or w.ready()]
            if enabled:
                break
            self._idle()
        strat = self.strategy
        sleepers: list[MThread] = []
        if strat.spurious:
            sleepers = [
                u for u in self.live if isinstance(u.wait_on, XWaiter) and not u.wait_on.flag
            ]
        if len(enabled) == 1 and not sleepers:
            return enabled[0]
        d = self.decisions
        self.decisions = d + 1
        u, spurious = strat.choose(self, enabled, sleepers)
        if spurious:
            u.spurious = True
            u.wait_on = None
        t_on = t is not None and t in enabled
        if spurious or u is not (t if t_on else enabled[0]):
            self.choices.append((d, u.index, spurious))
            if t_on and u is not t:
                self.preemptions += 1
        return u

    def _idle(self) -> None:
        """No thread can run: advance the clock to a poll's deadline, or end the run."""
        blocked = self.live
        timed = [u for u in blocked if u.deadline is not None]
        polls = [u for u in timed if u.timeout <= POLL_TIMEOUT]
        main_done = self.main is None or self.main.done
        if not blocked or (main_done and not polls):
            # Every thread ended, or only idle workers are left: the run is over.
            self._end()
        if timed and (polls or len(timed) == len(blocked)):
            u = min(timed, key=lambda x: (x.deadline, x.index))
            assert u.deadline is not None
            self.clock = max(self.clock, u.deadline)
            u.timed_out = True
            u.wait_on = None
            u.deadline = None
            return
        self._deadlock()

    def _end(self) -> None:
        self.ended = True
        if self.current is None:
            raise _Stopped()
        self._stop()

    def prune(self) -> None:
        """The strategy found this schedule redundant: end the run with no failure."""
        self.pruned = True
        self._end()

    def _livelock(self) -> None:
        t = self.current
        assert t is not None
        self._building = True
        try:
            e = LockError(
                f"no progress: the schedule exceeded {self.max_steps} seam points (livelock)",
                rule="livelock",
                obj=describe(t.obj),
                site=here(),
                details=self._thread_lines(),
            )
        finally:
            self._building = False
        if self.failure is None:
            self.failure = e
        self._end()

    @staticmethod
    def _state(u: MThread) -> str:
        return "finished" if u.done else ("blocked" if u.wait_on is not None else "runnable")

    def _thread_lines(self) -> list[str]:
        lines = []
        for u in self.threads:
            state = self._state(u)
            lines.append(f"thread '{u.name}' ({state}) at {u.op} {describe(u.obj)}")
        return lines

    def _deadlock(self) -> None:
        blocked = [u for u in self.live if u.wait_on is not None]
        notes: list[tuple[str, Site | None]] = []
        details: list[str] = []
        for u in blocked:
            w = u.wait_on
            what = describe(u.wait_obj)
            holder = ""
            if isinstance(w, XLock) and w.holder is not None:
                holder = f", held by thread '{w.holder.name}'"
                if self.record and w.site is not UNKNOWN:
                    holder += f" (taken at {w.site.describe().splitlines()[0]})"
            elif isinstance(w, MThread):
                what = f"thread '{w.name}' to finish"
            elif isinstance(w, XWaiter):
                what = f"a wakeup on {what}"
            notes.append(
                (f"thread '{u.name}' is blocked in {u.op} of {what}{holder}, since", u.wait_site)
            )
            held = [h.describe() for h in u.st.held]
            if held:
                details.append(f"thread '{u.name}' holds: " + "; ".join(held))
        first = blocked[0] if blocked else None
        self._building = True
        try:
            e = LockError(
                f"deadlock: {len(blocked)} thread(s) blocked and none can run",
                rule="deadlock",
                obj=describe(first.wait_obj) if first else None,
                site=first.wait_site if first else None,
                notes=notes,
                details=details,
                held_locks=(),
            )
        finally:
            self._building = False
        e.thread = "explorer, every thread blocked"
        e.args = (e.report(),)
        if self.failure is None:
            self.failure = e
        self._end()

    # --- a run -------------------------------------------------------------------------

    def run(
        self,
        scenario: Callable[[], object],
        world: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        """Run `scenario` as the main model thread until the run ends.

        `world`, when given, is entered with this scheduler installed (before the
        scenario starts) and left after the run: the run's fresh global state.
        """
        if _installed:
            raise RuntimeError("explore() inside an explored scenario is not supported")
        saved_st = context.ctx.st
        prev = sched.set_scheduler(self)
        _installed.append(self)
        with ExitStack() as stack:
            try:
                if world is not None:
                    stack.enter_context(world())
                self._run_main(scenario)
            finally:
                self.current = None
                self.final = {t.index: self._state(t) for t in self.threads}
                self._unwind()
                _installed.pop()
                sched.set_scheduler(prev)
                context.ctx.st = saved_st

    def _run_main(self, scenario: Callable[[], object]) -> None:
        try:

            def main() -> None:
                scenario()

            self.main = self._new_thread(main, "main")
            try:
                self._switch(self.main)
                while self.failure is None and not self.ended:
                    if self.pending is not None:
                        self.failure = self.pending
                        break
                    self.current = None
                    u = self._pick(None)
                    self._switch(u)
            except _Stopped:
                pass
        finally:
            self.current = None

    def _unwind(self) -> None:
        """Kill every unfinished greenlet, running its `finally` blocks harmlessly."""
        self.teardown = True
        for t in list(self.live):
            g = t.glet
            if g.dead:
                continue
            self.current = t
            context.ctx.st = t.st
            try:
                g.throw(_EXIT())
            except BaseException:  # A cleanup failing in teardown is not the run's failure.
                pass
            self.current = None
