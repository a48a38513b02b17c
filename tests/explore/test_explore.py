"""The deterministic interleaving explorer: classic races found within their bound and
replayed, correct code explored exhaustively clean, kernel rules checked under it."""

from __future__ import annotations

import threading

import pytest

from ownership import sched
from ownership.context import ctx
from ownership.errors import (
    AtomicSleepError,
    LifetimeError,
    LockError,
    SafetyViolation,
    SendError,
)
from ownership.explore import Exploration, explore
from ownership.explore.schedule import decode, encode

from . import scenarios as S


def _same(a: Exploration, b: Exploration) -> None:
    assert a.failure is not None and b.failure is not None
    assert type(a.failure) is type(b.failure)
    assert getattr(a.failure, "rule", None) == getattr(b.failure, "rule", None)
    assert a.schedule == b.schedule
    assert str(a.failure).splitlines()[:3] == str(b.failure).splitlines()[:3]


def test_lost_update_found_by_dfs_with_one_preemption_and_replayed() -> None:
    ex = explore(S.lost_update, strategy="dfs", max_preemptions=1)
    assert isinstance(ex.failure, AssertionError)
    assert "lost update" in str(ex.failure)
    assert ex.preemptions == 1 and not ex.complete and ex.schedule is not None
    for _ in range(3):
        _same(ex, explore(S.lost_update, replay=ex.schedule))


@pytest.mark.parametrize("strategy", ["pct", "random", "portfolio"])
def test_lost_update_found_within_500_runs(strategy: str) -> None:
    ex = explore(S.lost_update, strategy=strategy, runs=500, seed=7)
    assert isinstance(ex.failure, AssertionError), ex.summary()
    assert ex.runs <= 500
    # Shrunk to the one preemption the race needs, and replayable.
    assert ex.preemptions == 1
    assert ex.schedule is not None
    _same(ex, explore(S.lost_update, replay=ex.schedule))


def test_correct_counter_is_clean_and_complete() -> None:
    ex = explore(S.atomic_update, strategy="dfs", max_preemptions=2)
    assert ex.failure is None and ex.complete and ex.runs > 1


@pytest.mark.parametrize("prune", [True, False])
def test_three_threads_need_two_preemptions(prune: bool) -> None:
    one = explore(S.two_preemptions, strategy="dfs", max_preemptions=1, runs=10_000, prune=prune)
    assert one.failure is None and one.complete
    two = explore(S.two_preemptions, strategy="dfs", max_preemptions=2, runs=10_000, prune=prune)
    assert isinstance(two.failure, AssertionError) and two.preemptions == 2
    assert two.schedule is not None
    _same(two, explore(S.two_preemptions, replay=two.schedule))


def test_pruning_runs_fewer_schedules() -> None:
    pruned = explore(S.two_preemptions, strategy="dfs", max_preemptions=1, runs=10_000)
    full = explore(S.two_preemptions, strategy="dfs", max_preemptions=1, runs=10_000, prune=False)
    assert pruned.complete and full.complete
    assert pruned.runs < full.runs


def test_lost_wakeup_is_a_deadlock_naming_the_blocked_threads() -> None:
    ex = explore(S.lost_wakeup, strategy="dfs", max_preemptions=1)
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "deadlock"
    text = str(e)
    assert "deadlock" in text
    assert "thread 'waiter' is blocked in wait of a wakeup on CondVar 'ready'" in text
    assert "thread 'main' is blocked in join of thread 'waiter' to finish" in text
    assert "scenarios.py" in text  # where each began waiting
    assert "interleaving (schedule" in text


def test_deadlock_names_the_holder_of_the_lock() -> None:
    # With lockdep off the AB-BA order deadlocks for real instead of being reported.
    from ownership import config

    config.STATE.on = False
    try:
        ex = explore(S.ab_ba, strategy="dfs", max_preemptions=1)
    finally:
        config.STATE.on = True
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "deadlock", ex.summary()
    text = str(e)
    assert "thread 'one' is blocked in acquire of Mutex 'B', held by thread 'two'" in text
    assert "thread 'two' is blocked in acquire of Mutex 'A', held by thread 'one'" in text
    assert ex.preemptions == 1


def test_ab_ba_reported_by_lockdep_in_the_first_schedule() -> None:
    ex = explore(S.ab_ba, strategy="dfs")
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "lock-order"
    assert ex.runs == 1 and ex.preemptions == 0
    assert "circular locking dependency" in str(e)
    assert "thread 'two'" in str(e)  # the splat names the model thread


def test_producer_consumer_is_clean_with_two_preemptions() -> None:
    ex = explore(S.producer_consumer, strategy="dfs", max_preemptions=2, runs=5000)
    assert ex.failure is None and ex.complete, ex.summary()
    ex = explore(S.producer_consumer, strategy="random", runs=200)
    assert ex.failure is None, ex.summary()


def test_workqueue_item_with_an_arc_is_clean() -> None:
    ex = explore(S.workqueue_arc, strategy="dfs", max_preemptions=2, runs=5000)
    assert ex.failure is None and ex.complete, ex.summary()
    ex = explore(S.workqueue_arc, strategy="pct", runs=200)
    assert ex.failure is None, ex.summary()


def test_atomic_sleep_in_some_interleavings() -> None:
    ex = explore(S.atomic_sleep_race, strategy="dfs")
    e = ex.failure
    assert isinstance(e, AtomicSleepError) and e.rule == "atomic-sleep"
    assert "thread 'user'" in str(e)
    assert "atomic context began (spinlock: SpinLock 'mode')" in str(e)
    assert ex.runs == 2  # the first schedule is clean


def test_send_violation_in_some_interleavings() -> None:
    ex = explore(S.send_race, strategy="dfs")
    e = ex.failure
    assert isinstance(e, SendError) and e.rule == "send"
    assert "released on another thread" in str(e)
    assert ex.preemptions == 1
    _same(ex, explore(S.send_race, replay=ex.schedule))


def test_lock_order_in_some_interleavings() -> None:
    ex = explore(S.order_race, strategy="dfs")
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "lock-order"
    assert ex.runs > 1 and ex.preemptions == 1
    assert "thread 'checker'" in str(e)


def test_violation_report_ends_with_the_interleaving() -> None:
    ex = explore(S.send_race, strategy="dfs")
    e = ex.failure
    assert isinstance(e, SafetyViolation)
    text = str(e)
    splat_end = text.index("=" * 66, text.index("=" * 66) + 1)
    tail = text[splat_end:]
    assert "interleaving (schedule x1:" in tail
    assert "thread 'parker'" in tail and "thread 'finder'" in tail
    assert "acquire Mutex 'slot' at" in tail
    assert ex.interleaving and ex.interleaving in text


def test_hung_task_poll_runs_on_virtual_time() -> None:
    ex = explore(S.rwsem_hang, strategy="dfs")
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "hung-task"
    assert ex.elapsed < 5.0  # twenty virtual seconds


def test_timed_wait_advances_the_virtual_clock() -> None:
    ex = explore(S.sleeping_wait, strategy="dfs")
    assert ex.failure is None and ex.complete


def test_livelock_is_reported_not_a_hang() -> None:
    ex = explore(S.spin_forever, strategy="random", runs=5, max_steps=500)
    e = ex.failure
    assert isinstance(e, LockError) and e.rule == "livelock"
    assert "exceeded 500 seam points" in str(e)


def test_the_context_follows_the_model_thread() -> None:
    seen: dict[str, tuple[int, int]] = {}

    def scenario() -> None:
        from ownership.sync import SpinLock
        from ownership.task import spawn

        lock = SpinLock(0, name="ctx")

        def body(tag: str) -> None:
            with lock.lock():
                seen[tag] = (sched.current_id(), ctx.st.preempt_count)
            assert ctx.st.preempt_count == 0

        a = spawn(body, "a", name="a")
        b = spawn(body, "b", name="b")
        a.join()
        b.join()

    outer = ctx.st
    ex = explore(scenario, strategy="dfs", max_preemptions=2)
    assert ex.failure is None and ex.complete
    assert seen["a"][0] != seen["b"][0] and seen["a"][1] == seen["b"][1] == 1
    # Everything is back to the real thread afterwards.
    assert ctx.st is outer and sched.current_id() == threading.get_ident()
    assert sched.preempt_hook is None and sched.failure_hook is None


def test_a_failure_ends_the_schedule_at_once() -> None:
    after: list[str] = []

    def scenario() -> None:
        from ownership.sync import Mutex
        from ownership.task import spawn

        gate = Mutex(0, name="gate")

        def bad() -> None:
            raise RuntimeError("boom")

        def waiter() -> None:
            with gate.lock():
                pass
            after.append("ran")

        t = spawn(bad, name="bad")
        w = spawn(waiter, name="waiter")
        t.join()
        w.join()

    ex = explore(scenario, strategy="dfs", max_preemptions=0)
    assert isinstance(ex.failure, RuntimeError) and "boom" in str(ex.failure)
    assert any("interleaving" in n for n in getattr(ex.failure, "__notes__", []))


def test_sharded_dfs_covers_the_tree_without_overlap() -> None:
    whole = explore(S.atomic_update, strategy="dfs", max_preemptions=2, prune=False)
    parts = [
        explore(S.atomic_update, strategy="dfs", max_preemptions=2, prune=False, shard=(i, 3))
        for i in range(3)
    ]
    assert whole.complete and all(p.complete for p in parts)
    # Every shard runs the first schedule (to find the subtrees); the rest are dealt out.
    assert sum(p.runs - 1 for p in parts) == whole.runs - 1


def test_schedule_strings_round_trip() -> None:
    choices = [(3, 2, False), (6, 1, True)]
    assert decode(encode(choices, True)) == (choices, True)
    assert encode([], False) == "x1:"
    with pytest.raises(ValueError):
        decode("nonsense")


def test_lifetime_violation_in_some_interleavings() -> None:
    ex = explore(S.ref_outlives_guard, strategy="dfs")
    e = ex.failure
    assert isinstance(e, LifetimeError) and e.rule == "lifetime"
    assert ex.runs > 1  # the first schedule is clean
    assert "thread 'user'" in str(e) and "the guard was released" in str(e)


def test_spurious_wakeups_are_a_choice_of_random_and_pct() -> None:
    # dfs never wakes spuriously: the single-check waiter is clean for it...
    assert explore(S.wait_without_loop, strategy="dfs").failure is None
    # ...while random and PCT find the missing loop, and the replay wakes spuriously too.
    for strategy in ("random", "pct"):
        ex = explore(S.wait_without_loop, strategy=strategy, runs=500)
        assert isinstance(ex.failure, AssertionError), ex.summary()
        assert ex.schedule is not None and ex.schedule.startswith("x1s:") and "~" in ex.schedule
        _same(ex, explore(S.wait_without_loop, replay=ex.schedule))


def test_nested_explore_is_refused() -> None:
    def scenario() -> None:
        explore(S.atomic_update, strategy="dfs")

    ex = explore(scenario, strategy="dfs")
    assert isinstance(ex.failure, RuntimeError) and "not supported" in str(ex.failure)


def test_a_swallowed_violation_still_ends_the_schedule() -> None:
    after: list[str] = []

    def scenario() -> None:
        from ownership.context import might_sleep
        from ownership.task import spawn

        def swallow() -> None:
            try:
                raise LockError("first report", rule="lock")
            except LockError as e:
                # A re-raise of the same rule with more context replaces the first...
                try:
                    raise LockError("second report, with context", rule="lock") from e
                except LockError:
                    pass  # ...and swallowing it does not hide it.
            might_sleep()
            after.append("ran on")

        spawn(swallow, name="swallower").join()

    ex = explore(scenario, strategy="dfs", max_preemptions=0)
    e = ex.failure
    assert isinstance(e, LockError) and "second report" in str(e)
    assert after == []
