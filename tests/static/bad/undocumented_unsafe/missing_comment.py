"""An unsafe block whose `# SAFETY:` comment is missing or not right above it."""

from __future__ import annotations

from ownership.aref import ARef
from ownership.unsafe import unsafe

STATIC_ONLY = "a missing comment changes nothing when the code runs; only the checker sees it"


class Node:
    def __init__(self) -> None:
        self.refs = 1

    def inc_ref(self) -> None:
        self.refs += 1

    def dec_ref(self) -> None:
        self.refs -= 1


def adopt(raw: Node) -> ARef[Node]:
    with unsafe("SAFETY: the caller passes the increment it took with inc_ref."):  # expect: undocumented-unsafe
        return ARef.from_raw(raw)


def adopt_after_blank_line(raw: Node) -> ARef[Node]:
    # SAFETY: the caller passes the increment it took with inc_ref.

    with unsafe("SAFETY: the caller passes the increment it took with inc_ref."):  # expect: undocumented-unsafe
        return ARef.from_raw(raw)


def main() -> None:
    node = Node()
    node.inc_ref()
    adopt(node).drop()
    node.inc_ref()
    adopt_after_blank_line(node).drop()
