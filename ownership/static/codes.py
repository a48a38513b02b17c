"""The static rules: one stable id (a mypy error code) per rule, with its help text.

This table is shared by the mypy plugin (which turns each rule into an `ErrorCode`),
the command line (text, JSON and SARIF reports) and the SARIF writer used by
`python -m ownership contracts`. It imports nothing from mypy, so the contract review
can describe the rules without loading the type checker.

Each static rule has a runtime counterpart: the `SafetyViolation` class and `.rule`
id that the model raises when the same bug actually runs (`runtime_class`,
`runtime_rule`). The corpus tests use that pairing to check that static and dynamic
checks agree.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ATOMIC_SLEEP",
    "GUARD_ESCAPE",
    "RULES",
    "RULES_BY_CODE",
    "SEND_HANDOFF",
    "UNDOCUMENTED_UNSAFE",
    "UNSAFE_CALL",
    "Rule",
]


class Rule(NamedTuple):
    """One static rule (a NamedTuple: this module is imported by every mypy run).

    Invariants: `code` is a valid mypy error code (lowercase words joined by `-`) and
    unique among `RULES`; `runtime_class` names a class of `ownership.errors` or is
    None when no runtime check can see the bug.
    """

    code: str
    name: str
    summary: str
    help: str
    runtime_class: str | None
    runtime_rule: str | None


ATOMIC_SLEEP = Rule(
    code="atomic-sleep",
    name="SleepInAtomicContext",
    summary="A function that may sleep is called in atomic context.",
    help=(
        "A call to a may-sleep function (declared with @ownership.context.may_sleep, a "
        "GFP_KERNEL allocation, Mutex.lock, mmap_read_lock, dropping an ARef whose "
        "dec_ref sleeps, or a driver function that transitively calls one) while a "
        "SpinLock guard is held, inside preempt_disabled(), rcu_read_lock() or "
        "local_irq_disable(). Take the lock after the sleeping call (allocate first, "
        "as get_thread does with its RBTree node), or use GFP_ATOMIC/GFP_NOWAIT."
    ),
    runtime_class="AtomicSleepError",
    runtime_rule="atomic-sleep",
)

UNDOCUMENTED_UNSAFE = Rule(
    code="undocumented-unsafe",
    name="UndocumentedUnsafe",
    summary="An unsafe block has no SAFETY justification.",
    help=(
        'Every `with unsafe("SAFETY: ..."):` block says in its string why the Safety '
        "contracts of the unsafe functions it calls hold, as clippy's "
        "undocumented_unsafe_blocks requires of the kernel's `// SAFETY:` comments. The "
        "runtime keeps the same string, so it is the one place for the reason: a "
        "`# SAFETY:` comment above the block is not needed and does not count. A string "
        "with nothing after `SAFETY:` does not count either."
    ),
    runtime_class="UnsafeError",
    runtime_rule="undocumented-unsafe",
)

UNSAFE_CALL = Rule(
    code="unsafe-call",
    name="UnsafeCallOutsideUnsafe",
    summary="An unsafe function is called outside an unsafe block.",
    help=(
        "A function declared with @ownership.unsafe.unsafe_fn may only be called inside "
        '`with unsafe("SAFETY: ..."):`, whose string argues that its Safety contract '
        "holds. The body of another unsafe function is not an unsafe block: a call made "
        "there needs a block of its own, as the kernel builds with "
        "`-D unsafe_op_in_unsafe_fn` (the runtime allows that call, since its caller "
        "was in a block; only the checker reports it)."
    ),
    runtime_class="UnsafeError",
    runtime_rule="unsafe-call",
)

SEND_HANDOFF = Rule(
    code="send-handoff",
    name="NotSendHandoff",
    summary="A !Send value is handed to another thread.",
    help=(
        "spawn(), queue_work() and every function that passes a parameter to "
        "ownership.marker.check_send hand their arguments to another thread. A value "
        "whose type is !Send (lock guards, the mmap and VMA guards, VmAreaMut, classes "
        "deriving from NotThreadSafe or declared not_send) must stay on the thread that "
        "made it; Arc/ARef of a !Send or !Sync type are !Send too."
    ),
    runtime_class="SendError",
    runtime_rule="send",
)

GUARD_ESCAPE = Rule(
    code="guard-escape",
    name="GuardEscape",
    summary="A reference obtained through a guard outlives the guard.",
    help=(
        "A reference obtained from a lock guard (vma_lookup's VmAreaRef, guard.ref(), "
        "the guard's .data, or the guard of a with block itself) dies when the guard is "
        "released. Returning it from the function that took the guard, or storing it on "
        "self or in a global, lets it be used after the lock is gone."
    ),
    runtime_class="LifetimeError",
    runtime_rule="lifetime",
)

RULES: tuple[Rule, ...] = (
    ATOMIC_SLEEP,
    UNDOCUMENTED_UNSAFE,
    UNSAFE_CALL,
    SEND_HANDOFF,
    GUARD_ESCAPE,
)
RULES_BY_CODE: dict[str, Rule] = {r.code: r for r in RULES}
