"""Property tests: the refcount state machine of a handle, and hostile payloads.

* `HandleRefcounts` (a hypothesis state machine): a client takes and gives back strong
  and weak references on a handle with `BC_ACQUIRE`/`BC_INCREFS`/`BC_RELEASE`/
  `BC_DECREFS`, calls through it, and looks the service up again when its handle went
  away. After every step the driver's counts equal the model's, a call works exactly
  when a strong reference is held, and the node's counts equal the sum over holders.
* Hostile payloads: random data with random offsets and object headers (valid,
  misaligned, overlapping, truncated, unknown types, bogus handles) never crash the
  driver: each transaction either succeeds or ends in `BR_FAILED_REPLY`, and nothing
  is left referenced.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from binder import uapi as u
from binder.client import BinderClient, Parcel

from ..binder_harness import World, world

NOP = 1
SERVICE_PTR = 0x10


class HandleRefcounts(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w = World()
        self.srv = self.w.service("s", SERVICE_PTR, lambda c, t: Parcel())
        self.app = self.w.spawn("client")
        self.handle: int | None = None
        self.strong = 0
        self.weak = 0
        self._lookup()

    def _lookup(self) -> None:
        h = self.w.lookup(self.app, "s")
        if self.handle is None or (self.strong == 0 and self.weak == 0):
            self.handle = h
            self.strong, self.weak = 1, 1
        else:
            # Same node, same handle: the lookup added one strong and one weak count.
            assert h == self.handle
            self.strong += 1
            self.weak += 1

    def _cmd(self, code: int) -> None:
        assert self.handle is not None
        self.app.send(BinderClient.cmd(code, self.handle.to_bytes(4, "little")))

    @precondition(lambda self: self.handle is not None)
    @rule()
    def acquire(self) -> None:
        # A weak-only handle is never promoted back to strong (upstream refuses).
        self._cmd(u.BC_ACQUIRE)
        if self.strong:
            self.strong += 1

    @precondition(lambda self: self.handle is not None)
    @rule()
    def increfs(self) -> None:
        self._cmd(u.BC_INCREFS)
        self.weak += 1

    @precondition(lambda self: self.strong > 0)
    @rule()
    def release(self) -> None:
        self._cmd(u.BC_RELEASE)
        self.strong -= 1
        self._maybe_gone()

    @precondition(lambda self: self.weak > 0)
    @rule()
    def decrefs(self) -> None:
        self._cmd(u.BC_DECREFS)
        self.weak -= 1
        self._maybe_gone()

    def _maybe_gone(self) -> None:
        if self.strong == 0 and self.weak == 0:
            self.handle = None

    @rule()
    def lookup(self) -> None:
        self._lookup()

    @precondition(lambda self: self.handle is not None)
    @rule()
    def call(self) -> None:
        assert self.handle is not None
        code = self.app.transact(self.handle, NOP).code
        assert code == (u.BR_REPLY if self.strong > 0 else u.BR_FAILED_REPLY)

    @invariant()
    def driver_counts_match(self) -> None:
        proc = self.w.process(self.app)
        with proc.node_refs.lock() as g:
            infos = list(g.data.by_handle.values())
        if self.handle is None:
            assert infos == []
            return
        assert [i.handle for i in infos] == [self.handle]
        assert infos[0].node_ref.get_count() == (self.strong, self.weak)

    @invariant()
    def node_counts_are_the_sum_of_holders(self) -> None:
        sproc = self.w.process(self.srv)
        with sproc.inner.lock() as g:
            node = g.data.nodes.get(SERVICE_PTR)
            assert node is not None
            strong, weak, _, _ = node.counts(g)
        # The service manager holds one strong and one weak; the client at most one each.
        assert strong == 1 + (1 if self.strong else 0)
        assert weak == 1 + (1 if self.weak else 0)

    def teardown(self) -> None:
        self.w.finish()


TestHandleRefcounts = HandleRefcounts.TestCase
TestHandleRefcounts.settings = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_types = st.sampled_from(
    [
        u.BINDER_TYPE_BINDER,
        u.BINDER_TYPE_WEAK_BINDER,
        u.BINDER_TYPE_HANDLE,
        u.BINDER_TYPE_WEAK_HANDLE,
        u.BINDER_TYPE_FD,
        u.BINDER_TYPE_PTR,
        u.BINDER_TYPE_FDA,
        0,
        0xDEADBEEF,
    ]
)


@st.composite
def hostile_parcels(draw: st.DrawFn) -> Parcel:
    n = draw(st.integers(0, 4))
    data = bytearray(draw(st.binary(min_size=0, max_size=160)))
    offsets: list[int] = []
    for _ in range(n):
        off = draw(st.integers(0, max(len(data) + 8, 8)))
        offsets.append(off)
        if draw(st.booleans()) and off + 24 <= len(data):
            struct.pack_into("<I", data, off, draw(_types))
            if draw(st.booleans()):
                # A plausible handle or binder pointer.
                struct.pack_into("<Q", data, off + 8, draw(st.integers(0, 4)))
    if draw(st.booleans()):
        offsets.sort()
    return Parcel.raw(bytes(data), offsets)


def test_hostile_payloads_never_crash_nor_leak() -> None:
    with world() as w:
        srv = w.service("s", SERVICE_PTR, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        for ptr in range(5):
            app.add_object(ptr, lambda c, t: Parcel())
        base = w.process(srv).handle_count()

        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(hostile_parcels(), st.booleans())
        def check(p: Parcel, oneway: bool) -> None:
            r = app.transact(h, NOP, p, flags=u.TF_ONE_WAY if oneway else 0)
            ok = u.BR_TRANSACTION_COMPLETE if oneway else u.BR_REPLY
            assert r.code in (ok, u.BR_FAILED_REPLY)
            # A oneway call is served later: wait for it with a two-way one.
            assert app.transact(h, NOP).ok
            # Everything the payload referenced was released with its buffer.
            assert w.process(srv).handle_count() == base
            aproc = w.process(app)
            with aproc.inner.lock() as g:
                for ptr in range(5):
                    node = g.data.nodes.get(ptr)
                    assert node is None or node.counts(g)[:2] == (0, 0)

        check()
