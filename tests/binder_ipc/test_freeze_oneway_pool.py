"""The freezer, oneway ordering, and the thread pool.

Ports of binderLibTest's Freeze, OnewayQueueing and ThreadPoolAvailableThreads, plus
the looper state machine and BINDER_THREAD_EXIT.
"""

from __future__ import annotations

import threading

import pytest

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from ownership.errors import EAGAIN, EINVAL, KernelError

from .harness import world

NOP = 1
BLOCK = 2


def test_freeze() -> None:
    with world() as w:
        gate = threading.Event()
        entered = threading.Event()

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            if t.code == BLOCK:
                entered.set()
                gate.wait(10)
            return Parcel()

        srv = w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        # Busy: a transaction in flight makes BINDER_FREEZE fail with EAGAIN.
        caller = w.run(lambda: app.transact(h, BLOCK), "caller")
        entered.wait(10)
        with pytest.raises(KernelError) as e:
            w.sm_client.freeze(srv.pid, True, timeout_ms=0)
        assert e.value.errno == EAGAIN
        gate.set()
        caller.join(10)
        # Idle: the freeze succeeds; calls fail with BR_FROZEN_REPLY.
        w.sm_client.freeze(srv.pid, True, timeout_ms=100)
        assert app.transact(h, NOP).code == u.BR_FROZEN_REPLY
        r = app.transact(h, NOP, flags=u.TF_ONE_WAY)
        assert r.code == u.BR_TRANSACTION_PENDING_FROZEN
        info = w.sm_client.frozen_info(srv.pid)
        assert info.sync_recv & 1 and info.async_recv == 1
        # Thawed, the queued oneway is delivered and calls work again.
        w.sm_client.freeze(srv.pid, False)
        assert app.transact(h, NOP).ok
        info = w.sm_client.frozen_info(srv.pid)
        assert (info.sync_recv, info.async_recv) == (0, 0)


def test_frozen_info_of_unknown_pid_is_einval() -> None:
    with world() as w:
        with pytest.raises(KernelError) as e:
            w.sm_client.frozen_info(4242)
        assert e.value.errno == EINVAL


def test_oneway_queueing_preserves_order_per_node() -> None:
    """OnewayQueueing: the second oneway waits in the node until the first is freed."""
    with world() as w:
        srv = w.spawn("server")  # served by hand below
        srv.add_object(0x10, lambda c, t: Parcel())
        from binder.servicemanager import add_service

        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        for i in range(3):
            assert app.transact(h, i + 100, flags=u.TF_ONE_WAY).code == u.BR_TRANSACTION_COMPLETE
        t1 = srv.next_transaction()
        assert t1.code == 100 and t1.oneway
        proc = w.process(srv)
        with proc.inner.lock() as g:
            node = g.data.nodes.get(0x10)
            assert node is not None
            assert len(node.inner.access(g).oneway_todo) == 2
            assert not g.data.work
        srv.free_buffer(t1.buffer)
        t2 = srv.next_transaction()
        assert t2.code == 101
        srv.free_buffer(t2.buffer)
        t3 = srv.next_transaction()
        assert t3.code == 102
        srv.free_buffer(t3.buffer)


def test_thread_pool_available_threads() -> None:
    """ThreadPoolAvailableThreads: BR_SPAWN_LOOPER up to max threads, no more."""
    with world() as w:
        srv = w.spawn("server")
        srv.set_max_threads(2)
        srv.add_object(0x10, lambda c, t: Parcel())
        from binder.servicemanager import add_service

        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        spawn_requests = 0
        # The main thread enters the loop; while it serves, nobody is ready: spawn.
        caller = w.run(lambda: app.transact(h, NOP), "caller")
        out = srv.cmd(u.BC_ENTER_LOOPER)
        _, data = srv.write_read(out)
        codes = [c for c, _ in srv.parse_returns(data)]
        spawn_requests += codes.count(u.BR_SPAWN_LOOPER)
        assert u.BR_TRANSACTION in codes
        t = srv._read_transaction(u.BR_TRANSACTION, dict(srv.parse_returns(data))[u.BR_TRANSACTION])
        srv.reply(Parcel(), t)
        caller.join(10)
        assert spawn_requests == 1
        proc = w.process(srv)
        with proc.inner.lock() as g:
            assert g.data.requested_thread_count == 1
        # A spawned thread registers; the request is satisfied.
        def spawned() -> None:
            srv.send(srv.cmd(u.BC_REGISTER_LOOPER))
        th = threading.Thread(target=spawned)
        th.start()
        th.join()
        with proc.inner.lock() as g:
            assert (g.data.requested_thread_count, g.data.started_thread_count) == (0, 1)


def test_register_looper_without_request_is_invalid() -> None:
    with world() as w:
        srv = w.spawn("server")
        srv.send(srv.cmd(u.BC_REGISTER_LOOPER))
        proc = w.process(srv)
        with proc.inner.lock() as g:
            (thread,) = list(g.data.threads.values())
        from binder.defs import LooperFlag

        assert thread.looper_flags() & LooperFlag.INVALID


def test_thread_exit_removes_the_thread() -> None:
    with world() as w:
        srv = w.spawn("server")
        srv.send(srv.cmd(u.BC_ENTER_LOOPER))
        proc = w.process(srv)
        with proc.inner.lock() as g:
            assert len(g.data.threads) == 1
        srv.thread_exit()
        with proc.inner.lock() as g:
            # The ioctl itself re-created no thread: THREAD_EXIT looked it up first.
            assert len(g.data.threads) == 0


def test_unknown_command_fails_the_write() -> None:
    with world() as w:
        app = w.spawn("client")
        with pytest.raises(KernelError) as e:
            app.send(u.BC_ATTEMPT_ACQUIRE.to_bytes(4, "little") + bytes(8))
        assert e.value.errno == EINVAL
        with pytest.raises(KernelError):
            app.file.ioctl(0x6299, 0)
        assert app.version() == u.BINDER_CURRENT_PROTOCOL_VERSION
