"""Death notifications and process death at every point of a transaction.

Ports of binderLibTest's DeathNotificationStrongRef, DeathNotificationMultiple and
DeathNotificationThread, and the issue's "process death at every point": the sender
gets `BR_DEAD_REPLY`, refs and buffers are released, death notifications are
delivered, nothing leaks (the harness checks every released process is empty).
"""

from __future__ import annotations

import threading

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from binder.servicemanager import add_service
from ownership.errors import KernelError

from ..binder_harness import task_of, world

GET = 1
BLOCK = 2


def _server(w: object, name: str, ptr: int, gate: threading.Event | None = None) -> BinderClient:
    def handler(c: BinderClient, t: Transaction) -> Parcel:
        if t.code == BLOCK and gate is not None:
            gate.wait(10)
        return Parcel().write_i32(ptr)

    return w.service(name, ptr, handler)  # type: ignore[attr-defined, no-any-return]


def _wait_dead(c: BinderClient, done: threading.Event) -> None:
    while not done.is_set():
        c.poll_once()


def test_death_notification_strong_ref() -> None:
    with world() as w:
        srv = _server(w, "victim", 0x100)
        app = w.spawn("client")
        h = w.lookup(app, "victim")
        dead = threading.Event()
        app.link_to_death(h, 0xC0FFEE, lambda cookie: dead.set())
        w.kill(srv)
        _wait_dead(app, dead)
        assert (u.BR_DEAD_BINDER, 8) in app.events
        # The handle is still ours: calls through it fail with BR_DEAD_REPLY.
        assert app.transact(h, GET).code == u.BR_DEAD_REPLY
        app.unlink_to_death(h, 0xC0FFEE)
        app.release(h)
        assert w.process(app).handle_count() == 0


def test_death_notification_multiple() -> None:
    with world() as w:
        srv = _server(w, "victim", 0x100)
        apps = [w.spawn(f"client{i}") for i in range(3)]
        events = [threading.Event() for _ in apps]
        handles = []
        for a, ev in zip(apps, events):
            h = w.lookup(a, "victim")
            handles.append(h)
            a.link_to_death(h, 0xAA, lambda cookie, ev=ev: ev.set())  # type: ignore[misc]
        # One client clears its registration before the death: it gets CLEAR_DONE only.
        apps[2].unlink_to_death(handles[2], 0xAA)
        apps[2].poll_once()
        assert any(code == u.BR_CLEAR_DEATH_NOTIFICATION_DONE for code, _ in apps[2].events)
        w.kill(srv)
        for a, ev in zip(apps[:2], events[:2]):
            _wait_dead(a, ev)
        assert not events[2].is_set()
        for a, h in zip(apps, handles):
            a.release(h)


def test_death_notification_on_already_dead_ref() -> None:
    """DeathNotificationThread: linking to a node that is already dead delivers at once
    (to the process queue, not a specific thread)."""
    with world() as w:
        srv = _server(w, "victim", 0x100)
        app = w.spawn("client")
        h = w.lookup(app, "victim")
        w.kill(srv)
        dead = threading.Event()
        app.link_to_death(h, 0xBB, lambda cookie: dead.set())
        _wait_dead(app, dead)
        with w.process(app).inner.lock() as g:
            assert not g.data.work  # delivered, nothing left queued
        app.unlink_to_death(h, 0xBB)
        app.poll_once()
        assert any(code == u.BR_CLEAR_DEATH_NOTIFICATION_DONE for code, _ in app.events)
        app.release(h)


def test_server_dies_while_the_transaction_is_queued() -> None:
    """No looper ever reads it: the death cancels it and the sender gets BR_DEAD_REPLY."""
    with world() as w:
        srv = w.spawn("server")  # no looper thread: work waits on the process queue
        srv.add_object(0x42, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x42) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        result: list[int] = []
        caller = w.run(lambda: result.append(app.transact(h, GET).code), "caller")
        proc = w.process(srv)
        for _ in range(2000):
            with proc.inner.lock() as g:
                if g.data.work:
                    break
            threading.Event().wait(0.005)
        w.kill(srv)
        caller.join(10)
        assert result == [u.BR_DEAD_REPLY]


def test_server_dies_while_serving() -> None:
    """The server read the transaction and dies before replying: BR_DEAD_REPLY."""
    with world() as w:
        gate = threading.Event()
        srv = _server(w, "s", 0x300, gate)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        result: list[int] = []
        w.run(lambda: result.append(app.transact(h, BLOCK).code), "caller")
        # Wait until the server thread holds the transaction.
        proc = w.process(srv)
        for _ in range(2000):
            with proc.inner.lock() as g:
                threads = list(g.data.threads.values())
            if any(t.has_current_transaction() for t in threads):
                break
            threading.Event().wait(0.005)
        w.kill(srv)
        gate.set()
        for name, t in w.threads:
            if name == "caller":
                t.join(10)
        assert result == [u.BR_DEAD_REPLY]


def test_client_dies_while_server_serves() -> None:
    """The reply finds a dead thread: it is dropped and its buffer freed."""
    with world() as w:
        gate = threading.Event()
        srv = _server(w, "s", 0x300, gate)
        app = w.spawn("client")
        h = w.lookup(app, "s")

        def doomed_call() -> None:
            # The caller's process is killed under it: its ioctl fails, as a killed
            # thread never returns to userspace.
            try:
                app.transact(h, BLOCK)
            except KernelError:
                assert task_of(app).exited

        w.run(doomed_call, "caller")
        proc = w.process(srv)
        for _ in range(2000):
            with proc.inner.lock() as g:
                threads = list(g.data.threads.values())
            if any(t.has_current_transaction() for t in threads):
                break
            threading.Event().wait(0.005)
        w.kill(app)
        gate.set()
        # The server keeps working for others.
        other = w.spawn("other")
        h2 = w.lookup(other, "s")
        assert other.transact(h2, GET).ok


def _wait_serving(w: object, c: BinderClient) -> None:
    proc = w.process(c)  # type: ignore[attr-defined]
    for _ in range(2000):
        with proc.inner.lock() as g:
            threads = list(g.data.threads.values())
        if any(t.has_current_transaction() for t in threads):
            return
        threading.Event().wait(0.005)
    raise AssertionError("the server never picked the transaction up")


def _chain(
    w: object, gate: threading.Event
) -> tuple[BinderClient, BinderClient, BinderClient, int]:
    """client -> middle -> leaf: the middle calls the leaf while serving the client."""
    leaf = _server(w, "leaf", 0x200, gate)

    def middle_handler(c: BinderClient, t: Transaction) -> Parcel:
        obj = t.parcel.read_object()
        assert isinstance(obj, u.flat_binder_object)
        return Parcel().write_u32(c.transact(obj.handle, BLOCK).code)

    middle = w.service("middle", 0x300, middle_handler)  # type: ignore[attr-defined]
    app = w.spawn("client")  # type: ignore[attr-defined]
    hm = w.lookup(app, "middle")  # type: ignore[attr-defined]
    return leaf, middle, app, hm


def test_leaf_of_a_nested_call_dies() -> None:
    """The leaf dies: the middle's call gets BR_DEAD_REPLY, the client its reply."""
    with world() as w:
        gate = threading.Event()
        leaf, _middle, app, hm = _chain(w, gate)
        hl = w.lookup(app, "leaf")
        result: list[int] = []

        def call() -> None:
            r = app.transact(hm, GET, Parcel().write_handle(hl))
            result.append(r.parcel.read_u32())

        caller = w.run(call, "caller")
        _wait_serving(w, leaf)
        w.kill(leaf)
        gate.set()
        caller.join(10)
        assert result == [u.BR_DEAD_REPLY]


def test_middle_of_a_nested_call_dies() -> None:
    """The middle dies while the leaf serves it: the leaf's reply finds a dead thread,
    is dropped with its buffer, and unwinding the dead thread's stack sends the client
    BR_DEAD_REPLY (upstream unwinds a dead thread's stack when a reply reaches it)."""
    with world() as w:
        gate = threading.Event()
        leaf, middle, app, hm = _chain(w, gate)
        hl = w.lookup(app, "leaf")
        result: list[int] = []
        caller = w.run(
            lambda: result.append(app.transact(hm, GET, Parcel().write_handle(hl)).code), "caller"
        )
        _wait_serving(w, leaf)
        w.kill(middle)
        gate.set()
        caller.join(10)
        assert result == [u.BR_DEAD_REPLY]
        # The leaf goes on serving others.
        other = w.spawn("other")
        assert other.transact(w.lookup(other, "leaf"), GET).ok


def test_oneway_to_a_dying_process_is_dropped() -> None:
    with world() as w:
        srv = w.spawn("server")  # no looper: the oneway work stays queued
        srv.add_object(0x42, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x42) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        for _ in range(3):
            assert (
                app.transact(h, GET, Parcel().write_i32(1), flags=u.TF_ONE_WAY).code
                == u.BR_TRANSACTION_COMPLETE
            )
        w.kill(srv)
        # After the death, a oneway call is refused as dead.
        assert app.transact(h, GET, flags=u.TF_ONE_WAY).code == u.BR_DEAD_REPLY


def test_clear_before_dead_binder_done_waits_for_the_done() -> None:
    """Cleared after BR_DEAD_BINDER but before BC_DEAD_BINDER_DONE: the
    BR_CLEAR_DEATH_NOTIFICATION_DONE comes only after the DONE (node.rs NodeDeath)."""
    with world() as w:
        srv = _server(w, "victim", 0x100)
        app = w.spawn("client")
        h = w.lookup(app, "victim")
        app.link_to_death(h, 0x55, lambda cookie: None)
        w.kill(srv)
        cookie = (0x55).to_bytes(8, "little")
        enter = BinderClient.cmd(u.BC_ENTER_LOOPER)
        _, data = app.write_read(enter)
        assert (u.BR_DEAD_BINDER, cookie) in app.parse_returns(data)
        # Clear without acknowledging the death first: nothing is delivered yet.
        app.unlink_to_death(h, 0x55)
        with w.process(app).inner.lock() as g:
            assert not g.data.work
        with w.process(app).inner.lock() as g:
            assert [d.cookie for d in g.data.delivered_deaths] == [0x55]
        _, data = app.write_read(enter + BinderClient.cmd(u.BC_DEAD_BINDER_DONE, cookie))
        assert (u.BR_CLEAR_DEATH_NOTIFICATION_DONE, cookie) in app.parse_returns(data)
        app.release(h)


def test_owner_is_told_when_the_last_remote_ref_goes() -> None:
    """BR_INCREFS/BR_ACQUIRE when a node gets its first remote ref, BR_RELEASE and
    BR_DECREFS when the last one goes; then the node is forgotten."""
    with world() as w:
        srv = _server(w, "s", 0x100)
        app = w.spawn("client")
        app.add_object(0x77, lambda c, t: Parcel())
        w.looper(app)
        h = w.lookup(app, "s")
        got: list[int] = []

        def grab(c: BinderClient, t: Transaction) -> Parcel:
            o = t.parcel.read_object()
            assert isinstance(o, u.flat_binder_object)
            c.acquire(o.handle)  # keep it after the buffer is freed
            got.append(o.handle)
            return Parcel()

        srv.add_object(0x100, grab)
        assert app.transact(h, GET, Parcel().write_strong_binder(0x77)).ok
        obj = app.objects[0x77]
        for _ in range(500):
            if (obj.strong, obj.weak) == (1, 1):
                break
            threading.Event().wait(0.002)
        assert (obj.strong, obj.weak) == (1, 1)
        srv.release(got[0])
        for _ in range(500):
            if (obj.strong, obj.weak) == (0, 0):
                break
            threading.Event().wait(0.002)
        assert (obj.strong, obj.weak) == (0, 0)
        with w.process(app).inner.lock() as g:
            assert g.data.nodes.get(0x77) is None
