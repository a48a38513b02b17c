"""Rule 9: a `BorrowedPage` dies with its owner (seed 000).

Pages borrowed from a `VBox` through `AsPageIter` are usable while the box lives; after
`drop()` - or, for a `VVec`, after it grew onto new pages - every use is a
`LifetimeError` naming where the owner ended.
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL, VBox, VVec
from ownership.bindings import Kernel, Task
from ownership.errors import LifetimeError
from ownership.page import PAGE_SIZE, AsPageIter, BorrowedPage
from ownership.unsafe import unsafe
from tests.expect import assert_splat


def test_borrowed_page_used_after_its_vbox_was_dropped(proc: Task) -> None:
    vbox = VBox.new_zeroed(2 * PAGE_SIZE, GFP_KERNEL)
    page = next(vbox.page_iter())
    vbox.drop()
    with pytest.raises(LifetimeError) as e:
        page.nid()
    assert_splat(
        e,
        "borrowed-page-outlived-owner",
        site="page.nid()",
        origin="vbox.drop()",
        mentions=["page = next(vbox.page_iter())"],
    )


def test_raw_access_through_a_dead_borrow(proc: Task) -> None:
    vbox = VBox.new(b"x" * PAGE_SIZE, GFP_KERNEL)
    pages = list(vbox.page_iter())
    vbox.drop()
    with unsafe("SAFETY: deliberately wrong: the VBox is gone"), pytest.raises(LifetimeError) as e:
        pages[0].read_raw(0, 4)
    assert_splat(
        e, "borrowed-page-outlived-owner", site="pages[0].read_raw(0, 4)", origin="vbox.drop()"
    )


def test_borrowed_page_after_a_vvec_reallocated(proc: Task) -> None:
    vec = VVec.with_capacity(16, GFP_KERNEL)
    vec.extend_from_slice(b"0123456789", GFP_KERNEL)
    old = next(vec.page_iter())
    vec.extend_from_slice(b"a" * (2 * PAGE_SIZE), GFP_KERNEL)
    with pytest.raises(LifetimeError) as e:
        old.as_ptr()
    assert_splat(
        e,
        "borrowed-page-outlived-owner",
        site="old.as_ptr()",
        origin="vec.extend_from_slice(",
        mentions=["moved to new pages"],
    )
    assert vec.as_bytes()[:10] == b"0123456789"
    vec.drop()


def test_clean_upstream_doc_example_fill_zero_a_borrowed_vmalloc_page(
    kernel: Kernel, proc: Task
) -> None:
    vbox = VBox.new(b"\xff" * PAGE_SIZE, GFP_KERNEL)
    assert isinstance(vbox, AsPageIter)
    page = next(vbox.page_iter())
    with unsafe("SAFETY: There is no concurrent read or write to this page."):
        page.fill_zero_raw(0, PAGE_SIZE)
    assert vbox.as_bytes() == bytes(PAGE_SIZE)
    assert page.nid() in range(kernel.pool.nr_nodes)
    page.drop()  # Ends the borrow; the page stays with the box.
    assert vbox.read(0, 4) == bytes(4)
    used = kernel.nr_used_pages()
    vbox.drop()
    assert kernel.nr_used_pages() == used - 1


def test_clean_every_page_of_a_vvec_is_borrowable(proc: Task) -> None:
    vec = VVec.new()
    assert list(vec.page_iter()) == []
    for i in range(3 * PAGE_SIZE // 1024):
        vec.extend_from_slice(bytes([i]) * 1024, GFP_KERNEL)
    pages = list(vec.page_iter())
    assert len(pages) == vec.capacity() // PAGE_SIZE >= 3
    with unsafe("SAFETY: the vector is not written while its pages are read"):
        assert pages[1].read_raw(0, 2) == bytes([4, 4])
    assert all(isinstance(p, BorrowedPage) for p in pages)
    vec.drop()
