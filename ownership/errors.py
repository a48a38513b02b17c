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
import os as _os
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
    "install_fix_hints",
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


class KernelError(OSError):
    """An errno returned by a kernel function: Rust's `Err(Error)`.

    It is an `OSError`, as Python's own errno-carrying errors are: `.errno` is the errno,
    `.strerror` the C library's text for it (`os.strerror`), `.detail` what the model
    adds (which call failed and why). `str(e)` is `ENOMEM: detail`. Two errors are equal
    when their errnos are (`Error` is a plain errno in Rust). A `KernelError` (and any
    subclass) pickles with its attributes, so it crosses process boundaries.

    Invariants: `errno` is a positive errno value.
    """

    errno: int
    strerror: str

    def __init__(self, errno: int, detail: str = "") -> None:
        if not isinstance(errno, int) or isinstance(errno, bool) or errno <= 0:
            raise TypeError(f"KernelError needs a positive errno, got {errno!r}")
        super().__init__(errno, _os.strerror(errno))
        self.detail = detail

    @property
    def name(self) -> str:
        return _NAMES.get(self.errno, f"errno {self.errno}")

    def to_errno(self) -> int:
        """The negative value a C caller sees (`Error::to_errno`)."""
        return -self.errno

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KernelError) and other.errno == self.errno

    def __hash__(self) -> int:
        return hash(("KernelError", self.errno))

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # OSError pickles as `cls(*args)`, which a subclass with another signature
        # (`BinderError(reply, source)`) cannot take: rebuild from the state instead.
        return (_restore_kernel_error, (type(self), self.errno, dict(self.__dict__)))


def _restore_kernel_error(
    cls: type[KernelError], errno: int, state: dict[str, object]
) -> KernelError:
    """The unpickling side of `KernelError.__reduce__`."""
    e = cls.__new__(cls)
    KernelError.__init__(e, errno, str(state.get("detail", "")))
    e.__dict__.update(state)
    return e


class KernelBug(Exception):
    """A `BUG_ON()` fired. The model's state is consistent afterwards."""

    rule: str

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message
        super().__init__(f"kernel BUG [{rule}]: {message}")

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (type(self), (self.rule, self.message))


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


def _no_fix(rule: str) -> str | None:
    return None


# How a report learns the correct pattern for its rule: the rule catalogue (the one
# place the hints are written) installs its lookup when it is imported, which the
# package's `__init__` does (`install_fix_hints`). The catalogue sits above this module.
_fix_for: Callable[[str], str | None] = _no_fix


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


def install_fix_hints(fix_for: Callable[[str], str | None]) -> None:
    """Called once by the rule catalogue: where a report finds its rule's correct pattern."""
    global _fix_for
    _fix_for = fix_for


def _thread_line() -> str:
    """`thread 'NAME'` (with its target when it runs one, and its task when it has one)."""
    task = _task_name()
    name = _thread_name()
    who = f"thread '{name}'"
    t = threading.current_thread()
    # A plain `threading.Thread` keeps its target in `_target` (until `run` returns):
    # naming it says what the thread was running when no driver frame is on its stack.
    target = getattr(t, "_target", None) if t.name == name else None
    qualname = getattr(target, "__qualname__", None)
    if isinstance(qualname, str):
        who += f" (target {qualname})"
    return f"{who}, task {task}" if task else who


class SafetyViolation(Exception):
    """A bug that Rust's compiler, Miri or a kernel debug option would reject.

    `str(e)` is one headline, then the full report (the splat), then one line with the
    correct pattern:

        atomic-sleep: sleeping function called from invalid context at drv.py:19
        ==================================================================
        BUG: sleeping function called from invalid context: ... [atomic-sleep]
        ...
        ==================================================================
        fix: drop the spinlock before the call, or allocate with GFP_ATOMIC/GFP_NOWAIT

    so that pytest's summary line and `repr(e)` read as one sentence. A violation pickles
    (its sites become plain file/function/line records), so it survives pytest-xdist and
    `multiprocessing`.

    Invariants: `rule` is a short stable id; `site` is where the violation happened;
    `origin` (when known) is where the conflicting lock, guard, borrow or free came from;
    `fix` is the rule catalogue's hint for the rule (None if it has none).
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
        self.fix = _fix_for(self.rule)
        super().__init__(self._text())
        _raised(self)

    def headline(self) -> str:
        """The first line: `rule: what happened at file.py:LINE`."""
        what = self.message.split(": ", 1)[0]
        where = f" at {self.site.short()}" if self.site is not None else ""
        return f"{self.rule}: {what}{where}"

    def _text(self) -> str:
        text = f"{self.headline()}\n{self.report()}"
        return f"{text}\nfix: {self.fix}" if self.fix else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.headline()!r})"

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # The default (`cls(*args)`) would re-run `__init__` on the formatted text, and
        # the state holds `Site`s, which pickle as plain records (`Site.__reduce__`).
        return (_restore_violation, (type(self), dict(self.__dict__), self.args))

    def report(self) -> str:
        """The splat: the rule, the object, where, the conflicting origin, held locks."""
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


def _restore_violation(
    cls: type[SafetyViolation], state: dict[str, object], args: tuple[object, ...]
) -> SafetyViolation:
    """The unpickling side of `SafetyViolation.__reduce__`."""
    e = cls.__new__(cls)
    e.__dict__.update(state)
    e.args = args
    return e


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
