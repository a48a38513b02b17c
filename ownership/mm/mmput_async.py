"""`MmWithUserAsync` (rust/kernel/mm/mmput_async.rs): an `mmget` count dropped with `mmput_async`.

The same count as `MmWithUser`, in a type whose destructor is safe in atomic context:
`mmput_async` defers the teardown of the address space (which takes the mmap lock and
may sleep) to a workqueue. Rust Binder's shrinker and `use_page_slow` use it because the
last `mmput` could otherwise run the teardown under their locks. There is no conversion
back: `MmWithUser.into_mmput_async` only goes one way.
"""

from __future__ import annotations

from ..bindings import mm as _c
from ..marker import impl_send, impl_sync
from . import MmWithUser

__all__ = ["MmWithUserAsync"]


@impl_send("It is safe to call mmput_async on another thread than where mmget was called")
@impl_sync("All methods on MmWithUserAsync can be called in parallel from several threads")
class MmWithUserAsync(MmWithUser):
    """A `struct mm_struct` with `mm_users > 0`, dropped with `mmput_async`.

    Invariants: those of `MmWithUser`; the reference is given back with `mmput_async`.
    """

    __slots__ = ()

    def dec_ref(self) -> None:
        """`mmput_async`: never sleeps; the last one queues the teardown on a workqueue."""
        # SAFETY: the caller owns the mmget reference it gives back.
        _c.mmput_async(self._live("mmput_async"))
