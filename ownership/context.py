"""Per-thread execution context: preempt count, atomic sections, RCU, IRQs, held locks.

This models what the kernel keeps in `preempt_count()` and `current->lockdep_*`: the
state that decides whether the running code may sleep. A `SpinLock` guard,
`preempt_disable()`, `rcu_read_lock()` and `local_irq_disable()` each open an *atomic
section*, recorded with the site that opened it, so that `might_sleep()` can print a
`__might_resched`-style report naming where atomic context began.

The state lives in a plain per-thread `ThreadState` (`ctx.st`): a hot path pays one
thread-local lookup and then plain attribute accesses; `ctx.preempt_count`, `ctx.held`
and the other fields are the same state through properties.

A boundary the kernel crosses with a clean context (the return to userspace from a file
operation, the return of a work item to its worker) takes a `context_mark()` on the way
in and calls `check_context_returned()` on the way out: whatever was opened in between
and is still open is reported (lockdep's `lockdep_sys_exit`, the workqueue's "leaked
atomic, lock or RCU") and the thread is put back as it was at the mark.

`@may_sleep` is the single declaration that a function may sleep: the runtime wrapper
makes the `might_sleep()` check on entry (inlined), and the static checker
(`ownership.static`) reads the same decorator to find sleeping calls in atomic
context. `@may_sleep(gfp="flags")` declares a function that sleeps only when its GFP
argument allows direct reclaim.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, Protocol, TypeVar, overload

from . import sched
from .config import STATE
from .errors import (
    AtomicSleepError,
    LockError,
    SafetyViolation,
    SendError,
    install_context_hooks,
)
from .site import Site, here

if TYPE_CHECKING:
    from .lockdep import HeldLock
    from .unsafe import unsafe

__all__ = [
    "AtomicSection",
    "ContextMark",
    "ExecContext",
    "RcuReadGuard",
    "ThreadState",
    "check_context_returned",
    "context_mark",
    "ctx",
    "in_atomic",
    "irqs_disabled",
    "local_irq_disable",
    "may_sleep",
    "might_sleep",
    "preempt_count",
    "preempt_disable",
    "preempt_disabled",
    "preempt_enable",
    "rcu_read_lock",
    "refuse_sleep_in_atomic",
]

P = ParamSpec("P")
R = TypeVar("R")


class TaskLike(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def comm(self) -> str: ...


class AtomicSection:
    """One open reason for atomic context: a spinlock, preempt_disable, RCU or IRQs off.

    Invariants: `kind` is one of "spinlock", "preempt", "rcu", "irq"; `site` is where
    the section began; `what` describes the object (the lock's class, ...).
    """

    __slots__ = ("kind", "site", "what")

    def __init__(self, kind: str, what: str, site: Site) -> None:
        self.kind = kind
        self.what = what
        self.site = site

    def describe(self) -> str:
        return f"{self.what} at {self.site}"


class ThreadState:
    """The per-thread record behind `ctx`: a plain object, so hot paths pay one
    thread-local lookup (`ctx.st`) and then plain attribute accesses.

    Invariants: `preempt_count == len([s for s in sections if s.kind in
    ("spinlock", "preempt")])` while checks are on; `held` lists the locks held by this
    thread in acquisition order, each with its site; `chain_key` hashes the classes
    in `held` (lockdep's chain key); `unsafe_blocks` are the open `unsafe` blocks,
    innermost last (`unsafe_depth` of them); `tid` is the owning thread's ident and
    `thread_name` its name when the state was made (for reports).
    """

    __slots__ = (
        "chain_key",
        "held",
        "irq_depth",
        "preempt_count",
        "rcu_depth",
        "sections",
        "task",
        "thread_name",
        "tid",
        "unsafe_blocks",
        "unsafe_depth",
    )

    def __init__(self) -> None:
        self.preempt_count = 0
        self.rcu_depth = 0
        self.irq_depth = 0
        self.sections: list[AtomicSection] = []
        self.held: list[HeldLock] = []
        self.chain_key = 0
        self.unsafe_depth = 0
        self.unsafe_blocks: list[unsafe] = []
        self.task: TaskLike | None = None
        self.tid = sched.current_id()
        self.thread_name = sched.current_name()


class ExecContext(threading.local):
    """The calling thread's context. One instance per thread (a `threading.local`).

    The fields live in a plain `ThreadState` (`ctx.st`); the properties below are the
    public view. Invariants: those of `ThreadState`.
    """

    st: ThreadState

    def __init__(self) -> None:
        self.st = ThreadState()

    @property
    def preempt_count(self) -> int:
        return self.st.preempt_count

    @preempt_count.setter
    def preempt_count(self, v: int) -> None:
        self.st.preempt_count = v

    @property
    def rcu_depth(self) -> int:
        return self.st.rcu_depth

    @rcu_depth.setter
    def rcu_depth(self, v: int) -> None:
        self.st.rcu_depth = v

    @property
    def irq_depth(self) -> int:
        return self.st.irq_depth

    @irq_depth.setter
    def irq_depth(self, v: int) -> None:
        self.st.irq_depth = v

    @property
    def sections(self) -> list[AtomicSection]:
        return self.st.sections

    @property
    def held(self) -> list[HeldLock]:
        return self.st.held

    @property
    def chain_key(self) -> int:
        return self.st.chain_key

    @chain_key.setter
    def chain_key(self, v: int) -> None:
        self.st.chain_key = v

    @property
    def unsafe_depth(self) -> int:
        return self.st.unsafe_depth

    @unsafe_depth.setter
    def unsafe_depth(self, v: int) -> None:
        self.st.unsafe_depth = v
        del self.st.unsafe_blocks[max(v, 0) :]

    @property
    def task(self) -> TaskLike | None:
        return self.st.task

    @task.setter
    def task(self, v: TaskLike | None) -> None:
        self.st.task = v


ctx = ExecContext()


def current_task_name() -> str | None:
    t = ctx.st.task
    return f"{t.comm}:{t.pid}" if t is not None else None


def held_lock_descriptions() -> list[str]:
    return [h.describe() for h in ctx.st.held]


def _violation_raised(exc: SafetyViolation) -> None:
    hook = sched.failure_hook
    if hook is not None:
        # An explorer ends the schedule here: a violation on any thread is the failure.
        hook(exc)


# A violation's report names the locks the thread holds, its task and the model thread;
# errors reads them through these hooks, as it cannot import this module or the
# scheduling seam (both import errors).
install_context_hooks(
    held_lock_descriptions, current_task_name, sched.current_name, _violation_raised
)


def in_atomic() -> bool:
    """Whether the calling thread may not sleep."""
    c = ctx.st
    return c.preempt_count > 0 or c.rcu_depth > 0 or c.irq_depth > 0


def preempt_count() -> int:
    return ctx.st.preempt_count


def irqs_disabled() -> bool:
    return ctx.st.irq_depth > 0


def enter_atomic(kind: str, what: str, site: Site) -> AtomicSection:
    """Open an atomic section (used by spinlocks and the helpers below)."""
    c = ctx.st
    sec = AtomicSection(kind, what, site)
    c.sections.append(sec)
    if kind == "rcu":
        c.rcu_depth += 1
    elif kind == "irq":
        c.irq_depth += 1
    else:
        c.preempt_count += 1
    return sec


def _unbalanced(sec: AtomicSection) -> LockError:
    return LockError(
        f"closing {sec.what} that this thread did not open",
        rule="unbalanced-atomic",
        obj=sec.what,
        site=here(),
        origin=sec.site,
        origin_label="the section was opened",
    )


def exit_atomic(sec: AtomicSection, c: ThreadState | None = None) -> None:
    """Close a section opened by `enter_atomic` on this thread.

    `c` is the calling thread's state when the caller already has it (a fast path).
    """
    if c is None:
        c = ctx.st
    secs = c.sections
    # Sections usually close in LIFO order; search from the end.
    if secs and secs[-1] is sec:
        secs.pop()
    else:
        for i in range(len(secs) - 2, -1, -1):
            if secs[i] is sec:
                del secs[i]
                break
        else:
            if STATE.on:
                raise _unbalanced(sec)
            return  # Unchecked: a section that is not ours is left alone.
    kind = sec.kind
    if kind == "rcu":
        c.rcu_depth -= 1
    elif kind == "irq":
        c.irq_depth -= 1
    else:
        c.preempt_count -= 1
    hook = sched.preempt_hook
    if hook is not None:
        hook()


def _atomic_report(own: int) -> list[str]:
    c = ctx.st
    lines = [
        f"in_atomic(): {int(c.preempt_count - own > 0)}, irqs_disabled(): {int(c.irq_depth > 0)}, "
        f"rcu_read_lock depth: {c.rcu_depth}",
        f"preempt_count: {c.preempt_count - own}, expected: 0",
    ]
    return lines


def might_sleep(
    *, allow_preempt: int = 0, what: str | None = None, exclude: AtomicSection | None = None
) -> None:
    """Raise `AtomicSleepError` if the calling thread is in atomic context.

    `exclude` is a section the caller is about to close itself before sleeping (a
    condvar wait releases its own spinlock); `allow_preempt` discounts that many of the
    innermost preempt-disabling sections instead. Every call is a preemption point of
    the scheduling seam.
    """
    if STATE.on:
        c = ctx.st
        own = allow_preempt + (1 if exclude is not None else 0)
        if c.preempt_count > own or c.rcu_depth or c.irq_depth:
            _atomic_sleep(c, allow_preempt, what, exclude)
    hook = sched.preempt_hook
    if hook is not None:
        hook()


def refuse_sleep_in_atomic(what: str) -> None:
    """Raise the `might_sleep` report if the calling thread is in atomic context.

    For an operation that may sleep only depending on its operands (a drop whose drop
    glue reaches a sleeping destructor): it is refused before it takes effect, and it
    is not itself a sleeping call (no preemption point; static analysis does not count
    it as one).
    """
    if STATE.on:
        c = ctx.st
        if c.preempt_count or c.rcu_depth or c.irq_depth:
            _atomic_sleep(c, 0, what)


def _atomic_sleep(
    c: ThreadState, allow_preempt: int, what: str | None, exclude: AtomicSection | None = None
) -> NoReturn:
    secs = [s for s in c.sections if s is not exclude]
    if allow_preempt:
        secs = secs[: len(secs) - allow_preempt]
    own = allow_preempt + (1 if exclude is not None else 0)
    first = secs[0] if secs else None
    notes = [(f"atomic section #{i}: {s.kind} {s.what} began", s.site) for i, s in enumerate(secs)]
    raise AtomicSleepError(
        "sleeping function called from invalid context" + (f": {what} may sleep" if what else ""),
        obj=first.what if first else None,
        site=here(),
        origin=first.site if first else None,
        origin_label=f"atomic context began ({first.kind}: {first.what})" if first else "",
        notes=notes[1:],
        details=_atomic_report(own),
    )


# ---------------------------------------------------------------------------
# Boundaries that must be crossed with the context they were entered with.

ContextMark = tuple[int, int, int, int, int, int]
"""The thread's context at a boundary: held-stack and section depths, chain key, counts."""


def context_mark() -> ContextMark:
    """The calling thread's context now, to compare with when the boundary returns."""
    c = ctx.st
    return (len(c.held), len(c.sections), c.chain_key, c.preempt_count, c.rcu_depth, c.irq_depth)


def check_context_returned(
    mark: ContextMark, message: str, site: Site, what: str, *, rule: str
) -> LockError | None:
    """The report if the thread returns from a boundary with more context than `mark`.

    Every lock, preempt-disabled section, RCU read section or IRQs-off section opened
    since `mark` and still open is named (the first one as the report's origin); the
    thread's state is then put back as it was at `mark`, so the code that runs next on
    this thread is not blamed for it. A leaked lock stays locked (nothing releases it in
    the kernel either); only this thread's record of holding it is dropped. The caller
    raises (or records) the report. With checks off nothing is compared.
    """
    if not STATE.on:
        return None
    c = ctx.st
    n_held, n_secs, key, preempt, rcu, irq = mark
    if (
        len(c.held) == n_held
        and len(c.sections) == n_secs
        and c.chain_key == key
        and c.preempt_count == preempt
        and c.rcu_depth == rcu
        and c.irq_depth == irq
    ):
        return None
    leaked: list[AtomicSection] = list(c.held[n_held:])
    leaked += [s for s in c.sections[n_secs:] if all(s is not x for x in leaked)]
    first = leaked[0] if leaked else None
    kinds = {
        "spinlock": "lock",
        "lock": "lock",
        "rcu": "RCU read section",
        "preempt": "preemption disabled",
        "irq": "interrupts disabled",
    }
    err = LockError(
        message,
        rule=rule,
        obj=what,
        site=site,
        origin=first.site if first is not None else None,
        origin_label=(
            f"{kinds.get(first.kind, first.kind)} still open: {first.what}, taken"
            if first is not None
            else ""
        ),
        notes=[(f"also still open: {s.what}", s.site) for s in leaked[1:]],
        details=[
            f"leaving with {len(c.held) - n_held} more lock(s) held, preempt_count "
            f"{c.preempt_count - preempt} above, rcu_read_lock depth {c.rcu_depth - rcu} "
            f"above, irqs disabled {c.irq_depth - irq} more time(s) than on entry",
        ],
    )
    del c.held[n_held:]
    del c.sections[n_secs:]
    c.chain_key = key
    c.preempt_count = preempt
    c.rcu_depth = rcu
    c.irq_depth = irq
    return err


# ---------------------------------------------------------------------------
# The may-sleep declaration.

MAY_SLEEP_REGISTRY: dict[str, str | None] = {}
"""Qualified name of every `@may_sleep` function -> its GFP parameter (or None)."""


def _register(fn: Callable[..., Any], gfp: str | None) -> None:
    MAY_SLEEP_REGISTRY[f"{fn.__module__}.{fn.__qualname__}"] = gfp


@overload
def may_sleep(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def may_sleep(*, gfp: str) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def may_sleep(
    fn: Callable[P, R] | None = None, /, *, gfp: str | None = None
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare that a function may sleep (the model's `might_sleep()` annotation).

    Without arguments the function always may sleep. With `gfp="name"`, it may sleep
    only when the GFP flags passed as `name` allow direct reclaim (`GFP_KERNEL` does,
    `GFP_ATOMIC` and `GFP_NOWAIT` do not).
    """

    def deco(f: Callable[P, R]) -> Callable[P, R]:
        _register(f, gfp)
        name = f"{f.__qualname__}()"
        if gfp is None:

            @functools.wraps(f)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                # The body of `might_sleep()`, inlined: `Mutex.lock` runs through here.
                if STATE.on:
                    c = ctx.st
                    if c.preempt_count or c.rcu_depth or c.irq_depth:
                        _atomic_sleep(c, 0, name)
                hook = sched.preempt_hook
                if hook is not None:
                    hook()
                return f(*args, **kwargs)

        else:
            params = list(inspect.signature(f).parameters.values())
            names = [p.name for p in params]
            if gfp not in names:
                raise TypeError(f"@may_sleep(gfp={gfp!r}): {f.__qualname__} has no such parameter")
            idx = names.index(gfp)
            default = params[idx].default

            @functools.wraps(f)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                flags = args[idx] if len(args) > idx else kwargs.get(gfp, default)
                if getattr(flags, "may_sleep", False):
                    if STATE.on:
                        c = ctx.st
                        if c.preempt_count or c.rcu_depth or c.irq_depth:
                            _atomic_sleep(c, 0, f"{name} with {flags!s}")
                    hook = sched.preempt_hook
                    if hook is not None:
                        hook()
                return f(*args, **kwargs)

        wrapper.__ownership_may_sleep__ = gfp or True  # type: ignore[attr-defined]
        return wrapper

    if fn is not None:
        return deco(fn)
    return deco


# ---------------------------------------------------------------------------
# Atomic sections opened directly by drivers.


def preempt_disable() -> AtomicSection:
    """Disable preemption; returns the section to hand to `preempt_enable`."""
    return enter_atomic("preempt", "preempt_disable()", here())


def preempt_enable(sec: AtomicSection) -> None:
    exit_atomic(sec)


@contextmanager
def preempt_disabled() -> Iterator[None]:
    """`preempt_disable()` ... `preempt_enable()` as a `with` block."""
    sec = enter_atomic("preempt", "preempt_disable()", here())
    try:
        yield
    finally:
        exit_atomic(sec)


@contextmanager
def local_irq_disable() -> Iterator[None]:
    """Interrupts off for the body (`local_irq_save`/`local_irq_restore`)."""
    sec = enter_atomic("irq", "local_irq_save()", here())
    try:
        yield
    finally:
        exit_atomic(sec)


class RcuReadGuard:
    """The RCU read-side critical section (`rcu::Guard`).

    Invariants: while not dropped, the thread that made it is inside
    `rcu_read_lock()`; `!Send`: it must be released on that thread.
    """

    __slots__ = ("_sec", "_site", "_tid")

    def __init__(self) -> None:
        self._site = here()
        self._tid = sched.current_id()
        self._sec: AtomicSection | None = enter_atomic("rcu", "rcu_read_lock()", self._site)

    def drop(self) -> None:
        """`rcu_read_unlock()`."""
        sec = self._sec
        if sec is None:
            if not STATE.on:
                return
            raise LockError(
                "rcu_read_unlock() without rcu_read_lock()",
                rule="double-unlock",
                obj="rcu_read_lock()",
                site=here(),
                origin=self._site,
                origin_label="the read-side section began",
            )
        if sched.current_id() != self._tid and STATE.on:
            raise SendError(
                "RCU read guard released on another thread",
                obj="rcu_read_lock()",
                site=here(),
                origin=self._site,
                origin_label="rcu_read_lock() taken",
            )
        self._sec = None
        exit_atomic(sec)

    def __enter__(self) -> RcuReadGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sec is not None:
            self.drop()


def rcu_read_lock() -> RcuReadGuard:
    """Enter an RCU read-side critical section (atomic: no sleeping inside)."""
    return RcuReadGuard()
