"""The boundary of every file operation: the return to userspace leaks no context.

`file_operation(file, op)` wraps one call of a `struct file_operations` entry (`open`,
`ioctl`, `mmap`, `release`) where the simulated kernel dispatches it (`ownership.
bindings.fs`, `.mm`, `.task`). A lock still held, preemption still disabled or an RCU
read section still open when the operation returns is a `LockError` (rule
`return-to-user-leak`, as lockdep's `lockdep_sys_exit` in kernel/locking/lockdep.c:
"lock held when returning to user space!"), reported at the userspace call and naming
where the leaked context began; the thread is put back as it was on entry.

It is a module of its own so that `fs`, `mm` and `task` can all use it without an
import circle (the `struct file` is only named for typing).

Lock order: none taken here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..context import check_context_returned, context_mark
from ..errors import SafetyViolation
from ..site import here

if TYPE_CHECKING:
    from .fs import File

__all__ = ["RETURN_TO_USER", "file_operation"]

RETURN_TO_USER = "lock held when returning to user space!"


@contextlib.contextmanager
def file_operation(file: File, op: str) -> Iterator[None]:
    """Dispatch one file operation `op` of `file`: its return must leak no context.

    Whatever the operation left open (a lock, preempt-disabled, RCU, IRQs off) is a
    `LockError` (rule `return-to-user-leak`) at the userspace call, and the thread's
    context is restored. If the operation failed with a violation of its own, that
    report stands (the context is still restored); a `KernelError` it returned while
    leaking context becomes the leak report.
    """
    mark = context_mark()
    what = f"{op} of {file.describe()}"
    try:
        yield
    except SafetyViolation:
        check_context_returned(mark, RETURN_TO_USER, here(), what, rule="return-to-user-leak")
        raise
    except BaseException as e:
        err = check_context_returned(mark, RETURN_TO_USER, here(), what, rule="return-to-user-leak")
        if err is not None:
            raise err from e
        raise
    err = check_context_returned(mark, RETURN_TO_USER, here(), what, rule="return-to-user-leak")
    if err is not None:
        raise err
