"""A call three levels deep across two modules sleeps under a spinlock.

`register` (chain_a) calls `make_node` (chain_b), which calls `alloc_entry` (chain_b),
which allocates with `GFP_KERNEL`. The checker reports the call of `register` here,
with the chain of calls down to the allocation.
"""

from __future__ import annotations

from ownership.sync import SpinLock

from . import chain_a


class Registry:
    def __init__(self) -> None:
        self.lock = SpinLock(0, name="Registry.lock")

    def add(self, key: int) -> None:
        with self.lock.lock() as count:  # runtime-origin
            node = chain_a.register(key)  # expect: atomic-sleep
            count.data += 1
        node.drop()


def main() -> None:
    Registry().add(3)
