"""Assertions on violation reports: the rule, and both sites named with their source."""

from __future__ import annotations

import os

from ownership.errors import SafetyViolation
from ownership.site import Site


def _check_site(text: str, s: Site | None, src: str, what: str) -> None:
    assert s is not None, f"the report has no {what} site"
    where = f"{os.path.basename(s.filename)}:{s.lineno}"
    assert where in text, f"the report does not name the {what} site {where}:\n{text}"
    assert src in s.source_line(), f"the {what} site is `{s.source_line()}`, expected `{src}`"


def assert_report(err: SafetyViolation, rule: str, site_src: str, origin_src: str) -> None:
    """`err` has `rule`, and its message names where it happened and the conflicting origin.

    `site_src` and `origin_src` are fragments of the source lines of the two sites, which
    must be in a test file (the driver code under test), not inside the model.
    """
    assert err.rule == rule, f"rule {err.rule!r}, expected {rule!r}:\n{err}"
    text = str(err)
    _check_site(text, err.site, site_src, "violation")
    _check_site(text, err.origin, origin_src, "origin")
    for s in (err.site, err.origin):
        assert s is not None and os.path.basename(s.filename).startswith("test_"), s
