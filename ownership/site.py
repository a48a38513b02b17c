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

Cost: the classification of a code object is cached by `id(code)` (hashing a code
object hashes its bytecode and constants, which is slow), and the code object is kept
alive so that its id is never reused. `Site`s are immutable and interned per call
site (code object and bytecode offset), so recording a site that was seen before
allocates nothing: one frame load, two dictionary lookups (or, when the code object
is the one seen last, one identity test and one lookup).
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import threading
from types import CodeType, FrameType

__all__ = [
    "PlainSite",
    "Site",
    "caller",
    "driver_module",
    "here",
    "is_model_type",
    "site_of_frame",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_BETWEEN = frozenset(
    os.path.abspath(m.__file__) for m in (contextlib, threading) if m.__file__ is not None
)
_driver_files: set[str] = set()
_getframe = sys._getframe

# id(code) -> None for internal code, else the interned sites of that code object by
# bytecode offset. `_pinned` keeps every classified code object alive, so an id in
# `_by_code` always denotes the same code object.
_by_code: dict[int, dict[int, Site] | None] = {}
_pinned: dict[int, CodeType] = {}

# The driver code object seen last and its sites, as one tuple (read and replaced
# atomically): the lock fast path checks it before the `id()`-keyed lookup, since a
# driver usually takes and releases locks from one function in a row.
last_code: list[tuple[CodeType | None, dict[int, Site]]] = [(None, {})]


def is_model_type(cls: type) -> bool:
    """Whether `cls` is one of the model's own types (not defined in driver code)."""
    mod = sys.modules.get(cls.__module__)
    fn = getattr(mod, "__file__", None)
    if not isinstance(fn, str):
        return False
    fn = os.path.abspath(fn)
    return fn.startswith(_PACKAGE_DIR) and fn not in _driver_files


def driver_module(file: str) -> None:
    """Mark a module of the package as driver code, so sites point into it."""
    _driver_files.add(os.path.abspath(file))
    _by_code.clear()
    last_code[0] = (None, {})


def _classify(code: CodeType) -> dict[int, Site] | None:
    fn = os.path.abspath(code.co_filename)
    internal = (fn.startswith(_PACKAGE_DIR) and fn not in _driver_files) or fn in _STDLIB_BETWEEN
    sites: dict[int, Site] | None = None if internal else {}
    _pinned[id(code)] = code
    _by_code[id(code)] = sites
    return sites


class Site:
    """A place in the source: a code object and a line number.

    Invariants: `code` is the code object of a non-internal frame (or None for an
    unknown site), `lineno` the line executing in it when the site was recorded.
    Sites are immutable; equal sites may be the same object (they are interned).
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

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # A code object cannot be pickled: a site crosses a process boundary (xdist,
        # multiprocessing) as the plain record a report needs.
        return (PlainSite, (self.filename, self.function, self.lineno))


class PlainSite(Site):
    """A site known by file, function and line only: an unpickled `Site`.

    Invariants: `code` is None; `filename`, `function` and `lineno` are those of the
    site it was made from. Two plain sites are equal when all three are.
    """

    __slots__ = ("_filename", "_function")

    def __init__(self, filename: str, function: str, lineno: int) -> None:
        super().__init__(None, lineno)
        self._filename = filename
        self._function = function

    @property
    def filename(self) -> str:
        return self._filename

    @property
    def function(self) -> str:
        return self._function

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Site)
            and other.filename == self._filename
            and other.function == self._function
            and other.lineno == self.lineno
        )

    def __hash__(self) -> int:
        return hash((self._filename, self._function, self.lineno))

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (PlainSite, (self._filename, self._function, self.lineno))


UNKNOWN = Site(None, 0)


def _outermost_entry(f: FrameType | None) -> Site:
    """The site for a stack with no driver frame at all (a model function run directly as
    a `threading.Thread` target): the first frame outside the package (the thread's `run`
    calling its target), else the outermost frame. Not interned: this is the rare case."""
    last: FrameType | None = None
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_PACKAGE_DIR) or fn in _driver_files:
            return Site(f.f_code, f.f_lineno)
        last = f
        f = f.f_back
    return Site(last.f_code, last.f_lineno) if last is not None else UNKNOWN


def site_of_frame(f: FrameType | None) -> Site:
    """The first non-internal frame from `f` outwards, as an interned `Site`."""
    start = f
    by_code = _by_code
    while f is not None:
        code = f.f_code
        key = id(code)
        if key in by_code:
            sites = by_code[key]
        else:
            sites = _classify(code)
        if sites is not None:
            last_code[0] = (code, sites)
            lasti = f.f_lasti
            s = sites.get(lasti)
            if s is None:
                s = sites[lasti] = Site(code, f.f_lineno)
            return s
        f = f.f_back
    return _outermost_entry(start)


def here() -> Site:
    """The first call site outside the model, starting from the caller of `here`."""
    # The body of `site_of_frame`, inlined: this runs on every lock acquisition.
    f: FrameType | None = _getframe(1)
    by_code = _by_code
    while f is not None:
        code = f.f_code
        key = id(code)
        if key in by_code:
            sites = by_code[key]
        else:
            sites = _classify(code)
        if sites is not None:
            lasti = f.f_lasti
            s = sites.get(lasti)
            if s is None:
                s = sites[lasti] = Site(code, f.f_lineno)
            return s
        f = f.f_back
    return _outermost_entry(_getframe(1))


def caller(depth: int = 1) -> Site:
    """The exact frame `depth` levels above the caller (no skipping)."""
    f = _getframe(depth + 1)
    return Site(f.f_code, f.f_lineno)
