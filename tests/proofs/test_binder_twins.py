"""Each historical Binder mistake, put back, gives a counterexample that replays as a bug.

The twins of `proofs.binder_alloc` and `proofs.binder_offsets` run the driver's pure
cores with one mistake put back. Here each twin's counterexample (asked for within a
small bound, so that it is a transaction one can send) is replayed through the Binder
model with the same mutant patched into the driver (`binder.range_core` /
`binder.validate`, which `binder.range_alloc` and `binder.thread` call). Each test
shows what the model does today: the damage (a spammer not reported, a parent buffer
overwritten) or the second check that catches it (`AllocationView`'s bound, the
ancestor-chain search, the copy-time bounds check). No runtime rule of the ownership
layer flags these yet; another change adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import binder.range_core as RC
import binder.validate as V
from binder import uapi as u
from binder.allocation import AllocationView
from binder.client import BinderClient, Parcel, Transaction
from ownership.errors import KernelError
from proofs import binder_alloc as A
from proofs import binder_offsets as O
from proofs.symexec import counterexample

from ..binder_harness import KUNIT_MMAP_SIZE, BinderWorld, task_of, world

ECHO = 1


def _recording(fn: Callable[..., Any], log: list[Any]) -> Callable[..., Any]:
    """`fn`, logging each result."""

    def wrapper(*args: Any) -> Any:
        r = fn(*args)
        log.append(r)
        return r

    return wrapper


# --- CVE-2026-43435: the oneway-spam check before the insert ------------------------------


@pytest.mark.parametrize("mutant", [False, True], ids=["fixed", "spam-before-insert"])
def test_spam_check_before_the_insert_misses_the_spammer(
    mutant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    cex = counterexample(A.spam_harness(A.MUTANTS["spam-before-insert"], 1, KUNIT_MMAP_SIZE))
    assert cex is not None and cex["oneway"] is True
    assert counterexample(A.spam_harness(A.CORE, 1, KUNIT_MMAP_SIZE)) is None
    if mutant:
        monkeypatch.setattr(
            RC, "reserve_decision", A.MUTANTS["spam-before-insert"].reserve_decision
        )
    w = BinderWorld()
    try:
        o = w.open()
        pid = {1: o.task.pid, 2: o.task.pid + 1000}
        with o.current():
            held = o.proc.buffer_alloc(
                1, int(cex["r0_size"]), bool(cex["r0_oneway"]), pid[int(cex["r0_pid"])]
            )
            new = o.proc.buffer_alloc(2, int(cex["size"]), True, pid[int(cex["pid"])])
            # The new buffer takes the sender past a quarter of the mapping while less
            # than a tenth is left for oneway buffers: a spammer, seen only after the insert.
            assert new.oneway_spam_detected is (not mutant)
            new.drop()
            held.drop()
    finally:
        w.teardown()


# --- 4df153652cc4: raw data copied without `object_offset <= data_size` --------------------


def _echo(w: Any) -> tuple[BinderClient, int]:
    def handler(c: BinderClient, t: Transaction) -> Parcel:
        return Parcel()

    w.service("s", 0x10, handler)
    app = w.spawn("client")
    return app, w.lookup(app, "s")


@pytest.mark.parametrize("mutant", [False, True], ids=["fixed", "no-offset-data-bound"])
def test_offset_beyond_the_data_would_copy_over_the_offsets(
    mutant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At least one byte of data: the client sends an empty parcel as no parcel at all.
    cex = counterexample(O.objects_harness(O.MUTANTS["no-offset-data-bound"], 1, 4096, 1))
    assert cex is not None
    data_size, offset = int(cex["data_size"]), int(cex["obj0_offset"])
    # The raw copy [0, offset) would run past the data, into the padding and the offsets
    # array that follow it in the buffer (from ptr_align(data_size) on).
    assert offset > data_size
    reasons: list[str | None] = []
    view_refusals: list[tuple[int, int]] = []
    check = (
        O.MUTANTS["no-offset-data-bound"].check_object_offset if mutant else V.check_object_offset
    )
    monkeypatch.setattr(V, "check_object_offset", _recording(check, reasons))
    real_view_check = AllocationView._check

    def view_check(self: AllocationView, off: int, size: int) -> None:
        try:
            real_view_check(self, off, size)
        except KernelError:
            view_refusals.append((off, size))
            raise

    monkeypatch.setattr(AllocationView, "_check", view_check)
    with world() as w:
        app, h = _echo(w)
        # Only this transaction's checks (registering and looking up the service ran some).
        reasons.clear()
        view_refusals.clear()
        r = app.transact(h, ECHO, Parcel.raw(bytes(data_size), [offset]))
        assert r.code == u.BR_FAILED_REPLY
    if mutant:
        # The core let it through; the view's bound (the payload's data size) caught
        # the raw copy before it reached the offsets array.
        assert reasons == [None] and view_refusals == [(0, offset)]
    else:
        assert reasons == ["object offset beyond the data"] and view_refusals == []


# --- CVE-2020-0041: `num_valid` computed with `*` for `/` ----------------------------------


@pytest.mark.parametrize("mutant", [False, True], ids=["fixed", "num-valid-star"])
def test_parent_not_yet_validated(mutant: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = (O.PTR_ROOT, O.PTR_CHILD)
    cex = counterexample(O.parent_harness(O.MUTANTS["num-valid-star"], 3, 64, kinds))
    assert cex is not None
    if mutant:
        monkeypatch.setattr(V, "validated_count", O.MUTANTS["num-valid-star"].validated_count)
    verdicts: list[int | str] = []
    monkeypatch.setattr(V, "check_parent", _recording(V.check_parent, verdicts))
    with world() as w:
        app, h = _echo(w)
        p = Parcel()
        child = None
        for i in range(3):
            addr = app.user_buffer(bytes(max(int(cex[f"obj{i}_length"]), 8)))
            length = int(cex[f"obj{i}_length"])
            if cex[f"obj{i}_kind"] == O.PTR_ROOT:
                p.write_buffer(addr, length)
            else:
                child = i
                p.write_buffer(
                    addr,
                    length,
                    parent=int(cex[f"obj{i}_parent"]),
                    parent_offset=int(cex[f"obj{i}_parent_offset"]),
                )
        assert child is not None and int(cex[f"obj{child}_parent"]) >= child
        assert app.transact(h, ECHO, p).code == u.BR_FAILED_REPLY
    # The bound admitted a parent that was not validated yet; the ancestor-chain search
    # (Rust Binder's own check) refused it. Fixed, the bound refuses it first.
    expected = (
        "parent is not a validated ancestor buffer"
        if mutant
        else "parent is not a validated object"
    )
    assert verdicts[-1] == expected


# --- CVE-2026-23194: `skip == 0` read as a pointer fixup ------------------------------------


def _send_empty_fd_array(parent_data: bytes, parent_offset: int) -> tuple[int, bytes | None]:
    """A parent buffer and an fd array of 0 fds in it; the reply code and what the
    receiver found in its copy of the parent."""
    seen: dict[str, bytes] = {}
    with world() as w:

        def handler(c: BinderClient, t: Transaction) -> Parcel:
            obj = u.binder_buffer_object.unpack(bytes(t.parcel.data[t.parcel.offsets[0] :][:40]))
            seen["parent"] = task_of(c).read_user(obj.buffer, obj.length)
            return Parcel()

        w.service("s", 0x10, handler)
        app = w.spawn("client")
        h = w.lookup(app, "s")
        p = Parcel()
        pi = p.write_buffer(app.user_buffer(parent_data), len(parent_data))
        p.write_fd_array(0, parent=pi, parent_offset=parent_offset)
        code = app.transact(h, ECHO, p).code
    return code, seen.get("parent")


@pytest.mark.parametrize("mutant", [False, True], ids=["fixed", "skip-zero-sentinel"])
def test_empty_fd_array(mutant: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    cex = counterexample(O.fixups_harness(O.MUTANTS["skip-zero-sentinel"], 1, 64))
    assert cex is not None and cex["fix0_is_pointer"] is False and cex["fix0_num_fds"] == 0
    length, at = int(cex["parent_length"]), int(cex["fix0_parent_offset"])
    if mutant:
        monkeypatch.setattr(V, "fixup_plan", O.MUTANTS["skip-zero-sentinel"].fixup_plan)
    data = bytes(range(1, length + 1))
    # The counterexample: the empty fd array is applied as an 8-byte pointer fixup.
    code, parent = _send_empty_fd_array(data, at)
    if at + 8 > length:
        # At the buffer's end, the copy-time bounds check refuses it: upstream's symptom
        # (an 8-byte out-of-bounds write attempt, EINVAL).
        assert code == (u.BR_FAILED_REPLY if mutant else u.BR_REPLY)
    # Mid-buffer, nothing refuses it: 8 bytes of the parent are silently zeroed.
    code, parent = _send_empty_fd_array(b"A" * 24, 8)
    assert code == u.BR_REPLY
    assert parent == (b"A" * 8 + bytes(8) + b"A" * 8 if mutant else b"A" * 24)
