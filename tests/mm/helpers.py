"""Helpers shared by the mm tests."""

from __future__ import annotations

from ownership.mm import MmWithUser
from ownership.task import current


def current_mm() -> MmWithUser:
    """The address space of the current task, which the test expects to have one."""
    mm = current().mm()
    assert mm is not None, "the current task has no address space"
    return mm
