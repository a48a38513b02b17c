"""Shrinkers (mm/shrinker.c): callbacks the kernel runs to reclaim memory.

`Kernel.register_shrinker(name, count_objects, scan_objects)` registers one;
`Kernel.shrink(nr_to_scan)` runs every registered shrinker as memory pressure would,
and the page allocator runs them too when a reclaiming allocation finds no free page.
`count_objects` runs in atomic context. `scan_objects` runs in reclaim context, as
`do_shrink_slab` calls it; a shrinker built on a `list_lru` walks it with the lru
spinlock held around each isolate callback, so the callback is in atomic context and
may only trylock until it drops that lock (Rust Binder's shrinker drops it before
zapping the page, which may sleep).

Lock order: `_lock` (the shrinker list) is a leaf and is not held while callbacks run.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import sched
from ..context import enter_atomic, exit_atomic
from ..errors import EBUSY, KernelError
from ..site import Site, here
from ._raw import locked

__all__ = ["Shrinker", "ShrinkerList"]


class Shrinker:
    """One registered shrinker.

    Invariants: while `registered`, the shrinker is on its list and may be called.
    """

    def __init__(
        self,
        owner: ShrinkerList,
        name: str,
        count_objects: Callable[[], int],
        scan_objects: Callable[[int], int],
    ) -> None:
        self._owner = owner
        self.name = name
        self.count_objects = count_objects
        self.scan_objects = scan_objects
        self.registered = True
        self.site = here()

    def unregister(self) -> None:
        """`shrinker_free()`: after this returns the callbacks are never called again."""
        self._owner._remove(self)


class ShrinkerList:
    """The shrinkers of one kernel.

    Invariants: `_list` holds the registered shrinkers, names unique.
    """

    def __init__(self) -> None:
        self._lock = sched.active().raw_lock()
        self._list: list[Shrinker] = []

    def register(
        self, name: str, count_objects: Callable[[], int], scan_objects: Callable[[int], int]
    ) -> Shrinker:
        if not isinstance(name, str):
            raise TypeError("a shrinker needs a name")
        if not callable(count_objects) or not callable(scan_objects):
            raise TypeError("count_objects and scan_objects must be callable")
        s = Shrinker(self, name, count_objects, scan_objects)
        with locked(self._lock):
            if any(o.name == name for o in self._list):
                raise KernelError(EBUSY, f"a shrinker named '{name}' is already registered")
            self._list.append(s)
        return s

    def _remove(self, s: Shrinker) -> None:
        with locked(self._lock):
            if s in self._list:
                self._list.remove(s)
            s.registered = False

    def names(self) -> list[str]:
        with locked(self._lock):
            return [s.name for s in self._list]

    def shrink(self, nr_to_scan: int, site: Site | None = None) -> int:
        """Run every shrinker; returns the number of objects freed."""
        if not isinstance(nr_to_scan, int) or isinstance(nr_to_scan, bool) or nr_to_scan < 0:
            raise TypeError(f"nr_to_scan must be an int >= 0, got {nr_to_scan!r}")
        s_site = site if site is not None else here()
        with locked(self._lock):
            shrinkers = list(self._list)
        freed = 0
        for s in shrinkers:
            if not s.registered:
                continue
            sec = enter_atomic("spinlock", f"shrinker '{s.name}' count_objects()", s_site)
            try:
                count = s.count_objects()
            finally:
                exit_atomic(sec)
            if count <= 0:
                continue
            # scan_objects runs in reclaim context: a list_lru walk takes the lru spinlock
            # around each isolate callback itself, and a callback may drop it (as Rust
            # Binder's does before zapping, which may sleep).
            n = s.scan_objects(nr_to_scan)
            if not isinstance(n, int) or n < 0:
                raise TypeError(f"shrinker '{s.name}' returned {n!r} from scan_objects")
            freed += n
        return freed
