"""unsafe: an unsafe function runs only inside `with unsafe("SAFETY: ..."):`.

Calling one outside a block names the call and the declaration; a block without a
justification is refused; declarations and the blocks that ran are recorded for the
contract review.
"""

from __future__ import annotations

import pytest

from ownership.alloc import GFP_KERNEL
from ownership.aref import ARef
from ownership.config import checking
from ownership.context import ctx
from ownership.errors import UnsafeError
from ownership.sync import Arc
from ownership.unsafe import contracts, in_unsafe, unsafe, unsafe_fn, unsafe_sites
from tests.expect import assert_splat, line


class RawBuffer:
    """A driver's buffer with a raw (unchecked) accessor."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    @unsafe_fn(
        safety="`offset` is within the buffer.",
        checked="offset bounds (IndexError)",
    )
    def byte_at_unchecked(self, offset: int) -> int:
        return self.data[offset]


DECL_LINE = RawBuffer.byte_at_unchecked.__wrapped__.__code__.co_firstlineno  # type: ignore[attr-defined]


class Counted:
    def __init__(self) -> None:
        self.count = 1

    def inc_ref(self) -> None:
        self.count += 1

    def dec_ref(self) -> None:
        self.count -= 1


def test_unsafe_call_outside_unsafe_block() -> None:
    buf = RawBuffer(b"abc")
    with pytest.raises(UnsafeError) as ei:
        buf.byte_at_unchecked(1)
    call = line() - 1
    assert_splat(
        ei,
        "unsafe-call",
        cls=UnsafeError,
        lines=[call, DECL_LINE],
        mentions=["Safety: `offset` is within the buffer."],
    )


def test_unsafe_call_inside_unsafe_block() -> None:
    buf = RawBuffer(b"abc")
    with unsafe("SAFETY: 2 < len(b'abc')"):
        block = line() - 1
        assert in_unsafe()
        assert buf.byte_at_unchecked(2) == ord("c")
    assert not in_unsafe()
    recorded = [s for s in unsafe_sites() if s.site.lineno == block]
    assert recorded and recorded[0].justification == "2 < len(b'abc')"


@pytest.mark.parametrize("text", ["", "   ", "SAFETY:", "safety:  "])
def test_unsafe_call_in_an_undocumented_block(text: str) -> None:
    buf = RawBuffer(b"abc")
    # Deliberately undocumented: the bug this test shows.
    with unsafe(text):
        block = line() - 1
        with pytest.raises(UnsafeError) as ei:
            buf.byte_at_unchecked(0)
        call = line() - 1
    assert_splat(ei, "undocumented-unsafe", cls=UnsafeError, lines=[call, block, DECL_LINE])
    assert ctx.unsafe_depth == 0


def test_documented_block_inside_an_undocumented_one() -> None:
    buf = RawBuffer(b"abc")
    # Deliberately undocumented: only the inner block, which does the call, matters.
    with unsafe(""):
        with unsafe("SAFETY: 1 < len(b'abc')"):
            assert buf.byte_at_unchecked(1) == ord("b")


def test_unsafe_blocks_record_their_calls() -> None:
    buf = RawBuffer(b"abc")
    with unsafe("SAFETY: 0 < 3"):
        block = line() - 1
        buf.byte_at_unchecked(0)
    # The registry holds every block any test ran: find this one by file and line.
    rec = next(s for s in unsafe_sites() if s.site.lineno == block and s.site.filename == __file__)
    assert rec.calls == {f"{__name__}.RawBuffer.byte_at_unchecked"}


def test_unsafe_block_nesting_and_unwinding() -> None:
    buf = RawBuffer(b"xy")
    with pytest.raises(IndexError):
        with unsafe("SAFETY: deliberately wrong, to check the depth unwinds."):
            with unsafe("SAFETY: nested blocks are allowed."):
                buf.byte_at_unchecked(5)
    assert not in_unsafe() and ctx.unsafe_depth == 0


def test_aref_from_raw_is_unsafe() -> None:
    obj = Counted()
    a = ARef.from_ref(obj)
    raw = a.into_raw()
    with pytest.raises(UnsafeError) as ei:
        ARef.from_raw(raw)
    call = line() - 1
    assert_splat(ei, "unsafe-call", cls=UnsafeError, lines=[call])
    assert "ownership/aref.py:" in str(ei.value)  # The declaration.
    with unsafe("SAFETY: `raw` carries the increment given up by `into_raw` above."):
        b = ARef.from_raw(raw)
    b.drop()
    assert obj.count == 1


def test_arc_from_raw_is_unsafe() -> None:
    arc = Arc.new([1, 2, 3], GFP_KERNEL)
    raw = arc.clone().into_raw()
    with pytest.raises(UnsafeError) as ei:
        Arc.from_raw(raw)
    call = line() - 1
    assert_splat(ei, "unsafe-call", cls=UnsafeError, lines=[call])
    assert "ownership/sync/arc.py:" in str(ei.value)  # The declaration.
    assert arc.refcount() == 2  # Refused before any effect: the count is still given up.
    with unsafe("SAFETY: `raw` carries the count the clone gave up with `into_raw` above."):
        back = Arc.from_raw(raw)
    assert back.get() == [1, 2, 3]
    back.drop()
    arc.drop()


def test_contract_registry() -> None:
    by_name = {c.qualname: c for c in contracts()}
    c = by_name[f"{__name__}.RawBuffer.byte_at_unchecked"]
    assert c.safety == "`offset` is within the buffer."
    assert c.enforcement == "checked at runtime"
    assert by_name["ownership.aref.ARef.from_raw"].enforcement == "documented only"


def test_declaration_needs_safety_text() -> None:
    with pytest.raises(TypeError):
        unsafe_fn(safety="  ")
    with pytest.raises(TypeError):
        unsafe(None)  # type: ignore[arg-type]


def test_checks_off_lets_unsafe_calls_through() -> None:
    buf = RawBuffer(b"q")
    with checking(False):
        assert buf.byte_at_unchecked(0) == ord("q")
        # Deliberately undocumented: with checks off, not even this is refused.
        with unsafe(""):
            assert buf.byte_at_unchecked(0) == ord("q")
