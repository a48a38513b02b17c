"""Dropped once, then unusable: the cases `ownership.handle.Handle` decides for every type.

A type without a double-drop text (`Page`, the allocations) reports a second drop as a
use ("drop") after drop; with checks off a second drop of an `Arc` handle is ignored rather
than giving back the count twice. The fault-injection blocks put back only what they
set, so an enclosing `fail_after` keeps counting through an inner block.
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL, KBox, KVec, VBox, VVec, fail_after, fail_probability
from ownership.aref import ARef
from ownership.config import checking
from ownership.errors import ENOMEM, LifetimeError
from ownership.file import FileRef
from ownership.handle import Handle
from ownership.page import BorrowedPage, Page
from ownership.sync import Arc
from tests.expect import assert_splat, line, raises_errno


@pytest.mark.parametrize("cls", [ARef, Arc, FileRef, Page, BorrowedPage, KBox, KVec, VBox, VVec])
def test_every_dropped_once_type_is_a_handle(cls: type) -> None:
    assert issubclass(cls, Handle)


def test_a_second_page_drop_is_a_use_after_drop() -> None:
    page = Page.alloc_page(GFP_KERNEL)
    made = line() - 1
    page.drop()
    dropped = line() - 1
    with pytest.raises(LifetimeError) as ei:
        page.drop()
    again = line() - 1
    e = assert_splat(ei, "page-use-after-drop", cls=LifetimeError, lines=[again, dropped, made])
    assert e.message == "drop of a Page after it was dropped"


def test_a_double_drop_with_checks_off_is_ignored() -> None:
    a = Arc.new([1])
    b = a.clone()
    a.drop()
    with checking(False):
        a.drop()
    assert b.refcount() == 1 and a.is_dropped()
    b.drop()


def test_an_inner_injection_block_keeps_the_outer_count() -> None:
    with fail_after(2):
        KBox.new(1, GFP_KERNEL).drop()
        with fail_probability(0.0):
            KBox.new(2, GFP_KERNEL).drop()
        with raises_errno(ENOMEM):
            KBox.new(3, GFP_KERNEL)
    KBox.new(4, GFP_KERNEL).drop()
