"""Hand-offs written inside nested functions and lambdas.

Factories of demo-style snippets define nested functions of the same name (`buggy` in
each): every one of them is checked, not only the last. A hand-off in a lambda's body
is checked too, when the lambda runs.

The locks are `Mutex`es, so that waiting for the thread under them is allowed.
"""

from __future__ import annotations

from collections.abc import Callable

from ownership.sync import Mutex
from ownership.task import spawn


def make_guard_handoff() -> Callable[[], None]:
    lock = Mutex([0], name="nested.lock")

    def buggy() -> None:
        g = lock.lock()  # runtime-origin
        try:
            spawn(lambda guard: guard.data.append(1), g).join()  # expect: send-handoff; runtime-site
        finally:
            g.drop()

    return buggy


def make_captured_handoff() -> Callable[[], None]:
    lock = Mutex([0], name="nested.captured")

    def buggy() -> None:
        g = lock.lock()

        def inner() -> None:
            spawn(lambda: g.data.clear()).join()  # expect: send-handoff

        try:
            inner()
        finally:
            g.drop()

    return buggy


def make_lambda_handoff() -> Callable[[], None]:
    lock = Mutex([0], name="nested.lambda")

    def buggy() -> None:
        with lock.lock() as g:
            later: Callable[[], object] = lambda: spawn(lambda h: h.data.clear(), g).join()  # expect: send-handoff
            later()

    return buggy


def make_fine() -> Callable[[], None]:
    lock = Mutex([0], name="nested.fine")

    def buggy() -> None:  # Same name as the nested functions above, and harmless.
        spawn(lambda m: m.lock().drop(), lock).join()

    return buggy


def main() -> None:
    make_guard_handoff()()
