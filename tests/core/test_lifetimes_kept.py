"""Lifetimes the model used to lose: each triggering case has its correct counterpart.

* `LockedBy.access`/`access_mut` hand out a reference that dies with the guard.
* A kmap of a page checks, at each access, that the page and its owner are alive.
* `Arc.get()` after the allocation was freed (two handles by `from_raw` on one count).
* A driver's `File` kept after its release is `file-use-after-fput`.
* A driver page never freed is an unreferenced object in `kernel.leaks()` (kmemleak).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ownership.alloc import GFP_KERNEL, VBox
from ownership.bindings import Kernel
from ownership.errors import LifetimeError
from ownership.miscdevice import File, MiscDevice
from ownership.page import KmapLocal, Page
from ownership.sync import Arc, LockedBy, Mutex
from ownership.unsafe import unsafe
from tests.expect import assert_splat


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    yield Kernel(pages_per_node=256)


class NodeState:
    def __init__(self) -> None:
        self.refs: dict[int, str] = {}
        self.strong = 0


# --- LockedBy ------------------------------------------------------------------------


def test_a_locked_by_reference_used_after_its_guard_is_a_lifetime_error() -> None:
    owner = Mutex(0, name="lockedby owner")
    state = LockedBy(owner, NodeState())
    g = owner.lock()  # the owner lock
    inner = state.access_mut(g)  # the reference
    inner.strong += 1
    g.drop()  # the guard ends
    with pytest.raises(LifetimeError) as ei:
        inner.strong += 1  # use after the guard
    assert_splat(
        ei,
        "lifetime",
        cls=LifetimeError,
        site="# use after the guard",
        origin="# the guard ends",
        mentions=["# the reference", "LockedBy reference after its guard was released"],
    )
    with pytest.raises(LifetimeError):
        inner.refs[1] = "p"
    with owner.lock() as g2:
        assert state.access(g2).strong == 1  # Nothing was written after the guard.


def test_a_locked_by_reference_within_its_guard_behaves_as_the_data() -> None:
    owner = Mutex(0, name="lockedby owner ok")
    state = LockedBy(owner, NodeState())
    counter = LockedBy(owner, 5)
    with owner.lock() as g:
        inner = state.access(g)
        assert isinstance(inner, NodeState)
        inner.refs[3] = "proc"
        inner.strong = 2
        assert 3 in inner.refs and len(inner.refs) == 1
        # An immutable value is a copy: nothing can be reached through it later.
        n = counter.access(g)
        counter.set(g, n + 1)
    assert n == 5
    with owner.lock() as g:
        assert state.access(g).strong == 2 and counter.access(g) == 6


# --- kmap ----------------------------------------------------------------------------


def test_a_page_cannot_be_freed_under_its_kmap(kernel: Kernel) -> None:
    # Freeing the page while its mapping lives is refused at the drop (rule
    # drop-while-borrowed), before anything is torn down: the mapping still reads what was
    # written, and the page is freed once the closure has returned. (A mapping kept past
    # its closure dies with it, so the page can never be freed under a live mapping.)
    with kernel.as_default():
        page = Page.alloc_page(GFP_KERNEL)

        def bad(m: KmapLocal) -> bytes:
            m.write(0, b"ab")
            with pytest.raises(LifetimeError) as ei:
                page.drop()  # the page is freed under its mapping
            assert_splat(
                ei,
                "drop-while-borrowed",
                cls=LifetimeError,
                site="# the page is freed under its mapping",
                origin="page.with_page_mapped(bad)",
            )
            return m.read(0, 2)

        assert page.with_page_mapped(bad) == b"ab"
        page.drop()
        assert not kernel.leaks()


def test_a_kmap_of_a_borrowed_page_keeps_its_owner(kernel: Kernel) -> None:
    with kernel.as_default():
        box = VBox.new_zeroed(4096, GFP_KERNEL)
        borrowed = next(iter(box.page_iter()))

        def bad(m: KmapLocal) -> None:
            with pytest.raises(LifetimeError) as ei:
                box.drop()  # the owner is dropped under the mapping
            assert_splat(
                ei,
                "drop-while-borrowed",
                cls=LifetimeError,
                site="# the owner is dropped under the mapping",
                origin="borrowed.with_page_mapped(bad)",
            )
            m.write(0, b"x")  # the owner still lives: the write lands

        borrowed.with_page_mapped(bad)
        assert box.read(0, 1) == b"x"
        box.drop()
        assert not kernel.leaks()


def test_a_kmap_used_while_its_page_lives_runs_clean(kernel: Kernel) -> None:
    with kernel.as_default():
        box = VBox.new_zeroed(4096, GFP_KERNEL)
        for p in box.page_iter():
            p.with_page_mapped(lambda m: m.write(10, b"hello"))
        assert box.read(10, 5) == b"hello"
        box.drop()
        page = Page.alloc_page(GFP_KERNEL)

        def write_then_read(m: KmapLocal) -> bytes:
            m.write(0, b"z")
            return m.read(0, 1)

        assert page.with_page_mapped(write_then_read) == b"z"
        page.drop()


# --- Arc -----------------------------------------------------------------------------


class Payload:
    def __init__(self) -> None:
        self.value = 7


def test_arc_get_after_the_allocation_was_freed_is_a_violation() -> None:
    a = Arc.new(Payload(), GFP_KERNEL)
    raw = a.into_raw()
    with unsafe("SAFETY: wrong on purpose: two handles are made from one count"):
        first = Arc.from_raw(raw)
        second = Arc.from_raw(raw)  # the second handle
    first.drop()  # the last count: the value is freed
    with pytest.raises(LifetimeError) as ei:
        second.get()  # use after free
    assert_splat(
        ei,
        "arc-use-after-free",
        cls=LifetimeError,
        site="# use after free",
        origin="# the last count: the value is freed",
        mentions=["# the second handle"],
    )
    with pytest.raises(LifetimeError):
        getattr(second, "value")  # noqa: B009  (Deref goes through get().)


def test_arc_handles_from_into_raw_round_trips_run_clean() -> None:
    a = Arc.new(Payload(), GFP_KERNEL)
    b = a.clone()
    raw = b.into_raw()
    with unsafe("SAFETY: raw carries the count that into_raw gave up"):
        c = Arc.from_raw(raw)
    c.drop()
    assert a.get().value == 7
    a.drop()


# --- File ----------------------------------------------------------------------------


class KeepingDevice(MiscDevice):
    """Remembers every file it saw, as a buggy driver would past release."""

    def __init__(self) -> None:
        self.files: list[File] = []
        self.released: list[str] = []

    def open(self, file: File) -> None:
        file.private_data = "per-file"
        self.files.append(file)

    def release(self, file: File) -> None:
        # During release the file is still valid.
        self.released.append(str(file.private_data))

    def stats(self) -> list[object]:
        return [f.private_data for f in self.files]  # the kept file


def test_a_file_kept_after_its_release_is_file_use_after_fput(kernel: Kernel) -> None:
    dev = KeepingDevice()
    kernel.register_miscdevice("keeper", dev)
    p = kernel.spawn_process("app")
    f = p.open("keeper")
    assert dev.stats() == ["per-file"]
    f.close()  # the last fput
    assert dev.released == ["per-file"]
    with pytest.raises(LifetimeError) as ei:
        dev.stats()
    assert_splat(
        ei,
        "file-use-after-fput",
        cls=LifetimeError,
        site="# the kept file",
        origin="f.close()  # the last fput",
    )
    p.exit()


def test_a_file_used_while_open_and_during_release_runs_clean(kernel: Kernel) -> None:
    dev = KeepingDevice()
    kernel.register_miscdevice("keeper-ok", dev)
    p = kernel.spawn_process("app")
    f = p.open("keeper-ok")
    assert dev.files[0].is_readable() and dev.files[0].name() == "keeper-ok"
    f.close()
    dev.files.clear()  # The correct driver forgets the file in release.
    assert dev.released == ["per-file"]
    p.exit()
    assert kernel.leaks() == []


# --- kmemleak --------------------------------------------------------------------------


def test_a_page_that_is_never_freed_is_an_unreferenced_object() -> None:
    k = Kernel(pages_per_node=64)
    with k.as_default():
        kept = Page.alloc_page(GFP_KERNEL)
        Page.alloc_page(GFP_KERNEL)  # the forgotten page
        box = VBox.new_zeroed(2 * 4096, GFP_KERNEL)  # a forgotten VBox
        del box
    gc.collect()
    leaks = k.leaks()
    assert len(leaks) == 3, leaks  # One forgotten page, and the two pages of the VBox.
    assert all(s.startswith("unreferenced object: struct page") for s in leaks)
    assert sum("Page.alloc_page(GFP_KERNEL)  # the forgotten page" in s for s in leaks) == 1
    assert sum("# a forgotten VBox" in s for s in leaks) == 2
    # The page still referenced (a live owner keeps it) is not reported.
    assert not any(f"pfn {kept.as_ptr().pfn:#x} " in s for s in leaks)
    kept.drop()


def test_pages_freed_or_still_owned_are_not_leaks() -> None:
    k = Kernel(pages_per_node=64)
    with k.as_default():
        owned = [Page.alloc_page(GFP_KERNEL) for _ in range(3)]
        box = VBox.new_zeroed(4096, GFP_KERNEL)
        box.drop()
        assert k.leaks() == []
    for pg in owned:
        pg.drop()
    assert k.leaks() == []
