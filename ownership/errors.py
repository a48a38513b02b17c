"""Errors: Rust's `Err(e)` versus the bugs Rust, Miri and the kernel debug options reject.

Two families that never mix:

* `KernelError(errno)` is an expected, handled outcome (`Result::Err`). A driver may
  catch it and pass it on to userspace.
* `SafetyViolation` is a bug in the code under test: a use after free, a sleep in
  atomic context, a lock-order inversion. Each subclass has a stable `.rule` id and a
  report in the style of the kernel's own splats (lockdep, `__might_resched`, KASAN):
  the rule, the object, where it happened, where the conflicting lock, guard, borrow or
  free came from, and the locks the thread holds.

`KernelBug` is a `BUG_ON()`; the model stays consistent after it.

A violation is raised before the offending operation takes effect.
"""

from __future__ import annotations

import errno as _errno
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from .site import Site

__all__ = [
    "EACCES",
    "EAGAIN",
    "EBADF",
    "EBUSY",
    "EEXIST",
    "EFAULT",
    "EINTR",
    "EINVAL",
    "ENODEV",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "ENOTTY",
    "EPERM",
    "ESRCH",
    "AtomicSleepError",
    "BorrowError",
    "KernelBug",
    "KernelError",
    "LifetimeError",
    "LockError",
    "PinError",
    "RefcountError",
    "SafetyViolation",
    "SendError",
    "SyncError",
    "UnsafeError",
    "VmaFlagError",
    "install_context_hooks",
]

# The errno values of Linux on x86-64 (identical to the host's on Linux).
EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
ESRCH = _errno.ESRCH
EINTR = _errno.EINTR
EBADF = _errno.EBADF
EAGAIN = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EACCES = _errno.EACCES
EFAULT = _errno.EFAULT
EBUSY = _errno.EBUSY
EEXIST = _errno.EEXIST
ENODEV = _errno.ENODEV
EINVAL = _errno.EINVAL
ENOTTY = _errno.ENOTTY
ENOSPC = _errno.ENOSPC

_NAMES = {v: k for k, v in globals().items() if k.startswith("E") and isinstance(v, int)}


class KernelError(Exception):
    """An errno returned by a kernel function: Rust's `Err(Error)`.

    Invariants: `errno` is a positive errno value.
    """

    def __init__(self, errno: int, detail: str = "") -> None:
        if not isinstance(errno, int) or isinstance(errno, bool) or errno <= 0:
            raise TypeError(f"KernelError needs a positive errno, got {errno!r}")
        self.errno = errno
        self.detail = detail
        name = _NAMES.get(errno, f"errno {errno}")
        super().__init__(f"{name}: {detail}" if detail else name)

    @property
    def name(self) -> str:
        return _NAMES.get(self.errno, f"errno {self.errno}")

    def to_errno(self) -> int:
        """The negative value a C caller sees (`Error::to_errno`)."""
        return -self.errno

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KernelError) and other.errno == self.errno

    def __hash__(self) -> int:
        return hash(("KernelError", self.errno))


class KernelBug(Exception):
    """A `BUG_ON()` fired. The model's state is consistent afterwards."""

    rule: str

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"kernel BUG [{rule}]: {message}")


def _no_held_locks() -> list[str]:
    return []


def _no_task() -> str | None:
    return None


def _os_thread_name() -> str:
    return threading.current_thread().name


def _no_failure_hook(exc: SafetyViolation) -> None:
    return None


# How a report learns the calling thread's held locks, task and name, and whom it tells
# that a violation was raised: `ownership.context` installs its own functions when it is
# imported (`install_context_hooks`). Until then no thread can hold a lock or run as a
# task, and no explorer can be installed, so the defaults are exact. The hooks keep this
# module free of context and scheduler imports (both import errors).
_held_locks: Callable[[], list[str]] = _no_held_locks
_task_name: Callable[[], str | None] = _no_task
_thread_name: Callable[[], str] = _os_thread_name
_raised: Callable[[SafetyViolation], None] = _no_failure_hook


def install_context_hooks(
    held_locks: Callable[[], list[str]],
    task_name: Callable[[], str | None],
    thread_name: Callable[[], str] = _os_thread_name,
    raised: Callable[[SafetyViolation], None] = _no_failure_hook,
) -> None:
    """Called once by `ownership.context`: where reports read the per-thread state, and
    what is told of every violation raised (the explorer ends its schedule there)."""
    global _held_locks, _task_name, _thread_name, _raised
    _held_locks, _task_name, _thread_name, _raised = held_locks, task_name, thread_name, raised


def _thread_line() -> str:
    task = _task_name()
    who = f"thread '{_thread_name()}'"
    return f"{who}, task {task}" if task else who


class SafetyViolation(Exception):
    """A bug that Rust's compiler, Miri or a kernel debug option would reject.

    Invariants: `rule` is a short stable id; `site` is where the violation happened;
    `origin` (when known) is where the conflicting lock, guard, borrow or free came from.
    """

    default_rule: ClassVar[str] = "safety"
    title: ClassVar[str] = "BUG"

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        obj: str | None = None,
        site: Site | None = None,
        origin: Site | None = None,
        origin_label: str = "conflicting origin",
        notes: Sequence[tuple[str, Site | None]] = (),
        details: Iterable[str] = (),
        held_locks: Sequence[str] | None = None,
    ) -> None:
        self.rule = rule or self.default_rule
        self.message = message
        self.obj = obj
        self.site = site
        self.origin = origin
        self.origin_label = origin_label
        self.notes = tuple(notes)
        self.details = tuple(details)
        if held_locks is None:
            held_locks = _held_locks()
        self.held_locks = tuple(held_locks)
        self.thread = _thread_line()
        super().__init__(self.report())
        _raised(self)

    def report(self) -> str:
        bar = "=" * 66
        lines = [
            bar,
            f"{self.title}: {self.message} [{self.rule}]",
            "-" * 66,
            f"{self.thread}:",
        ]
        if self.obj:
            lines.append(f"  object: {self.obj}")
        if self.site is not None:
            lines.append(f"  at {self.site.describe()}")
        if self.origin is not None:
            lines.append(f"{self.origin_label}:")
            lines.append(f"  at {self.origin.describe()}")
        for label, s in self.notes:
            lines.append(f"{label}:")
            if s is not None:
                lines.append(f"  at {s.describe()}")
        lines.extend(self.details)
        if self.held_locks:
            lines.append(f"{len(self.held_locks)} lock(s) held by this thread:")
            lines.extend(f"  #{i}: {d}" for i, d in enumerate(self.held_locks))
        else:
            lines.append("no locks held by this thread.")
        lines.append(bar)
        return "\n".join(lines)


class LifetimeError(SafetyViolation):
    """A reference used after its owner, guard or borrow ended (use after free)."""

    default_rule = "lifetime"
    title = "BUG"


class BorrowError(SafetyViolation):
    """An exclusive borrow while other borrows live, or a shared one under an exclusive."""

    default_rule = "borrow"
    title = "BUG"


class SendError(SafetyViolation):
    """A `!Send` value used, released or dropped on another thread than its own."""

    default_rule = "send"
    title = "BUG"


class SyncError(SafetyViolation):
    """A `!Sync` value shared between threads."""

    default_rule = "sync"
    title = "BUG"


class AtomicSleepError(SafetyViolation):
    """A may-sleep call in atomic context (`__might_resched`)."""

    default_rule = "atomic-sleep"
    title = "BUG"


class RefcountError(SafetyViolation):
    """Refcount underflow, double drop, use after the last reference, leak."""

    default_rule = "refcount"
    title = "BUG"


class PinError(SafetyViolation):
    """A pinned value was moved."""

    default_rule = "pin"
    title = "BUG"


class UnsafeError(SafetyViolation):
    """An unsafe function called outside `unsafe`, or its checkable Safety broken."""

    default_rule = "unsafe"
    title = "BUG"


class LockError(SafetyViolation):
    """Unlock of a lock not held, recursive acquisition, lock-order inversion."""

    default_rule = "lock"
    title = "WARNING"


class VmaFlagError(SafetyViolation):
    """A VMA flag rule of `ownership.mm.vma_rules` was broken; `.rule` names it."""

    default_rule = "vma-flags"
    title = "BUG"
