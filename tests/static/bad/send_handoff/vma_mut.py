"""A `VmAreaMut` (from the mmap write lock) is `!Send`: it may not go to a worker thread."""

from __future__ import annotations

from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from ownership.mm import MmWithUser
from ownership.mm.virt import VmAreaMut
from ownership.task import current, spawn


def clear_dontcopy(vma: VmAreaMut) -> None:
    vma.set_flags(vma.flags())


def update_in_worker(mm: MmWithUser, addr: int) -> None:
    with mm.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)  # runtime-origin
        if vma is not None:
            spawn(clear_dontcopy, vma).join()  # expect: send-handoff; runtime-site


def main() -> None:
    kernel = Kernel()
    proc = kernel.spawn_process("app")
    with proc.as_current():
        addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        mm = current().mm()
        assert mm is not None
        update_in_worker(mm, addr)
