"""Allocation failure at every allocation point of a transaction, and real concurrency.

* Failure injection: a oneway transaction carrying a binder, a handle and payload is
  sent with the n-th allocation failing, for every n up to the number of allocations
  the transaction makes. Each run ends in a clean `BR_FAILED_REPLY` (or succeeds, when
  the n-th allocation was not part of it), and afterwards the server holds no extra
  handle, the client's node holds no extra count, and every buffer is free.
* Concurrency: many client and server processes on real threads, the shrinker running
  beside them, random payloads echoed and compared byte for byte, checks on.
"""

from __future__ import annotations

import random
import threading
from functools import partial

from binder import uapi as u
from binder.client import BinderClient, Parcel, Transaction
from binder.servicemanager import add_service
from ownership.alloc import allocation_count, fail_nth

from ..binder_harness import world

NOP = 1
ECHO = 2


def _node_counts(w: object, c: BinderClient, ptr: int) -> tuple[int, int]:
    proc = w.process(c)  # type: ignore[attr-defined]
    with proc.inner.lock() as g:
        node = g.data.nodes.get(ptr)
        return (0, 0) if node is None else node.counts(g)[:2]


def test_allocation_failure_at_every_point_of_a_transaction() -> None:
    with world() as w:
        srv = w.spawn("server")  # served by hand, single-threaded: deterministic
        srv.add_object(0x10, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x10) == 0
        other = w.service("other", 0x20, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        ho = w.lookup(app, "other")
        app.add_object(0x99, lambda c, t: Parcel())

        def payload() -> Parcel:
            return Parcel().write_str("x" * 300).write_strong_binder(0x99).write_handle(ho)

        # Warm up (threads, nodes exist), then count one transaction's allocations.
        assert app.transact(h, NOP, payload(), u.TF_ONE_WAY).code == u.BR_TRANSACTION_COMPLETE
        t = srv.next_transaction()
        srv.free_buffer(t.buffer)
        base_handles = w.process(srv).handle_count()
        base_counts = _node_counts(w, app, 0x99)
        before = allocation_count()
        assert app.transact(h, NOP, payload(), u.TF_ONE_WAY).code == u.BR_TRANSACTION_COMPLETE
        per_txn = allocation_count() - before
        t = srv.next_transaction()
        srv.free_buffer(t.buffer)
        assert per_txn >= 3
        outcomes: dict[int, int] = {}
        for n in range(1, per_txn + 1):
            with fail_nth(n):
                r = app.transact(h, NOP, payload(), u.TF_ONE_WAY)
            outcomes[n] = r.code
            if r.code == u.BR_TRANSACTION_COMPLETE:
                t = srv.next_transaction()
                srv.free_buffer(t.buffer)
            else:
                assert r.code == u.BR_FAILED_REPLY
            assert w.process(srv).handle_count() == base_handles, f"handle leak at n={n}"
            assert _node_counts(w, app, 0x99) == base_counts, f"node count leak at n={n}"
        assert u.BR_FAILED_REPLY in outcomes.values()
        # The path still works after all the failures.
        assert app.transact(h, NOP, payload(), u.TF_ONE_WAY).code == u.BR_TRANSACTION_COMPLETE
        t = srv.next_transaction()
        srv.free_buffer(t.buffer)
        _ = other


def test_many_clients_and_servers_with_the_shrinker() -> None:
    servers, clients, calls = 3, 4, 25
    with world() as w:

        def echo(c: BinderClient, t: Transaction) -> Parcel:
            return Parcel().write_bytes(t.parcel.read_bytes())

        for i in range(servers):
            w.service(f"echo{i}", 0x100 + i, echo, loopers=2)
        apps = [w.spawn(f"client{i}") for i in range(clients)]
        handles = [[w.lookup(a, f"echo{i}") for i in range(servers)] for a in apps]
        stop = threading.Event()
        mismatches: list[str] = []

        def shrinker() -> None:
            while not stop.is_set():
                w.kernel.shrink(64)
                stop.wait(0.001)

        def client(k: int) -> None:
            rng = random.Random(k)
            for j in range(calls):
                i = rng.randrange(servers)
                blob = rng.randbytes(rng.choice([0, 5, 100, 3000, 9000]))
                r = apps[k].transact(handles[k][i], ECHO, Parcel().write_bytes(blob))
                if not r.ok or r.parcel.read_bytes() != blob:
                    mismatches.append(f"client {k} call {j}")

        shr = threading.Thread(target=shrinker, daemon=True)
        shr.start()
        ts = [w.run(partial(client, k), f"client{k}") for k in range(clients)]
        for t in ts:
            t.join(60)
        stop.set()
        shr.join(5)
        assert not mismatches


def test_server_killed_under_concurrent_load() -> None:
    """Clients keep calling while the server dies: every call ends with a reply or
    BR_DEAD_REPLY, none hangs, nothing leaks, no violation."""
    clients, calls = 4, 5000
    with world() as w:

        def echo(c: BinderClient, t: Transaction) -> Parcel:
            return Parcel().write_bytes(t.parcel.read_bytes())

        srv = w.service("echo", 0x100, echo, loopers=3)
        apps = [w.spawn(f"client{i}") for i in range(clients)]
        handles = [w.lookup(a, "echo") for a in apps]
        codes: list[list[int]] = [[] for _ in apps]
        started = threading.Barrier(clients + 1)

        def client(k: int) -> None:
            started.wait()
            # Call until the death is seen (bounded), then a few more times.
            for j in range(calls):
                blob = bytes([k, j & 0xFF]) * 50
                r = apps[k].transact(handles[k], ECHO, Parcel().write_bytes(blob))
                codes[k].append(r.code)
                if r.ok:
                    assert r.parcel.read_bytes() == blob
                if codes[k][-3:] == [u.BR_DEAD_REPLY] * 3:
                    return

        ts = [w.run(partial(client, k), f"client{k}") for k in range(clients)]
        started.wait()
        threading.Event().wait(0.05)
        w.kill(srv)
        for t in ts:
            t.join(60)
        for cs in codes:
            # A call caught in the middle of the death may fail (the dying thread's
            # read buffer faults: BR_FAILED_REPLY, as upstream's scope guard sends).
            assert set(cs) <= {u.BR_REPLY, u.BR_DEAD_REPLY, u.BR_FAILED_REPLY}
            # Once dead, always dead.
            assert cs[-1] == u.BR_DEAD_REPLY
            first = next(i for i, c in enumerate(cs) if c != u.BR_REPLY)
            assert u.BR_REPLY not in cs[first:]


def test_allocation_failure_at_every_point_of_a_reply() -> None:
    """The reply's allocations fail one by one: the caller gets BR_FAILED_REPLY (the
    replier BR_TRANSACTION_COMPLETE), or the reply when the failure was elsewhere."""
    with world() as w:
        srv = w.spawn("server")  # served by hand on this thread
        srv.add_object(0x10, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        srv.add_object(0x77, lambda c, t: Parcel())

        def reply_payload() -> Parcel:
            return Parcel().write_str("r" * 200).write_strong_binder(0x77)

        def one_call(n: int | None) -> int:
            codes: list[int] = []
            caller = w.run(lambda: codes.append(app.transact(h, NOP).code), "caller")
            t = srv.next_transaction()
            srv.free_buffer(t.buffer)
            if n is None:
                srv.reply(reply_payload(), t, free=False)
            else:
                with fail_nth(n):
                    srv.reply(reply_payload(), t, free=False)
            caller.join(10)
            return codes[0]

        assert one_call(None) == u.BR_REPLY
        before = allocation_count()
        one_call(None)
        per_reply = allocation_count() - before
        outcomes = {n: one_call(n) for n in range(1, per_reply + 1)}
        assert set(outcomes.values()) <= {u.BR_REPLY, u.BR_FAILED_REPLY}
        assert u.BR_FAILED_REPLY in outcomes.values()
        # Failed replies left nothing behind: the client holds the service's handle and
        # one handle on the replied binder, and that node has exactly one ref from it.
        assert w.process(app).handle_count() == 2
        sproc = w.process(srv)
        with sproc.inner.lock() as g:
            node = g.data.nodes.get(0x77)
            assert node is not None and node.counts(g)[:2] == (1, 1)
