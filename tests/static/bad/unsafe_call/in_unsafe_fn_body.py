"""An unsafe function calling another one needs an unsafe block of its own, as the kernel
builds with `-D unsafe_op_in_unsafe_fn`: a `# SAFETY:` comment does not make one."""

from __future__ import annotations

from ownership.unsafe import unsafe, unsafe_fn

STATIC_ONLY = "inside an unsafe fn the call is allowed at run time; the missing block is a review finding"


@unsafe_fn(safety="`buf` has at least `n` bytes.")
def read_prefix(buf: bytes, n: int) -> bytes:
    return buf[:n]


@unsafe_fn(safety="`buf` has at least 8 bytes.")
def read_header(buf: bytes) -> bytes:
    return read_prefix(buf, 8)  # expect: unsafe-call


@unsafe_fn(safety="`buf` has at least 16 bytes.")
def read_footer(buf: bytes) -> bytes:
    # SAFETY: 16 >= 8, so our own contract gives read_prefix's.
    return read_prefix(buf, 8)  # expect: unsafe-call


@unsafe_fn(safety="`buf` has at least 32 bytes.")
def read_body(buf: bytes) -> bytes:
    with unsafe("SAFETY: 32 >= 8, so our own contract gives read_prefix's."):
        return read_prefix(buf, 8)


def main() -> None:
    buf = bytes(32)
    with unsafe("SAFETY: `buf` is 32 bytes long, which covers every contract."):
        read_header(buf)
        read_footer(buf)
        read_body(buf)
