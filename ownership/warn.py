"""`WARN_ONCE`-style warnings: the kernel notices something odd and carries on.

Warnings are not violations: the operation goes on (a saturated refcount leaks its
object, an out-of-range zap does nothing). Each is recorded in `log()` with its site
and raised as a Python `KernelWarning`, so tests can assert on it with
`pytest.warns` or by reading the log.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

from .site import Site, here

__all__ = ["KernelWarning", "Warned", "clear", "log", "warn"]


class KernelWarning(UserWarning):
    """A `WARN()` from the model."""


@dataclass(frozen=True)
class Warned:
    rule: str
    message: str
    site: Site

    def __str__(self) -> str:
        return f"WARNING [{self.rule}]: {self.message} at {self.site}"


_lock = threading.Lock()
_log: list[Warned] = []


def warn(rule: str, message: str, site: Site | None = None) -> Warned:
    w = Warned(rule, message, site if site is not None else here())
    with _lock:
        _log.append(w)
    warnings.warn(str(w), KernelWarning, stacklevel=3)
    return w


def log() -> list[Warned]:
    with _lock:
        return list(_log)


def clear() -> None:
    with _lock:
        _log.clear()
