"""The freezer, oneway ordering, and the thread pool.

Ports of binderLibTest's Freeze, OnewayQueueing and ThreadPoolAvailableThreads, plus
the looper state machine and BINDER_THREAD_EXIT.
"""

from __future__ import annotations

import threading

import pytest

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from binder.defs import LooperFlag
from binder.servicemanager import add_service
from ownership.errors import EAGAIN, EINVAL, KernelError
from ownership.workqueue import flush
from tests.expect import raises_errno

from ..binder_harness import world

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
        with raises_errno(EINVAL):
            app.file.ioctl(0x6299, 0)
        assert app.version() == u.BINDER_CURRENT_PROTOCOL_VERSION


def test_second_context_manager_is_ebusy() -> None:
    with world() as w:
        other = w.spawn("impostor")
        with pytest.raises(KernelError) as e:
            other.become_context_manager()
        assert e.value.errno == 16  # EBUSY


def test_node_info_for_ref_only_for_the_manager() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        sm = w.sm_client
        handle = w.sm.services["s"]
        raw = sm.ioctl_struct(u.BINDER_GET_NODE_INFO_FOR_REF, u.binder_node_info_for_ref(handle))
        info = u.binder_node_info_for_ref.unpack(raw)
        # The manager's own strong and weak refs (from ADD_SERVICE's acquire).
        assert (info.strong_count, info.weak_count) == (1, 1)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        with pytest.raises(KernelError) as e:
            app.ioctl_struct(u.BINDER_GET_NODE_INFO_FOR_REF, u.binder_node_info_for_ref(h))
        assert e.value.errno == 1  # EPERM
        with pytest.raises(KernelError) as e2:
            sm.ioctl_struct(
                u.BINDER_GET_NODE_INFO_FOR_REF, u.binder_node_info_for_ref(handle, strong_count=1)
            )
        assert e2.value.errno == EINVAL


def test_node_debug_info_walks_the_nodes() -> None:
    with world() as w:
        srv = w.service("s", 0x10, lambda c, t: Parcel())
        raw = srv.ioctl_struct(u.BINDER_GET_NODE_DEBUG_INFO, u.binder_node_debug_info(ptr=0))
        info = u.binder_node_debug_info.unpack(raw)
        assert (info.ptr, info.has_strong_ref, info.has_weak_ref) == (0x10, 1, 1)
        raw = srv.ioctl_struct(u.BINDER_GET_NODE_DEBUG_INFO, u.binder_node_debug_info(ptr=0x10))
        assert u.binder_node_debug_info.unpack(raw).ptr == 0


def test_deferred_flush_wakes_waiting_loopers() -> None:
    """PROC_DEFER_FLUSH (upstream on every close of the fd): the workqueue makes each
    waiting looper return to userspace with nothing but BR_NOOP."""
    with world() as w:
        srv = w.spawn("server")
        got: list[list[int]] = []

        def wait_once() -> None:
            _, data = srv.write_read(srv.cmd(u.BC_ENTER_LOOPER))
            got.append([c for c, _ in srv.parse_returns(data)])

        t = w.run(wait_once, "looper")
        proc = w.process(srv)
        for _ in range(2000):
            with proc.inner.lock() as g:
                if g.data.ready_threads:
                    break
            threading.Event().wait(0.002)
        proc.flush_file()
        flush()
        t.join(10)
        assert got == [[u.BR_NOOP]]


def test_thread_pool_grows_on_demand_up_to_max_threads() -> None:
    """Blocking calls keep every looper busy: the driver asks for more with
    BR_SPAWN_LOOPER, never past BINDER_SET_MAX_THREADS, and the calls all complete."""
    with world() as w:
        release = threading.Event()
        busy = threading.Semaphore(0)

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            busy.release()
            release.wait(10)
            return Parcel()

        srv = w.spawn("server")
        srv.add_object(0x10, handler)
        w.thread_pool(srv, 3)
        w.looper(srv)  # the main looper (BC_ENTER_LOOPER)
        assert add_service(srv, "s", 0x10) == 0
        apps = [w.spawn(f"client{i}") for i in range(5)]
        hs = [w.lookup(a, "s") for a in apps]
        callers = [w.run(lambda a=a, h=h: a.transact(h, BLOCK), "caller") for a, h in zip(apps, hs)]  # type: ignore[misc]
        # 1 main looper + 3 spawned: four calls get served at once.
        for _ in range(4):
            assert busy.acquire(timeout=10)
        proc = w.process(srv)
        with proc.inner.lock() as g:
            assert g.data.started_thread_count == 3
            assert g.data.requested_thread_count == 0
        release.set()
        for c in callers:
            c.join(10)
        assert not any(c.is_alive() for c in callers)


def test_update_txn_replaces_a_queued_oneway_while_frozen() -> None:
    """TF_UPDATE_TXN: to a frozen process, a newer oneway call with the same code
    replaces the one still queued behind the call in flight (its buffer is freed)."""
    with world() as w:
        srv = w.spawn("server")  # served by hand after the thaw
        srv.add_object(0x10, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        w.sm_client.freeze(srv.pid, True)
        flags = u.TF_ONE_WAY | u.TF_UPDATE_TXN
        for tag in (1, 2, 3):
            r = app.transact(h, 7, Parcel().write_i32(tag), flags=flags)
            assert r.code == u.BR_TRANSACTION_PENDING_FROZEN
        proc = w.process(srv)
        with proc.inner.lock() as g:
            node = g.data.nodes.get(0x10)
            assert node is not None
            assert len(node.inner.access(g).oneway_todo) == 1  # 2 was replaced by 3
        w.sm_client.freeze(srv.pid, False)
        got = []
        for _ in range(2):
            t = srv.next_transaction()
            got.append(t.parcel.read_i32())
            srv.free_buffer(t.buffer)
        assert got == [1, 3]
