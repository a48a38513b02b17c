"""`kernel::sync::aref` (rust/kernel/sync/aref.rs): `ARef` and `AlwaysRefCounted`.

Upstream moved `ARef` from `kernel::types` to `kernel::sync::aref`; the model's
implementation stays in `ownership.aref` (a lower layer than `ownership.sync`), and this
module re-exports it (and `AlwaysRefCounted`) under the upstream path. It wraps no C
object of its own and takes no locks.
"""

from __future__ import annotations

from ..aref import AlwaysRefCounted, ARef

__all__ = ["ARef", "AlwaysRefCounted"]
