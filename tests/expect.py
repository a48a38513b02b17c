"""What the tests expect of a failure: a violation report, or a kernel error's errno.

Shared by every test folder (`from tests.expect import assert_splat, raises_errno`).

A violation's message must name both ends of the conflict. `assert_splat` checks the
report's class and rule id, then any of: lines of the calling test file that the message
must name (recorded with `line()`), source fragments of the report's own `site` and
`origin` (each must be in a test file and named in the message), and plain text the
message must mention.

A `KernelError` is an errno, as in C: `raises_errno(EINVAL)` is `pytest.raises(KernelError)`
that also checks which errno it was.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from ownership.errors import KernelError, SafetyViolation
from ownership.site import Site


def line() -> int:
    """The line number this is called on."""
    return sys._getframe(1).f_lineno


def _check_site(text: str, s: Site | None, src: str, what: str, sites_in: str | None) -> None:
    assert s is not None, f"the report has no {what} site:\n{text}"
    name = os.path.basename(s.filename)
    if sites_in is None:
        assert name.startswith("test_"), f"the {what} site {s} is not in a test file"
    else:
        assert name == sites_in, f"the {what} site {s} is not in {sites_in}"
    at = f"{name}:{s.lineno}"
    assert at in text, f"the report does not name the {what} site {at}:\n{text}"
    assert src in s.source_line(), f"the {what} site is `{s.source_line()}`, expected `{src}`"


def assert_splat(
    caught: BaseException | pytest.ExceptionInfo[BaseException],
    rule: str,
    *,
    cls: type[SafetyViolation] = SafetyViolation,
    lines: Sequence[int] = (),
    site: str | None = None,
    origin: str | None = None,
    sites_in: str | None = None,
    mentions: Sequence[str] = (),
) -> SafetyViolation:
    """Check that `caught` (an exception, or what `pytest.raises` caught) is the expected splat.

    `caught` is an instance of `cls` with rule id `rule`; its message names
    `<calling test file>:LINE` for each of `lines`; `site` and `origin`, when given, are
    fragments of the source lines of the report's two sites, which the message must name
    and which must be in a test file (the driver code under test) or, if `sites_in` is
    given, in the file of that base name; and the message contains each of `mentions`.
    Returns the report for further checks.
    """
    err = caught.value if isinstance(caught, pytest.ExceptionInfo) else caught
    assert isinstance(err, cls), f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    text = str(err)
    assert err.rule == rule, f"rule {err.rule!r}, expected {rule!r}:\n{text}"
    fname = os.path.basename(sys._getframe(1).f_code.co_filename)
    for ln in lines:
        pat = re.escape(f"{fname}:{ln}") + r"(?!\d)"
        assert re.search(pat, text), f"{fname}:{ln} not in report:\n{text}"
    if site is not None:
        _check_site(text, err.site, site, "violation", sites_in)
    if origin is not None:
        _check_site(text, err.origin, origin, "origin", sites_in)
    for m in mentions:
        assert m in text, f"{m!r} not in report:\n{text}"
    return err


@contextmanager
def raises_errno(errno: int) -> Iterator[pytest.ExceptionInfo[KernelError]]:
    """`pytest.raises(KernelError)` that also checks the error's errno."""
    with pytest.raises(KernelError) as ei:
        yield ei
    assert ei.value.errno == errno, f"{ei.value} (errno {ei.value.errno}, expected {errno})"
