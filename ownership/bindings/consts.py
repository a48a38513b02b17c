"""Constants of the simulated kernel (x86-64, 4 KiB pages, 4-level paging) and the UAPI.

The values are the real ones: `PROT_*`, `MAP_*` and `MADV_*` from
include/uapi/asm-generic/mman*.h, the open flags from fcntl.h, `TASK_SIZE` of a 47-bit
user address space. `user_ulong()` is how every syscall of the simulated kernel reads an
`unsigned long` argument: a Python value that could not have been one (negative, wider
than 64 bits) is `EINVAL`, a value of the wrong type is a `TypeError`.
"""

from __future__ import annotations

from ..errors import EINVAL, KernelError

__all__ = [
    "KMALLOC_MAX_SIZE",
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
    "MAP_TYPE",
    "MAX_PAGE_ORDER",
    "MMAP_BASE",
    "MMAP_MIN_ADDR",
    "O_ACCMODE",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PMD_SHIFT",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "TASK_SIZE",
    "USIZE_MAX",
    "VMALLOC_SIZE",
    "user_ulong",
]

USIZE_MAX = (1 << 64) - 1

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# The largest buddy allocation is 2**MAX_PAGE_ORDER pages (include/linux/mmzone.h), and
# kmalloc serves nothing larger (KMALLOC_SHIFT_MAX in include/linux/slab.h): 4 MiB.
MAX_PAGE_ORDER = 10
KMALLOC_MAX_SIZE = 1 << (MAX_PAGE_ORDER + PAGE_SHIFT)
# The vmalloc space of x86-64 with 4-level paging (VMALLOC_SIZE_TB_L4 = 32 TiB,
# Documentation/arch/x86/x86_64/mm.rst): no vmalloc area can be larger.
VMALLOC_SIZE = 32 << 40
PAGE_MASK = USIZE_MAX ^ (PAGE_SIZE - 1)
PMD_SHIFT = 21  # One page-table page maps 2 MiB.

# The user address space of x86-64 with 4-level paging.
TASK_SIZE = (1 << 47) - PAGE_SIZE
MMAP_MIN_ADDR = 0x10000
MMAP_BASE = 0x7F00_0000_0000  # Top-down allocation starts below this address.

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_FIXED_NOREPLACE = 0x100000

MADV_NORMAL = 0
MADV_DONTNEED = 4
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_DONTDUMP = 16
MADV_DODUMP = 17

O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_ACCMODE = 0o3


def user_ulong(value: object, what: str) -> int:
    """Read a syscall's `unsigned long` argument: `TypeError` or `EINVAL` if impossible."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 0 or value > USIZE_MAX:
        raise KernelError(EINVAL, f"{what}={value:#x} is not an unsigned long")
    return value
