"""The rules the IPC layer adds or leans on, each caught when broken and silent when kept.

* `NodeRef` owns node counts: dropping it twice, or using it after the drop, is a
  `RefcountError` naming both the bad use and the first drop.
* A node's counts never go below zero (`binder-node-underflow`).
* A file reference is `fput` once (`double-drop`, `file-ref-use-after-drop`).
* A node's state is reachable only with *its owner's* inner lock (`LockedBy`).
* Upstream's patterns are enforced, not just followed: undeliverable work is dropped
  after the spinlock is released (its destructor may sleep), and a new `Thread` is
  allocated with no lock held (`get_current_thread`).
"""

from __future__ import annotations

import pytest

from binder.client import Parcel
from binder.servicemanager import add_service
from binder.thread import Thread
from binder.transaction import Transaction, TransactionInfo
from binder.work import drop_work
from ownership.errors import AtomicSleepError, LockError, RefcountError
from ownership.file import FileRef

from ..binder_harness import World, task_of, world

HERE = "test_violations.py:"


def _node_and_ref(w: World) -> tuple[object, object]:
    w.service("s", 0x10, lambda c, t: Parcel())
    app = w.spawn("client")
    h = w.lookup(app, "s")
    proc = w.process(app)
    with task_of(app).as_current():
        ref = proc.get_node_from_handle(h, True)
    return proc, ref


def test_noderef_double_drop_is_caught() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        ref.drop()  # type: ignore[attr-defined]
        with pytest.raises(RefcountError) as e:
            ref.drop()  # type: ignore[attr-defined]
        assert e.value.rule == "double-drop"
        text = str(e.value)
        assert text.count(HERE) >= 2, text  # the second drop and the first one


def test_noderef_single_drop_is_clean() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        ref.drop()  # type: ignore[attr-defined]
        assert ref.is_dropped()  # type: ignore[attr-defined]


def test_noderef_use_after_drop_is_caught() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        ref.drop()  # type: ignore[attr-defined]
        with pytest.raises(RefcountError) as e:
            ref.clone(True)  # type: ignore[attr-defined]
        assert e.value.rule == "noderef-use-after-drop"
        assert str(e.value).count(HERE) >= 2


def test_noderef_clone_before_drop_is_clean() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        other = ref.clone(True)  # type: ignore[attr-defined]
        other.drop()
        ref.drop()  # type: ignore[attr-defined]


def test_node_underflow_is_caught_before_any_effect() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        node = ref.node  # type: ignore[attr-defined]
        with node.owner.inner.lock() as g:
            before = node.counts(g)
        with pytest.raises(RefcountError) as e:
            node.update_refcount(False, before[0] + 1, True)
        assert e.value.rule == "binder-node-underflow"
        v = e.value
        assert v.site is not None and v.origin is not None and v.site != v.origin
        assert v.site.short() in str(v) and v.origin.short() in str(v)  # both sites named
        with node.owner.inner.lock() as g:
            assert node.counts(g) == before
        ref.drop()  # type: ignore[attr-defined]


def test_balanced_node_counts_are_clean() -> None:
    with world() as w:
        _, ref = _node_and_ref(w)
        node = ref.node  # type: ignore[attr-defined]
        node.update_refcount(True, 1, True)
        node.update_refcount(False, 1, True)
        ref.drop()  # type: ignore[attr-defined]


def test_file_double_fput_is_caught() -> None:
    with world() as w:
        app = w.spawn("client")
        f = task_of(app).open("binder")
        fd = next(k for k, v in task_of(app).files.items() if v is f)
        with task_of(app).as_current():
            ref = FileRef.fget(fd)
        ref.drop()
        with pytest.raises(RefcountError) as e:
            ref.drop()
        assert e.value.rule == "double-drop"
        assert str(e.value).count(HERE) >= 2
        with pytest.raises(RefcountError) as e2:
            ref.raw()
        assert e2.value.rule == "file-ref-use-after-drop"


def test_file_fget_fput_is_clean() -> None:
    with world() as w:
        app = w.spawn("client")
        f = task_of(app).open("binder")
        count = f.f_count
        fd = next(k for k, v in task_of(app).files.items() if v is f)
        with task_of(app).as_current():
            ref = FileRef.fget(fd)
        assert f.f_count == count + 1
        ref.drop()
        assert f.f_count == count


def test_node_state_with_another_process_lock_is_caught() -> None:
    with world() as w:
        proc, ref = _node_and_ref(w)
        node = ref.node  # type: ignore[attr-defined]
        # `proc` is the client: the node belongs to the server.
        with proc.inner.lock() as wrong:  # type: ignore[attr-defined]
            with pytest.raises(LockError) as e:
                node.counts(wrong)
        assert e.value.rule == "locked-by-owner"
        assert HERE in str(e.value) and "binder/node/__init__.py:" in str(e.value)
        with node.owner.inner.lock() as right:
            assert node.counts(right)[0] >= 1
        ref.drop()  # type: ignore[attr-defined]


def test_dropping_undeliverable_work_under_the_spinlock_is_caught() -> None:
    """Why upstream drops failed work after unlocking: a transaction's destructor frees
    its buffer, which may sleep. Doing it under `Process.inner` is a sleep in atomic
    context, and the violation leaves the transaction intact for the right drop."""
    with world() as w:
        srv = w.spawn("server")  # nobody reads: the transaction stays queued
        srv.add_object(0x10, lambda c, t: Parcel())
        assert add_service(srv, "s", 0x10) == 0
        app = w.spawn("client")
        h = w.lookup(app, "s")
        app.transact(h, 1, Parcel().write_i32(1), flags=1)
        sproc = w.process(srv)
        with sproc.inner.lock() as g:
            work = g.data.work.pop_front()
            assert work is not None
            txn = work.get()
            assert isinstance(txn, Transaction)
            with pytest.raises(AtomicSleepError) as e:
                txn.drop_undelivered()
        assert e.value.rule == "atomic-sleep"
        # Named: the drop under the lock, and where the spinlock was taken.
        assert str(e.value).count(HERE) >= 2
        # The right pattern: after the lock is released.
        drop_work(work)
        _ = TransactionInfo


def test_thread_allocated_under_the_spinlock_is_caught() -> None:
    with world() as w:
        app = w.spawn("client")
        proc = w.process(app)
        with task_of(app).as_current():
            with proc.inner.lock():
                with pytest.raises(AtomicSleepError) as e:
                    Thread.new(1, proc, None)
            assert e.value.rule == "atomic-sleep"
            assert str(e.value).count(HERE) >= 2
            # get_current_thread allocates unlocked, then re-checks under the lock.
            t = proc.get_current_thread()
            assert proc.get_current_thread() is t
