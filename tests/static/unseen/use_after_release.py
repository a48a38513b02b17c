"""What the static checker cannot see: a reference used after its guard was released.

`guard-escape` reports a reference obtained through a guard that leaves the function
(returned, stored on `self` or in a global); a reference kept in a local and used
after the `with` block that released its guard stays in the function, and the checker
does not track the reference's lifetime through the body. The runtime check catches the
use (`lifetime`): the reference dies with the guard.
"""

from __future__ import annotations

from ownership.borrow import Ref
from ownership.sync import SpinLock


class Table:
    def __init__(self) -> None:
        self.lock = SpinLock([1, 2, 3], name="Table.lock")

    def append_late(self) -> None:
        with self.lock.lock() as g:  # runtime-origin
            items: Ref[list[int]] = g.ref()
        items.get().append(4)  # runtime-site


def main() -> None:
    Table().append_late()
