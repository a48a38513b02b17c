"""`Allocation`: copying from userspace, zeroing, and how an allocation ends."""

from __future__ import annotations

from typing import cast

import pytest

from binder.allocation import AllocationInfo
from binder.node import Node, NodeRef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from ownership.errors import EFAULT, KernelError, LifetimeError
from ownership.page import PAGE_SIZE
from ownership.uaccess import UserSlice

from ..binder_harness import BinderWorld


class CountedRef:
    """Stands in for a `NodeRef` held by an `AllocationInfo`: counts its drops."""

    def __init__(self) -> None:
        self.drops = 0

    def drop(self) -> None:
        self.drops += 1


class OnewayNode:
    """Stands in for the node whose oneway queue waits for the buffer."""

    def __init__(self) -> None:
        self.finished = 0

    def pending_oneway_finished(self) -> None:
        self.finished += 1


def as_node_ref(ref: CountedRef) -> NodeRef:
    """The stand-in where the buffer takes a `NodeRef` (it only ever calls `drop`)."""
    return cast(NodeRef, ref)


def as_node(node: OnewayNode) -> Node:
    """The stand-in where the buffer takes a `Node` (it only calls `pending_oneway_finished`)."""
    return cast(Node, node)


def test_copy_from_the_senders_memory_across_pages(world: BinderWorld) -> None:
    receiver = world.open("receiver")
    sender = world.kernel.spawn_process("sender")
    world.tasks.append(sender)
    payload = bytes(range(251)) * 40  # 10040 bytes: three pages of the buffer
    with sender.as_current():
        src = sender.mmap(None, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        sender.write_user(src, payload)
        a = receiver.proc.buffer_alloc(1, len(payload) + 100, False, sender.pid)
        a.copy_into(UserSlice(src, len(payload)).reader(), 100, len(payload))
        with pytest.raises(KernelError) as e:
            a.copy_into(UserSlice(src, 8).reader(), len(payload) + 93, 8)
        assert e.value.errno == EFAULT
    with receiver.current():
        assert receiver.task.read_user(a.ptr + 100, len(payload)) == payload
    with sender.as_current():
        a.drop()


def test_fill_zero_and_clear_on_free(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 2 * PAGE_SIZE, False, o.task.pid)
        a.write(0, b"\xff" * a.size)
        a.fill_zero()
        assert a.read(0, a.size) == bytes(a.size)
        a.write(10, b"secret")
        a.set_info_clear_on_drop()
        a.drop()
        # The freed pages are Available but still present: the secret is gone from them.
        b = o.proc.buffer_alloc(2, 2 * PAGE_SIZE, False, o.task.pid)
        assert b.read(10, 6) == bytes(6)
        b.drop()


def test_drop_releases_what_the_info_holds(world: BinderWorld) -> None:
    o = world.open()
    ref, node = CountedRef(), OnewayNode()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, True, o.task.pid)
        a.set_info_target_node(as_node_ref(ref))
        a.set_info_oneway_node(as_node(node))
        a.drop()
    assert ref.drops == 1 and node.finished == 1


def test_info_survives_the_trip_through_userspace(world: BinderWorld) -> None:
    o = world.open()
    ref, node = CountedRef(), OnewayNode()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, True, o.task.pid).success()
        a.set_info_target_node(as_node_ref(ref))
        a.set_info_oneway_node(as_node(node))
        ptr = a.ptr
        a.keep_alive()
        assert ref.drops == 0 and node.finished == 0
        back = o.proc.buffer_get(ptr)
        assert back is not None
        assert back.take_oneway_node() is as_node(node)
        back.drop()
    assert ref.drops == 1 and node.finished == 0


def test_info_of_a_buffer_that_cannot_be_committed_is_dropped(world: BinderWorld) -> None:
    o = world.open()
    ref = CountedRef()
    with o.current():
        with pytest.warns(UserWarning, match="failed to be marked freeable"):
            o.proc.buffer_make_freeable(12345, AllocationInfo(target_node=as_node_ref(ref)))
    assert ref.drops == 1


def test_double_drop_is_a_lifetime_error(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid)
        a.drop()
        with pytest.raises(LifetimeError) as e:
            a.drop()  # The bug: freeing the buffer twice.
        # The first free stands: the range is free, the page Available.
        assert o.proc.pages.page_states()[0] == "available"
    report = str(e.value)
    assert e.value.rule == "binder-allocation-use-after-free"
    assert report.count("test_allocation.py:") >= 2


def test_drop_after_keep_alive_is_a_lifetime_error(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        a = o.proc.buffer_alloc(1, 64, False, o.task.pid).success()
        ptr = a.ptr
        a.keep_alive()
        with pytest.raises(LifetimeError):
            a.drop()  # The bug: userspace owns it now.
        back = o.proc.buffer_get(ptr)
        assert back is not None
        back.drop()


def test_new_allocation_is_spent_after_success(world: BinderWorld) -> None:
    o = world.open()
    with o.current():
        new = o.proc.buffer_alloc(1, 64, False, o.task.pid)
        a = new.success()
        with pytest.raises(LifetimeError):
            new.write(0, b"x")  # The bug: using the moved-from wrapper.
        a.write(0, b"x")
        a.drop()
