"""The Rust view of a C object: one per C object and view type (`&*ptr.cast()`).

Upstream, a Rust type that wraps a C struct holds it in an `Opaque<T>`
(rust/kernel/types.rs), and `Mm::from_raw(ptr)` or `File::from_raw_file(ptr)` casts the
C pointer to a reference of the Rust type: no new object, so two views of one
`struct mm_struct` are one address (`ptr::eq`). The model keeps one view object per C
object and view type, in the C object's `wrappers` dictionary, so `a is b` compares C
objects as `ptr::eq` does. `CView` is that cache, shared by `Mm` (and its subtypes),
`Task` and the misc device's `File`.

Lock order: no locks (`dict.setdefault` makes the second of two racing views lose).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["CView"]


class _HasViews(Protocol):
    """A C object that keeps its Rust views (`struct mm_struct`, `task_struct`, `file`)."""

    wrappers: dict[type, object]


R = TypeVar("R", bound=_HasViews)


class CView(Generic[R]):
    """A Rust type that views a C object of type `R`; `_view(raw)` is the cached view."""

    __slots__ = ()

    @abstractmethod
    def __init__(self, raw: R) -> None:
        """Make the view of `raw` (called once per C object and type, by `_view`)."""

    @classmethod
    def _view(cls, raw: R) -> Self:
        """The cached view of type `cls` of `raw` (`&*ptr.cast()`)."""
        v = raw.wrappers.get(cls)
        if v is None:
            v = raw.wrappers.setdefault(cls, cls(raw))
        assert isinstance(v, cls)
        return v
