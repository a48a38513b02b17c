"""The simulated C kernel under the Rust abstractions (`bindings::` in Rust for Linux).

Only `ownership/` imports this package, as Rust code reaches C only through
`bindings::`; `binder/` never does (an import-linter contract). It imports nothing of
the Rust side either: what both sides need is on the floor below (`ownership.include`:
the `VM_*` bits and the VMA rule tables) or in the runtime core (`ownership.context`,
`ownership.lockdep`, `ownership.refcount`, ...). Tests use it to build a world and to act
as userspace:

    k = Kernel()
    p = k.spawn_process("app")
    with p.as_current():
        addr = p.mmap(None, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write_user(addr, b"hello")

What is here: the page pool (`page_alloc`: `struct page` with refcount, mapcount, NUMA
node and kind), the mmap lock (`rwsem`), `mm_struct`/`vm_area_struct`/PTEs
(`mm_types`), the mm core (`mm`: mmget/mmput, VMA locks, mmap, munmap with splitting,
mprotect, madvise, fork, page faults, `vm_insert_page`, `zap_page_range_single`,
`remap_pfn_range`), files and misc devices (`fs`), tasks and their syscalls (`task`),
GFP flags and allocation fault injection (`gfp`), workqueues (`workqueue`), shrinkers,
and `Kernel` itself (`register_miscdevice` takes any `MiscDriver`, which registers its
own file operations: C names no Rust class).

Argument conventions: a syscall's `unsigned long` argument that is not a valid one
(negative, wider than 64 bits) is `EINVAL`; a value of the wrong type is a `TypeError`.
Everything else fails with the errno the real syscall returns.
"""

from .consts import (
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_NORMAL,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MMAP_BASE,
    MMAP_MIN_ADDR,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    USIZE_MAX,
)
from .fs import File, FileOperations
from .kernel import Kernel, default_kernel
from .mm_types import (
    MMAP_LOCK_CLASS,
    VMA_LOCK_CLASS,
    MmStruct,
    Pte,
    VmAreaStruct,
    VmOperationsStruct,
)
from .page_alloc import PagePool, StructPage
from .rwsem import RwSemaphore
from .shrinker import Shrinker
from .task import Task

__all__ = [
    "MADV_DODUMP",
    "MADV_DOFORK",
    "MADV_DONTDUMP",
    "MADV_DONTFORK",
    "MADV_DONTNEED",
    "MADV_NORMAL",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MAP_LOCKED",
    "MAP_NORESERVE",
    "MAP_POPULATE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "MAP_SHARED_VALIDATE",
    "MMAP_BASE",
    "MMAP_LOCK_CLASS",
    "MMAP_MIN_ADDR",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "TASK_SIZE",
    "USIZE_MAX",
    "VMA_LOCK_CLASS",
    "File",
    "FileOperations",
    "Kernel",
    "MmStruct",
    "PagePool",
    "Pte",
    "RwSemaphore",
    "Shrinker",
    "StructPage",
    "Task",
    "VmAreaStruct",
    "VmOperationsStruct",
    "default_kernel",
]
