"""The simulated kernel's machinery: the mmap rwsem, VMA locks, shrinkers, tasks, `current`."""

from __future__ import annotations

import threading
import time

import pytest

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL
from ownership.aref import ARef
from ownership.bindings import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    File,
    FileOperations,
    Kernel,
    Task,
)
from ownership.bindings import rwsem as rwsem_mod
from ownership.context import might_sleep
from ownership.errors import (
    ENOMEM,
    ESRCH,
    AtomicSleepError,
    KernelBug,
    KernelError,
    LifetimeError,
    LockError,
    SendError,
)
from ownership.page import Page
from ownership.sync import SpinLock
from ownership.task import Task as RustTask
from ownership.task import current
from tests.expect import assert_splat, raises_errno

from .helpers import current_mm

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def _in_thread(fn: object) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


def test_readers_share_and_a_writer_waits_for_them(proc: Task) -> None:
    mm = current_mm()
    order: list[str] = []
    reader_in = threading.Event()
    reader_go = threading.Event()

    def reader() -> None:
        with mm.mmap_read_lock():
            reader_in.set()
            assert reader_go.wait(10)
            order.append("reader out")

    def writer() -> None:
        with mm.mmap_write_lock():
            order.append("writer in")

    r = _in_thread(reader)
    assert reader_in.wait(10)
    with mm.mmap_read_lock():
        order.append("second reader in")  # readers share the lock
    w = _in_thread(writer)
    time.sleep(0.05)
    assert mm.mmap_read_trylock() is None, "a waiting writer holds back new readers"
    reader_go.set()
    r.join(10)
    w.join(10)
    assert order == ["second reader in", "reader out", "writer in"]


def test_up_read_by_a_thread_that_does_not_hold_it(proc: Task) -> None:
    mm = current_mm()
    raw = mm.as_raw()
    guard = mm.mmap_read_lock()
    caught: list[BaseException] = []

    def other() -> None:
        try:
            raw.mmap_lock.up_read(None)
        except BaseException as e:
            caught.append(e)

    _in_thread(other).join(10)
    assert_splat(caught[0], "rwsem-owner", cls=LockError, origin="guard = mm.mmap_read_lock()")
    guard.drop()


def test_a_deadlocked_waiter_is_reported_as_a_hung_task(
    proc: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rwsem_mod, "HUNG_TASK_TIMEOUT", 0.3)
    mm = current_mm()
    caught: list[BaseException] = []

    def waiter() -> None:
        try:
            mm.mmap_write_lock()
        except BaseException as e:
            caught.append(e)

    with mm.mmap_read_lock():
        _in_thread(waiter).join(10)
    assert isinstance(caught[0], LockError)
    assert_splat(
        caught[0], "hung-task", site="mm.mmap_write_lock()", origin="with mm.mmap_read_lock():"
    )
    with mm.mmap_write_lock():
        pass  # The lock is consistent after the waiter gave up.


def test_vma_lock_fails_while_a_writer_waits_for_readers(proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, RW, ANON)
    mm = current_mm()
    held = threading.Event()
    go = threading.Event()
    writer_done = threading.Event()

    def vma_reader() -> None:
        g = mm.lock_vma_under_rcu(addr)
        assert g is not None
        held.set()
        assert go.wait(10)
        g.drop()

    def vma_writer() -> None:
        with mm.mmap_write_lock() as w:
            assert w.vma_lookup(addr) is not None  # vma_start_write: waits for the reader
            writer_done.set()

    r = _in_thread(vma_reader)
    assert held.wait(10)
    w = _in_thread(vma_writer)
    deadline = time.monotonic() + 5
    while not mm.as_raw().vmas[0].writer_waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mm.lock_vma_under_rcu(addr) is None, "contention: the trylock fails"
    assert not writer_done.is_set()
    go.set()
    r.join(10)
    w.join(10)
    assert writer_done.is_set()
    g = mm.lock_vma_under_rcu(addr)
    assert g is not None
    g.drop()


def test_without_per_vma_locks_the_trylock_always_fails() -> None:
    k = Kernel(per_vma_lock=False, pages_per_node=256)
    p = k.spawn_process("old-kernel")
    with p.as_current():
        addr = p.mmap(None, PAGE_SIZE, RW, ANON)
        p.write_user(addr, b"faults take the mmap lock")
        assert current_mm().lock_vma_under_rcu(addr) is None
        p.exit()
    assert not k.check_consistency()


def test_count_objects_runs_in_atomic_context_and_scan_in_reclaim_context(kernel: Kernel) -> None:
    scanned: list[int] = []

    def sleepy_count() -> int:
        might_sleep()
        return 1

    def count() -> int:
        return 1

    def scan(n: int) -> int:
        might_sleep()  # do_shrink_slab calls scan_objects where reclaim may sleep
        scanned.append(n)
        return 0

    shrinker = kernel.register_shrinker("sleepy", sleepy_count, scan)
    with pytest.raises(AtomicSleepError) as e:
        kernel.shrink(10)
    assert_splat(e, "atomic-sleep", cls=AtomicSleepError, mentions=["shrinker 'sleepy'"])
    shrinker.unregister()
    kernel.register_shrinker("calm", count, scan)
    assert kernel.shrink(10) == 0 and scanned == [10]


def test_reclaim_runs_the_shrinkers_when_memory_runs_out() -> None:
    k = Kernel(pages_per_node=4)
    p = k.spawn_process("hog")
    cache: list[Page] = []
    lock = SpinLock(cache, name="cache lock")

    def count() -> int:
        g = lock.try_lock()
        if g is None:
            return 0
        with g:
            return len(g.data)

    def scan(n: int) -> int:
        g = lock.try_lock()
        if g is None:
            return 0
        with g:
            freed = 0
            while g.data and freed < n:
                g.data.pop().drop()
                freed += 1
            return freed

    shrinker = k.register_shrinker("cache", count, scan)
    with p.as_current():
        cache.extend(Page.alloc_page(GFP_KERNEL) for _ in range(8))
        assert k.nr_free_pages() == 0
        with pytest.raises(KernelError) as e:
            Page.alloc_page(GFP_ATOMIC)
        assert e.value.errno == ENOMEM, "GFP_ATOMIC does not reclaim"
        page = Page.alloc_page(GFP_KERNEL)  # direct reclaim ran the shrinker
        assert len(cache) < 8, "the shrinker gave pages back"
        page.drop()
        shrinker.unregister()
        for pg in cache:
            pg.drop()
        p.exit()


def test_syscalls_of_an_exited_task(kernel: Kernel) -> None:
    p = kernel.spawn_process("gone")
    p.exit()
    for call in (lambda: p.mmap(None, PAGE_SIZE, RW, ANON), lambda: p.read_user(0, 1), p.exit):
        with raises_errno(ESRCH):
            call()


def test_current_outside_a_task_and_after_it(kernel: Kernel) -> None:
    with pytest.raises(KernelBug):
        current()
    p = kernel.spawn_process("short")
    with p.as_current():
        cur = current()
        assert cur.pid == p.pid and cur.comm == "short"
        task = ARef.from_ref(cur.task())
        caught: list[BaseException] = []
        t = threading.Thread(target=lambda: _catch(caught, lambda: cur.pid))
        t.start()
        t.join(10)
        assert isinstance(caught[0], SendError)
    with pytest.raises(LifetimeError) as e:
        cur.mm()
    assert_splat(e, "current-task-expired", cls=LifetimeError)
    assert isinstance(task.get(), RustTask) and task.get().pid == p.pid
    task.drop()
    p.exit()


def _catch(into: list[BaseException], fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as e:
        into.append(e)


def test_consistency_check_finds_corruption(kernel: Kernel, proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, RW, ANON)
    proc.write_user(addr, b"x")
    assert proc.mm is not None
    page = proc.mm.ptes[addr].page
    page.mapcount += 1
    assert any("mapcount" in p for p in kernel.check_consistency())
    page.mapcount -= 1
    assert not kernel.check_consistency()


def test_threads_of_a_process_have_their_own_thread_ids(kernel: Kernel) -> None:
    p = kernel.spawn_process("threaded")
    ids: list[tuple[int, int]] = []

    def thread_body() -> None:
        with p.as_current():
            cur = current()
            ids.append((cur.pid, cur.tid))

    with p.as_current():
        ids.append((current().pid, current().tid))
    t = threading.Thread(target=thread_body)
    t.start()
    t.join(10)
    (pid0, tid0), (pid1, tid1) = ids
    assert pid0 == pid1 == p.pid and tid0 == p.pid and tid1 != tid0
    p.exit()


class _CDriver:
    """A driver written against the C API only: it installs a `file_operations` itself."""

    def __init__(self) -> None:
        self.opened = 0

    def misc_register(self, kernel: Kernel, name: str) -> str:
        driver = self

        class Fops(FileOperations):
            def open(self, file: File) -> None:
                driver.opened += 1

        kernel.add_device(name, Fops())
        return f"/dev/{name}"


def test_register_miscdevice_takes_any_driver_that_registers_itself(
    kernel: Kernel, proc: Task
) -> None:
    # C's misc_register takes a name and file operations; the kernel names no Rust class,
    # so a driver that builds its own vtable registers just as a MiscDevice does.
    driver = _CDriver()
    handle = kernel.register_miscdevice("c-only", driver)
    assert handle == "/dev/c-only"
    with proc.as_current():
        f = proc.open("c-only")
        f.close()
    assert driver.opened == 1


def test_register_miscdevice_refuses_an_object_that_is_no_driver(kernel: Kernel) -> None:
    with pytest.raises(TypeError, match="register_miscdevice takes a MiscDevice, got object"):
        kernel.register_miscdevice("nothing", object())  # type: ignore[arg-type]
    assert "nothing" not in kernel.devices
