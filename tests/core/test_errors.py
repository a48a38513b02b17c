"""Exceptions as Python users expect: a one-line headline, a fix line, pickling, OSError.

`str(e)` of a violation is `rule: what at file.py:LINE`, the splat, then `fix: ...` from
the rule catalogue; `repr` is one line. Every violation class, `KernelBug` and
`KernelError` (with its subclass `BinderError`) survive `pickle` and a process pool (the
way pytest-xdist and `multiprocessing` hand them back). A violation on a plain
`threading.Thread` names the driver's line and the thread by its name.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from binder.error import BinderError
from binder.uapi import BR_FAILED_REPLY
from ownership import errors
from ownership.alloc import GFP_KERNEL, KBox
from ownership.errors import (
    EINVAL,
    ENOMEM,
    AtomicSleepError,
    KernelBug,
    KernelError,
    LockError,
    SafetyViolation,
    SendError,
)
from ownership.rule_catalogue import all_rules, fix_for
from ownership.site import PlainSite, Site, here
from ownership.sync import Mutex, SpinLock
from tests.expect import line

VIOLATIONS = sorted(
    (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, SafetyViolation)),
    key=lambda c: c.__name__,
)


def _sleep_in_atomic() -> AtomicSleepError:
    lock = SpinLock(0, name="errors-test")
    with pytest.raises(AtomicSleepError) as info, lock.lock():
        KBox.new(1, GFP_KERNEL)
    return info.value


def _made(cls: type[SafetyViolation]) -> SafetyViolation:
    return cls(f"a {cls.__name__} for the test", obj="obj", site=here(), origin=here())


# --- the text ------------------------------------------------------------------------


def test_first_line_is_rule_headline_and_site() -> None:
    lock = SpinLock(0, name="errors-test-first-line")
    with pytest.raises(AtomicSleepError) as info, lock.lock():
        n = line() + 1
        KBox.new(1, GFP_KERNEL)
    first = str(info.value).splitlines()[0]
    where = f"{os.path.relpath(__file__)}:{n}"
    assert first == f"atomic-sleep: sleeping function called from invalid context at {where}"


def test_the_full_splat_follows_the_headline() -> None:
    e = _sleep_in_atomic()
    lines = str(e).splitlines()
    assert lines[1] == "=" * 66
    assert lines[2].startswith("BUG: sleeping function called from invalid context:")
    assert e.report() in str(e)


def test_last_line_is_the_rules_fix() -> None:
    e = _sleep_in_atomic()
    last = str(e).splitlines()[-1]
    assert e.fix is not None and last == f"fix: {e.fix}"
    assert "drop the spinlock" in last and "GFP_ATOMIC" in last


def test_every_catalogued_rule_has_a_one_line_fix() -> None:
    for r in all_rules():
        assert r.fix and "\n" not in r.fix, r.id
        assert fix_for(r.id) == r.fix


def test_lock_order_fix_names_the_recorded_order() -> None:
    a, b = Mutex(0, name="errors-a"), Mutex(0, name="errors-b")
    with a.lock(), b.lock():
        pass
    with pytest.raises(LockError) as info, b.lock(), a.lock():
        pass
    text = str(info.value)
    assert text.splitlines()[0].startswith(
        "lock-order: possible circular locking dependency detected at "
    )
    assert text.splitlines()[-1] == f"fix: {fix_for('lock-order')}"
    assert "recorded order" in text.splitlines()[-1]


def test_repr_is_one_readable_line() -> None:
    e = _sleep_in_atomic()
    r = repr(e)
    assert "\n" not in r
    assert r == f"AtomicSleepError({e.headline()!r})"


def test_a_rule_without_a_fix_ends_with_the_splat() -> None:
    e = SafetyViolation("no such rule", rule="not-a-catalogued-rule", site=here())
    assert e.fix is None
    assert str(e).splitlines()[-1] == "=" * 66


# --- pickling ------------------------------------------------------------------------


def _assert_same_violation(a: SafetyViolation, b: SafetyViolation) -> None:
    assert type(b) is type(a)
    assert str(b) == str(a)
    assert b.rule == a.rule and b.fix == a.fix and b.held_locks == a.held_locks
    assert b.site == a.site and b.origin == a.origin
    assert repr(b) == repr(a)


@pytest.mark.parametrize("cls", VIOLATIONS, ids=lambda c: c.__name__)
def test_every_violation_class_pickles(cls: type[SafetyViolation]) -> None:
    e = _made(cls)
    back = pickle.loads(pickle.dumps(e))
    _assert_same_violation(e, back)
    assert isinstance(back.site, PlainSite)


def test_a_real_report_pickles_with_its_sites_and_notes() -> None:
    e = _sleep_in_atomic()
    back = pickle.loads(pickle.dumps(e))
    _assert_same_violation(e, back)
    assert back.notes == e.notes
    assert back.site is not None and back.site.source_line() == "KBox.new(1, GFP_KERNEL)"


def test_a_site_pickles_to_a_plain_record() -> None:
    s = here()
    back = pickle.loads(pickle.dumps(s))
    assert isinstance(back, PlainSite) and back.code is None
    assert (back.filename, back.function, back.lineno) == (s.filename, s.function, s.lineno)
    assert str(back) == str(s) and back == s and hash(back) == hash(pickle.loads(pickle.dumps(s)))
    assert pickle.loads(pickle.dumps(back)) == back


def test_kernel_errors_pickle() -> None:
    for e in (
        KernelError(ENOMEM),
        KernelError(EINVAL, "bad flags"),
        BinderError(BR_FAILED_REPLY, KernelError(ENOMEM, "out of pages")),
        KernelBug("page-state", "bad page state"),
    ):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        if isinstance(e, KernelError):
            assert isinstance(back, KernelError)
            assert (back.errno, back.strerror, back.detail) == (e.errno, e.strerror, e.detail)
            assert back == e
    b = pickle.loads(pickle.dumps(BinderError(BR_FAILED_REPLY, KernelError(ENOMEM))))
    assert isinstance(b, BinderError) and b.reply == BR_FAILED_REPLY
    assert b.source == KernelError(ENOMEM) and b.as_errno() == -ENOMEM


def _raise_in_child(kind: str) -> None:
    """Run in a worker process: raise the named error there."""
    if kind == "atomic-sleep":
        lock = SpinLock(0, name="errors-child")
        with lock.lock():
            KBox.new(1, GFP_KERNEL)
    elif kind == "binder":
        raise BinderError(BR_FAILED_REPLY, KernelError(ENOMEM))
    elif kind == "kernel":
        raise KernelError(EINVAL, "in the child")
    else:
        cls = next(c for c in VIOLATIONS if c.__name__ == kind)
        raise _made(cls)


def test_errors_cross_a_process_pool() -> None:
    kinds = ["atomic-sleep", "binder", "kernel", *(c.__name__ for c in VIOLATIONS)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        futures = {k: pool.submit(_raise_in_child, k) for k in kinds}
        for k, f in futures.items():
            e = f.exception(timeout=120)
            assert e is not None, k
            if k == "atomic-sleep":
                assert isinstance(e, AtomicSleepError)
                assert (
                    str(e)
                    .splitlines()[0]
                    .startswith("atomic-sleep: sleeping function called from invalid context at ")
                )
                assert "_raise_in_child" in str(e)
            elif k == "binder":
                assert isinstance(e, BinderError) and e.reply == BR_FAILED_REPLY
            elif k == "kernel":
                assert e == KernelError(EINVAL) and isinstance(e, OSError)
            else:
                assert type(e).__name__ == k and isinstance(e, SafetyViolation)
                assert str(e).splitlines()[0].startswith(f"{e.rule}: a {k} for the test")


# --- KernelError is an OSError -------------------------------------------------------


def test_kernel_error_is_an_oserror() -> None:
    e = KernelError(ENOMEM, "no pages")
    assert isinstance(e, OSError)
    assert e.errno == errno.ENOMEM and e.strerror == os.strerror(errno.ENOMEM)
    assert e.name == "ENOMEM" and e.to_errno() == -errno.ENOMEM and e.detail == "no pages"
    assert str(e) == "ENOMEM: no pages" and str(KernelError(ENOMEM)) == "ENOMEM"
    assert repr(e) == "KernelError(ENOMEM, 'no pages')"
    assert e == KernelError(ENOMEM) and e != KernelError(EINVAL)
    assert hash(e) == hash(KernelError(ENOMEM, "other"))
    with pytest.raises(OSError) as info:
        raise KernelError(EINVAL)
    assert info.value.errno == EINVAL


def test_kernel_error_still_rejects_a_non_errno() -> None:
    for bad in (0, -1, True, "ENOMEM"):
        with pytest.raises(TypeError):
            KernelError(bad)  # type: ignore[arg-type]


# --- plain threads -------------------------------------------------------------------


def test_violation_on_a_plain_thread_names_the_site_and_the_thread() -> None:
    lock = SpinLock(0, name="errors-thread")
    caught: list[BaseException] = []
    n = 0

    def body() -> None:
        nonlocal n
        try:
            with lock.lock():
                n = line() + 1
                KBox.new(1, GFP_KERNEL)
        except AtomicSleepError as e:
            caught.append(e)

    t = threading.Thread(target=body, name="driver-worker")
    t.start()
    t.join()
    (e,) = caught
    text = str(e)
    assert text.splitlines()[0].endswith(f"at {os.path.relpath(__file__)}:{n}")
    assert "thread 'driver-worker'" in text
    assert "<unknown>" not in text


def test_release_on_another_thread_names_the_owner_thread() -> None:
    m = Mutex(0, name="errors-owner")
    g = m.lock()
    caught: list[BaseException] = []

    def other() -> None:
        try:
            g.drop()
        except SendError as e:
            caught.append(e)

    t = threading.Thread(target=other, name="releaser")
    t.start()
    t.join()
    g.drop()
    (e,) = caught
    text = str(e)
    assert "thread 'releaser'" in text
    assert f"the lock was taken on thread '{threading.current_thread().name}'" in text


def test_a_model_method_as_thread_target_names_a_real_site() -> None:
    m = Mutex(0, name="errors-target")
    g = m.lock()
    caught: list[BaseException] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        caught.append(args.exc_value if args.exc_value is not None else RuntimeError())

    prev, threading.excepthook = threading.excepthook, hook
    try:
        t = threading.Thread(target=g.drop, name="bare-target")
        t.start()
        t.join()
    finally:
        threading.excepthook = prev
    g.drop()
    (e,) = caught
    assert isinstance(e, SendError)
    text = str(e)
    assert "<unknown>" not in text
    assert "thread 'bare-target' (target Guard.drop)" in text
    assert e.site is not None and isinstance(e.site, Site) and e.site.lineno > 0
