"""Sites: the driver's line, found past the model's own frames, interned per call site."""

from __future__ import annotations

import sys

from ownership.site import caller, here, site_of_frame
from ownership.sync import SpinLock
from tests.expect import line


def test_here_is_the_callers_line_and_is_interned() -> None:
    sites = [here() for _ in range(3)]
    at = line() - 1
    assert sites[0] is sites[1] is sites[2]  # One object per call site.
    assert sites[0].lineno == at
    other = here()
    assert other.lineno == line() - 1 and other != sites[0]
    assert caller(0).lineno == line()
    assert site_of_frame(sys._getframe(0)).lineno == line()


def test_sites_skip_the_models_frames() -> None:
    lock = SpinLock(0, name="site lock")
    with lock.lock() as g:
        taken = line() - 1
        assert g.origin_site.lineno == taken
        assert g.origin_site.short().endswith(f"test_site.py:{taken}")
        assert "test_sites_skip_the_models_frames" in str(g.origin_site)
        assert g.origin_site.source_line() == "with lock.lock() as g:"
