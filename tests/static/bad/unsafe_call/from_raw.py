"""`ARef.from_raw` takes over a reference count: it is unsafe, and needs a block."""

from __future__ import annotations

from ownership.aref import ARef


class Node:
    def __init__(self) -> None:
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1


def adopt(raw: Node) -> ARef[Node]:
    return ARef.from_raw(raw)  # expect: unsafe-call; runtime-site


def main() -> None:
    node = Node()
    node.inc_ref()
    adopt(node).drop()
