"""`BinderError` (drivers/android/binder/error.rs): failures reported in the read buffer.

Most failures of a binder command are not returned as an errno from the ioctl: the
ioctl succeeds and the thread finds a `BR_*` code in its read buffer instead
(`BR_FAILED_REPLY` for a bad transaction or an allocation failure, `BR_DEAD_REPLY`
when the target is gone, `BR_FROZEN_REPLY` when it is frozen). `BinderError` carries
that reply code and, when the failure came from an errno, the errno itself (the
thread's extended error).

In the model it is a `KernelError` whose errno is the source errno (or `EINVAL`, as
`BinderError::as_errno` gives): code that calls a function raising plain
`KernelError` can let the error propagate, and the transaction entry point turns any
`KernelError` into a `BinderError` with `BinderError.of(err)`, which is what Rust's
`impl From<Error> for BinderError` does at each `?`.
"""

from __future__ import annotations

from ownership.errors import EINVAL, ENOMEM, KernelError

from .uapi import (
    BR_DEAD_REPLY,
    BR_FAILED_REPLY,
    BR_FROZEN_REPLY,
    BR_TRANSACTION_COMPLETE,
    BR_TRANSACTION_PENDING_FROZEN,
    code_name,
)

__all__ = ["BinderError"]


class BinderError(KernelError):
    """A failed binder command, to be reported to userspace as `reply`.

    Invariants: `reply` is a `BR_*` code; `source` is the errno that caused a
    `BR_FAILED_REPLY`, or None for dead/frozen targets.
    """

    def __init__(self, reply: int, source: KernelError | None = None) -> None:
        self.reply = reply
        self.source = source
        errno = source.errno if source is not None else EINVAL
        detail = code_name(reply) + (f" ({source})" if source is not None else "")
        super().__init__(errno, detail)

    @classmethod
    def new_dead(cls) -> BinderError:
        return cls(BR_DEAD_REPLY)

    @classmethod
    def new_frozen(cls) -> BinderError:
        return cls(BR_FROZEN_REPLY)

    @classmethod
    def new_frozen_oneway(cls) -> BinderError:
        return cls(BR_TRANSACTION_PENDING_FROZEN)

    @classmethod
    def enomem(cls) -> BinderError:
        """`impl From<AllocError> for BinderError`."""
        return cls(BR_FAILED_REPLY, KernelError(ENOMEM))

    @classmethod
    def of(cls, err: KernelError) -> BinderError:
        """`impl From<Error> for BinderError`: an errno becomes a `BR_FAILED_REPLY`."""
        if isinstance(err, BinderError):
            return err
        if not isinstance(err, KernelError):
            raise TypeError(f"BinderError.of needs a KernelError, got {type(err).__name__}")
        return cls(BR_FAILED_REPLY, err)

    def is_dead(self) -> bool:
        return self.reply == BR_DEAD_REPLY

    def as_errno(self) -> int:
        """The negative errno for userspace (`EINVAL` when there is no source)."""
        return -(self.source.errno if self.source is not None else EINVAL)

    def should_pr_warn(self) -> bool:
        return self.source is not None

    def completed(self) -> BinderError:
        """The same failure, reported to the replying thread as `BR_TRANSACTION_COMPLETE`."""
        return BinderError(BR_TRANSACTION_COMPLETE, self.source)

    def __reduce__(self) -> tuple[type[BinderError], tuple[int, KernelError | None]]:
        return (type(self), (self.reply, self.source))
