"""An unsafe function calling another one must still say why, in a `# SAFETY:` comment
right above the call (there is no block whose string could carry the reason)."""

from __future__ import annotations

from ownership.unsafe import unsafe, unsafe_fn

STATIC_ONLY = "inside an unsafe fn the call is allowed at run time; the missing argument is a review finding"


@unsafe_fn(safety="`buf` has at least `n` bytes.")
def read_prefix(buf: bytes, n: int) -> bytes:
    return buf[:n]


@unsafe_fn(safety="`buf` has at least 8 bytes.")
def read_header(buf: bytes) -> bytes:
    return read_prefix(buf, 8)  # expect: undocumented-unsafe


@unsafe_fn(safety="`buf` has at least 16 bytes.")
def read_footer(buf: bytes) -> bytes:
    # SAFETY: 16 >= 8, so our own contract gives read_prefix's.
    return read_prefix(buf, 8)


def main() -> None:
    buf = bytes(16)
    with unsafe("SAFETY: `buf` is 16 bytes long, which covers both contracts."):
        read_header(buf)
        read_footer(buf)
