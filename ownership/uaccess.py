"""User-space memory access (rust/kernel/uaccess.rs): `UserSlice`, its reader and writer.

A `UserSlice` is a `(ptr, len)` range of the *current* task's address space. Reading or
writing it copies through the simulated page tables of that task (`copy_from_user` /
`copy_to_user`): pages fault in through the VMA's `vm_ops->fault` or as anonymous
memory, and an unmapped or inaccessible address is `EFAULT`.

Every copy starts with `might_fault()`, as the kernel's `copy_{from,to}_user` do
(`__might_fault` in mm/memory.c): it may sleep, so it is an `AtomicSleepError` under a
spinlock, and it tells lockdep `might_lock_read(&current->mm->mmap_lock)`, so copying
while holding a lock that nests inside the mmap lock (one a driver's `mmap` handler
takes) is a `lock-order` report at the copy, on every run, whether or not the copy
faults. Copying with the current mm's mmap lock held is `recursive-lock`, as in lockdep.

The reader and writer consume the slice from the front, as upstream: `read(n)` returns
the next `n` bytes and advances; asking for more than is left is `EFAULT`.

Lock order: none taken here; the fault path takes the mmap/VMA locks (see
`ownership.bindings.mm`), so a copy is ordered after every lock its caller holds and
before the mmap lock.
"""

from __future__ import annotations

from . import lockdep
from .bindings import mm as mmops
from .bindings.task import Task
from .config import STATE
from .context import ctx, may_sleep
from .errors import EFAULT, KernelError
from .prim import usize
from .site import here

__all__ = ["UserSlice", "UserSliceReader", "UserSliceWriter", "might_fault"]


def might_fault() -> None:
    """`__might_fault()`: the lockdep half of every user copy (the sleep half is the
    callers' `@may_sleep`).

    A copy may fault, and the fault path takes the current mm's mmap lock for read, so
    lockdep validates that read acquisition against the locks held now, even when no
    fault will happen (`might_lock_read`). A kernel thread has no mm: nothing to check.
    """
    if not STATE.on:
        return
    t = ctx.st.task
    if isinstance(t, Task) and t.mm is not None:
        sem = t.mm.mmap_lock
        lockdep.might_lock(sem.cls, sem, here(), read=True)


def _current_mm_access(addr: int, n: int, data: bytes | None) -> bytes:
    t = ctx.task
    if not isinstance(t, Task) or t.mm is None or t.exited:
        raise KernelError(EFAULT, "user access without a current task that has an address space")
    return mmops.access_user(t.mm, addr, n, data)


class UserSlice:
    """A range of user memory of the current task: `[ptr, ptr + len)`.

    Invariants: `ptr` and `length` are usizes; nothing is checked until it is accessed.
    """

    __slots__ = ("length", "ptr")

    def __init__(self, ptr: int, length: int) -> None:
        self.ptr = usize(ptr, "ptr")
        self.length = usize(length, "length")

    def reader(self) -> UserSliceReader:
        return UserSliceReader(self.ptr, self.length)

    def writer(self) -> UserSliceWriter:
        return UserSliceWriter(self.ptr, self.length)

    def reader_writer(self) -> tuple[UserSliceReader, UserSliceWriter]:
        return (self.reader(), self.writer())


class _UserSliceCursor:
    """The front of a user slice, consumed by a reader or a writer.

    Invariants: `[ptr, ptr + length)` is what is left of the slice.
    """

    __slots__ = ("length", "ptr")

    def __init__(self, ptr: int, length: int) -> None:
        self.ptr = ptr
        self.length = length

    def len(self) -> int:
        return self.length

    def is_empty(self) -> bool:
        return self.length == 0

    def _front(self, k: int, what: str) -> int:
        """Where the next `k` bytes start (`EFAULT` if fewer are left); nothing consumed."""
        if k > self.length:
            raise KernelError(EFAULT, f"{what} past the end of the user slice ({self.length} left)")
        return self.ptr

    def _advance(self, k: int) -> None:
        """Consume `k` bytes checked by `_front`, once the copy succeeded (as upstream)."""
        self.ptr += k
        self.length -= k


class UserSliceReader(_UserSliceCursor):
    """Reads a user slice from the front.

    Invariants: `[ptr, ptr + length)` is what is left to read.
    """

    __slots__ = ()

    def skip(self, num_skip: int) -> None:
        """Skip `num_skip` bytes (`EFAULT` if fewer are left)."""
        n = usize(num_skip, "num_skip")
        self._front(n, f"skip({n})")
        self._advance(n)

    @may_sleep
    def read_raw(self, n: int) -> bytes:
        """The next `n` bytes of the slice; may sleep (user page faults)."""
        k = usize(n, "n")
        might_fault()
        data = _current_mm_access(self._front(k, f"read of {k} bytes"), k, None) if k else b""
        self._advance(k)
        return data

    read = read_raw

    @may_sleep
    def read_all(self) -> bytes:
        """Everything left in the slice."""
        return self.read_raw(self.length)


class UserSliceWriter(_UserSliceCursor):
    """Writes a user slice from the front.

    Invariants: `[ptr, ptr + length)` is what is left to write.
    """

    __slots__ = ()

    @may_sleep
    def write_slice(self, data: bytes) -> None:
        """Write `data` at the front of the slice; may sleep (user page faults)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_slice takes bytes, got {type(data).__name__}")
        k = len(data)
        might_fault()
        at = self._front(k, f"write of {k} bytes")
        if k:
            _current_mm_access(at, k, bytes(data))
        self._advance(k)

    write = write_slice
