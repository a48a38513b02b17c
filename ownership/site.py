"""Source sites: where a lock was taken, a guard released, a page freed.

Every check in the model remembers *where* things happened so that a violation can
name both ends of the conflict, as lockdep prints the stack that took each lock. A
`Site` is recorded on hot paths (every lock acquisition), so it is cheap: a reference
to the caller's code object and a line number, found by walking up past the frames of
the model itself. Nothing is formatted until a report is printed.

Frames are "internal" when their code lives in the `ownership` package (or in
`contextlib`/`threading`, which sit between a `with` statement and the model); the
first frame that is not internal is the driver's call site. Modules inside the package
that play the role of driver code (the demo, the benchmarks) opt out with
`driver_module(__file__)`.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import threading
from types import CodeType, FrameType

__all__ = ["Site", "caller", "driver_module", "here"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_BETWEEN = frozenset(
    os.path.abspath(m.__file__) for m in (contextlib, threading) if m.__file__ is not None
)
_driver_files: set[str] = set()
# Cache of "is this code object internal?"; code objects are immortal for our purposes.
_internal: dict[CodeType, bool] = {}


def driver_module(file: str) -> None:
    """Mark a module of the package as driver code, so sites point into it."""
    _driver_files.add(os.path.abspath(file))
    _internal.clear()


def _is_internal(code: CodeType) -> bool:
    res = _internal.get(code)
    if res is None:
        fn = os.path.abspath(code.co_filename)
        res = (fn.startswith(_PACKAGE_DIR) and fn not in _driver_files) or fn in _STDLIB_BETWEEN
        _internal[code] = res
    return res


class Site:
    """A place in the source: a code object and a line number.

    Invariants: `code` is the code object of a non-internal frame (or None for an
    unknown site), `lineno` the line executing in it when the site was recorded.
    """

    __slots__ = ("code", "lineno")

    def __init__(self, code: CodeType | None, lineno: int) -> None:
        self.code = code
        self.lineno = lineno

    @property
    def filename(self) -> str:
        return self.code.co_filename if self.code is not None else "<unknown>"

    @property
    def function(self) -> str:
        return self.code.co_qualname if self.code is not None else "<unknown>"

    def short(self) -> str:
        """`file.py:LINE` with the path made relative to the working directory."""
        fn = self.filename
        try:
            rel = os.path.relpath(fn)
            if not rel.startswith(".."):
                fn = rel
        except ValueError:
            pass
        return f"{fn}:{self.lineno}"

    def __str__(self) -> str:
        return f"{self.short()} in {self.function}()"

    def source_line(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def describe(self) -> str:
        """One line with the source text, for reports."""
        src = self.source_line()
        return f"{self}" + (f"\n        {src}" if src else "")

    def __repr__(self) -> str:
        return f"Site({self.short()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Site) and other.code is self.code and other.lineno == self.lineno

    def __hash__(self) -> int:
        return hash((id(self.code), self.lineno))


UNKNOWN = Site(None, 0)


def _walk(f: FrameType | None) -> Site:
    while f is not None:
        code = f.f_code
        if not _is_internal(code):
            return Site(code, f.f_lineno)
        f = f.f_back
    return UNKNOWN


def here() -> Site:
    """The first call site outside the model, starting from the caller of `here`."""
    return _walk(sys._getframe(1))


def caller(depth: int = 1) -> Site:
    """The exact frame `depth` levels above the caller (no skipping)."""
    f = sys._getframe(depth + 1)
    return Site(f.f_code, f.f_lineno)
