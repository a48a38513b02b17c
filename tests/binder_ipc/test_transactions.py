"""Ports of the AOSP binderLibTest transaction cases, end to end over the UAPI.

Each test builds a simulated machine (`binder_harness.world()`), starts services with looper
threads, and drives them from a client process, as binderLibTest drives its forked
`--binderserver` processes. The runtime checks are on throughout: any lock-order,
sleep-in-atomic, lifetime or refcount violation fails the test, and the harness checks
at the end that every process was released with nothing left behind.
"""

from __future__ import annotations

import threading
import time

import pytest

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from binder.servicemanager import add_service, get_service
from ownership.errors import EINVAL, KernelError

from ..binder_harness import task_of, world

NOP = 1
GET_ID = 2
SET_ERROR = 3
INDIRECT = 4
CALL_BACK = 5
ECHO_BINDER = 6
ECHO = 7


def make_server(server_id: int) -> tuple[int, object]:
    ptr = 0x5000_0000 + server_id * 0x100

    def handler(c: BinderClient, t: Transaction) -> Parcel | int:
        p = t.parcel
        p.rewind()
        if t.code == NOP:
            return Parcel()
        if t.code == GET_ID:
            return Parcel().write_i32(server_id)
        if t.code == SET_ERROR:
            return p.read_i32()
        if t.code == ECHO:
            return Parcel().write_bytes(p.read_bytes())
        if t.code == INDIRECT:
            # Call each server named in the request and collect their ids (nested).
            n = p.read_i32()
            ids = Parcel().write_i32(server_id)
            for _ in range(n):
                obj = p.read_object()
                assert isinstance(obj, u.flat_binder_object)
                r = c.transact(obj.handle, GET_ID)
                ids.write_i32(r.parcel.read_i32())
            return ids
        if t.code == CALL_BACK:
            # Call back into the caller while its transaction is still open.
            obj = p.read_object()
            assert isinstance(obj, u.flat_binder_object)
            r = c.transact(obj.handle, GET_ID)
            return Parcel().write_i32(r.parcel.read_i32() + 1000)
        if t.code == ECHO_BINDER:
            obj = p.read_object()
            assert isinstance(obj, u.flat_binder_object)
            # Hold the binder (as an sp<IBinder> would) across the buffer's free.
            c.acquire(obj.handle)
            return Parcel().write_handle(obj.handle)
        return -38

    return ptr, handler


def test_nop_transaction() -> None:
    with world() as w:
        ptr, h = make_server(0)
        w.service("test.binderLib", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        handle = w.lookup(app, "test.binderLib")
        r = app.transact(handle, NOP)
        assert r.ok and r.status == 0
        assert len(r.parcel) == 0


def test_nop_transaction_oneway() -> None:
    with world() as w:
        ptr, h = make_server(0)
        w.service("test.binderLib", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        handle = w.lookup(app, "test.binderLib")
        r = app.transact(handle, NOP, flags=u.TF_ONE_WAY)
        assert r.code == u.BR_TRANSACTION_COMPLETE
        # A two-way call afterwards still works and is served after the oneway one.
        assert app.transact(handle, NOP).ok


@pytest.mark.parametrize("status", [0, -1, -22, -38, 1 << 30])
def test_set_error(status: int) -> None:
    with world() as w:
        ptr, h = make_server(0)
        w.service("test.binderLib", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        handle = w.lookup(app, "test.binderLib")
        r = app.transact(handle, SET_ERROR, Parcel().write_i32(status))
        assert r.ok
        assert r.status == status


def test_get_id() -> None:
    with world() as w:
        for i in range(3):
            ptr, h = make_server(i)
            w.service(f"server{i}", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        for i in range(3):
            r = app.transact(w.lookup(app, f"server{i}"), GET_ID)
            assert r.parcel.read_i32() == i


def test_echo_payload_roundtrip_large() -> None:
    with world() as w:
        ptr, h = make_server(0)
        w.service("echo", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        handle = w.lookup(app, "echo")
        for size in (0, 1, 7, 4095, 4096, 4097, 20000):
            blob = bytes((i * 7 + size) & 0xFF for i in range(size))
            r = app.transact(handle, ECHO, Parcel().write_bytes(blob))
            assert r.parcel.read_bytes() == blob


def test_indirect_get_id2() -> None:
    """The client asks server 0 to ask servers 1 and 2: nested transactions."""
    with world() as w:
        for i in range(3):
            ptr, h = make_server(i)
            w.service(f"server{i}", ptr, h, loopers=2)  # type: ignore[arg-type]
        app = w.spawn("client")
        hs = [w.lookup(app, f"server{i}") for i in range(3)]
        p = Parcel().write_i32(2).write_handle(hs[1]).write_handle(hs[2])
        r = app.transact(hs[0], INDIRECT, p)
        q = r.parcel
        assert [q.read_i32() for _ in range(3)] == [0, 1, 2]


def test_indirect_get_id3() -> None:
    """Three processes deep: the client calls 0, 0 calls 1, 1 calls 2."""
    with world() as w:
        for i in range(3):
            ptr, h = make_server(i)
            w.service(f"server{i}", ptr, h, loopers=2)  # type: ignore[arg-type]
        app = w.spawn("client")
        hs = [w.lookup(app, f"server{i}") for i in range(3)]
        # server0 gets a handle to server1 and calls INDIRECT on it with server2.
        inner = Parcel().write_i32(1).write_handle(hs[2])
        outer = Parcel().write_i32(1).write_handle(hs[1])
        r1 = app.transact(hs[1], INDIRECT, inner)
        q1 = r1.parcel
        assert [q1.read_i32() for _ in range(2)] == [1, 2]
        r0 = app.transact(hs[0], INDIRECT, outer)
        q0 = r0.parcel
        assert [q0.read_i32() for _ in range(2)] == [0, 1]


def test_call_back_reuses_the_waiting_thread() -> None:
    """The server calls back into the client during the call: the same client thread
    serves it (the transaction stack finds the thread already in the chain)."""
    with world() as w:
        ptr, h = make_server(0)
        w.service("server", ptr, h)  # type: ignore[arg-type]
        app = w.spawn("client")
        served_on: list[int] = []

        def callback(c: BinderClient, t: Transaction) -> Parcel:
            served_on.append(threading.get_ident())
            return Parcel().write_i32(7)

        app.add_object(0xCA11, callback)
        handle = w.lookup(app, "server")
        r = app.transact(handle, CALL_BACK, Parcel().write_strong_binder(0xCA11))
        assert r.parcel.read_i32() == 1007
        assert served_on == [threading.get_ident()]


def test_add_server_passes_a_binder_through_a_third_process() -> None:
    with world() as w:
        p0, h0 = make_server(0)
        p1, h1 = make_server(1)
        w.service("server0", p0, h0)  # type: ignore[arg-type]
        w.service("server1", p1, h1)  # type: ignore[arg-type]
        app = w.spawn("client")
        s0, s1 = w.lookup(app, "server0"), w.lookup(app, "server1")
        r = app.transact(s0, ECHO_BINDER, Parcel().write_handle(s1))
        obj = r.parcel.read_object()
        assert isinstance(obj, u.flat_binder_object) and obj.type == u.BINDER_TYPE_HANDLE
        # The same node comes back as the same handle in the client.
        assert obj.handle == s1
        assert app.transact(obj.handle, GET_ID).parcel.read_i32() == 1


def test_binder_sent_to_its_owner_comes_back_as_a_binder() -> None:
    with world() as w:
        seen: list[u.flat_binder_object] = []

        def inspect(c: BinderClient, t: Transaction) -> Parcel:
            o = t.parcel.read_object()
            assert isinstance(o, u.flat_binder_object)
            seen.append(o)
            return Parcel()

        w.service("server0", 0x5000, inspect)
        app = w.spawn("client")
        s0 = w.lookup(app, "server0")
        # The client sends the server its own handle: the server sees its binder.
        assert app.transact(s0, NOP, Parcel().write_handle(s0)).ok
        assert seen[-1].type == u.BINDER_TYPE_BINDER
        assert (seen[-1].binder, seen[-1].cookie) == (0x5000, 0)


def test_free_buffer_twice_is_an_error() -> None:
    with world() as w:
        srv = w.spawn("server")
        app = w.spawn("client")
        srv.add_object(0x10, lambda c, t: Parcel())
        w.looper(srv)
        add_service(srv, "s", 0x10)
        h = w.lookup(app, "s")
        r = app.transact(h, NOP, Parcel().write_i32(5), keep_buffer=True)
        assert r.transaction is not None
        app.free_buffer(r.transaction.buffer)
        with pytest.raises(KernelError) as e:
            app.free_buffer(r.transaction.buffer)
        assert e.value.errno == EINVAL


def test_nop_transaction_clear_zeroes_the_buffer_on_free() -> None:
    """NopTransactionClear: TF_CLEAR_BUF makes the driver zero the buffer when freed."""
    with world() as w:
        seen: list[tuple[int, int]] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            seen.append((t.buffer, len(t.parcel.data)))
            return Parcel()

        srv = w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        secret = b"secret!!" * 8
        assert app.transact(h, NOP, Parcel.raw(secret, []), flags=u.TF_CLEAR_BUF).ok
        addr, n = seen[-1]
        # The receiver freed it after the call: its bytes are gone from the mapping.
        assert task_of(srv).read_user(addr, n) == bytes(n)
        assert app.transact(h, NOP, Parcel.raw(secret, [])).ok
        addr2, n2 = seen[-1]
        assert task_of(srv).read_user(addr2, n2) == secret  # without the flag they stay


def test_sender_pid_is_reported_for_two_way_calls_only() -> None:
    with world() as w:
        pids: list[tuple[int, bool]] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            pids.append((t.sender_pid, t.oneway))
            return Parcel()

        w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        app.transact(h, NOP, flags=u.TF_ONE_WAY)
        app.transact(h, NOP)
        assert pids == [(0, True), (app.pid, False)]


def test_service_manager_forgets_a_service_whose_process_died() -> None:
    with world() as w:
        p0, h0 = make_server(0)
        p1, h1 = make_server(1)
        server0 = w.service("server0", p0, h0)  # type: ignore[arg-type]
        w.service("server1", p1, h1)  # type: ignore[arg-type]
        app = w.spawn("client")
        assert get_service(app, "server0") is not None
        w.kill(server0)
        # The manager's looper gets BR_DEAD_BINDER and drops the name, as AOSP's does.
        deadline = time.monotonic() + 5
        while "server0" in w.sm.services and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(w.sm.services) == ["server1"]
        assert get_service(app, "server0") is None
        assert app.transact(w.lookup(app, "server1"), GET_ID).parcel.read_i32() == 1
