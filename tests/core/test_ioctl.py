"""`kernel::ioctl` (ownership.ioctl): the asm-generic encodings, checked on known numbers.

The expected values are the ones the C headers produce on x86-64: Binder's
(include/uapi/linux/android/binder.h) and the sample misc device's
(samples/rust/rust_misc_device.rs, `_IO('|', 0x80)` and friends).
"""

from __future__ import annotations

import ctypes

import pytest

import binder.uapi as u
from ownership.ioctl import (
    _IO,
    _IOC,
    _IOC_DIR,
    _IOC_NONE,
    _IOC_NR,
    _IOC_READ,
    _IOC_SIZE,
    _IOC_TYPE,
    _IOC_WRITE,
    _IOR,
    _IOW,
    _IOWR,
)


def test_binder_write_read_is_the_x86_64_number() -> None:
    assert _IOWR("b", 1, 48) == 0xC0306201
    assert _IOWR(ord("b"), 1, u.binder_write_read) == 0xC0306201
    assert u.BINDER_WRITE_READ == 0xC0306201


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BINDER_SET_MAX_THREADS", 0x40046205),
        ("BINDER_SET_CONTEXT_MGR", 0x40046207),
        ("BINDER_THREAD_EXIT", 0x40046208),
        ("BINDER_VERSION", 0xC0046209),
        ("BC_ENTER_LOOPER", 0x0000630C),
        ("BC_FREE_BUFFER", 0x40086303),
        ("BR_NOOP", 0x0000720C),
        ("BR_TRANSACTION", 0x80407202),
        ("BR_ERROR", 0x80047200),
    ],
)
def test_binder_uapi_codes_keep_their_values(name: str, value: int) -> None:
    assert getattr(u, name) == value


def test_the_misc_device_samples_numbers() -> None:
    """`const RUST_MISC_DEV_GET_VALUE: u32 = _IOR::<i32>('|' as u32, 0x81);` and its kin."""
    hello = _IO(ord("|"), 0x80)
    get_value = _IOR("|", 0x81, ctypes.c_int)
    set_value = _IOW("|", 0x82, ctypes.c_int)
    assert (hello, get_value, set_value) == (0x7C80, 0x80047C81, 0x40047C82)


def test_fields_decode_back() -> None:
    cmd = _IOWR("b", 12, 16)
    assert _IOC_DIR(cmd) == _IOC_READ | _IOC_WRITE
    assert _IOC_TYPE(cmd) == ord("b")
    assert _IOC_NR(cmd) == 12
    assert _IOC_SIZE(cmd) == 16
    assert _IOC_DIR(_IO("x", 1)) == _IOC_NONE and _IOC_SIZE(_IO("x", 1)) == 0
    assert _IOC(_IOC_WRITE, "x", 3, 4) == _IOW("x", 3, 4)
    # binder.uapi's older helper names are the same functions.
    assert u.ioc_size is _IOC_SIZE and u._iowr is _IOWR


@pytest.mark.parametrize(
    "args",
    [("b", 256, 0), ("b", 0, 1 << 14), ("bb", 0, 0), (256, 0, 0), ("b", -1, 0)],
)
def test_a_field_that_does_not_fit_is_refused(args: tuple[str | int, int, int]) -> None:
    """Upstream's `build_assert!` that each field fits: a ValueError here."""
    with pytest.raises(ValueError):
        _IOR(*args)


def test_a_size_must_be_a_size() -> None:
    with pytest.raises(TypeError):
        _IOR("b", 0, "48")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _IOR("b", 0, object)
    with pytest.raises(TypeError):
        _IO(1.0, 0)  # type: ignore[arg-type]
