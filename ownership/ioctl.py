"""ioctl() number definitions (rust/kernel/ioctl.rs, include/uapi/asm-generic/ioctl.h).

An ioctl command number carries four fields: the direction (`_IOC_NONE`, `_IOC_WRITE`,
`_IOC_READ`, or both), a type byte (the driver's letter, `'b'` for Binder), the
command's number within the type, and the size of its argument. The layout is the
asm-generic one used by x86-64 and arm64:

    bits  0..7   nr      (_IOC_NRBITS   = 8)
    bits  8..15  type    (_IOC_TYPEBITS = 8)
    bits 16..29  size    (_IOC_SIZEBITS = 14)
    bits 30..31  dir     (_IOC_DIRBITS  = 2)

so `_IOWR('b', 1, 48)` (`BINDER_WRITE_READ`, a 48-byte `binder_write_read`) is
`0xc0306201`.

Differences in form from upstream: Rust's `_IOR::<T>(ty, nr)` takes the argument type
as a generic parameter and uses `size_of::<T>()`; here the size is the third argument,
either an int, a class with an int `SIZE` attribute (every `binder.uapi` struct has
one), or a `ctypes` type. The type byte may be given as a one-character string (as C
writes `'b'`) or as an int (as Rust writes `b'b' as u32`). Upstream's `build_assert!`
that each field fits is a `ValueError` when the number is built.

This module wraps no C object (the encoding is pure arithmetic) and takes no locks.
"""

from __future__ import annotations

import ctypes

__all__ = [
    "_IO",
    "_IOC",
    "_IOC_DIR",
    "_IOC_DIRBITS",
    "_IOC_DIRMASK",
    "_IOC_DIRSHIFT",
    "_IOC_NONE",
    "_IOC_NR",
    "_IOC_NRBITS",
    "_IOC_NRMASK",
    "_IOC_NRSHIFT",
    "_IOC_READ",
    "_IOC_SIZE",
    "_IOC_SIZEBITS",
    "_IOC_SIZEMASK",
    "_IOC_SIZESHIFT",
    "_IOC_TYPE",
    "_IOC_TYPEBITS",
    "_IOC_TYPEMASK",
    "_IOC_TYPESHIFT",
    "_IOC_WRITE",
    "_IOR",
    "_IOW",
    "_IOWR",
]

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_DIRBITS = 2

_IOC_NRMASK = (1 << _IOC_NRBITS) - 1
_IOC_TYPEMASK = (1 << _IOC_TYPEBITS) - 1
_IOC_SIZEMASK = (1 << _IOC_SIZEBITS) - 1
_IOC_DIRMASK = (1 << _IOC_DIRBITS) - 1

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS

_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2

SizeSpec = int | type
"""The argument size: an int, a class with an int `SIZE`, or a `ctypes` type."""


def _type_byte(ty: str | int) -> int:
    if isinstance(ty, str):
        if len(ty) != 1:
            raise ValueError(f"ioctl type must be one character, got {ty!r}")
        return ord(ty)
    if type(ty) is not int:
        raise TypeError(f"ioctl type must be a character or an int, got {type(ty).__name__}")
    return ty


def _size_of(size: SizeSpec) -> int:
    if type(size) is int:
        return size
    if isinstance(size, type):
        n = getattr(size, "SIZE", None)
        if type(n) is int:
            return n
        try:
            return ctypes.sizeof(size)
        except TypeError:
            pass
    raise TypeError(
        f"ioctl argument size must be an int, a class with SIZE or a ctypes type, got {size!r}"
    )


def _field(name: str, value: int, mask: int) -> int:
    if type(value) is not int:
        raise TypeError(f"ioctl {name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= mask:
        raise ValueError(f"ioctl {name} {value:#x} does not fit in its field (max {mask:#x})")
    return value


def _IOC(direction: int, ty: str | int, nr: int, size: SizeSpec) -> int:
    """Build an ioctl number from its four fields (the C macro `_IOC`)."""
    d = _field("direction", direction, _IOC_DIRMASK)
    t = _field("type", _type_byte(ty), _IOC_TYPEMASK)
    n = _field("number", nr, _IOC_NRMASK)
    s = _field("size", _size_of(size), _IOC_SIZEMASK)
    return (
        (d << _IOC_DIRSHIFT) | (t << _IOC_TYPESHIFT) | (n << _IOC_NRSHIFT) | (s << _IOC_SIZESHIFT)
    )


def _IO(ty: str | int, nr: int) -> int:
    """An ioctl number for an argumentless ioctl."""
    return _IOC(_IOC_NONE, ty, nr, 0)


def _IOR(ty: str | int, nr: int, size: SizeSpec) -> int:
    """An ioctl number for a read-only ioctl (the kernel writes the argument)."""
    return _IOC(_IOC_READ, ty, nr, size)


def _IOW(ty: str | int, nr: int, size: SizeSpec) -> int:
    """An ioctl number for a write-only ioctl (the kernel reads the argument)."""
    return _IOC(_IOC_WRITE, ty, nr, size)


def _IOWR(ty: str | int, nr: int, size: SizeSpec) -> int:
    """An ioctl number for a read-write ioctl."""
    return _IOC(_IOC_READ | _IOC_WRITE, ty, nr, size)


def _IOC_DIR(nr: int) -> int:
    """The direction of an ioctl number."""
    return (nr >> _IOC_DIRSHIFT) & _IOC_DIRMASK


def _IOC_TYPE(nr: int) -> int:
    """The type byte of an ioctl number."""
    return (nr >> _IOC_TYPESHIFT) & _IOC_TYPEMASK


def _IOC_NR(nr: int) -> int:
    """The command number within its type."""
    return (nr >> _IOC_NRSHIFT) & _IOC_NRMASK


def _IOC_SIZE(nr: int) -> int:
    """The size of the ioctl's argument."""
    return (nr >> _IOC_SIZESHIFT) & _IOC_SIZEMASK
