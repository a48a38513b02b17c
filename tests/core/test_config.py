"""Checking mode: `checking(False)` and `OWNERSHIP_CHECKS=0` really turn the checks off.

A correct program computes the same results either way; with checks off the runtime
records nothing (no lockdep entries, no atomic sections), so buggy programs run
unchecked; objects made in one mode stay consistent when the mode changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ownership.alloc import GFP_ATOMIC, GFP_KERNEL, KBox, fail_nth
from ownership.aref import ARef
from ownership.config import checking, checks_enabled
from ownership.context import (
    ctx,
    in_atomic,
    preempt_count,
    preempt_disable,
    preempt_enable,
    rcu_read_lock,
)
from ownership.errors import KernelError
from ownership.rbtree import RBTree, RBTreeNodeReservation
from ownership.sync import Arc, CondVar, Mutex, SpinLock
from ownership.task import spawn
from ownership.workqueue import Workqueue


class Obj:
    def __init__(self) -> None:
        self.count = 1

    def inc_ref(self) -> None:
        self.count += 1

    def dec_ref(self) -> None:
        self.count -= 1


class Summer:
    total: int = 0

    def __init__(self, values: list[int]) -> None:
        self.values = values

    @classmethod
    def run(cls, me: Arc[Summer]) -> None:
        cls.total += sum(me.get().values)
        me.drop()


def correct_program() -> list[object]:
    """A little driver: locks, a condvar hand-off, refcounts, a tree, a work item."""
    out: list[object] = []
    state = SpinLock(RBTree[int, str](), name="prog state")
    for k in (3, 1, 2):
        node = RBTreeNodeReservation.new(GFP_KERNEL).into_node(k, f"v{k}")
        with state.lock() as g:
            g.data.insert(node)
    with state.lock() as g:
        out.append(g.data.keys())
        r = g.ref()
        out.append(r.get().get(2))
    box = Mutex([0], name="prog box")
    cv = CondVar("prog cv")

    def producer() -> int:
        with box.lock() as g:
            g.data.append(KBox.new(41, GFP_KERNEL).into_inner() + 1)
            cv.notify_all()
        return 0

    with box.lock() as bg:
        h = spawn(producer)
        while len(bg.data) < 2:
            cv.wait(bg)
        out.append(list(bg.data))
    h.join()
    o = Obj()
    refs = [ARef.from_ref(o) for _ in range(3)]
    out.append(o.count)
    for a in refs:
        a.drop()
    arc = Arc.new(Summer([1, 2, 3]), GFP_ATOMIC)
    extra = arc.clone()
    out.append(arc.refcount())
    extra.drop()
    wq = Workqueue("prog wq")
    Summer.total = 0
    wq.queue_work(arc)
    wq.flush()
    out.append(Summer.total)
    with fail_nth(1):
        try:
            KBox.new(0, GFP_KERNEL)
        except KernelError as e:
            out.append(e.name)
    return out


def test_a_correct_program_behaves_identically() -> None:
    on = correct_program()
    with checking(False):
        assert not checks_enabled()
        off = correct_program()
    assert checks_enabled()
    assert on == off == [[1, 2, 3], "v2", [0, 42], 4, 2, 6, "ENOMEM"]


def test_checks_off_records_nothing() -> None:
    spin = SpinLock(0, name="unrecorded")
    with checking(False):
        with spin.lock() as g:
            assert not ctx.held and not ctx.sections and preempt_count() == 0
            g.data = 1
        assert not in_atomic()


def test_checks_off_lets_buggy_programs_run() -> None:
    spin = SpinLock(0, name="unchecked bugs")
    with checking(False):
        with spin.lock() as g:
            KBox.new(1, GFP_KERNEL).drop()  # Would be atomic-sleep.
            Mutex(0, name="unchecked inner").lock().drop()
        g.drop()  # Would be double-unlock: ignored.
        _ = g.data  # Would be a LifetimeError.
        b = KBox.new(1, GFP_ATOMIC)
        b.drop()
        assert b.get() == 1  # Use after drop is not detected.
        a = ARef.from_ref(Obj())
        a.drop()
        a.drop()  # Double drop: ignored.
        r = rcu_read_lock()
        r.drop()
        r.drop()  # Would be double-unlock.
        sec = preempt_disable()
        preempt_enable(sec)
        preempt_enable(sec)  # Would be unbalanced-atomic.
        assert not in_atomic()


def test_guard_made_with_checks_on_released_with_checks_off() -> None:
    spin = SpinLock(0, name="mode change")
    g = spin.lock()
    with checking(False):
        g.drop()
    assert not ctx.held and preempt_count() == 0


def test_guard_made_with_checks_off_released_with_checks_on() -> None:
    spin = SpinLock(0, name="mode change 2")
    with checking(False):
        g = spin.lock()
    g.drop()
    assert not ctx.held and preempt_count() == 0
    with spin.lock():
        pass


def test_checking_takes_a_bool() -> None:
    with pytest.raises(TypeError), checking("no"):  # type: ignore[arg-type]
        pass


SNIPPET = textwrap.dedent(
    """
    from ownership.config import checks_enabled
    from ownership.alloc import GFP_KERNEL, KBox
    from ownership.errors import AtomicSleepError
    from ownership.sync import SpinLock
    lock = SpinLock(0, name="env")
    caught = False
    with lock.lock():
        try:
            KBox.new(1, GFP_KERNEL)
        except AtomicSleepError:
            caught = True
    print(checks_enabled(), caught)
    """
)


@pytest.mark.parametrize(
    ("env", "expect"), [("0", "False False"), ("off", "False False"), ("1", "True True")]
)
def test_environment_switch(env: str, expect: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        env={**os.environ, "OWNERSHIP_CHECKS": env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == expect


def test_environment_switch_runs_a_correct_program_identically() -> None:
    code = "from tests.core.test_config import correct_program; print(correct_program())"
    outs = []
    for env in ("0", "1"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "OWNERSHIP_CHECKS": env},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        outs.append(out.stdout.strip())
    assert outs[0] == outs[1] == "[[1, 2, 3], 'v2', [0, 42], 4, 2, 6, 'ENOMEM']"
