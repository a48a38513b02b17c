"""The Binder UAPI (include/uapi/linux/android/binder.h), byte for byte.

Userspace and the driver talk through `ioctl()` on `/dev/binder`: the ioctl numbers
carry their direction and argument size (`_IOW('b', 5, __u32)`), and the command
streams of `BINDER_WRITE_READ` are sequences of a 32-bit code (`BC_*` written by
userspace, `BR_*` written by the driver) followed by that code's payload, whose size is
again encoded in the code itself. This module has the real encodings and the real
x86-64 layouts (64-bit `binder_uintptr_t`, protocol version 8): every struct is a
frozen dataclass with `pack() -> bytes` and `unpack(data) -> Self`, so tests can assert
on exact bytes and the driver reads exactly what the kernel's would.

The structs are split as the header splits them: the transaction descriptors
(`binder_transaction_data` and its `_sg`/`_secctx` extensions), the objects embedded in
a transaction buffer (`flat_binder_object`, `binder_fd_object`,
`binder_fd_array_object`, `binder_buffer_object`, all starting with
`binder_object_header`), the small command payloads (`binder_ptr_cookie`,
`binder_handle_cookie`), and the ioctl arguments (`binder_write_read`,
`binder_version`, `binder_freeze_info`, `binder_frozen_status_info`,
`binder_extended_error`, `binder_node_info_for_ref`, `binder_node_debug_info`).

Bad input: a field of the wrong type or out of its C range is a `TypeError` when the
struct is built; a byte string shorter than the struct is `KernelError(EFAULT)` when
unpacked, as `copy_from_user` of a short user slice fails.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar, Self

from ownership.errors import EFAULT, KernelError
from ownership.ioctl import (
    _IO,
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

__all__ = [
    "BC_ACQUIRE",
    "BC_ACQUIRE_DONE",
    "BC_ACQUIRE_RESULT",
    "BC_ATTEMPT_ACQUIRE",
    "BC_CLEAR_DEATH_NOTIFICATION",
    "BC_CLEAR_FREEZE_NOTIFICATION",
    "BC_DEAD_BINDER_DONE",
    "BC_DECREFS",
    "BC_ENTER_LOOPER",
    "BC_EXIT_LOOPER",
    "BC_FREEZE_NOTIFICATION_DONE",
    "BC_FREE_BUFFER",
    "BC_INCREFS",
    "BC_INCREFS_DONE",
    "BC_REGISTER_LOOPER",
    "BC_RELEASE",
    "BC_REPLY",
    "BC_REPLY_SG",
    "BC_REQUEST_DEATH_NOTIFICATION",
    "BC_REQUEST_FREEZE_NOTIFICATION",
    "BC_TRANSACTION",
    "BC_TRANSACTION_SG",
    "BINDER_BUFFER_FLAG_HAS_PARENT",
    "BINDER_CURRENT_PROTOCOL_VERSION",
    "BINDER_ENABLE_ONEWAY_SPAM_DETECTION",
    "BINDER_FREEZE",
    "BINDER_GET_EXTENDED_ERROR",
    "BINDER_GET_FROZEN_INFO",
    "BINDER_GET_NODE_DEBUG_INFO",
    "BINDER_GET_NODE_INFO_FOR_REF",
    "BINDER_SET_CONTEXT_MGR",
    "BINDER_SET_CONTEXT_MGR_EXT",
    "BINDER_SET_IDLE_TIMEOUT",
    "BINDER_SET_MAX_THREADS",
    "BINDER_THREAD_EXIT",
    "BINDER_TYPE_BINDER",
    "BINDER_TYPE_FD",
    "BINDER_TYPE_FDA",
    "BINDER_TYPE_HANDLE",
    "BINDER_TYPE_PTR",
    "BINDER_TYPE_WEAK_BINDER",
    "BINDER_TYPE_WEAK_HANDLE",
    "BINDER_VERSION",
    "BINDER_WRITE_READ",
    "BR_ACQUIRE",
    "BR_ACQUIRE_RESULT",
    "BR_ATTEMPT_ACQUIRE",
    "BR_CLEAR_DEATH_NOTIFICATION_DONE",
    "BR_CLEAR_FREEZE_NOTIFICATION_DONE",
    "BR_DEAD_BINDER",
    "BR_DEAD_REPLY",
    "BR_DECREFS",
    "BR_ERROR",
    "BR_FAILED_REPLY",
    "BR_FINISHED",
    "BR_FROZEN_BINDER",
    "BR_FROZEN_REPLY",
    "BR_INCREFS",
    "BR_NOOP",
    "BR_OK",
    "BR_ONEWAY_SPAM_SUSPECT",
    "BR_RELEASE",
    "BR_REPLY",
    "BR_SPAWN_LOOPER",
    "BR_TRANSACTION",
    "BR_TRANSACTION_COMPLETE",
    "BR_TRANSACTION_PENDING_FROZEN",
    "BR_TRANSACTION_SEC_CTX",
    "FLAT_BINDER_FLAG_ACCEPTS_FDS",
    "FLAT_BINDER_FLAG_PRIORITY_MASK",
    "FLAT_BINDER_FLAG_TXN_SECURITY_CTX",
    "IOC_READ",
    "IOC_WRITE",
    "TF_ACCEPT_FDS",
    "TF_CLEAR_BUF",
    "TF_ONE_WAY",
    "TF_ROOT_OBJECT",
    "TF_STATUS_CODE",
    "TF_UPDATE_TXN",
    "BinderStruct",
    "binder_buffer_object",
    "binder_extended_error",
    "binder_fd_array_object",
    "binder_fd_object",
    "binder_freeze_info",
    "binder_frozen_status_info",
    "binder_handle_cookie",
    "binder_node_debug_info",
    "binder_node_info_for_ref",
    "binder_object_header",
    "binder_ptr_cookie",
    "binder_transaction_data",
    "binder_transaction_data_secctx",
    "binder_transaction_data_sg",
    "binder_version",
    "binder_write_read",
    "code_name",
    "flat_binder_object",
    "ioc_dir",
    "ioc_nr",
    "ioc_size",
    "ioc_type",
    "object_size",
    "payload_size",
]

# ---------------------------------------------------------------------------
# ioctl number encoding (include/uapi/asm-generic/ioctl.h): the kernel crate's
# `kernel::ioctl` (`ownership.ioctl`), under the names this module always had.

IOC_NONE = _IOC_NONE
IOC_WRITE = _IOC_WRITE
IOC_READ = _IOC_READ
_io = _IO
_ior = _IOR
_iow = _IOW
_iowr = _IOWR
ioc_dir = _IOC_DIR
ioc_size = _IOC_SIZE
ioc_type = _IOC_TYPE
ioc_nr = _IOC_NR


# ---------------------------------------------------------------------------
# Structs.

_RANGES = {
    "I": (0, 0xFFFF_FFFF, "u32"),
    "i": (-(1 << 31), (1 << 31) - 1, "i32"),
    "Q": (0, 0xFFFF_FFFF_FFFF_FFFF, "u64"),
    "q": (-(1 << 63), (1 << 63) - 1, "i64"),
}


class BinderStruct:
    """Common behaviour of the UAPI structs: validated fields, exact byte layout.

    Invariants: every field holds an `int` within the range of its C type
    (`FORMAT` gives one `struct` code per field, in declaration order), so `pack()`
    cannot fail; `SIZE == struct.calcsize(FORMAT)` is the C `sizeof`.
    """

    FORMAT: ClassVar[str]
    SIZE: ClassVar[int]

    def __post_init__(self) -> None:
        codes = self.FORMAT.lstrip("<=")
        for f, code in zip(fields(self), codes, strict=True):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            lo, hi, cname = _RANGES[code]
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(
                    f"{type(self).__name__}.{f.name} must be an int ({cname}), got "
                    f"{type(v).__name__}"
                )
            if not lo <= v <= hi:
                raise TypeError(f"{type(self).__name__}.{f.name}={v:#x} does not fit in a {cname}")

    def pack(self) -> bytes:
        """The struct's bytes as the kernel lays them out."""
        return struct.pack(self.FORMAT, *(getattr(self, f.name) for f in fields(self)))  # type: ignore[arg-type]

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse the first `SIZE` bytes of `data`; `EFAULT` if there are fewer."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{cls.__name__}.unpack needs bytes, got {type(data).__name__}")
        if len(data) < cls.SIZE:
            raise KernelError(EFAULT, f"{cls.__name__}: {len(data)} bytes, need {cls.SIZE}")
        return cls(*struct.unpack_from(cls.FORMAT, data, 0))


def _sized(cls: type[BinderStruct]) -> None:
    cls.SIZE = struct.calcsize(cls.FORMAT)


@dataclass(frozen=True, slots=True)
class binder_object_header(BinderStruct):
    """`struct binder_object_header`: the type tag every embedded object starts with."""

    FORMAT: ClassVar[str] = "<I"
    type: int


@dataclass(frozen=True, slots=True)
class flat_binder_object(BinderStruct):
    """`struct flat_binder_object`: a binder (local object) or a handle (remote object).

    `binder` and `handle` share one 8-byte union; for handles only the low 32 bits
    are meaningful, so the field is named `binder` here and read as `handle`.
    """

    FORMAT: ClassVar[str] = "<IIQQ"
    type: int
    flags: int = 0
    binder: int = 0
    cookie: int = 0

    @property
    def handle(self) -> int:
        return self.binder & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class binder_fd_object(BinderStruct):
    """`struct binder_fd_object`: a file descriptor to duplicate into the target."""

    FORMAT: ClassVar[str] = "<IIQQ"
    type: int
    pad_flags: int = 0
    pad_binder: int = 0
    cookie: int = 0

    @property
    def fd(self) -> int:
        return self.pad_binder & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class binder_buffer_object(BinderStruct):
    """`struct binder_buffer_object` (BINDER_TYPE_PTR): a scatter-gather buffer."""

    FORMAT: ClassVar[str] = "<IIQQQQ"
    type: int
    flags: int = 0
    buffer: int = 0
    length: int = 0
    parent: int = 0
    parent_offset: int = 0


@dataclass(frozen=True, slots=True)
class binder_fd_array_object(BinderStruct):
    """`struct binder_fd_array_object` (BINDER_TYPE_FDA): fds inside a parent buffer."""

    FORMAT: ClassVar[str] = "<IIQQQ"
    type: int
    pad: int = 0
    num_fds: int = 0
    parent: int = 0
    parent_offset: int = 0


@dataclass(frozen=True, slots=True)
class binder_transaction_data(BinderStruct):
    """`struct binder_transaction_data`.

    `target` is the union of `handle` (BC_TRANSACTION) and `ptr` (BR_TRANSACTION);
    `data` is the union of `ptr.buffer`/`ptr.offsets` and `buf[8]`.
    """

    FORMAT: ClassVar[str] = "<QQIIiIQQQQ"
    target: int = 0
    cookie: int = 0
    code: int = 0
    flags: int = 0
    sender_pid: int = 0
    sender_euid: int = 0
    data_size: int = 0
    offsets_size: int = 0
    buffer: int = 0
    offsets: int = 0

    @property
    def handle(self) -> int:
        return self.target & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class binder_transaction_data_sg(BinderStruct):
    """`struct binder_transaction_data_sg`: a transaction plus its `buffers_size`."""

    FORMAT: ClassVar[str] = "<QQIIiIQQQQQ"
    target: int = 0
    cookie: int = 0
    code: int = 0
    flags: int = 0
    sender_pid: int = 0
    sender_euid: int = 0
    data_size: int = 0
    offsets_size: int = 0
    buffer: int = 0
    offsets: int = 0
    buffers_size: int = 0

    def transaction_data(self) -> binder_transaction_data:
        return binder_transaction_data(*(getattr(self, f.name) for f in fields(self)[:-1]))


@dataclass(frozen=True, slots=True)
class binder_transaction_data_secctx(BinderStruct):
    """`struct binder_transaction_data_secctx`: BR_TRANSACTION_SEC_CTX's payload."""

    FORMAT: ClassVar[str] = "<QQIIiIQQQQQ"
    target: int = 0
    cookie: int = 0
    code: int = 0
    flags: int = 0
    sender_pid: int = 0
    sender_euid: int = 0
    data_size: int = 0
    offsets_size: int = 0
    buffer: int = 0
    offsets: int = 0
    secctx: int = 0


@dataclass(frozen=True, slots=True)
class binder_ptr_cookie(BinderStruct):
    """`struct binder_ptr_cookie`: the payload of BR_INCREFS ... and BC_*_DONE."""

    FORMAT: ClassVar[str] = "<QQ"
    ptr: int = 0
    cookie: int = 0


@dataclass(frozen=True, slots=True)
class binder_handle_cookie(BinderStruct):
    """`struct binder_handle_cookie` (`__packed`: 12 bytes)."""

    FORMAT: ClassVar[str] = "<IQ"
    handle: int = 0
    cookie: int = 0


@dataclass(frozen=True, slots=True)
class binder_write_read(BinderStruct):
    """`struct binder_write_read`: the BINDER_WRITE_READ argument."""

    FORMAT: ClassVar[str] = "<QQQQQQ"
    write_size: int = 0
    write_consumed: int = 0
    write_buffer: int = 0
    read_size: int = 0
    read_consumed: int = 0
    read_buffer: int = 0


@dataclass(frozen=True, slots=True)
class binder_version(BinderStruct):
    """`struct binder_version`: the BINDER_VERSION result (protocol 8 on 64-bit)."""

    FORMAT: ClassVar[str] = "<i"
    protocol_version: int = 0


@dataclass(frozen=True, slots=True)
class binder_freeze_info(BinderStruct):
    """`struct binder_freeze_info`: the BINDER_FREEZE argument."""

    FORMAT: ClassVar[str] = "<III"
    pid: int = 0
    enable: int = 0
    timeout_ms: int = 0


@dataclass(frozen=True, slots=True)
class binder_frozen_status_info(BinderStruct):
    """`struct binder_frozen_status_info`: the BINDER_GET_FROZEN_INFO argument."""

    FORMAT: ClassVar[str] = "<III"
    pid: int = 0
    sync_recv: int = 0
    async_recv: int = 0


@dataclass(frozen=True, slots=True)
class binder_extended_error(BinderStruct):
    """`struct binder_extended_error`: the last failure of a thread (id, BR_* code, -errno)."""

    FORMAT: ClassVar[str] = "<IIi"
    id: int = 0
    command: int = 0
    param: int = 0


@dataclass(frozen=True, slots=True)
class binder_node_info_for_ref(BinderStruct):
    """`struct binder_node_info_for_ref`: the counts of the node behind a handle."""

    FORMAT: ClassVar[str] = "<IIIIII"
    handle: int = 0
    strong_count: int = 0
    weak_count: int = 0
    reserved1: int = 0
    reserved2: int = 0
    reserved3: int = 0


@dataclass(frozen=True, slots=True)
class binder_node_debug_info(BinderStruct):
    """`struct binder_node_debug_info`: the next node above `ptr` and its has-ref state."""

    FORMAT: ClassVar[str] = "<QQII"
    ptr: int = 0
    cookie: int = 0
    has_strong_ref: int = 0
    has_weak_ref: int = 0


for _c in (
    binder_object_header,
    flat_binder_object,
    binder_fd_object,
    binder_buffer_object,
    binder_fd_array_object,
    binder_transaction_data,
    binder_transaction_data_sg,
    binder_transaction_data_secctx,
    binder_ptr_cookie,
    binder_handle_cookie,
    binder_write_read,
    binder_version,
    binder_freeze_info,
    binder_frozen_status_info,
    binder_extended_error,
    binder_node_info_for_ref,
    binder_node_debug_info,
):
    _sized(_c)

# ---------------------------------------------------------------------------
# Object types and flags.


def _pack_chars(c1: str, c2: str, c3: str, c4: int) -> int:
    return (ord(c1) << 24) | (ord(c2) << 16) | (ord(c3) << 8) | c4


B_TYPE_LARGE = 0x85
BINDER_TYPE_BINDER = _pack_chars("s", "b", "*", B_TYPE_LARGE)
BINDER_TYPE_WEAK_BINDER = _pack_chars("w", "b", "*", B_TYPE_LARGE)
BINDER_TYPE_HANDLE = _pack_chars("s", "h", "*", B_TYPE_LARGE)
BINDER_TYPE_WEAK_HANDLE = _pack_chars("w", "h", "*", B_TYPE_LARGE)
BINDER_TYPE_FD = _pack_chars("f", "d", "*", B_TYPE_LARGE)
BINDER_TYPE_FDA = _pack_chars("f", "d", "a", B_TYPE_LARGE)
BINDER_TYPE_PTR = _pack_chars("p", "t", "*", B_TYPE_LARGE)

FLAT_BINDER_FLAG_PRIORITY_MASK = 0xFF
FLAT_BINDER_FLAG_ACCEPTS_FDS = 0x100
FLAT_BINDER_FLAG_TXN_SECURITY_CTX = 0x1000

BINDER_BUFFER_FLAG_HAS_PARENT = 0x01

TF_ONE_WAY = 0x01
TF_ROOT_OBJECT = 0x04
TF_STATUS_CODE = 0x08
TF_ACCEPT_FDS = 0x10
TF_CLEAR_BUF = 0x20
TF_UPDATE_TXN = 0x40

BINDER_CURRENT_PROTOCOL_VERSION = 8

_OBJECT_SIZES = {
    BINDER_TYPE_BINDER: flat_binder_object.SIZE,
    BINDER_TYPE_WEAK_BINDER: flat_binder_object.SIZE,
    BINDER_TYPE_HANDLE: flat_binder_object.SIZE,
    BINDER_TYPE_WEAK_HANDLE: flat_binder_object.SIZE,
    BINDER_TYPE_FD: binder_fd_object.SIZE,
    BINDER_TYPE_PTR: binder_buffer_object.SIZE,
    BINDER_TYPE_FDA: binder_fd_array_object.SIZE,
}


def object_size(type_: int) -> int | None:
    """`BinderObject::type_to_size`: the size of an embedded object, None if unknown."""
    return _OBJECT_SIZES.get(type_)


# ---------------------------------------------------------------------------
# ioctls.

BINDER_WRITE_READ = _iowr("b", 1, binder_write_read.SIZE)
BINDER_SET_IDLE_TIMEOUT = _iow("b", 3, 8)
BINDER_SET_MAX_THREADS = _iow("b", 5, 4)
BINDER_SET_IDLE_PRIORITY = _iow("b", 6, 4)
BINDER_SET_CONTEXT_MGR = _iow("b", 7, 4)
BINDER_THREAD_EXIT = _iow("b", 8, 4)
BINDER_VERSION = _iowr("b", 9, binder_version.SIZE)
BINDER_GET_NODE_DEBUG_INFO = _iowr("b", 11, binder_node_debug_info.SIZE)
BINDER_GET_NODE_INFO_FOR_REF = _iowr("b", 12, binder_node_info_for_ref.SIZE)
BINDER_SET_CONTEXT_MGR_EXT = _iow("b", 13, flat_binder_object.SIZE)
BINDER_FREEZE = _iow("b", 14, binder_freeze_info.SIZE)
BINDER_GET_FROZEN_INFO = _iowr("b", 15, binder_frozen_status_info.SIZE)
BINDER_ENABLE_ONEWAY_SPAM_DETECTION = _iow("b", 16, 4)
BINDER_GET_EXTENDED_ERROR = _iowr("b", 17, binder_extended_error.SIZE)

# ---------------------------------------------------------------------------
# Return protocol (driver -> userspace).

BR_ERROR = _ior("r", 0, 4)
BR_OK = _io("r", 1)
BR_TRANSACTION_SEC_CTX = _ior("r", 2, binder_transaction_data_secctx.SIZE)
BR_TRANSACTION = _ior("r", 2, binder_transaction_data.SIZE)
BR_REPLY = _ior("r", 3, binder_transaction_data.SIZE)
BR_ACQUIRE_RESULT = _ior("r", 4, 4)
BR_DEAD_REPLY = _io("r", 5)
BR_TRANSACTION_COMPLETE = _io("r", 6)
BR_INCREFS = _ior("r", 7, binder_ptr_cookie.SIZE)
BR_ACQUIRE = _ior("r", 8, binder_ptr_cookie.SIZE)
BR_RELEASE = _ior("r", 9, binder_ptr_cookie.SIZE)
BR_DECREFS = _ior("r", 10, binder_ptr_cookie.SIZE)
BR_ATTEMPT_ACQUIRE = _ior("r", 11, 4 + 2 * 8)
BR_NOOP = _io("r", 12)
BR_SPAWN_LOOPER = _io("r", 13)
BR_FINISHED = _io("r", 14)
BR_DEAD_BINDER = _ior("r", 15, 8)
BR_CLEAR_DEATH_NOTIFICATION_DONE = _ior("r", 16, 8)
BR_FAILED_REPLY = _io("r", 17)
BR_FROZEN_REPLY = _io("r", 18)
BR_ONEWAY_SPAM_SUSPECT = _io("r", 19)
BR_TRANSACTION_PENDING_FROZEN = _io("r", 20)
BR_FROZEN_BINDER = _ior("r", 21, 16)
BR_CLEAR_FREEZE_NOTIFICATION_DONE = _ior("r", 22, 8)

# ---------------------------------------------------------------------------
# Command protocol (userspace -> driver).

BC_TRANSACTION = _iow("c", 0, binder_transaction_data.SIZE)
BC_REPLY = _iow("c", 1, binder_transaction_data.SIZE)
BC_ACQUIRE_RESULT = _iow("c", 2, 4)
BC_FREE_BUFFER = _iow("c", 3, 8)
BC_INCREFS = _iow("c", 4, 4)
BC_ACQUIRE = _iow("c", 5, 4)
BC_RELEASE = _iow("c", 6, 4)
BC_DECREFS = _iow("c", 7, 4)
BC_INCREFS_DONE = _iow("c", 8, binder_ptr_cookie.SIZE)
BC_ACQUIRE_DONE = _iow("c", 9, binder_ptr_cookie.SIZE)
BC_ATTEMPT_ACQUIRE = _iow("c", 10, 8)
BC_REGISTER_LOOPER = _io("c", 11)
BC_ENTER_LOOPER = _io("c", 12)
BC_EXIT_LOOPER = _io("c", 13)
BC_REQUEST_DEATH_NOTIFICATION = _iow("c", 14, binder_handle_cookie.SIZE)
BC_CLEAR_DEATH_NOTIFICATION = _iow("c", 15, binder_handle_cookie.SIZE)
BC_DEAD_BINDER_DONE = _iow("c", 16, 8)
BC_TRANSACTION_SG = _iow("c", 17, binder_transaction_data_sg.SIZE)
BC_REPLY_SG = _iow("c", 18, binder_transaction_data_sg.SIZE)
BC_REQUEST_FREEZE_NOTIFICATION = _iow("c", 19, binder_handle_cookie.SIZE)
BC_CLEAR_FREEZE_NOTIFICATION = _iow("c", 20, binder_handle_cookie.SIZE)
BC_FREEZE_NOTIFICATION_DONE = _iow("c", 21, 8)

_NAMES: dict[int, str] = {}
for _name, _value in list(globals().items()):
    if (_name.startswith(("BR_", "BC_"))) and isinstance(_value, int):
        _NAMES.setdefault(_value, _name)


def code_name(code: int) -> str:
    """The `BR_*`/`BC_*` name of a command code, for messages and test failures."""
    return _NAMES.get(code, f"{code:#x}")


def payload_size(code: int) -> int:
    """The number of payload bytes that follow a command code in a stream."""
    return ioc_size(code)
