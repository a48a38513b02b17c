"""Hypothesis strategies for Binder transactions: payloads with objects and offsets.

A Binder transaction carries a data buffer and the offsets of the objects embedded in it
(`struct binder_transaction_data`'s `data_size`, `offsets_size`; the objects are the
UAPI structs of `binder.uapi`: `flat_binder_object` for binders and handles,
`binder_fd_object` for fds). These strategies build them as a `Parcel` of
`binder.client`, ready for `BinderClient.transact`:

* `transactions(ptrs=..., handles=..., fds=...)`: well-formed payloads, primitives
  interleaved with objects drawn from what the sender really has (its local objects'
  pointers, the handles it holds, its open fds), each object 4-aligned, offsets
  increasing and inside the data; the driver must accept them.
* `hostile_transactions()`: any bytes with any offsets (out of range, unaligned, into
  the middle of an object, unsorted), for the driver's rejection paths.

The ownership-side strategies (VMA flags, user addresses and buffers) are in
`ownership.testing`. Needs `hypothesis` (the `test` extra); wraps no C object, takes no
lock.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from . import uapi as u
from .client import Parcel

__all__ = ["OBJECT_TYPES", "Transaction", "hostile_transactions", "transactions"]

#: The object types a plain transaction embeds (no scatter-gather buffers).
OBJECT_TYPES: tuple[int, ...] = (
    u.BINDER_TYPE_BINDER,
    u.BINDER_TYPE_WEAK_BINDER,
    u.BINDER_TYPE_HANDLE,
    u.BINDER_TYPE_WEAK_HANDLE,
    u.BINDER_TYPE_FD,
)


@dataclass(frozen=True)
class Transaction:
    """A transaction to send: its code, flags, payload and the objects in it, in order.

    Invariants (for `transactions()`): `objects[i]` is packed at `parcel.offsets[i]`.
    """

    code: int
    flags: int
    parcel: Parcel
    objects: tuple[u.flat_binder_object | u.binder_fd_object, ...]

    def transaction_data(
        self, target: int, buffer: int = 0, offsets: int = 0
    ) -> u.binder_transaction_data:
        """The `binder_transaction_data` describing it (`buffer`, `offsets`: user addresses)."""
        return u.binder_transaction_data(
            target=target,
            code=self.code,
            flags=self.flags,
            data_size=len(self.parcel.data),
            offsets_size=8 * len(self.parcel.offsets),
            buffer=buffer,
            offsets=offsets,
        )


def _primitive(p: Parcel, kind: str, value: int | bytes) -> None:
    if kind == "i32":
        assert isinstance(value, int)
        p.write_i32(value)
    elif kind == "u64":
        assert isinstance(value, int)
        p.write_u64(value)
    else:
        assert isinstance(value, bytes)
        p.write_bytes(value)


_primitives = st.one_of(
    st.tuples(st.just("i32"), st.integers(-(1 << 31), (1 << 31) - 1)),
    st.tuples(st.just("u64"), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
)


def _local(kind: int, ptr: int, cookies: Mapping[int, int]) -> u.flat_binder_object:
    flags = 0x7F | u.FLAT_BINDER_FLAG_ACCEPTS_FDS
    return u.flat_binder_object(kind, flags, ptr, cookies.get(ptr, 0))


def _objects(
    ptrs: Sequence[int], handles: Sequence[int], fds: Sequence[int], cookies: Mapping[int, int]
) -> st.SearchStrategy[u.flat_binder_object | u.binder_fd_object]:
    choices: list[st.SearchStrategy[u.flat_binder_object | u.binder_fd_object]] = []
    if ptrs:
        # A node is one (ptr, cookie) pair: the driver refuses a known ptr with another
        # cookie, so each pointer is sent with its own.
        choices.append(
            st.builds(
                _local,
                st.sampled_from([u.BINDER_TYPE_BINDER, u.BINDER_TYPE_WEAK_BINDER]),
                st.sampled_from(list(ptrs)),
                st.just(cookies),
            )
        )
    if handles:
        choices.append(
            st.builds(
                u.flat_binder_object,
                st.sampled_from([u.BINDER_TYPE_HANDLE, u.BINDER_TYPE_WEAK_HANDLE]),
                st.just(0x7F),
                st.sampled_from(list(handles)),
                st.just(0),
            )
        )
    if fds:
        choices.append(
            st.builds(
                u.binder_fd_object,
                st.just(u.BINDER_TYPE_FD),
                st.just(0),
                st.sampled_from(list(fds)),
                st.integers(0, (1 << 64) - 1),
            )
        )
    return st.one_of(choices) if choices else st.nothing()


def transactions(
    *,
    ptrs: Sequence[int] = (),
    handles: Sequence[int] = (),
    fds: Sequence[int] = (),
    cookies: Mapping[int, int] | None = None,
    codes: st.SearchStrategy[int] | None = None,
    oneway: bool | None = False,
    max_items: int = 6,
) -> st.SearchStrategy[Transaction]:
    """Well-formed transactions whose objects name only the given pointers, handles, fds.

    A local binder is sent with its cookie from `cookies` (0 when absent), as a node is
    one pointer and cookie pair. With none of `ptrs`, `handles`, `fds`, the payloads
    carry primitives only. `oneway`: None draws both; `codes` defaults to the user range
    `[FIRST_CALL_TRANSACTION, 0x00FFFFFF]`.
    """
    objects = _objects(ptrs, handles, fds, dict(cookies or {}))
    items = (
        st.one_of(_primitives, objects.map(lambda o: ("object", o)))
        if ptrs or handles or fds
        else _primitives
    )
    code_st = codes if codes is not None else st.integers(1, 0x00FF_FFFF)
    flag_st = st.booleans() if oneway is None else st.just(oneway)

    @st.composite
    def build(draw: st.DrawFn) -> Transaction:
        p = Parcel()
        objs: list[u.flat_binder_object | u.binder_fd_object] = []
        for kind, value in draw(st.lists(items, max_size=max_items)):
            if kind == "object":
                assert isinstance(value, (u.flat_binder_object, u.binder_fd_object))
                p.write_object(value)
                objs.append(value)
            else:
                assert isinstance(value, (int, bytes))
                _primitive(p, kind, value)
        flags = u.TF_ACCEPT_FDS | (u.TF_ONE_WAY if draw(flag_st) else 0)
        return Transaction(draw(code_st), flags, p, tuple(objs))

    return build()


def hostile_transactions(*, max_size: int = 160) -> st.SearchStrategy[Transaction]:
    """Payloads with arbitrary offsets, some pointing at plausible object headers."""
    types = st.sampled_from([*OBJECT_TYPES, u.BINDER_TYPE_PTR, u.BINDER_TYPE_FDA, 0, 0xDEADBEEF])

    @st.composite
    def build(draw: st.DrawFn) -> Transaction:
        data = bytearray(draw(st.binary(max_size=max_size)))
        offsets: list[int] = []
        for _ in range(draw(st.integers(0, 4))):
            off = draw(st.integers(0, max(len(data) + 8, 8)))
            offsets.append(off)
            if draw(st.booleans()) and off + 24 <= len(data):
                struct.pack_into("<I", data, off, draw(types))
                if draw(st.booleans()):
                    struct.pack_into("<Q", data, off + 8, draw(st.integers(0, 4)))
        if draw(st.booleans()):
            offsets.sort()
        return Transaction(
            draw(st.integers(1, 0x00FF_FFFF)), 0, Parcel.raw(bytes(data), offsets), ()
        )

    return build()
