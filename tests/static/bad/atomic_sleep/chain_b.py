"""The bottom of a call chain: allocation that may sleep, two calls deep.

Nothing here is wrong on its own: these functions may sleep, and say so only through
what they call (`KBox.new` with `GFP_KERNEL`), which the checker summarises.
"""

from __future__ import annotations

from ownership.alloc import GFP_KERNEL, KBox


class Entry:
    def __init__(self, key: int) -> None:
        self.key = key


def alloc_entry(key: int) -> KBox[Entry]:
    return KBox.new(Entry(key), GFP_KERNEL)  # runtime-site


def make_node(key: int) -> KBox[Entry]:
    entry = alloc_entry(key)
    return entry
