"""Parcel encoding, BinderError conversions, driver definitions, and the pure state
machines of the IPC layer (node delivery state, the handle id pool, scatter-gather
parent fixups)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binder import uapi as u
from binder.client import BinderClient, Parcel
from binder.defs import U64_MAX, LooperFlag, next_debug_id, ptr_align
from binder.error import BinderError
from binder.freeze import IsFrozen
from binder.node import DeliveryState
from binder.process import _IdPool
from binder.thread import InnerThread, ScatterGatherEntry, ScatterGatherState, ThreadError
from ownership.errors import EINVAL, ENOMEM, ESRCH, KernelError
from tests.expect import raises_errno


def test_parcel_roundtrip_with_objects() -> None:
    p = Parcel().write_i32(-5).write_str("héllo").write_strong_binder(0x1000, 0x2000)
    p.write_handle(3).write_u64(U64_MAX).write_fd(4, cookie=9)
    assert len(p.offsets) == 3
    assert all(o % 4 == 0 for o in p.offsets)
    q = Parcel(bytes(p.data), p.offsets)
    assert q.read_i32() == -5
    assert q.read_str() == "héllo"
    b = q.read_object()
    assert isinstance(b, u.flat_binder_object) and b.type == u.BINDER_TYPE_BINDER
    assert (b.binder, b.cookie) == (0x1000, 0x2000)
    h = q.read_object()
    assert isinstance(h, u.flat_binder_object) and h.handle == 3
    assert q.read_u64() == U64_MAX
    fd = q.read_object()
    assert isinstance(fd, u.binder_fd_object) and fd.fd == 4 and fd.cookie == 9
    assert [type(o).__name__ for o in q.objects()] == [
        "flat_binder_object",
        "flat_binder_object",
        "binder_fd_object",
    ]


@given(st.lists(st.integers(-(1 << 31), (1 << 31) - 1), max_size=20))
def test_parcel_ints(values: list[int]) -> None:
    p = Parcel()
    for v in values:
        p.write_i32(v)
    p.rewind()
    assert [p.read_i32() for _ in values] == values


def test_parcel_read_past_end_is_einval() -> None:
    p = Parcel().write_u32(1)
    p.read_u32()
    with pytest.raises(KernelError) as e:
        p.read_u32()
    assert e.value.errno == EINVAL
    q = Parcel().write_u32(7)
    q.rewind()
    with raises_errno(EINVAL):
        q.read_object()  # no object at offset 0


def test_client_command_encoding() -> None:
    raw = BinderClient.cmd(u.BC_FREE_BUFFER, (0x1234).to_bytes(8, "little"))
    assert raw[:4] == u.BC_FREE_BUFFER.to_bytes(4, "little")
    with raises_errno(EINVAL):
        BinderClient.cmd(u.BC_FREE_BUFFER, b"\0")
    stream = (
        u.BR_NOOP.to_bytes(4, "little")
        + u.BR_DEAD_BINDER.to_bytes(4, "little")
        + (7).to_bytes(8, "little")
    )
    assert BinderClient.parse_returns(stream) == [
        (u.BR_NOOP, b""),
        (u.BR_DEAD_BINDER, (7).to_bytes(8, "little")),
    ]


def test_binder_error_conversions() -> None:
    dead = BinderError.new_dead()
    assert dead.reply == u.BR_DEAD_REPLY and dead.is_dead() and dead.as_errno() == -EINVAL
    assert not dead.should_pr_warn()
    failed = BinderError.of(KernelError(ESRCH, "gone"))
    assert failed.reply == u.BR_FAILED_REPLY and failed.errno == ESRCH and failed.should_pr_warn()
    assert BinderError.of(failed) is failed
    assert BinderError.enomem().source == KernelError(ENOMEM)
    assert BinderError.new_frozen().reply == u.BR_FROZEN_REPLY
    assert BinderError.new_frozen_oneway().reply == u.BR_TRANSACTION_PENDING_FROZEN
    assert failed.completed().reply == u.BR_TRANSACTION_COMPLETE
    assert isinstance(dead, KernelError)
    with pytest.raises(TypeError):
        BinderError.of(ValueError("x"))  # type: ignore[arg-type]


def test_defs() -> None:
    assert ptr_align(0) == 0 and ptr_align(1) == 8 and ptr_align(8) == 8
    assert ptr_align(U64_MAX) is None
    a, b = next_debug_id(), next_debug_id()
    assert b > a
    assert IsFrozen.IN_PROGRESS.is_frozen() and not IsFrozen.IN_PROGRESS.is_fully_frozen()


def test_delivery_state_strong_zero2one_needs_wrapper_when_node_is_pushed() -> None:
    ds = DeliveryState()
    assert ds.should_normal_push()
    ds.did_push_weak_zero2one()
    assert not ds.should_normal_push() and not ds.should_push_weak_zero2one()
    # The node is already queued for the weak increment: a strong one needs the wrapper.
    assert ds.should_push_strong_zero2one() and not ds.can_push_strong_zero2one_normally()
    ds.did_push_strong_zero2one_wrapper()
    assert ds.has_pushed_wrapper and ds.has_strong_zero2one


def test_id_pool_lowest_unused_and_growth() -> None:
    pool = _IdPool()
    assert pool.find_unused_id(1) == 1
    for i in range(1, 5):
        pool.acquire(i)
    assert pool.find_unused_id(1) == 5
    assert pool.find_unused_id(0) == 0
    pool.release_id(2)
    assert pool.find_unused_id(1) == 2
    pool.acquire(2)
    assert pool.find_unused_id(1) == 5
    for i in range(5, pool.capacity):
        pool.acquire(i)
    assert pool.find_unused_id(1) is None
    pool.grow(pool.grow_request())
    assert pool.find_unused_id(1) == 64


def test_sg_parent_fixups_follow_the_ancestor_rules() -> None:
    sg = ScatterGatherState(offset=0, limit=4096)
    assert sg.claim_next(10) == 0 and sg.claim_next(8) == 16
    sg.sg_entries += [ScatterGatherEntry(0, 0, 0x1000, 64), ScatterGatherEntry(1, 64, 0x2000, 32)]
    sg.ancestors = [0, 1]
    fix = sg.validate_parent_fixup(0, 16, 8, 2)
    assert (fix.parent_sg_index, fix.num_ancestors, fix.new_min_offset, fix.target_offset) == (
        0,
        1,
        24,
        16,
    )
    sg.sg_entries[0].fixup_min_offset = 24
    with raises_errno(EINVAL):
        sg.validate_parent_fixup(0, 8, 8, 2)  # decreasing offset in the same parent
    with raises_errno(EINVAL):
        sg.validate_parent_fixup(5, 0, 8, 2)  # a parent index beyond the validated objects
    with raises_errno(EINVAL):
        sg.validate_parent_fixup(1, 30, 8, 2)  # out of the parent's bounds
    with raises_errno(EINVAL):
        sg.claim_next(4096)


def test_looper_state_machine() -> None:
    t = InnerThread(ThreadError.new(), ThreadError.new())
    assert not t.is_looper()
    t.looper_enter()
    assert t.is_looper() and not t.looper_flags & LooperFlag.INVALID
    t.looper_register(True)  # registering after entering is invalid
    assert t.looper_flags & LooperFlag.INVALID
    t2 = InnerThread(ThreadError.new(), ThreadError.new())
    t2.looper_register(False)  # not requested with BR_SPAWN_LOOPER
    assert t2.looper_flags & LooperFlag.INVALID
    assert t2.should_use_process_work_queue()
    with raises_errno(EINVAL):
        t2.pop_transaction_to_reply(None)  # type: ignore[arg-type]
