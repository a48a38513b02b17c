"""Fixtures of the binder memory-layer tests: a machine with `/dev/binder`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..binder_harness import BinderWorld


@pytest.fixture
def world() -> Iterator[BinderWorld]:
    """A fresh machine with binder registered; fails the test if anything leaked."""
    w = BinderWorld()
    yield w
    w.teardown()
