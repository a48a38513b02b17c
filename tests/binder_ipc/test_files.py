"""File descriptors in transactions (binderLibTest PassFile).

The sender names an open file by its fd; the receiver gets a new fd for the same
`struct file`, installed only when the transaction is delivered. A target that does not
accept fds, or a bad fd, fails the transaction cleanly, and the file's reference count
comes back to where it was.
"""

from __future__ import annotations

from typing import Any, cast

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction

from ..binder_harness import task_of, world

NOP = 1


def _fd_of(c: BinderClient, f: Any) -> int:
    return next(fd for fd, g in task_of(c).files.items() if g is f)


def test_pass_file() -> None:
    with world() as w:
        got: list[tuple[int, Any]] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            o = t.parcel.read_object()
            assert isinstance(o, u.binder_fd_object)
            got.append((o.fd, task_of(c).files.get(o.fd)))
            return Parcel()

        srv = w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        f = task_of(app).open("binder")
        fd = _fd_of(app, f)
        count = f.f_count
        assert app.transact(h, NOP, Parcel().write_fd(fd, cookie=5)).ok
        (new_fd, raw) = got[0]
        assert raw is f, "the receiver's fd names the sender's struct file"
        assert new_fd in task_of(srv).files
        assert f.f_count == count + 1
        task_of(srv).close(cast(Any, raw))
        assert f.f_count == count


def test_fd_to_a_node_that_refuses_fds_fails() -> None:
    with world() as w:
        srv = w.spawn("server")
        srv.add_object(0x10, lambda c, t: Parcel())
        srv_thread = w.looper(srv)
        # Register the binder without FLAT_BINDER_FLAG_ACCEPTS_FDS.
        r = srv.transact(0, 3, Parcel().write_str("s").write_strong_binder(0x10, accept_fds=False))
        assert r.ok
        app = w.spawn("client")
        h = w.lookup(app, "s")
        f = task_of(app).open("binder")
        count = f.f_count
        assert app.transact(h, NOP, Parcel().write_fd(_fd_of(app, f))).code == u.BR_FAILED_REPLY
        assert f.f_count == count
        # A bad fd fails too, with nothing to release.
        assert app.transact(h, NOP, Parcel().write_fd(999)).code == u.BR_FAILED_REPLY
        _ = srv_thread


def test_bad_fd_fails_and_translated_objects_are_released() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        app.add_object(0x99, lambda c, t: Parcel())
        # The binder is translated first, then the bad fd fails the transaction.
        p = Parcel().write_strong_binder(0x99).write_fd(4242)
        assert app.transact(h, NOP, p).code == u.BR_FAILED_REPLY
        with w.process(app).inner.lock() as g:
            n = g.data.nodes.get(0x99)
            assert n is None or n.counts(g)[:2] == (0, 0)


def test_file_in_a_reply() -> None:
    """A reply may carry an fd: the caller accepted fds (TF_ACCEPT_FDS, as libbinder)."""
    with world() as w:
        served: list[Any] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            f = task_of(c).open("binder")
            served.append(f)
            return Parcel().write_fd(_fd_of(c, f))

        w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        r = app.transact(h, NOP)
        o = r.parcel.read_object()
        assert isinstance(o, u.binder_fd_object)
        assert task_of(app).files[o.fd] is served[0]
