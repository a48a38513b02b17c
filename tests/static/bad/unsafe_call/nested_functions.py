"""Unsafe calls outside an unsafe block, inside nested functions and lambdas.

Factories of demo-style snippets define nested functions of the same name (`buggy` in
each): every one of them is checked, not only the last. Unsafe methods are reached
through an instance, a classmethod, a staticmethod and a local alias alike.
"""

from __future__ import annotations

from collections.abc import Callable

from ownership.unsafe import unsafe, unsafe_fn


class RawRing:
    def __init__(self, size: int) -> None:
        self.buf = bytearray(size)

    @unsafe_fn(safety="`at + len(data)` is within the ring.")  # runtime-origin
    def write_unchecked(self, at: int, data: bytes) -> None:
        self.buf[at : at + len(data)] = data

    @classmethod
    @unsafe_fn(safety="`size` is a power of two.")
    def with_size_unchecked(cls, size: int) -> RawRing:
        return cls(size)

    @staticmethod
    @unsafe_fn(safety="`mask + 1` is a power of two.")
    def wrap_unchecked(index: int, mask: int) -> int:
        return index & mask


Ring = RawRing


def make_unsafe_call() -> Callable[[], None]:
    ring = RawRing(16)

    def buggy() -> None:
        ring.write_unchecked(0, b"hi")  # expect: unsafe-call; runtime-site

    return buggy


def make_class_calls() -> Callable[[], None]:
    def buggy() -> None:
        ring = RawRing.with_size_unchecked(8)  # expect: unsafe-call
        Ring.wrap_unchecked(9, 7)  # expect: unsafe-call
        ring.wrap_unchecked(9, 7)  # expect: unsafe-call

    return buggy


def make_lambda_call() -> Callable[[], None]:
    ring = RawRing(4)

    def buggy() -> None:
        write: Callable[[], None] = lambda: ring.write_unchecked(0, b"x")  # expect: unsafe-call
        with unsafe("SAFETY: the lambda writes one byte at offset 0 of a 4-byte ring: 0 + 1 <= 4."):
            write()

    return buggy


def make_fine() -> Callable[[], None]:
    ring = RawRing(16)

    def buggy() -> None:  # Same name as the nested functions above, and harmless.
        with unsafe("SAFETY: 0 + 2 <= len(ring.buf) == 16"):
            ring.write_unchecked(0, b"hi")

    return buggy


def main() -> None:
    make_unsafe_call()()
