"""The UAPI: ioctl numbers, command codes and struct layouts match the C header."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import binder
from binder import uapi as u
from binder.client import BinderClient
from ownership.bindings import Kernel
from ownership.errors import EFAULT, ENOENT, KernelError
from ownership.workqueue import flush

U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
I32 = st.integers(-(1 << 31), (1 << 31) - 1)


def test_ioctl_numbers_are_the_kernels() -> None:
    # Values as strace prints them for a 64-bit process.
    assert u.BINDER_WRITE_READ == 0xC0306201
    assert u.BINDER_SET_MAX_THREADS == 0x40046205
    assert u.BINDER_SET_CONTEXT_MGR == 0x40046207
    assert u.BINDER_THREAD_EXIT == 0x40046208
    assert u.BINDER_VERSION == 0xC0046209
    assert u.BINDER_FREEZE == 0x400C620E
    assert u.BINDER_GET_FROZEN_INFO == 0xC00C620F


def test_command_codes_encode_their_payload_size() -> None:
    assert u.BC_TRANSACTION == 0x40406300
    assert u.BC_REPLY == 0x40406301
    assert u.BR_TRANSACTION == 0x80407202
    assert u.BR_REPLY == 0x80407203
    assert u.BR_TRANSACTION_COMPLETE == 0x7206
    assert u.BR_DEAD_REPLY == 0x7205
    assert u.BR_FAILED_REPLY == 0x7211
    assert u.BC_FREE_BUFFER == 0x40086303
    assert u.BC_REQUEST_DEATH_NOTIFICATION == 0x400C630E
    assert u.BR_DEAD_BINDER == 0x8008720F
    assert u.payload_size(u.BC_TRANSACTION_SG) == 72
    assert u.payload_size(u.BR_INCREFS) == 16
    assert u.payload_size(u.BC_ENTER_LOOPER) == 0
    assert u.code_name(u.BR_SPAWN_LOOPER) == "BR_SPAWN_LOOPER"
    assert u.code_name(0x12345) == "0x12345"


def test_object_types_are_packed_chars() -> None:
    assert u.BINDER_TYPE_BINDER == 0x73622A85
    assert u.BINDER_TYPE_HANDLE == 0x73682A85
    assert u.BINDER_TYPE_FD == 0x66642A85
    assert u.BINDER_TYPE_FDA == 0x66646185
    assert u.BINDER_TYPE_PTR == 0x70742A85
    assert u.object_size(u.BINDER_TYPE_PTR) == 40
    assert u.object_size(u.BINDER_TYPE_FDA) == 32
    assert u.object_size(0xDEADBEEF) is None


def test_struct_sizes_match_sizeof() -> None:
    assert u.binder_write_read.SIZE == 48
    assert u.binder_transaction_data.SIZE == 64
    assert u.binder_transaction_data_sg.SIZE == 72
    assert u.binder_transaction_data_secctx.SIZE == 72
    assert u.flat_binder_object.SIZE == 24
    assert u.binder_fd_object.SIZE == 24
    assert u.binder_buffer_object.SIZE == 40
    assert u.binder_fd_array_object.SIZE == 32
    assert u.binder_handle_cookie.SIZE == 12  # __packed
    assert u.binder_freeze_info.SIZE == 12


def test_transaction_data_layout() -> None:
    tr = u.binder_transaction_data(
        target=7,
        cookie=0x1122,
        code=0x5F505347,
        flags=u.TF_ONE_WAY,
        sender_pid=-1,
        sender_euid=1000,
        data_size=16,
        offsets_size=8,
        buffer=0x7000,
        offsets=0x7010,
    )
    raw = tr.pack()
    assert raw[:8] == (7).to_bytes(8, "little")
    assert struct.unpack_from("<I", raw, 16)[0] == 0x5F505347
    assert struct.unpack_from("<i", raw, 24)[0] == -1
    assert struct.unpack_from("<QQ", raw, 48) == (0x7000, 0x7010)
    assert u.binder_transaction_data.unpack(raw) == tr
    assert tr.handle == 7


@given(U32, U32, U64, U64)
def test_flat_binder_object_roundtrip(type_: int, flags: int, binder: int, cookie: int) -> None:
    o = u.flat_binder_object(type_, flags, binder, cookie)
    assert u.flat_binder_object.unpack(o.pack()) == o
    assert len(o.pack()) == 24


@given(U64, U64, U64, U64, U64, U64)
def test_write_read_roundtrip(a: int, b: int, c: int, d: int, e: int, f: int) -> None:
    w = u.binder_write_read(a, b, c, d, e, f)
    assert u.binder_write_read.unpack(w.pack() + b"extra") == w


@given(U32, U64, U64, U64, U64)
def test_buffer_object_roundtrip(flags: int, buf: int, length: int, parent: int, poff: int) -> None:
    o = u.binder_buffer_object(u.BINDER_TYPE_PTR, flags, buf, length, parent, poff)
    assert u.binder_buffer_object.unpack(o.pack()) == o


@given(U32, U64)
def test_handle_cookie_is_packed(handle: int, cookie: int) -> None:
    raw = u.binder_handle_cookie(handle, cookie).pack()
    assert raw == handle.to_bytes(4, "little") + cookie.to_bytes(8, "little")


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=1 << 64)))
def test_out_of_range_field_is_a_type_error(v: int) -> None:
    with pytest.raises(TypeError, match="does not fit"):
        u.binder_write_read(write_size=v)


@pytest.mark.parametrize("bad", ["1", 1.0, None, True])
def test_wrong_type_field_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        u.flat_binder_object(u.BINDER_TYPE_BINDER, binder=bad)  # type: ignore[arg-type]


@given(st.binary(max_size=47))
def test_short_buffer_is_efault(data: bytes) -> None:
    with pytest.raises(KernelError) as e:
        u.binder_write_read.unpack(data)
    assert e.value.errno == EFAULT


def test_unpack_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        u.binder_version.unpack("abcd")  # type: ignore[arg-type]


def test_sg_transaction_data_splits() -> None:
    sg = u.binder_transaction_data_sg(target=3, code=9, data_size=8, buffers_size=64)
    assert sg.transaction_data() == u.binder_transaction_data(target=3, code=9, data_size=8)
    assert u.ioc_dir(u.BINDER_WRITE_READ) == u.IOC_READ | u.IOC_WRITE
    assert u.ioc_type(u.BINDER_WRITE_READ) == ord("b")
    assert u.ioc_nr(u.BINDER_WRITE_READ) == 1


def test_the_public_register_makes_dev_binder_speak_the_uapi() -> None:
    """`binder.register(kernel)` (API.md) registers `/dev/binder`: a client opens it,
    maps it and reads the protocol version; unregistering removes the device."""
    kernel = Kernel()
    reg = binder.register(kernel)
    task = kernel.spawn_process("app")
    client = BinderClient(task)
    assert client.version() == u.BINDER_CURRENT_PROTOCOL_VERSION
    task.exit()
    flush()
    reg.unregister()
    late = kernel.spawn_process("late")
    with pytest.raises(KernelError) as e:
        late.open("binder")
    assert e.value.errno == ENOENT
    late.exit()
    assert kernel.check_consistency() == []
