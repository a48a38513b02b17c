"""`binder.testing`: generated transactions are well formed, and the driver takes them."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings

from binder import uapi as u
from binder.client import Parcel
from binder.client import Transaction as Received
from binder.testing import OBJECT_TYPES, Transaction, hostile_transactions, transactions

from ..binder_harness import world

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SERVICE_PTR = 0x10
PTRS = (0x100, 0x200, 0x300)


def _well_formed(t: Transaction) -> None:
    p = t.parcel
    assert len(p.offsets) == len(t.objects)
    assert p.offsets == sorted(p.offsets) and len(set(p.offsets)) == len(p.offsets)
    end = 0
    for off, obj in zip(p.offsets, t.objects, strict=True):
        assert off % 4 == 0 and off >= end and off + obj.SIZE <= len(p.data)
        assert bytes(p.data[off : off + obj.SIZE]) == obj.pack()
        assert struct.unpack_from("<I", p.data, off)[0] in OBJECT_TYPES
        end = off + obj.SIZE
    assert list(p.objects()) == list(t.objects)
    td = t.transaction_data(target=1)
    assert td.data_size == len(p.data) and td.offsets_size == 8 * len(p.offsets)
    assert u.binder_transaction_data.unpack(td.pack()) == td


@FAST
@given(transactions(ptrs=PTRS, handles=(1, 2), fds=(3, 4), oneway=None))
def test_transactions_are_well_formed(t: Transaction) -> None:
    _well_formed(t)
    for o in t.objects:
        if isinstance(o, u.binder_fd_object):
            assert o.fd in (3, 4)
        elif o.type in (u.BINDER_TYPE_BINDER, u.BINDER_TYPE_WEAK_BINDER):
            assert o.binder in PTRS and o.cookie == 0
        else:
            assert o.handle in (1, 2)


@FAST
@given(transactions())
def test_without_objects_the_payload_is_primitives(t: Transaction) -> None:
    assert t.objects == () and t.parcel.offsets == []
    assert not t.flags & u.TF_ONE_WAY


@FAST
@given(hostile_transactions())
def test_hostile_transactions_are_raw_parcels(t: Transaction) -> None:
    assert t.objects == ()
    assert all(off >= 0 for off in t.parcel.offsets)


def test_the_driver_delivers_every_generated_object() -> None:
    with world() as w:
        received: list[Received] = []

        def serve(c: object, t: Received) -> Parcel:
            received.append(t)
            return Parcel()

        w.service("s", SERVICE_PTR, serve)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        for ptr in PTRS:
            app.add_object(ptr, lambda c, t: Parcel())

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(transactions(ptrs=PTRS))
        def check(t: Transaction) -> None:
            received.clear()
            r = app.transact(h, t.code, t.parcel, flags=t.flags)
            assert r.ok, u.code_name(r.code)
            (got,) = received
            assert got.code == t.code
            kinds = [o.type for o in got.parcel.objects()]
            # The driver turns each local binder into a handle in the receiver.
            assert kinds == [
                u.BINDER_TYPE_HANDLE
                if o.type == u.BINDER_TYPE_BINDER
                else u.BINDER_TYPE_WEAK_HANDLE
                for o in t.objects
            ]

        check()
