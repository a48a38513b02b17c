"""Unsafe blocks justified by their `unsafe("SAFETY: ...")` string (no comment needed),
one of them in an unsafe function's body (which is not an unsafe block itself)."""

from __future__ import annotations

from ownership.aref import ARef
from ownership.unsafe import unsafe, unsafe_fn


class Node:
    def __init__(self) -> None:
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1


@unsafe_fn(safety="`raw` carries one increment that the caller gives up.")
def adopt(raw: Node) -> ARef[Node]:
    with unsafe("SAFETY: our own contract hands us the increment `from_raw` takes over."):
        return ARef.from_raw(raw)


def borrow_and_adopt(node: Node) -> ARef[Node]:
    node.inc_ref()
    with unsafe(
        "SAFETY: the increment taken on the line above is given to the new ARef, "
        "which `adopt` requires; nothing else will drop it."
    ):
        return adopt(node)


def adopt_after_comment(node: Node) -> ARef[Node]:
    node.inc_ref()
    # An unrelated comment above the block is fine: the string is the justification.

    with unsafe("SAFETY: the increment taken above is handed over."):
        return adopt(node)


def main() -> None:
    node = Node()
    borrow_and_adopt(node).drop()
    adopt_after_comment(node).drop()
    assert node.refs == 1
