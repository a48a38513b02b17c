"""Object translation and validation: refs, weak binders, offsets, sizes, buffers.

Ports of binderLibTest's PromoteLocal, FreedBinder, WeakRejected, BufRejected,
LimitExceededVectorSent and CheckNoHeaderMappedInUser, and the issue's offset
validation cases (misaligned, out of range, overlapping, a parent index beyond the
validated objects): each a clean `BR_FAILED_REPLY`, never a crash, nothing leaked.
"""

from __future__ import annotations

import itertools
from typing import Any, cast

import pytest

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from binder.servicemanager import add_service
from ownership.errors import ENOENT

from ..binder_harness import task_of, world

NOP = 1
HOLD = 2


def _echo_server(w: object, name: str, ptr: int) -> BinderClient:
    def handler(c: BinderClient, t: Transaction) -> Parcel:
        return Parcel().write_i32(len(t.parcel.data))

    return w.service(name, ptr, handler)  # type: ignore[attr-defined, no-any-return]


def test_freed_binder_handle_fails() -> None:
    """FreedBinder: a handle released to zero is gone; using it is BR_FAILED_REPLY."""
    with world() as w:
        _echo_server(w, "s", 0x10)
        _echo_server(w, "t", 0x20)
        app = w.spawn("client")
        hs, ht = w.lookup(app, "s"), w.lookup(app, "t")
        app.release(ht)
        assert w.process(app).handle_count() == 1
        r = app.transact(hs, NOP, Parcel().write_handle(ht))
        assert r.code == u.BR_FAILED_REPLY
        assert app.transact(ht, NOP).code == u.BR_FAILED_REPLY
        # The thread's extended error names the failure and its errno (read once).
        ee = app.extended_error()
        assert (ee.command, ee.param) == (u.BR_FAILED_REPLY, -ENOENT)
        assert app.extended_error().command == u.BR_OK


def test_weak_rejected() -> None:
    """WeakRejected: a weak binder sent 100 times never becomes usable as strong, and no
    count is released one time too many (the model raises on a node underflow)."""
    with world() as w:
        received: list[int] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            o = t.parcel.read_object()
            assert isinstance(o, u.flat_binder_object)
            assert o.type == u.BINDER_TYPE_WEAK_HANDLE
            received.append(o.handle)
            # Using a weak handle as a strong one is refused.
            assert c.transact(o.handle, NOP).code == u.BR_FAILED_REPLY
            return Parcel()

        w.service("s", 0x10, handler, loopers=2)
        app = w.spawn("client")
        app.add_object(0x77, lambda c, t: Parcel())
        h = w.lookup(app, "s")
        for _ in range(100):
            assert app.transact(h, NOP, Parcel().write_weak_binder(0x77)).ok
        assert len(set(received)) == 1
        node_proc = w.process(app)
        with node_proc.inner.lock() as g:
            node = g.data.nodes.get(0x77)
            # Every buffer was freed: the node holds no count any more (or is gone).
            assert node is None or node.counts(g)[:2] == (0, 0)


def test_promote_local_weak_handle_cannot_become_strong() -> None:
    """A weak-only handle is not promoted by BC_ACQUIRE (upstream refuses it)."""
    with world() as w:
        got: list[int] = []

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            o = t.parcel.read_object()
            assert isinstance(o, u.flat_binder_object)
            c.send(c.cmd(u.BC_INCREFS, o.handle.to_bytes(4, "little")))
            c.send(c.cmd(u.BC_ACQUIRE, o.handle.to_bytes(4, "little")))
            got.append(o.handle)
            return Parcel()

        srv = w.service("s", 0x10, handler)
        app = w.spawn("client")
        app.add_object(0x77, lambda c, t: Parcel())
        h = w.lookup(app, "s")
        assert app.transact(h, NOP, Parcel().write_weak_binder(0x77)).ok
        p = w.process(srv)
        with p.node_refs.lock() as g:
            info = g.data.by_handle.get(got[0])
            assert info is not None
            assert info.node_ref.get_count() == (0, 1)


@pytest.mark.parametrize(
    "case",
    ["misaligned", "out_of_range", "overlapping", "decreasing", "unknown_type", "truncated"],
)
def test_bad_offsets_fail_cleanly(case: str) -> None:
    with world() as w:
        srv = _echo_server(w, "s", 0x10)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        obj = u.flat_binder_object(u.BINDER_TYPE_BINDER, 0, 0x99, 0).pack()
        app.add_object(0x99, lambda c, t: Parcel())
        if case == "misaligned":
            p = Parcel.raw(bytes(2) + obj, [2])
        elif case == "out_of_range":
            p = Parcel.raw(obj, [4096])
        elif case == "overlapping":
            p = Parcel.raw(obj + obj, [0, 8])
        elif case == "decreasing":
            p = Parcel.raw(obj + obj, [24, 0])
        elif case == "unknown_type":
            p = Parcel.raw(bytes(24), [0])
        else:
            p = Parcel.raw(obj[:12], [0])
        r = app.transact(h, NOP, p)
        assert r.code == u.BR_FAILED_REPLY
        # No node was left half-referenced in the sender, no handle in the server.
        with w.process(app).inner.lock() as g:
            n = g.data.nodes.get(0x99)
            assert n is None or n.counts(g)[:2] == (0, 0)
        assert w.process(srv).handle_count() == 0


def test_buf_rejected_without_sg_space() -> None:
    """BufRejected: a BINDER_TYPE_PTR in a plain BC_TRANSACTION has no buffer space."""
    with world() as w:
        _echo_server(w, "s", 0x10)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        p = Parcel().write_object(u.binder_buffer_object(u.BINDER_TYPE_PTR, 0, 0x1000, 16))
        assert app.transact(h, NOP, p).code == u.BR_FAILED_REPLY


def test_parent_index_beyond_validated_objects() -> None:
    with world() as w:
        _echo_server(w, "s", 0x10)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        child = u.binder_buffer_object(
            u.BINDER_TYPE_PTR, u.BINDER_BUFFER_FLAG_HAS_PARENT, 0x1000, 8, parent=5, parent_offset=0
        )
        p = Parcel().write_object(child)
        assert app.transact(h, NOP, p).code == u.BR_FAILED_REPLY


def test_limit_exceeded_vector_sent() -> None:
    """LimitExceededVectorSent: more than the target's mapping cannot be sent."""
    with world() as w:
        _echo_server(w, "s", 0x10)
        app = w.spawn("client", scratch_size=2 << 20)
        h = w.lookup(app, "s")
        big = Parcel().write_bytes(bytes(int(1.05 * (1 << 20))))
        assert app.transact(h, NOP, big).code == u.BR_FAILED_REPLY
        ok = Parcel().write_bytes(bytes(100_000))
        assert app.transact(h, NOP, ok).ok


def test_check_no_header_mapped_in_user() -> None:
    """Buffers are packed in the mapping at most 8 bytes apart: no kernel header."""
    with world() as w:
        srv = w.spawn("server")
        srv.add_object(0x10, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        sizes = [40, 8, 100, 4096 + 3, 12]
        addrs: list[tuple[int, int]] = []
        for n in sizes:
            caller = w.run(lambda n=n: app.transact(h, NOP, Parcel.raw(bytes(n), [])), "caller")  # type: ignore[misc]
            t = srv.next_transaction()
            addrs.append((t.buffer, len(t.parcel.data)))
            assert srv.base <= t.buffer < srv.base + srv.map_size
            # Keep the request buffer: the next one must be packed right after it.
            srv.reply(Parcel(), t, free=False)
            caller.join(10)
        for (a, n), (b, _) in itertools.pairwise(addrs):
            assert 0 <= b - a - ((max(n, 8) + 7) & ~7) <= 8
        for a, _ in addrs:
            srv.free_buffer(a)


def test_scatter_gather_buffers_with_parent_fixups() -> None:
    """BC_TRANSACTION_SG: a parent buffer holding a pointer to a child buffer and an fd
    array; the receiver finds both copied after the payload, the parent's pointer fixed
    up to the child's new address, and the fds installed in its own table."""
    with world() as w:
        seen: dict[str, Any] = {}

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            objs = [t.parcel.data[o : o + 40] for o in t.parcel.offsets]
            parent = u.binder_buffer_object.unpack(bytes(objs[0]))
            child = u.binder_buffer_object.unpack(bytes(objs[1]))
            task = task_of(c)
            seen["parent"] = task.read_user(parent.buffer, parent.length)
            seen["child"] = task.read_user(child.buffer, child.length)
            seen["child_addr"] = child.buffer
            seen["in_mapping"] = all(
                c.base <= b.buffer < c.base + c.map_size for b in (parent, child)
            )
            seen["files"] = dict(task.files)
            return Parcel()

        w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        f = task_of(app).open("binder")
        fd = next(k for k, v in task_of(app).files.items() if v is f)
        child_data = b"child payload!"
        child_addr = app.user_buffer(child_data)
        # parent: [8-byte pointer to child][two u32 fds][8 bytes of tail data]
        parent_data = child_addr.to_bytes(8, "little") + fd.to_bytes(4, "little") * 2 + b"tailtail"
        parent_addr = app.user_buffer(parent_data)
        p = Parcel()
        pi = p.write_buffer(parent_addr, len(parent_data))
        p.write_buffer(child_addr, len(child_data), parent=pi, parent_offset=0)
        p.write_fd_array(2, parent=pi, parent_offset=8)
        assert app.transact(h, 1, p).ok
        parent = cast(bytes, seen["parent"])
        assert int.from_bytes(parent[:8], "little") == seen["child_addr"]  # fixed up
        assert seen["child"] == child_data and parent[16:] == b"tailtail"
        assert seen["in_mapping"]
        new_fds = [int.from_bytes(parent[8 + 4 * i : 12 + 4 * i], "little") for i in range(2)]
        files = cast(dict[int, Any], seen["files"])
        assert all(files.get(n) is f for n in new_fds)
        # The fd array's fds were closed when the receiver freed the buffer.
        srv_files = task_of(w.clients[1]).files
        assert not any(n in srv_files for n in new_fds)


def test_fixups_out_of_order_are_rejected() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        parent_addr = app.user_buffer(bytes(32))
        child_addr = app.user_buffer(bytes(8))
        p = Parcel()
        pi = p.write_buffer(parent_addr, 32)
        p.write_buffer(child_addr, 8, parent=pi, parent_offset=16)
        p.write_buffer(child_addr, 8, parent=pi, parent_offset=0)  # decreasing offset
        assert app.transact(h, 1, p).code == u.BR_FAILED_REPLY
        q = Parcel()
        qi = q.write_buffer(parent_addr, 32)
        q.write_buffer(child_addr, 8, parent=qi, parent_offset=28)  # past the parent's end
        assert app.transact(h, 1, q).code == u.BR_FAILED_REPLY
