"""ownership: an executable model of the Rust-for-Linux kernel crate.

What Rust's compiler, Miri and the kernel's debug options guarantee is checked here
at run time: references die with their guard or owner, `!Send` guards stay on their
thread, nothing sleeps in atomic context, refcounts never underflow, pinned values
never move. Modules mirror `rust/kernel/`:

* the runtime core: `errors`, `config`, `site`, `sched`, `context`, `lockdep`,
  `refcount` (`refcount_t`), `warn`
* `include`: the floor both sides read (`VM_*` bits, the VMA flag rule tables)
* `unsafe`, `marker`, `borrow`, `pin`, `aref`, `prim` (`usize`)
* `sync` (`SpinLock`, `Mutex`, `CondVar`, `LockedBy`, `Arc`; re-exports `Refcount`)
* `alloc` (GFP flags, `KBox`, `KVec`, `VBox`, `VVec`, failure injection), `rbtree`
* `workqueue`, `task`
* `page`, `mm`, `mm.virt`, `miscdevice` over the simulated C side in `bindings`
"""

from .errors import (
    EACCES,
    EAGAIN,
    EBUSY,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EPERM,
    ESRCH,
    AtomicSleepError,
    BorrowError,
    KernelBug,
    KernelError,
    LifetimeError,
    LockError,
    PinError,
    RefcountError,
    SafetyViolation,
    SendError,
    SyncError,
    UnsafeError,
    VmaFlagError,
)

__all__ = [
    "EACCES",
    "EAGAIN",
    "EBUSY",
    "EFAULT",
    "EINVAL",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
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
]
