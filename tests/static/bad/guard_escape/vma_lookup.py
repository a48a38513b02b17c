"""`vma_lookup`'s result dies with the mmap read guard; returning it is a use after unlock."""

from __future__ import annotations

from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from ownership.mm import MmWithUser
from ownership.mm.virt import VmAreaRef
from ownership.task import current


def find_vma(mm: MmWithUser, addr: int) -> VmAreaRef | None:
    with mm.mmap_read_lock() as guard:  # runtime-origin
        vma = guard.vma_lookup(addr)
        return vma  # expect: guard-escape


def find_mixedmap(mm: MmWithUser, addr: int) -> VmAreaRef | None:
    with mm.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        if vma is None:
            return None
        return vma.as_mixedmap_vma()  # expect: guard-escape


def main() -> None:
    kernel = Kernel()
    proc = kernel.spawn_process("app")
    with proc.as_current():
        addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        mm = current().mm()
        assert mm is not None
        vma = find_vma(mm, addr)
        assert vma is not None
        vma.start()  # runtime-site
