"""Correct concurrent use raises nothing and leaves the world consistent.

Rust Binder's pattern on one address space, from several threads at once: an installer
(`lock_vma_under_rcu`, else `mmap_read_lock`; then `vm_insert_page`), a shrinker
(`mmap_read_trylock`, `zap_page_range_single`, dropping the count with `mmput_async`),
userspace touching the pages (faults through `vm_ops->fault`), and `mprotect` write-locking
the VMA over and over. Zero false positives matters as much as detection.
"""

from __future__ import annotations

import random
import threading
import time

from ownership import workqueue
from ownership.aref import ARef
from ownership.bindings import MAP_SHARED, PAGE_SIZE, PROT_NONE, PROT_READ, Kernel, Task
from ownership.errors import EBUSY, EFAULT, KernelError
from ownership.mm import MmWithUser
from ownership.task import current, spawn

from .drivers import FaultingDevice

NR_PAGES = 8
DURATION = 0.6


def test_installer_shrinker_faults_and_mprotect_race_cleanly(kernel: Kernel, proc: Task) -> None:
    dev = FaultingDevice(NR_PAGES)
    kernel.register_miscdevice("lazy", dev)
    f = proc.open("lazy")
    addr = proc.mmap(f, NR_PAGES * PAGE_SIZE, PROT_READ, MAP_SHARED)
    f.close()
    mm = current().mm()
    assert mm is not None
    stop = threading.Event()
    counts = {"inserted": 0, "zapped": 0, "read": 0, "protected": 0}
    count_lock = threading.Lock()

    def bump(key: str) -> None:
        with count_lock:
            counts[key] += 1

    def installer(user: ARef[MmWithUser], seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            i = rng.randrange(NR_PAGES)
            where = addr + i * PAGE_SIZE
            vguard = user.get().lock_vma_under_rcu(where)
            try:
                if vguard is not None:
                    mixed = vguard.as_mixedmap_vma()
                    assert mixed is not None
                    mixed.vm_insert_page(where, dev.pages[i])
                else:
                    with user.get().mmap_read_lock() as guard:
                        vma = guard.vma_lookup(where)
                        assert vma is not None
                        mixed2 = vma.as_mixedmap_vma()
                        assert mixed2 is not None
                        mixed2.vm_insert_page(where, dev.pages[i])
                bump("inserted")
            except KernelError as e:
                assert e.errno == EBUSY
            finally:
                if vguard is not None:
                    vguard.drop()
        user.drop()

    def shrinker(user: ARef[MmWithUser], seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            got = user.get().mmget_not_zero()
            if got is None:
                break
            async_user = MmWithUser.into_mmput_async(got)
            guard = async_user.get().mmap_read_trylock()
            if guard is not None:
                with guard:
                    where = addr + rng.randrange(NR_PAGES) * PAGE_SIZE
                    vma = guard.vma_lookup(where)
                    if vma is not None:
                        vma.zap_page_range_single(where, PAGE_SIZE)
                        bump("zapped")
            async_user.drop()
        user.drop()

    def toucher(seed: int) -> None:
        rng = random.Random(seed)
        with proc.as_current():
            while not stop.is_set():
                i = rng.randrange(NR_PAGES)
                try:
                    assert (
                        proc.read_user(addr + i * PAGE_SIZE, len(f"page {i}"))
                        == f"page {i}".encode()
                    )
                    bump("read")
                except KernelError as e:
                    assert e.errno == EFAULT  # PROT_NONE for a moment

    def protector() -> None:
        with proc.as_current():
            while not stop.is_set():
                proc.mprotect(addr, NR_PAGES * PAGE_SIZE, PROT_NONE)
                proc.mprotect(addr, NR_PAGES * PAGE_SIZE, PROT_READ)
                bump("protected")
                time.sleep(0.005)

    user = ARef.from_ref(mm)
    handles = [
        spawn(installer, user.clone(), 1),
        spawn(installer, user.clone(), 2),
        spawn(shrinker, user.clone(), 3),
        spawn(toucher, 4),
        spawn(toucher, 5),
        spawn(protector),
    ]
    time.sleep(DURATION)
    stop.set()
    for h in handles:
        h.join()
    workqueue.flush()
    user.drop()
    assert all(counts.values()), counts
    assert not kernel.check_consistency()
    proc.munmap(addr, NR_PAGES * PAGE_SIZE)
    assert all(p.as_ptr().mapcount == 0 for p in dev.pages)
    dev.drop_pages()
