"""What the mm layer allows under a spinlock: the trylock, the per-VMA lock under RCU,
`mmput_async`, and atomic page allocation; and VMA references used inside the guard."""

from __future__ import annotations

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL
from ownership.aref import ARef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from ownership.mm import MmWithUser
from ownership.mm.mmput_async import MmWithUserAsync
from ownership.page import Page
from ownership.sync import SpinLock
from ownership.task import current


class Binding:
    def __init__(self, mm: ARef[MmWithUser]) -> None:
        self.lock: SpinLock[ARef[MmWithUserAsync] | None] = SpinLock(
            MmWithUser.into_mmput_async(mm), name="Binding.lock"
        )
        self.spare: SpinLock[list[Page]] = SpinLock([], name="Binding.spare")

    def vma_start_atomic(self, addr: int) -> int:
        with self.lock.lock() as g:
            mm = g.data
            if mm is None:
                return 0
            guard = mm.get().mmap_read_trylock()
            if guard is None:
                return 0
            with guard:
                vma = guard.vma_lookup(addr)
                return vma.start() if vma is not None else 0

    def vma_end_unlocked(self, mm: MmWithUser, addr: int) -> int:
        vma_guard = mm.lock_vma_under_rcu(addr)
        if vma_guard is not None:
            with vma_guard:
                return vma_guard.end()
        with mm.mmap_read_lock() as guard:
            vma = guard.vma_lookup(addr)
            return vma.end() if vma is not None else 0

    def stock_pages(self) -> None:
        page = Page.alloc_page(GFP_KERNEL)
        with self.spare.lock() as g:
            g.data.append(page)
            g.data.append(Page.alloc_page(GFP_ATOMIC))

    def release(self) -> None:
        with self.lock.lock() as g:
            mm = g.replace(None)
            if mm is not None:
                # mmput_async never sleeps: fine under the spinlock.
                mm.drop()
        with self.spare.lock() as g:
            pages, g.data = g.data, []
        for p in pages:
            p.drop()


def main() -> None:
    kernel = Kernel()
    proc = kernel.spawn_process("app")
    with proc.as_current():
        addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        mm = current().mm()
        assert mm is not None
        b = Binding(ARef.from_ref(mm))
        assert b.vma_start_atomic(addr) == addr
        assert b.vma_end_unlocked(mm, addr) == addr + PAGE_SIZE
        b.stock_pages()
        b.release()
