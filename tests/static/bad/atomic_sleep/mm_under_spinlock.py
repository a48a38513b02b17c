"""The mm layer's sleeping calls under a driver's spinlock: `mmap_read_lock` (an
rwsem) and `mmput` (dropping an `ARef[MmWithUser]`)."""

from __future__ import annotations

from ownership.aref import ARef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from ownership.mm import MmWithUser
from ownership.sync import SpinLock
from ownership.task import current


class Binding:
    """Keeps the mm of the process that opened the device, as binder's `Process` does."""

    def __init__(self, mm: ARef[MmWithUser]) -> None:
        self.lock: SpinLock[ARef[MmWithUser] | None] = SpinLock(mm, name="Binding.lock")

    def vma_start(self, addr: int) -> int:
        with self.lock.lock() as g:  # runtime-origin
            mm = g.data
            if mm is None:
                return 0
            with mm.get().mmap_read_lock() as guard:  # expect: atomic-sleep; runtime-site
                vma = guard.vma_lookup(addr)
                return vma.start() if vma is not None else 0

    def release(self) -> None:
        with self.lock.lock() as g:
            mm = g.replace(None)
            if mm is not None:
                mm.drop()  # expect: atomic-sleep


def main() -> None:
    kernel = Kernel()
    proc = kernel.spawn_process("app")
    with proc.as_current():
        addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        mm = current().mm()
        assert mm is not None
        Binding(ARef.from_ref(mm)).vma_start(addr)
