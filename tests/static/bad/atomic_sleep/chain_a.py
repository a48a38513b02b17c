"""The middle of the call chain, in another module: `register` may sleep transitively."""

from __future__ import annotations

from ownership.alloc import KBox

from . import chain_b


def register(key: int) -> KBox[chain_b.Entry]:
    node = chain_b.make_node(key)
    return node
