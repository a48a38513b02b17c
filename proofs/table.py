"""The rule table as one value, and the mutations that make the vacuity twins.

A claim never reads `ownership.include` piecemeal: it receives a `Table` (the
operations, the rules the runtime check evaluates, the state rules that form the
invariant, the merge predicate). The real table is `TABLE`. A `Mutation` returns a
copy with one precondition or one conjunct removed (an operation's guard, an
operation's runtime check, one rule of the check, one conjunct of `CAN_MERGE`); a
claim's *twin* runs the same claim on the mutated table and must find a
counterexample, which shows that the removed piece is what the proof rests on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ownership.include import vma_expr as E
from ownership.include import vma_ops as O
from ownership.include import vma_rules as R

__all__ = [
    "TABLE",
    "Mutation",
    "Table",
    "drop_check",
    "drop_check_rule",
    "drop_guard",
    "drop_merge_conjunct",
]


@dataclass(frozen=True)
class Table:
    """What a claim quantifies over.

    Invariants: operation names are unique across `ops` and `v6_ops`; every rule id in
    `check_rules` and `state_rules` comes from `vma_rules.RULES`.
    """

    ops: tuple[O.VmaOp, ...]
    v6_ops: tuple[O.VmaOp, ...]
    check_rules: tuple[R.VmaRule, ...]
    state_rules: tuple[R.VmaRule, ...]
    can_merge: E.Expr
    merge_result: E.Expr
    installs_ptes: frozenset[str]

    @staticmethod
    def from_rules() -> Table:
        """The table exactly as `ownership.include` states it."""
        # INVARIANT: `OPS` and `V6_OPS` use distinct names (the v6 ones are prefixed).
        return Table(
            ops=O.OPS,
            v6_ops=O.V6_OPS,
            check_rules=R.RULES,
            state_rules=tuple(r for r in R.RULES if r.kind == "state"),
            can_merge=O.CAN_MERGE,
            merge_result=O.MERGE_RESULT,
            installs_ptes=O.INSTALLS_PTES,
        )

    def op(self, name: str) -> O.VmaOp:
        for o in (*self.ops, *self.v6_ops):
            if o.name == name:
                return o
        raise KeyError(f"no operation {name!r} in the rule table")

    def rule(self, rule_id: str) -> R.VmaRule:
        for r in R.RULES:
            if r.id == rule_id:
                return r
        raise KeyError(f"no rule {rule_id!r} in the rule table")

    @property
    def initial_ops(self) -> tuple[O.VmaOp, ...]:
        return tuple(o for o in self.ops if o.initial)

    @property
    def step_ops(self) -> tuple[O.VmaOp, ...]:
        """Every safe-API operation that changes an existing VMA's flags."""
        return tuple(o for o in self.ops if not o.initial)

    def v6_api(self) -> tuple[O.VmaOp, ...]:
        """The step operations of the v6 patch: the safe ones, with `set_flags` and
        `vm_insert_page` replaced by their v6 versions (unchecked, write-locked)."""
        replaced = {"set_flags": "v6_set_flags", "vm_insert_page": "v6_vm_insert_page"}
        return tuple(self.op(replaced.get(o.name, o.name)) for o in self.step_ops)

    def replace_op(self, op: O.VmaOp) -> Table:
        def swap(ops: tuple[O.VmaOp, ...]) -> tuple[O.VmaOp, ...]:
            return tuple(op if o.name == op.name else o for o in ops)

        return dataclasses.replace(self, ops=swap(self.ops), v6_ops=swap(self.v6_ops))


TABLE = Table.from_rules()


@dataclass(frozen=True)
class Mutation:
    """One precondition or conjunct removed from the table."""

    tag: str
    description: str
    apply: Callable[[Table], Table]


def drop_guard(op_name: str) -> Mutation:
    """The operation runs whatever the flags (its guard becomes `true`)."""

    def f(t: Table) -> Table:
        return t.replace_op(dataclasses.replace(t.op(op_name), guard=E.Lit(True)))

    return Mutation(f"{op_name}-unguarded", f"{op_name} without its guard", f)


def drop_check(op_name: str) -> Mutation:
    """The operation is no longer validated against the rules at run time."""

    def f(t: Table) -> Table:
        return t.replace_op(dataclasses.replace(t.op(op_name), checked=False))

    return Mutation(f"{op_name}-unchecked", f"{op_name} without the runtime rule check", f)


def drop_check_rule(rule_id: str) -> Mutation:
    """The runtime check forgets one rule (the invariant still demands it)."""

    def f(t: Table) -> Table:
        t.rule(rule_id)
        return dataclasses.replace(
            t, check_rules=tuple(r for r in t.check_rules if r.id != rule_id)
        )

    return Mutation(f"check-without-{rule_id}", f"the runtime check without rule {rule_id}", f)


def drop_merge_conjunct(index: int, label: str) -> Mutation:
    """`CAN_MERGE` loses its `index`-th conjunct."""

    def f(t: Table) -> Table:
        cm = t.can_merge
        if not isinstance(cm, E.And) or not 0 <= index < len(cm.args):
            raise ValueError(f"CAN_MERGE has no conjunct {index}")
        rest = tuple(a for i, a in enumerate(cm.args) if i != index)
        return dataclasses.replace(t, can_merge=E.And(*rest))

    return Mutation(f"merge-without-{label}", f"CAN_MERGE without its {label} conjunct", f)
