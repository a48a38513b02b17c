"""Bad input gives a clear error, never an internal crash, and never corrupts the model.

Wrong types are a `TypeError` naming what was expected; out-of-range values are a
`ValueError`, or `KernelError(EINVAL)` where the kernel returns `-EINVAL` (a `KVec`
capacity overflow). After every refused call the calling thread's context is clean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.alloc import GFP_KERNEL, Flags, KBox, KVec, fail_after, fail_nth, fail_probability
from ownership.aref import ARef
from ownership.borrow import BorrowTracker, Lifetime, Ref
from ownership.config import checking
from ownership.context import ctx, may_sleep
from ownership.errors import EINVAL, KernelError
from ownership.marker import impl_send
from ownership.rbtree import RBTreeNodeReservation
from ownership.sync import CondVar, LockedBy, Mutex, Refcount, SpinLock
from ownership.task import spawn
from ownership.unsafe import unsafe
from ownership.workqueue import queue_work
from tests.expect import raises_errno

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.builds(object),
)

ALLOWED = (TypeError, ValueError, KernelError)


def clean() -> bool:
    return not ctx.held and not ctx.sections and ctx.preempt_count == 0 and ctx.unsafe_depth == 0


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> BaseException | None:
    try:
        fn(*args, **kwargs)
    except ALLOWED as e:
        return e
    return None


def never(x: object) -> bool:
    return False


def is_str(x: object) -> bool:
    return isinstance(x, str)


def is_probability(x: object) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


@settings(max_examples=60, deadline=None)
@given(x=junk)
def test_junk_everywhere_gives_clear_errors(x: object) -> None:
    lock = Mutex(0, name="junk lock")
    # (what, call, which junk values are actually valid input for it)
    targets: list[tuple[str, Callable[[], object], Callable[[object], bool]]] = [
        ("SpinLock name", lambda: SpinLock(0, name=x), lambda v: v is None or is_str(v)),  # type: ignore[arg-type]
        ("KBox gfp", lambda: KBox.new(1, x), never),  # type: ignore[arg-type]
        ("reservation gfp", lambda: RBTreeNodeReservation.new(x), never),  # type: ignore[arg-type]
        ("fail_after", lambda: fail_after(x).__enter__(), never),  # type: ignore[arg-type]
        ("fail_nth", lambda: fail_nth(x).__enter__(), never),  # type: ignore[arg-type]
        ("fail_probability", lambda: fail_probability(x).__enter__(), is_probability),  # type: ignore[arg-type]
        ("Refcount", lambda: Refcount("junk", x), never),  # type: ignore[arg-type]
        ("CondVar.wait", lambda: CondVar("junk").wait(x), never),  # type: ignore[arg-type]
        ("LockedBy", lambda: LockedBy(x, 0), never),  # type: ignore[arg-type]
        ("LockedBy.access", lambda: LockedBy(lock, 0).access(x), never),  # type: ignore[arg-type]
        ("queue_work", lambda: queue_work(x), never),  # type: ignore[arg-type]
        ("spawn", lambda: spawn(x), never),  # type: ignore[arg-type]
        ("ARef.from_ref", lambda: ARef.from_ref(x), never),  # type: ignore[type-var]
        ("unsafe", lambda: unsafe(x), is_str),  # type: ignore[arg-type]
        ("Ref", lambda: Ref(1, x), never),  # type: ignore[arg-type]
        ("checking", lambda: checking(x).__enter__(), lambda v: isinstance(v, bool)),  # type: ignore[arg-type]
        ("impl_send", lambda: impl_send(x), is_str),  # type: ignore[arg-type]
        ("KernelError", lambda: KernelError(x), never),  # type: ignore[arg-type]
        ("borrow range", lambda: BorrowTracker("junk").acquire(False, x, 4), never),  # type: ignore[arg-type]
        ("KVec.reserve", lambda: KVec[int].new().reserve(x, GFP_KERNEL), never),  # type: ignore[arg-type]
    ]
    for name, fn, valid in targets:
        if valid(x):
            continue
        err = call(fn)
        assert err is not None, f"{name} accepted {x!r}"
        assert str(err), f"{name}: an error without a message"
        assert clean(), f"{name} left the context dirty"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(max_value=-1))
def test_negative_sizes(n: int) -> None:
    with raises_errno(EINVAL):
        KVec[int].new().reserve(n, GFP_KERNEL)
    with pytest.raises(ValueError):
        fail_after(n).__enter__()
    with pytest.raises(ValueError):
        Refcount("neg", n)
    with pytest.raises(ValueError):
        BorrowTracker("neg").acquire(False, n, 0)
    with pytest.raises(TypeError):
        KernelError(n)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(min_value=1, max_value=(1 << 64) - 1))
def test_unknown_gfp_bits(bits: int) -> None:
    known = 0
    for f in Flags:
        known |= int(f)
    flags = Flags(bits)
    if bits & ~known:
        with pytest.raises(TypeError, match="unknown GFP bits"):
            KBox.new(0, flags)
    else:
        try:
            KBox.new(0, flags).drop()
        except KernelError:
            pytest.fail("a valid GFP mask was refused")
    assert clean()


def test_may_sleep_declaration_needs_the_named_parameter() -> None:
    def alloc(size: int, flags: Flags) -> None:
        return None

    with pytest.raises(TypeError, match="no such parameter"):
        may_sleep(gfp="gfp")(alloc)


def test_lifetime_nesting_needs_a_lifetime() -> None:
    with pytest.raises(TypeError):
        Ref(1, "not a lifetime")  # type: ignore[arg-type]
    assert Ref(1, Lifetime("ok")).get() == 1
