"""KUnit-style harness: boot a simulated kernel for tests, demos and benchmarks.

Upstream, a KUnit test of a driver gets its world from the test harness rather than
from the driver's own code: `kunit_attach_mm()` gives the test an address space and
`kunit_vm_mmap()` maps a file into it (drivers/android/tests/binder_alloc_kunit.c).
This module is the model's equivalent. It re-exports, from the simulated C side, the
pieces a harness needs to boot a world and act as userspace in it: `Kernel()` (an
isolated world with its page pool, tasks and devices) and the `PROT_*`/`MAP_*`/
`MADV_*` constants that userspace passes to `task.mmap`/`mprotect`/`madvise`.

Driver code never uses it to reach the C side: a driver gets everything through the
`ownership` abstractions, and only its command line (`python -m binder`), which boots a
machine and plays userspace, starts here. Tests may use `ownership.bindings` directly.
"""

from __future__ import annotations

from .bindings import (
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
)

__all__ = [
    "MADV_DODUMP",
    "MADV_DOFORK",
    "MADV_DONTDUMP",
    "MADV_DONTFORK",
    "MAP_ANONYMOUS",
    "MAP_NORESERVE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "Kernel",
]
