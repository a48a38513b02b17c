"""Rule 12: the raw page accessors need an `unsafe` block, and their checkable Safety
preconditions are checked: the page must be valid for the handle, and no access may
overlap a concurrent write to the same bytes of the page."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from ownership.alloc import GFP_KERNEL, GFP_ZERO
from ownership.bindings import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Task
from ownership.borrow import Lifetime
from ownership.errors import EINVAL, BorrowError, LifetimeError, SendError, UnsafeError
from ownership.miscdevice import File, MiscDevice
from ownership.mm.virt import VmAreaNew, VmAreaRef, VmOperations
from ownership.page import KmapLocal, Page
from ownership.uaccess import UserSlice
from ownership.unsafe import unsafe
from tests.expect import assert_splat, raises_errno


def test_raw_accessors_outside_unsafe(proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with pytest.raises(UnsafeError) as e:
        page.read_raw(0, 8)
    err = assert_splat(e, "unsafe-call", site="page.read_raw(0, 8)", mentions=["page.py:"])
    assert err.origin is not None and os.path.basename(err.origin.filename) == "page.py"
    calls: list[Callable[[], object]] = [
        lambda: page.write_raw(b"x", 0, 1),
        lambda: page.fill_zero_raw(0, 1),
    ]
    for call in calls:
        with pytest.raises(UnsafeError):
            call()
    page.drop()


class BlockingOps(VmOperations):
    """A fault handler that parks the faulting thread until the test lets it go."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.entered = threading.Event()
        self.release = threading.Event()

    def fault(self, vma: VmAreaRef, address: int) -> Page | None:
        self.entered.set()
        assert self.release.wait(10)
        return self.page


class BlockingDevice(MiscDevice):
    def __init__(self, ops: BlockingOps) -> None:
        self.ops = ops

    def mmap(self, file: File, vma: VmAreaNew) -> None:
        vma.try_clear_maywrite()
        vma.set_mixedmap()
        vma.set_vm_ops(self.ops)


def test_overlapping_access_while_a_user_copy_sleeps_in_a_fault(kernel: Kernel, proc: Task) -> None:
    source = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with unsafe("SAFETY: nobody else can reach the freshly allocated page yet."):
        source.write_raw(b"from user space", 0, 15)
    ops = BlockingOps(source)
    kernel.register_miscdevice("slow", BlockingDevice(ops))
    f = proc.open("slow")
    addr = proc.mmap(f, PAGE_SIZE, PROT_READ, MAP_SHARED)
    target = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    failure: list[BaseException] = []

    def copier() -> None:
        try:
            with proc.as_current():
                with unsafe(
                    "SAFETY: this thread is the only writer of bytes [0, 100) of `target`."
                ):
                    target.copy_from_user_slice_raw(UserSlice(addr, 100).reader(), 0, 100)
        except BaseException as e:
            failure.append(e)

    t = threading.Thread(target=copier, name="copier")
    t.start()
    assert ops.entered.wait(10)
    try:
        with unsafe(
            "SAFETY: (wrong on purpose) the copier thread is writing bytes [0, 100) right now."
        ):
            with pytest.raises(BorrowError) as e:
                target.read_raw(50, 10)
            assert_splat(
                e,
                "borrow",
                site="target.read_raw(50, 10)",
                origin="target.copy_from_user_slice_raw(",
                mentions=["on another thread"],
            )
            with pytest.raises(BorrowError):
                target.write_raw(b"x", 99, 1)
            assert target.read_raw(100, 4) == bytes(4), "bytes the copy does not touch are fine"
    finally:
        ops.release.set()
        t.join(10)
    assert not failure, failure
    with unsafe("SAFETY: the copier has finished; no access is in flight."):
        assert target.read_raw(0, 15) == b"from user space"
    proc.munmap(addr, PAGE_SIZE)
    f.close()
    source.drop()
    target.drop()


def test_borrowed_page_from_a_freed_page(kernel: Kernel, proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL)
    raw = page.as_ptr()
    page.drop()
    with unsafe("SAFETY: (wrong on purpose) the page was freed above."):
        from ownership.page import BorrowedPage

        with pytest.raises(UnsafeError) as e:
            BorrowedPage.from_raw(raw, Lifetime("nobody"))
    assert_splat(
        e, "borrowed-page-invalid", site="BorrowedPage.from_raw(raw,", origin="page.drop()"
    )


def test_page_used_after_drop(proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL)
    page.drop()
    with pytest.raises(LifetimeError) as e:
        page.nid()
    assert_splat(e, "page-use-after-drop", site="page.nid()", origin="page.drop()")


def test_bounds_and_types(proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with unsafe("SAFETY: the page is private to this test"):
        for off, n in ((PAGE_SIZE, 1), (PAGE_SIZE - 1, 2), (0, PAGE_SIZE + 1), (PAGE_SIZE + 1, 0)):
            with raises_errno(EINVAL):
                page.read_raw(off, n)
        for bad in (-1, 1 << 64, "1", 1.0):
            with pytest.raises(TypeError):
                page.read_raw(bad, 1)  # type: ignore[arg-type]
        with raises_errno(EINVAL):
            page.write_raw(b"ab", 0, 3)
        assert page.read_raw(PAGE_SIZE, 0) == b""
    page.drop()


def test_kmap_local_is_tied_to_its_closure_and_thread(proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    kept: list[KmapLocal] = []
    other: list[BaseException] = []

    def use(m: KmapLocal) -> int:
        m.write(0, b"mapped")
        kept.append(m)
        t = threading.Thread(target=lambda: _catch(other, lambda: m.read(0, 6)))
        t.start()
        t.join(10)
        return len(m.read(0, 6))

    assert page.with_page_mapped(use) == 6
    assert isinstance(other[0], SendError)
    with pytest.raises(LifetimeError) as e:
        kept[0].read(0, 6)
    assert_splat(
        e, "lifetime", site="kept[0].read(0, 6)", origin="assert page.with_page_mapped(use) == 6"
    )
    page.drop()


def _catch(into: list[BaseException], fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException as e:
        into.append(e)


def test_clean_sequential_overlapping_accesses(proc: Task) -> None:
    page = Page.alloc_page(GFP_KERNEL | GFP_ZERO)
    with unsafe("SAFETY: the page is private to this thread; the accesses are sequential."):
        page.write_raw(b"abcdef", 0, 6)
        assert page.read_raw(2, 4) == b"cdef"
        page.fill_zero_raw(0, 3)
        assert page.with_page_mapped(lambda m: m.read(0, 6)) == b"\0\0\0def"
        page.with_page_mapped(lambda m: page.write_raw(b"Z", 0, 1))
        assert page.read_raw(0, 1) == b"Z"
    page.drop()
