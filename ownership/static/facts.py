"""The facts one walk of a module records, for the checks to judge later.

`CallFact` is one call with what the checks need once the callee's summary is known
(the atomic sections open at it, its arguments' GFP classification and `!Send`-ness,
its unsafe context); `FunctionFacts` and `ModuleFacts` gather them per function and per
module, with the module's `with unsafe(...)` blocks (`UnsafeBlock`); `Finding` and
`Note` are the diagnostics the checks emit, and `Region`/`State` the atomic sections
the walk tracks. The walk itself is `ownership.static.walker`; these records import no
walker code, so the analysis and the plugin can name them without loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mypy.nodes import Expression

from .summary import ClassDecl

__all__ = [
    "ArgFact",
    "CallFact",
    "Finding",
    "FunctionFacts",
    "ModuleFacts",
    "NonSendCheck",
    "Note",
    "Region",
    "State",
    "UnsafeBlock",
]


@dataclass(frozen=True)
class Note:
    """One line of explanation under a finding, optionally pointing at a source line.

    Invariants: `line` > 0 iff `path` is set.
    """

    text: str
    path: str | None = None
    line: int = 0


@dataclass
class Finding:
    """One diagnostic: a rule broken at `line`:`column` of the module being checked.

    Invariants: `code` is a rule of `ownership.static.codes` (or "ownership-static" for
    a failure of the checker itself); `column` is 0-based, as mypy's nodes count.
    """

    code: str
    line: int
    column: int
    message: str
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Region:
    """An atomic section open at some point of a function.

    Invariants: `kind` is "spinlock", "preempt", "rcu" or "irq"; `line` is where it
    began; `definite` is False when it is open on some paths only; `var` is the
    variable holding its guard, if any.
    """

    kind: str
    what: str
    line: int
    definite: bool = True
    var: str | None = None


State = dict[str, Region]


@dataclass
class ArgFact:
    """What matters about one argument of a call, for the callee's parameter it binds:
    its GFP classification, and the caller's own parameter it is, if any.

    Invariants: `gfp` is None (not a GFP value), "sleep", "nosleep", "unknown" or
    "fwd", and `gfp_fwd` names the caller's parameter iff `gfp` is "fwd".
    """

    text: str
    line: int
    gfp: str | None = None
    gfp_fwd: str | None = None
    param: str | None = None


NonSendCheck = Callable[[Expression], tuple[str, str | None, int]]
"""An argument's source text, why its value is `!Send` (None if it is Send), and where
it was made; computed on demand, for the calls whose callee hands values over."""


@dataclass
class CallFact:
    """One call in a function body, as the walk saw it.

    Invariants: `callees` are full names of every function the call may reach;
    `label` is the call's source text and `extra` what it implicitly runs, if anything;
    `regions` are the atomic sections open at the call (the guard a `CondVar.wait`
    releases is not among them); `unsafe_ctx` is "block", "fn" or "none".
    """

    line: int
    column: int
    callees: tuple[str, ...]
    label: str
    extra: str
    args: dict[str, ArgFact]
    regions: tuple[Region, ...]
    unsafe_ctx: str
    unsafe_block: int = 0
    bound: dict[str, list[Expression]] = field(default_factory=dict)
    nonsend: NonSendCheck | None = None

    def nonsend_arg(self, formal: str) -> tuple[str, str, int] | None:
        """(source text, why it is !Send, where it was made) of the argument bound to
        `formal`, when its value is `!Send`."""
        if self.nonsend is None:
            return None
        for e in self.bound.get(formal, ()):
            text, reason, origin = self.nonsend(e)
            if reason is not None:
                return text, reason, origin
        return None


@dataclass
class UnsafeBlock:
    """A `with unsafe(...)` statement and the state of its justification.

    Invariants: `argument` is "ok", "empty" (the `unsafe("...")` string without its
    text) or "missing" (no argument), as `ownership.static.safety.argument_state` says.
    """

    line: int
    column: int
    argument: str


@dataclass
class FunctionFacts:
    """Everything recorded about one function (or a module's top level).

    Invariants: `declared_sleep` is None when the function has no `@may_sleep`, () for
    a plain `@may_sleep`, and the GFP parameter names of `@may_sleep(gfp=...)`.
    """

    fullname: str
    line: int
    params: tuple[str, ...]
    declared_sleep: tuple[str, ...] | None = None
    unsafe: str | None = None
    gfp_defaults: dict[str, str] = field(default_factory=dict)
    calls: list[CallFact] = field(default_factory=list)


@dataclass
class ModuleFacts:
    """The facts of one module: its functions, its classes' Send/Sync declarations,
    its unsafe blocks, and the findings that needed no summary.

    Invariants: `lines` are the module's source lines (as read when it was walked);
    `functions` is keyed by full name (`<module>`/`<class>` for top-level code).
    """

    module: str
    path: str
    lines: list[str]
    functions: dict[str, FunctionFacts] = field(default_factory=dict)
    classes: dict[str, ClassDecl] = field(default_factory=dict)
    unsafe_blocks: list[UnsafeBlock] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
