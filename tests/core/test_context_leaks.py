"""Context must not leak across boundaries: the return to userspace and a work item's end.

A file operation (open, ioctl, mmap, release) that returns to userspace holding a lock,
with preemption disabled or inside an RCU read section is `return-to-user-leak` at the
userspace call (lockdep's "lock held when returning to user space!"); a work item that
returns so is `workqueue-leak` ("workqueue leaked atomic, lock or RCU") for that item.
Either way the thread is put back in a clean state, so the next system call or the next
work item on that thread runs clean and is not blamed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ownership.bindings import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Task
from ownership.bindings import workqueue as c_workqueue
from ownership.context import in_atomic, preempt_disable, rcu_read_lock
from ownership.errors import ENOTTY, KernelError, LockError
from ownership.marker import impl_send, impl_sync
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew
from ownership.site import here
from ownership.sync import Arc, Mutex, SpinLock
from ownership.sync.lock import Guard
from ownership.task import spawn
from ownership.workqueue import Workqueue
from tests.expect import assert_splat

LEAK_MUTEX = 1
LEAK_SPIN = 2
LEAK_PREEMPT = 3
LEAK_RCU = 4
BALANCED = 5
LEAK_THEN_FAIL = 6


class LeakyDevice(MiscDevice):
    """A driver whose operations forget to release what they took, on request."""

    def __init__(self, tag: str) -> None:
        self.state = Mutex(0, name=f"leaky state {tag}")
        self.spin = SpinLock(0, name=f"leaky spin {tag}")
        self.kept: list[object] = []
        self.leak_in: set[str] = set()

    def _leak(self, op: str) -> None:
        if op in self.leak_in:
            self.kept.append(self.state.lock())  # leaked guard

    def open(self, file: File) -> None:
        self._leak("open")

    def release(self, file: File) -> None:
        self._leak("release")

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.set_mixedmap()
        self._leak("mmap")

    def ioctl(self, file: File, cmd: int, arg: object) -> object:
        if cmd == LEAK_MUTEX:
            self.kept.append(self.state.lock())  # leaked mutex
        elif cmd == LEAK_SPIN:
            self.kept.append(self.spin.lock())  # leaked spinlock
        elif cmd == LEAK_PREEMPT:
            self.kept.append(preempt_disable())  # leaked preempt_disable
        elif cmd == LEAK_RCU:
            self.kept.append(rcu_read_lock())  # leaked rcu_read_lock
        elif cmd == LEAK_THEN_FAIL:
            self.kept.append(self.state.lock())  # leaked before failing
            raise KernelError(ENOTTY, "unsupported")
        elif cmd == BALANCED:
            with self.state.lock() as g, self.spin.lock(), rcu_read_lock():
                g.data += 1
        return 0


@pytest.fixture
def dev(kernel: Kernel) -> Iterator[tuple[LeakyDevice, Task]]:
    d = LeakyDevice(str(id(kernel)))
    kernel.register_miscdevice("leaky", d)
    p = kernel.spawn_process("app")
    yield d, p
    # The leaked locks stay locked (nothing releases them in the kernel either): the
    # test's thread no longer records them, so they are given back raw.
    for k in d.kept:
        if isinstance(k, Guard) and k.is_held():
            k.lock._raw.release()


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    yield Kernel(pages_per_node=1024)


def test_an_ioctl_returning_with_a_mutex_held_is_reported_at_the_syscall(
    dev: tuple[LeakyDevice, Task],
) -> None:
    d, p = dev
    f = p.open("leaky")
    with pytest.raises(LockError) as ei:
        f.ioctl(LEAK_MUTEX)  # the syscall
    assert_splat(
        ei,
        "return-to-user-leak",
        cls=LockError,
        site="f.ioctl(LEAK_MUTEX)  # the syscall",
        origin="# leaked mutex",
        mentions=["lock held when returning to user space!", "ioctl of file 'leaky'"],
    )
    # The thread is clean again: once the leaked mutex is given back (raw: this thread no
    # longer records it), the next system call runs and is not blamed.
    assert not in_atomic()
    leaked = d.kept.pop()
    assert isinstance(leaked, Guard)
    leaked.lock._raw.release()
    assert f.ioctl(BALANCED) == 0
    f.close()


@pytest.mark.parametrize(
    ("cmd", "origin"),
    [
        (LEAK_SPIN, "# leaked spinlock"),
        (LEAK_PREEMPT, "# leaked preempt_disable"),
        (LEAK_RCU, "# leaked rcu_read_lock"),
    ],
)
def test_atomic_context_and_rcu_leaked_to_userspace_are_reported(
    dev: tuple[LeakyDevice, Task], cmd: int, origin: str
) -> None:
    _d, p = dev

    def syscall() -> None:
        f = p.open("leaky")
        try:
            f.ioctl(cmd)  # the leaking syscall
        finally:
            # The thread is back in process context: closing (which may sleep) is fine.
            assert not in_atomic()
            f.close()

    h = spawn(syscall)
    with pytest.raises(LockError) as ei:
        h.join()
    assert_splat(
        ei,
        "return-to-user-leak",
        cls=LockError,
        site="# the leaking syscall",
        origin=origin,
        mentions=["lock held when returning to user space!"],
    )


def test_a_kernel_error_returned_with_a_lock_held_is_still_a_leak(
    dev: tuple[LeakyDevice, Task],
) -> None:
    _d, p = dev
    f = p.open("leaky")
    with pytest.raises(LockError) as ei:
        f.ioctl(LEAK_THEN_FAIL)
    err = assert_splat(ei, "return-to-user-leak", cls=LockError, origin="# leaked before failing")
    assert err.__cause__ is not None and "ENOTTY" in str(err.__cause__)
    f.close()


@pytest.mark.parametrize("op", ["open", "mmap", "release"])
def test_open_mmap_and_release_are_boundaries_too(dev: tuple[LeakyDevice, Task], op: str) -> None:
    d, p = dev
    d.leak_in = {op}
    with p.as_current():
        with pytest.raises(LockError) as ei:
            f = p.open("leaky")
            addr = p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
            p.munmap(addr, PAGE_SIZE)
            f.close()
        assert_splat(
            ei,
            "return-to-user-leak",
            cls=LockError,
            origin="# leaked guard",
            mentions=[f"{op} of file 'leaky'"],
        )
        assert not in_atomic()
    if op == "open":
        # The file was opened (the driver's open ran): the process's exit releases it.
        d.kept[0].lock._raw.release()  # type: ignore[attr-defined]
        d.kept.clear()
        d.leak_in = set()
        p.exit()


def test_balanced_file_operations_on_concurrent_threads_run_clean(
    dev: tuple[LeakyDevice, Task],
) -> None:
    d, p = dev

    def user() -> None:
        f = p.open("leaky")
        for _ in range(50):
            f.ioctl(BALANCED)
        addr = p.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
        p.munmap(addr, PAGE_SIZE)
        f.close()

    hs = [spawn(user) for _ in range(3)]
    for h in hs:
        h.join()
    with d.state.lock() as g:
        assert g.data == 150


# --- work items ----------------------------------------------------------------------


@impl_send("reached only through its locks")
@impl_sync("every field is behind a lock")
class LeakyWork:
    def __init__(self, tag: str, leak: str | None) -> None:
        self.lock = SpinLock(0, name=f"leaky work {tag}")
        self.leak = leak
        self.kept: list[object] = []
        self.ran_on: list[str] = []

    @classmethod
    def run(cls, me: Arc[LeakyWork]) -> None:
        this = me.get()
        this.ran_on.append(threading.current_thread().name)
        if this.leak == "spin":
            this.kept.append(this.lock.lock())  # work leaks a spinlock
        elif this.leak == "rcu":
            this.kept.append(rcu_read_lock())  # work leaks rcu
        else:
            with this.lock.lock():
                pass
            # A sleeping call: blamed on this item if the previous one leaked atomic.
            with Mutex(0, name="leaky work sleeper").lock():
                pass
        me.drop()


def test_a_work_item_that_returns_holding_a_spinlock_is_reported_for_that_item() -> None:
    wq = Workqueue("leaky-wq")
    bad = Arc.new(LeakyWork("a", "spin"))
    good = Arc.new(LeakyWork("b", None))
    wq.queue_work(bad.clone())  # queue the leaky item
    wq.queue_work(good.clone())
    with pytest.raises(LockError) as ei:
        wq.flush()
    assert_splat(
        ei,
        "workqueue-leak",
        cls=LockError,
        site="wq.queue_work(bad.clone())  # queue the leaky item",
        origin="# work leaks a spinlock",
        mentions=["workqueue leaked atomic, lock or RCU", "workfn=LeakyWork.run"],
    )
    # The next item ran clean on the same worker thread: nothing else was recorded.
    assert good.get().ran_on == bad.get().ran_on
    wq.flush()
    kept = bad.get().kept[0]
    assert isinstance(kept, Guard)
    kept.lock._raw.release()
    bad.drop()
    good.drop()


def test_a_c_work_function_leaking_rcu_is_named_by_its_function() -> None:
    wq = c_workqueue.alloc_ordered_workqueue("leaky-c")
    kept: list[object] = []

    def rcu_leaker() -> None:
        kept.append(rcu_read_lock())  # c work leaks rcu

    wq.enqueue(rcu_leaker, rcu_leaker, here())
    with pytest.raises(LockError) as ei:
        wq.flush()
    assert_splat(
        ei,
        "workqueue-leak",
        cls=LockError,
        origin="# c work leaks rcu",
        mentions=["rcu_read_lock()", "rcu_leaker"],
    )


def test_balanced_work_items_run_clean() -> None:
    wq = Workqueue("clean-wq")
    items = [Arc.new(LeakyWork(f"c{i}", None)) for i in range(5)]
    for it in items:
        wq.queue_work(it.clone())
    wq.flush()
    for it in items:
        assert it.get().ran_on
        it.drop()
