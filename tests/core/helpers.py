"""Helpers for the core tests: source lines and splat assertions.

A violation's message must name both ends of the conflict. Tests record the line of
each end with `line()` (the line it is called on) and check the report with
`assert_splat`, which looks for `<this test file>:<line>` in the message.
"""

from __future__ import annotations

import os
import re
import sys

from ownership.errors import SafetyViolation


def line() -> int:
    """The line number this is called on."""
    return sys._getframe(1).f_lineno


def where(lineno: int) -> str:
    """`test_file.py:LINE` for a line of the calling test file."""
    return f"{os.path.basename(sys._getframe(1).f_code.co_filename)}:{lineno}"


def assert_splat(
    err: BaseException, cls: type[SafetyViolation], rule: str, *lines: int
) -> SafetyViolation:
    """Check class, rule id, and that the report names each given line of the caller's file."""
    assert isinstance(err, cls), f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    assert err.rule == rule, f"expected rule {rule!r}, got {err.rule!r}"
    fname = os.path.basename(sys._getframe(1).f_code.co_filename)
    text = str(err)
    for ln in lines:
        pat = re.escape(f"{fname}:{ln}") + r"(?!\d)"
        assert re.search(pat, text), f"{fname}:{ln} not in report:\n{text}"
    return err
