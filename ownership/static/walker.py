"""The flow-sensitive walk that gathers the facts of one module's functions.

For every function the walk records each call with what the checks need to judge it
later, once the callee's summary is known (the callee may live in another module, or
later in this one):

* the atomic sections open at the call: `with x.lock():` of a `SpinLock`, a
  `g = x.lock()` not yet `g.drop()`ped, `preempt_disabled()`, `rcu_read_lock()`,
  `local_irq_disable()`, a `preempt_disable()` not yet `preempt_enable()`d, or a
  `SpinLockGuard` parameter (the caller holds the lock);
* for each argument bound to a parameter of the callee: whether it is a GFP value
  that allows direct reclaim, the caller's own parameter it forwards, and whether its
  type is `!Send`;
* whether the call sits in a `with unsafe(...)` block or an unsafe function.

Facts that need no summary are turned into findings during the walk: a reference
obtained through a guard that is returned or stored on `self` or a global
(`guard-escape`), and a `with unsafe(...)` whose justification is missing or empty.

The walk is flow-sensitive where the model needs it: a guard dropped on one branch is
still held on the other, a branch that returns does not flow on, loops are iterated to
a fixed point (facts are recorded in the last pass only), and the else branch of
`if g is None:` knows the guard is there. It is not path-sensitive beyond that; a
guard that is only *maybe* held counts as held (the count is reported as `0..1`).

Functions defined inside functions are walked as functions of their own, named
`<enclosing function>.<name>` (mypy's own name for them is the bare name, which the
nested `buggy`s of two factories share); a lambda's body is walked as an anonymous
nested function (`<enclosing>.<lambda@line:col>`) with no atomic section open, since
it runs when called, but inside the unsafe block or unsafe function it is written in.

The walk's state is split from the recorded facts (the records of
`ownership.static.facts`): `State` maps open sections by key and is copied at branches,
while `FunctionFacts` accumulates the calls and is only appended to in recording passes.
A `with unsafe(...)` block's justification is its string argument
(`ownership.static.safety`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mypy.nodes import (
    GDEF,
    LDEF,
    AssertStmt,
    AssignmentStmt,
    Block,
    BreakStmt,
    CallExpr,
    ClassDef,
    ComparisonExpr,
    ContinueStmt,
    Decorator,
    DelStmt,
    Expression,
    ExpressionStmt,
    FakeInfo,
    ForStmt,
    FuncDef,
    IfStmt,
    IndexExpr,
    IntExpr,
    LambdaExpr,
    MatchStmt,
    MemberExpr,
    MypyFile,
    NameExpr,
    Node,
    OperatorAssignmentStmt,
    OpExpr,
    OverloadedFuncDef,
    RaiseStmt,
    RefExpr,
    ReturnStmt,
    Statement,
    TryStmt,
    TupleExpr,
    TypeInfo,
    UnaryExpr,
    Var,
    WhileStmt,
    WithStmt,
)
from mypy.types import CallableType, Instance, Overloaded, ProperType, get_proper_type

from . import gfp as gfp_eval
from .facts import (
    ArgFact,
    CallFact,
    Finding,
    FunctionFacts,
    ModuleFacts,
    NonSendCheck,
    Note,
    Region,
    State,
    UnsafeBlock,
)
from .resolve import (
    ATOMIC_CONTEXT_FUNCS,
    ClassLookup,
    Typer,
    atomic_kind,
    bind_args,
    expr_children,
    format_type,
    instances,
    is_copy_type,
    is_guard_type,
    is_reference_type,
    iter_exprs,
    not_send_reason,
)
from .safety import argument_state, str_value, text_value
from .summary import ClassDecl

__all__ = [
    "FunctionWalker",
    "ModuleWalker",
    "class_decl_of",
    "extract_module",
    "join",
    "scan_class_decls",
]

MAY_SLEEP = "ownership.context.may_sleep"
UNSAFE_FN = "ownership.unsafe.unsafe_fn"
UNSAFE_BLOCK = "ownership.unsafe.unsafe"
PREEMPT_DISABLE = "ownership.context.preempt_disable"
PREEMPT_ENABLE = "ownership.context.preempt_enable"
AREF_DROP = "ownership.aref.ARef.drop"
ARC_DROP = "ownership.sync.arc.Arc.drop"
CONDVAR_WAITS = frozenset(
    {"ownership.sync.condvar.CondVar.wait", "ownership.sync.condvar.CondVar.wait_timeout"}
)
MARKER_DECLS = {
    "ownership.marker.impl_send": ("send", True),
    "ownership.marker.impl_sync": ("sync", True),
    "ownership.marker.not_send": ("send", False),
    "ownership.marker.not_sync": ("sync", False),
}
STORE_METHODS = frozenset({"append", "add", "insert", "setdefault", "appendleft"})

_KIND_TEXT = {
    "spinlock": "SpinLock guard",
    "preempt": "preempt_disable()",
    "rcu": "rcu_read_lock()",
    "irq": "local_irq_disable()",
}


def _kwarg(call: CallExpr, name: str) -> Expression | None:
    for arg, n in zip(call.args, call.arg_names):
        if n == name:
            return arg
    return None


def _decorator_name(d: Expression) -> str:
    target = d.callee if isinstance(d, CallExpr) else d
    return target.fullname if isinstance(target, RefExpr) else ""


def class_decl_of(cdef: ClassDef) -> ClassDecl | None:
    """The `impl_send`/`not_send`/`impl_sync`/`not_sync` decorators of a class."""
    send: bool | None = None
    sync: bool | None = None
    for d in cdef.decorators:
        decl = MARKER_DECLS.get(_decorator_name(d))
        if decl is None:
            continue
        trait, value = decl
        if trait == "send":
            send = value
        else:
            sync = value
    if send is None and sync is None:
        return None
    return ClassDecl(send, sync)


def scan_class_decls(tree: MypyFile) -> dict[str, ClassDecl]:
    """The Send/Sync declarations of every class of a module, without a full walk."""
    out: dict[str, ClassDecl] = {}
    stack: list[Statement] = list(tree.defs)
    while stack:
        s = stack.pop()
        if isinstance(s, ClassDef):
            decl = class_decl_of(s)
            if decl is not None:
                out[s.fullname] = decl
            stack.extend(s.defs.body)
        elif isinstance(s, (IfStmt,)):
            for b in s.body:
                stack.extend(b.body)
            if s.else_body is not None:
                stack.extend(s.else_body.body)
    return out


class ModuleWalker:
    """Walks one module and fills a `ModuleFacts`.

    Invariants: every function walked has its `FunctionFacts` in `facts.functions`.
    """

    def __init__(
        self, tree: MypyFile, typer: Typer, lines: list[str], classes: ClassLookup
    ) -> None:
        self.tree = tree
        self.typer = typer
        self.classes = classes
        self.facts = ModuleFacts(tree.fullname, tree.path, lines)
        _name_nested_functions(tree.defs, None, typer.local_names)

    def run(self) -> ModuleFacts:
        top = FunctionWalker(self, f"{self.tree.fullname}.<module>", 1, None, (), None)
        top.walk_block(self.tree.defs)
        self.facts.functions[top.facts.fullname] = top.facts
        return self.facts

    def define_function(self, fullname: str) -> bool:
        """Walk just one function, found by its full name in the module's symbol tables
        (a module of an import cycle that mypy has not checked yet: only the functions
        other modules call are needed). False when it is not found there."""
        prefix = self.tree.fullname + "."
        if not fullname.startswith(prefix):
            return False
        names = self.tree.names
        node: Node | None = None
        for part in fullname[len(prefix) :].split("."):
            sym = names.get(part)
            node = sym.node if sym is not None else None
            if isinstance(node, TypeInfo):
                names = node.names
        if isinstance(node, OverloadedFuncDef):
            node = node.impl if node.impl is not None else (node.items[0] if node.items else None)
        if isinstance(node, Decorator):
            self.function(node.func, list(node.original_decorators or node.decorators), None)
            return True
        if isinstance(node, FuncDef):
            self.function(node, [], None)
            return True
        return False

    # Definitions found while walking are analysed as functions of their own.

    def define(self, stmt: Statement, outer: FunctionWalker | None) -> None:
        if isinstance(stmt, FuncDef):
            self.function(stmt, [], outer)
        elif isinstance(stmt, Decorator):
            decorators = list(stmt.original_decorators or stmt.decorators)
            self.function(stmt.func, decorators, outer)
        elif isinstance(stmt, OverloadedFuncDef):
            if stmt.impl is not None:
                self.define(stmt.impl, outer)
            else:
                for item in stmt.items:
                    self.define(item, outer)
        elif isinstance(stmt, ClassDef):
            self.class_def(stmt, outer)

    def lambda_def(self, lam: LambdaExpr, outer: FunctionWalker) -> None:
        """A lambda's body, walked as an anonymous nested function: no atomic section
        is open when it runs, but it shares the unsafe block or unsafe function it is
        written in (a closure does in Rust)."""
        name = f"{outer.facts.fullname}.<lambda@{lam.line}:{lam.column}>"
        w = FunctionWalker(
            self, name, lam.line, None, tuple(a.variable.name for a in lam.arguments), outer
        )
        for a in lam.arguments:
            w.param_vars[a.variable] = a.variable.name
            w.local_vars.add(a.variable)
        w.unsafe_blocks = list(outer.unsafe_blocks)
        w.unsafe_fn_ctx = outer.facts.unsafe is not None or outer.unsafe_fn_ctx
        w.expr(lam.expr(), {})
        self.facts.functions[name] = w.facts

    def class_def(self, cdef: ClassDef, outer: FunctionWalker | None) -> None:
        decl = class_decl_of(cdef)
        if decl is not None:
            self.facts.classes[cdef.fullname] = decl
        body = FunctionWalker(self, f"{cdef.fullname}.<class>", cdef.line, None, (), outer)
        body.walk_block(cdef.defs.body)
        if body.facts.calls:
            self.facts.functions[body.facts.fullname] = body.facts

    def function(
        self, fdef: FuncDef, decorators: list[Expression], outer: FunctionWalker | None
    ) -> None:
        declared: tuple[str, ...] | None = None
        unsafe: str | None = None
        for d in decorators:
            name = _decorator_name(d)
            if name == MAY_SLEEP:
                gfp_arg = _kwarg(d, "gfp") if isinstance(d, CallExpr) else None
                value = str_value(gfp_arg)
                declared = (value,) if value else ()
            elif name == UNSAFE_FN and isinstance(d, CallExpr):
                unsafe = text_value(_kwarg(d, "safety")) or "(not a literal string)"
        w = FunctionWalker(self, self.typer.name_of(fdef), fdef.line, fdef, (), outer)
        w.facts.declared_sleep = declared
        w.facts.unsafe = unsafe
        w.run()
        self.facts.functions[w.facts.fullname] = w.facts


@dataclass
class GuardInfo:
    """A guard acquired in the function being walked (for `guard-escape`).

    Invariants: `line` is where it was taken, `text` the expression that took it;
    `scoped` is True for the target of a `with` block (released when the block ends).
    """

    line: int
    text: str
    scoped: bool


@dataclass
class Borrow:
    """A value borrowed through a guard of this function (for `guard-escape`).

    Invariants: `guard` names a variable of `FunctionWalker.guards`, taken at
    `guard_line`; the borrow was made at `line`; `what` describes it for reports.
    """

    guard: str
    guard_line: int
    line: int
    what: str


class FunctionWalker:
    """The flow-sensitive walk of one function body.

    Invariants: facts are appended only while `recording` (the last pass over a
    loop); `loops`/`loop_depths`/`with_keys` mirror the loops and `with` blocks
    enclosing the statement being walked; `local_vars` are the function's own
    variables seen so far (parameters included) and those of the enclosing functions
    it may capture; `unsafe_fn_ctx` is True for a lambda written in an unsafe
    function's body (a closure shares its unsafe context, as in Rust).
    """

    def __init__(
        self,
        mod: ModuleWalker,
        fullname: str,
        line: int,
        fdef: FuncDef | None,
        params: tuple[str, ...],
        outer: FunctionWalker | None,
    ) -> None:
        self.mod = mod
        self.typer = mod.typer
        self.fdef = fdef
        self.outer = outer
        names = tuple(a.variable.name for a in fdef.arguments) if fdef is not None else params
        self.facts = FunctionFacts(fullname, line, names)
        self.param_vars: dict[Var, str] = {}
        self.self_var: Var | None = None
        if fdef is not None:
            for a in fdef.arguments:
                self.param_vars[a.variable] = a.variable.name
            if not isinstance(fdef.info, FakeInfo) and not fdef.is_static and fdef.arguments:
                self.self_var = fdef.arguments[0].variable
        self.loop_alias: dict[Var, str] = {}
        self.local_vars: set[Var] = set(self.param_vars)
        if outer is not None:
            self.local_vars |= outer.local_vars
        self.unsafe_fn_ctx = False
        self.local_defs: dict[str, FuncDef] = {}
        self.recording = True
        self.loops: list[tuple[list[State], list[State]]] = []
        self.loop_depths: list[int] = []
        self.with_keys: list[list[str]] = []
        self.unsafe_blocks: list[int] = []
        self.guards: dict[str, GuardInfo] = {}
        self.borrowed: dict[str, Borrow] = {}
        self.escapes: set[tuple[int, str]] = set()

    # --- helpers ---------------------------------------------------------------

    def src(self, e: Expression) -> str:
        lines = self.mod.facts.lines
        if (
            e.line > 0
            and e.end_line == e.line
            and e.end_column is not None
            and 0 < e.line <= len(lines)
        ):
            text = lines[e.line - 1][e.column : e.end_column]
            if text:
                return text
        if isinstance(e, NameExpr):
            return e.name
        if isinstance(e, MemberExpr):
            return f"{self.src(e.expr)}.{e.name}"
        if isinstance(e, CallExpr):
            return f"{self.src(e.callee)}(...)"
        return "<expression>"

    def type_of(self, e: Expression) -> ProperType | None:
        return self.typer.type_of(e)

    def finding(self, f: Finding) -> None:
        if self.recording:
            self.mod.facts.findings.append(f)

    # --- entry -------------------------------------------------------------------

    def run(self) -> None:
        fdef = self.fdef
        assert fdef is not None
        st: State = {}
        for a in fdef.arguments:
            var = a.variable
            if a.initializer is not None:
                cls = gfp_eval.classify(a.initializer, self.typer, {}, {})
                if cls is not None and cls[0] != "fwd":
                    self.facts.gfp_defaults[var.name] = cls[0]
            kind = atomic_kind(get_proper_type(var.type) if var.type is not None else None)
            if kind is not None:
                # The caller holds this guard: the whole body runs in atomic context.
                what = f"the {_KIND_TEXT[kind]} `{var.name}` passed in by the caller"
                st[f"var:{var.name}"] = Region(kind, what, fdef.line, True, var.name)
        self.walk_block(fdef.body.body, st)

    def walk_block(
        self, stmts: list[Statement], st: State | None = None, seen: list[State] | None = None
    ) -> State | None:
        cur: State | None = st if st is not None else {}
        for s in stmts:
            if cur is None:
                return None
            cur = self.stmt(s, cur)
            if seen is not None and cur is not None:
                seen.append(dict(cur))
        return cur

    def block(self, b: Block | None, st: State, seen: list[State] | None = None) -> State | None:
        if b is None:
            return st
        if b.is_unreachable:
            return st
        return self.walk_block(b.body, st, seen)

    # --- statements ----------------------------------------------------------------

    def stmt(self, s: Statement, st: State) -> State | None:
        if isinstance(s, ExpressionStmt):
            self.expr(s.expr, st)
            return st
        if isinstance(s, AssignmentStmt):
            return self.assign(s, st)
        if isinstance(s, OperatorAssignmentStmt):
            self.expr(s.rvalue, st)
            self.expr(s.lvalue, st)
            return st
        if isinstance(s, WithStmt):
            return self.with_stmt(s, st)
        if isinstance(s, IfStmt):
            return self.if_stmt(s, st)
        if isinstance(s, WhileStmt):
            return self.loop(st, s.expr, None, None, s.body, s.else_body, _always_true(s.expr))
        if isinstance(s, ForStmt):
            return self.loop(st, None, s.index, s.expr, s.body, s.else_body, False)
        if isinstance(s, TryStmt):
            return self.try_stmt(s, st)
        if isinstance(s, ReturnStmt):
            if s.expr is not None:
                self.expr(s.expr, st)
                self.check_escape(s.expr, "returned from the function", s.line)
            return None
        if isinstance(s, RaiseStmt):
            if s.expr is not None:
                self.expr(s.expr, st)
            return None
        if isinstance(s, (BreakStmt, ContinueStmt)):
            if self.loops:
                # Leaving the loop body closes the `with` blocks entered inside it.
                out = dict(st)
                for keys in self.with_keys[self.loop_depths[-1] :]:
                    for k in keys:
                        out.pop(k, None)
                self.loops[-1][0 if isinstance(s, BreakStmt) else 1].append(out)
            return None
        if isinstance(s, (AssertStmt,)):
            self.expr(s.expr, st)
            if s.msg is not None:
                self.expr(s.msg, st)
            return st
        if isinstance(s, DelStmt):
            self.expr(s.expr, st)
            return st
        if isinstance(s, MatchStmt):
            self.expr(s.subject, st)
            outs: list[State | None] = [st]
            for guard, body in zip(s.guards, s.bodies):
                branch = dict(st)
                if guard is not None:
                    self.expr(guard, branch)
                outs.append(self.block(body, branch))
            return join(outs)
        if isinstance(s, Block):
            return self.block(s, st)
        if isinstance(s, (FuncDef, Decorator, OverloadedFuncDef, ClassDef)):
            if self.recording:
                if isinstance(s, FuncDef):
                    self.local_defs[s.name] = s
                elif isinstance(s, Decorator):
                    self.local_defs[s.func.name] = s.func
                self.mod.define(s, self)
            return st
        return st

    def assign(self, s: AssignmentStmt, st: State) -> State:
        self.expr(s.rvalue, st)
        for lv in s.lvalues:
            if isinstance(lv, (MemberExpr, IndexExpr)):
                for child in expr_children(lv):
                    self.expr(child, st)
        rtype = self.type_of(s.rvalue)
        borrow = self.borrow_of(s.rvalue)
        for lv in s.lvalues:
            self.check_store(lv, s.rvalue, borrow, s.line)
            if not isinstance(lv, NameExpr):
                continue
            name = lv.name
            var = lv.node
            if isinstance(var, Var):
                self.typer.locals[var] = s.rvalue
                if lv.kind == LDEF or var in self.local_vars:
                    self.local_vars.add(var)
            kind = atomic_kind(rtype) if isinstance(s.rvalue, CallExpr) else None
            if isinstance(s.rvalue, CallExpr) and PREEMPT_DISABLE in self.callee_names(s.rvalue):
                kind = "preempt"
            key = f"var:{name}"
            if kind is not None:
                # INVARIANT: a section taken on this path is definitely open on it.
                st[key] = Region(kind, self.region_what(kind, s.rvalue), s.line, True, name)
            if isinstance(s.rvalue, CallExpr) and is_guard_type(rtype):
                self.guards[name] = GuardInfo(s.line, self.src(s.rvalue), False)
            if borrow is not None:
                self.borrowed[name] = borrow
            else:
                self.borrowed.pop(name, None)
        return st

    def with_stmt(self, s: WithStmt, st: State) -> State | None:
        added: list[str] = []
        pushed = 0
        for expr, target in zip(s.expr, s.target):
            self.expr(expr, st)
            t = self.type_of(expr)
            if self.is_unsafe_block(expr, t):
                self.unsafe_block(s, expr)
                self.unsafe_blocks.append(s.line)
                pushed += 1
                continue
            tgt = target.name if isinstance(target, NameExpr) else None
            if isinstance(target, NameExpr) and isinstance(target.node, Var):
                self.local_vars.add(target.node)
                self.typer.locals[target.node] = expr
            if isinstance(expr, NameExpr) and f"var:{expr.name}" in st:
                # `with g:` over a guard taken earlier: released when the block ends.
                added.append(f"var:{expr.name}")
                continue
            kind = atomic_kind(t)
            if kind is None and isinstance(expr, CallExpr):
                for name in self.callee_names(expr):
                    kind = ATOMIC_CONTEXT_FUNCS.get(name, kind)
            if kind is not None:
                key = f"var:{tgt}" if tgt else f"with:{s.line}:{expr.column}"
                st[key] = Region(kind, self.region_what(kind, expr), s.line, True, tgt)
                added.append(key)
            if tgt is not None and is_guard_type(t):
                self.guards[tgt] = GuardInfo(s.line, self.src(expr), True)
        self.with_keys.append(added)
        out = self.block(s.body, st)
        self.with_keys.pop()
        for _ in range(pushed):
            self.unsafe_blocks.pop()
        if out is not None:
            for k in added:
                out.pop(k, None)
        return out

    def if_stmt(self, s: IfStmt, st: State) -> State | None:
        outs: list[State | None] = []
        cur = st
        for cond, body in zip(s.expr, s.body):
            self.expr(cond, cur)
            then_st, else_st = dict(cur), dict(cur)
            self.narrow(cond, then_st, else_st)
            outs.append(self.block(body, then_st))
            cur = else_st
        outs.append(self.block(s.else_body, cur) if s.else_body is not None else cur)
        return join(outs)

    def narrow(self, cond: Expression, then_st: State, else_st: State) -> None:
        """`if g is None:` / `if g:` etc.: where the guard variable is None it is not held."""
        if isinstance(cond, NameExpr):
            else_st.pop(f"var:{cond.name}", None)
        elif isinstance(cond, UnaryExpr) and cond.op == "not" and isinstance(cond.expr, NameExpr):
            then_st.pop(f"var:{cond.expr.name}", None)
        elif (
            isinstance(cond, ComparisonExpr)
            and len(cond.operators) == 1
            and cond.operators[0] in ("is", "is not")
            and len(cond.operands) == 2
        ):
            left, right = cond.operands
            if (
                isinstance(left, NameExpr)
                and isinstance(right, NameExpr)
                and right.fullname == "builtins.None"
            ):
                key = f"var:{left.name}"
                (then_st if cond.operators[0] == "is" else else_st).pop(key, None)

    def loop(
        self,
        st: State,
        cond: Expression | None,
        index: Expression | None,
        iterable: Expression | None,
        body: Block,
        else_body: Block | None,
        infinite: bool,
    ) -> State | None:
        if iterable is not None:
            self.expr(iterable, st)
            if isinstance(index, NameExpr) and isinstance(index.node, Var):
                self.local_vars.add(index.node)
                if isinstance(iterable, NameExpr) and isinstance(iterable.node, Var):
                    param = self.param_vars.get(iterable.node)
                    if param is not None:
                        self.loop_alias[index.node] = param
        entry = dict(st)
        head: State = dict(entry)
        saved = self.recording
        self.recording = False
        for _ in range(6):
            cur = dict(head)
            if cond is not None:
                self.expr(cond, cur)
            self.loops.append(([], []))
            self.loop_depths.append(len(self.with_keys))
            out = self.block(body, cur)
            self.loop_depths.pop()
            _, conts = self.loops.pop()
            new_head = join([entry, out, *conts])
            if new_head is None or _same(new_head, head):
                break
            head = new_head
        self.recording = saved
        cur = dict(head)
        if cond is not None:
            self.expr(cond, cur)
        exit_state: State | None = None if infinite else dict(cur)
        self.loops.append(([], []))
        self.loop_depths.append(len(self.with_keys))
        self.block(body, cur)
        self.loop_depths.pop()
        breaks, _ = self.loops.pop()
        if exit_state is not None and else_body is not None:
            exit_state = self.block(else_body, exit_state)
        return join([exit_state, *breaks])

    def try_stmt(self, s: TryStmt, st: State) -> State | None:
        seen: list[State] = [dict(st)]
        out = self.block(s.body, st, seen)
        handler_in = join(list(seen))
        if out is not None and s.else_body is not None:
            out = self.block(s.else_body, out)
        outs: list[State | None] = [out]
        for h in s.handlers:
            outs.append(self.block(h, dict(handler_in)) if handler_in is not None else None)
        res = join(outs)
        if s.finally_body is not None:
            fin_in = res if res is not None else handler_in
            fin_out = self.block(s.finally_body, dict(fin_in) if fin_in is not None else {})
            return fin_out if res is not None else None
        return res

    # --- expressions ---------------------------------------------------------------

    def expr(self, e: Expression, st: State) -> None:
        if isinstance(e, LambdaExpr):
            # Its body runs later, when it is called: a function of its own.
            if self.recording:
                self.mod.lambda_def(e, self)
            return
        for child in expr_children(e):
            self.expr(child, st)
        if isinstance(e, CallExpr):
            self.call(e, st)

    def callee_names(self, call: CallExpr) -> list[str]:
        return [c.fullname for c in self.typer.callees(call)]

    def call(self, call: CallExpr, st: State) -> None:
        callees = self.typer.callees(call)
        names = [c.fullname for c in callees]
        label = self.label(call)
        extra = ""
        regions = dict(st)
        resolved: list[str] = []
        for name in names:
            if name in (AREF_DROP, ARC_DROP):
                targets = self.drop_targets(call, name)
                resolved.extend(targets)
                if targets:
                    hook = ".".join(targets[0].rsplit(".", 2)[-2:])
                    extra = f" (dropping `{format_type(self.receiver_type(call))}` runs `{hook}()`)"
            else:
                resolved.append(name)
            if name in CONDVAR_WAITS and call.args and isinstance(call.args[0], NameExpr):
                # The wait releases this guard's lock before sleeping.
                regions.pop(f"var:{call.args[0].name}", None)
        args: dict[str, ArgFact] = {}
        bound: dict[str, list[Expression]] = {}
        for c in callees:
            for formal, exprs in bind_args(call, c).items():
                if formal in bound:
                    continue
                bound[formal] = exprs
                fact = self.arg_fact(exprs)
                if fact is not None:
                    args[formal] = fact
        if self.recording:
            if self.unsafe_blocks:
                ctx, block = "block", self.unsafe_blocks[-1]
            elif self.facts.unsafe is not None or self.unsafe_fn_ctx:
                ctx, block = "fn", 0
            else:
                ctx, block = "none", 0
            self.facts.calls.append(
                CallFact(
                    line=call.line,
                    column=call.column,
                    callees=tuple(dict.fromkeys(resolved)),
                    label=label,
                    extra=extra,
                    args=args,
                    regions=tuple(regions.values()),
                    unsafe_ctx=ctx,
                    unsafe_block=block,
                    bound=bound,
                    nonsend=self.nonsend_at_call(bound),
                )
            )
        self.check_container_store(call)
        # Effects of the call on the open sections.
        callee = call.callee
        if (
            isinstance(callee, MemberExpr)
            and callee.name == "drop"
            and isinstance(callee.expr, NameExpr)
        ):
            st.pop(f"var:{callee.expr.name}", None)
        if PREEMPT_ENABLE in names and call.args and isinstance(call.args[0], NameExpr):
            st.pop(f"var:{call.args[0].name}", None)

    def label(self, call: CallExpr) -> str:
        return f"{self.src(call.callee)}()"

    def receiver_type(self, call: CallExpr) -> ProperType | None:
        return self.type_of(call.callee.expr) if isinstance(call.callee, MemberExpr) else None

    def drop_targets(self, call: CallExpr, name: str) -> list[str]:
        """`ARef[T].drop()` runs `T.dec_ref`; `Arc[T].drop()` may run `T.drop_arc`."""
        hook = "dec_ref" if name == AREF_DROP else "drop_arc"
        out: list[str] = []
        for inst in instances(self.receiver_type(call)):
            if not inst.args:
                continue
            for target in instances(get_proper_type(inst.args[0])):
                for base in target.type.mro or [target.type]:
                    sym = base.names.get(hook)
                    if sym is not None and sym.node is not None:
                        out.append(f"{base.fullname}.{hook}")
                        break
        return out

    def arg_fact(self, exprs: list[Expression]) -> ArgFact | None:
        if len(exprs) != 1:
            return None
        e = exprs[0]
        param: str | None = None
        if isinstance(e, NameExpr) and isinstance(e.node, Var):
            param = self.param_vars.get(e.node) or self.loop_alias.get(e.node)
        cls = (
            gfp_eval.classify(e, self.typer, self.param_vars, self.gfp_locals())
            if self.maybe_gfp(e)
            else None
        )
        if param is None and cls is None:
            return None
        fact = ArgFact(self.src(e), e.line, param=param)
        if cls is not None:
            fact.gfp, fwd = cls
            fact.gfp_fwd = fwd or None
        return fact

    def maybe_gfp(self, e: Expression) -> bool:
        """A cheap filter before evaluating GFP flags: the type says so, or the syntax."""
        t = self.type_of(e)
        if isinstance(t, Instance):
            return t.type.fullname == gfp_eval.FLAGS_TYPE
        if isinstance(e, RefExpr):
            return e.fullname.startswith(gfp_eval.FLAGS_MODULE + ".") or isinstance(e.node, Var)
        return isinstance(e, (OpExpr, UnaryExpr))

    def gfp_locals(self) -> dict[Var, Expression]:
        return self.typer.locals

    def nonsend_at_call(self, bound: dict[str, list[Expression]]) -> NonSendCheck:
        """`nonsend_check` as of this point of the walk, for the arguments of one call.

        The check runs after the whole module is walked, when `typer.locals` holds the
        last assignment the walk saw: a name bound again later (in another branch, say)
        would move where its value was made. The lines of the names the arguments use
        (and that a local function they pass captures) are therefore taken now.
        """
        origins: dict[Var, int] = {}
        for exprs in bound.values():
            for e in exprs:
                for x in iter_exprs(e):
                    if not isinstance(x, NameExpr):
                        continue
                    self._note_origin(x, origins)
                    fdef = self.local_defs.get(x.name)
                    if fdef is not None:
                        for y in _names_in(fdef.body):
                            self._note_origin(y, origins)
        return lambda e: self.nonsend_check(e, origins)

    def _note_origin(self, x: NameExpr, origins: dict[Var, int]) -> None:
        if isinstance(x.node, Var) and x.node in self.local_vars and x.node not in origins:
            origins[x.node] = self.origin_line(x)

    def nonsend_check(
        self, e: Expression, origins: dict[Var, int] | None = None
    ) -> tuple[str, str | None, int]:
        reason, origin = self.nonsend(e, origins or {})
        return self.src(e), reason, origin

    def nonsend(self, e: Expression, origins: dict[Var, int]) -> tuple[str | None, int]:
        """Why the value of `e` is `!Send` (and where it was made), if it is; `origins`
        holds the lines where locals were made as of the call (`nonsend_at_call`)."""
        reason = not_send_reason(self.type_of(e), self.mod.classes)
        if reason is not None:
            return reason, self.origin_line(e, origins)
        if isinstance(e, MemberExpr) and isinstance(self.type_of(e), (CallableType, Overloaded)):
            r = not_send_reason(self.type_of(e.expr), self.mod.classes)
            if r is not None:
                return f"a bound method of a !Send object: {r}", self.origin_line(e.expr, origins)
        body: Expression | None = None
        if isinstance(e, LambdaExpr):
            body = e
        elif isinstance(e, NameExpr) and e.name in self.local_defs:
            return self.captured_in_def(self.local_defs[e.name], origins)
        if body is not None:
            for x in iter_exprs(body):
                if (
                    isinstance(x, NameExpr)
                    and isinstance(x.node, Var)
                    and x.node in self.local_vars
                ):
                    r = not_send_reason(x.node.type, self.mod.classes)
                    if r is not None:
                        return f"the function captures `{x.name}`: {r}", self.origin_line(
                            x, origins
                        )
        return None, 0

    def captured_in_def(self, fdef: FuncDef, origins: dict[Var, int]) -> tuple[str | None, int]:
        own = {a.variable for a in fdef.arguments}
        for x in _names_in(fdef.body):
            if isinstance(x.node, Var) and x.node in self.local_vars and x.node not in own:
                r = not_send_reason(x.node.type, self.mod.classes)
                if r is not None:
                    return f"`{fdef.name}` captures `{x.name}`: {r}", self.origin_line(x, origins)
        return None, 0

    def origin_line(self, e: Expression, origins: dict[Var, int] | None = None) -> int:
        if isinstance(e, NameExpr) and isinstance(e.node, Var) and e.node in self.local_vars:
            if origins is not None and e.node in origins:
                return origins[e.node]
            value = self.typer.locals.get(e.node)
            if value is not None:
                return value.line
            return e.node.line if e.node.line > 0 else e.line
        return e.line

    # --- atomic sections -------------------------------------------------------------

    def region_what(self, kind: str, expr: Expression) -> str:
        if kind == "spinlock":
            target: Expression = expr
            if isinstance(expr, CallExpr) and isinstance(expr.callee, MemberExpr):
                target = expr.callee.expr
            return f"the SpinLock guard of `{self.src(target)}`"
        return f"`{self.src(expr)}`"

    # --- unsafe ------------------------------------------------------------------------

    def is_unsafe_block(self, expr: Expression, t: ProperType | None) -> bool:
        if isinstance(t, Instance) and t.type.fullname == UNSAFE_BLOCK:
            return True
        return (
            isinstance(expr, CallExpr)
            and isinstance(expr.callee, RefExpr)
            and expr.callee.fullname == UNSAFE_BLOCK
        )

    def unsafe_block(self, s: WithStmt, expr: Expression) -> None:
        if not self.recording:
            return
        argument = argument_state(expr.args) if isinstance(expr, CallExpr) else "ok"
        self.mod.facts.unsafe_blocks.append(UnsafeBlock(s.line, s.column, argument))

    # --- guard escape --------------------------------------------------------------------

    def borrow_of(self, e: Expression) -> Borrow | None:
        """The guard a value is borrowed from, when it is a reference through a local guard."""
        if isinstance(e, NameExpr):
            b = self.borrowed.get(e.name)
            if b is not None:
                return b
            g = self.guards.get(e.name)
            if g is not None and g.scoped:
                return Borrow(e.name, g.line, e.line, f"the guard `{e.name}` itself")
            return None
        if isinstance(e, MemberExpr) and isinstance(e.expr, NameExpr) and e.name == "data":
            g = self.guards.get(e.expr.name)
            if g is not None and not is_copy_type(self.type_of(e)):
                return Borrow(
                    e.expr.name, g.line, e.line, f"`{self.src(e)}`, the data the guard protects"
                )
            return None
        if isinstance(e, CallExpr) and isinstance(e.callee, MemberExpr):
            recv = e.callee.expr
            origin: tuple[str, int] | None = None
            if isinstance(recv, NameExpr) and recv.name in self.guards:
                origin = (recv.name, self.guards[recv.name].line)
            else:
                inner = self.borrow_of(recv)
                if inner is not None:
                    origin = (inner.guard, inner.guard_line)
            if origin is not None and is_reference_type(self.type_of(e)):
                return Borrow(origin[0], origin[1], e.line, f"`{self.src(e)}`")
            return None
        if isinstance(e, TupleExpr):
            for item in e.items:
                b = self.borrow_of(item)
                if b is not None:
                    return b
        return None

    def check_escape(self, value: Expression, how: str, line: int) -> None:
        b = self.borrow_of(value)
        if b is None or not self.recording or (line, how) in self.escapes:
            return
        self.escapes.add((line, how))
        guard = self.guards.get(b.guard)
        taken = guard.text if guard is not None else b.guard
        path = self.mod.facts.path
        self.finding(
            Finding(
                code="guard-escape",
                line=line,
                column=value.column,
                message=f"a reference obtained through the guard `{b.guard}` escapes it: "
                f"{b.what} is {how}",
                notes=[
                    Note("the reference was obtained here", path, b.line),
                    Note(
                        f"the guard was taken here by `{taken}`; the reference dies when it is "
                        "released",
                        path,
                        b.guard_line,
                    ),
                ],
            )
        )

    def escape_target(self, lv: Expression) -> str | None:
        """ "stored on self.x" / "stored in the global x" for lvalues that outlive the call."""
        root = lv
        while isinstance(root, (MemberExpr, IndexExpr)):
            root = root.expr if isinstance(root, MemberExpr) else root.base
        if not isinstance(root, NameExpr):
            return None
        if root is lv:
            return (
                f"stored in the global `{lv.name}`"
                if isinstance(lv, NameExpr) and lv.kind == GDEF
                else None
            )
        if self.self_var is not None and root.node is self.self_var:
            return f"stored on `{self.src(lv)}`"
        if root.kind == GDEF and isinstance(root.node, Var):
            return f"stored on the global `{self.src(lv)}`"
        return None

    def check_store(
        self, lv: Expression, rvalue: Expression, borrow: Borrow | None, line: int
    ) -> None:
        if borrow is None:
            return
        how = self.escape_target(lv)
        if how is not None:
            self.check_escape(rvalue, how, line)

    def check_container_store(self, call: CallExpr) -> None:
        callee = call.callee
        if not (isinstance(callee, MemberExpr) and callee.name in STORE_METHODS):
            return
        target = self.escape_target(callee.expr)
        if target is None:
            return
        for arg in call.args:
            self.check_escape(arg, target.replace("stored", "put in a container", 1), call.line)


def _name_nested_functions(
    stmts: list[Statement], owner: str | None, names: dict[FuncDef, str]
) -> None:
    """Name every function defined inside another one `<owner>.<name>` (`@<line>` added
    when its owner defines two of that name): mypy's own full name of a nested function
    is its bare name, which functions of different owners share."""
    for s in stmts:
        funcs: list[FuncDef] = []
        if isinstance(s, FuncDef):
            funcs = [s]
        elif isinstance(s, Decorator):
            funcs = [s.func]
        elif isinstance(s, OverloadedFuncDef):
            for item in ([s.impl] if s.impl is not None else []) + list(s.items):
                funcs.append(item.func if isinstance(item, Decorator) else item)
        if funcs:
            for fn in funcs:
                if fn in names:
                    continue
                if owner is not None:
                    name = f"{owner}.{fn.name}"
                    if name in names.values():
                        name = f"{name}@{fn.line}"
                    names[fn] = name
                _name_nested_functions(fn.body.body, names.get(fn) or fn.fullname or fn.name, names)
            continue
        if isinstance(s, ClassDef):
            # Methods have full names of their own (mypy names local classes `C@line`).
            _name_nested_functions(s.defs.body, None, names)
            continue
        for b in _blocks_of(s):
            _name_nested_functions(b.body, owner, names)


def _blocks_of(s: Statement) -> list[Block]:
    """The statement blocks directly inside a compound statement."""
    if isinstance(s, IfStmt):
        return [*s.body, *([s.else_body] if s.else_body is not None else [])]
    if isinstance(s, (WhileStmt, ForStmt)):
        return [s.body, *([s.else_body] if s.else_body is not None else [])]
    if isinstance(s, WithStmt):
        return [s.body]
    if isinstance(s, TryStmt):
        extra = [b for b in (s.else_body, s.finally_body) if b is not None]
        return [s.body, *s.handlers, *extra]
    if isinstance(s, MatchStmt):
        return list(s.bodies)
    if isinstance(s, Block):
        return [s]
    return []


def _always_true(e: Expression) -> bool:
    if isinstance(e, NameExpr) and e.fullname == "builtins.True":
        return True
    return isinstance(e, IntExpr) and e.value != 0


def _names_in(b: Block) -> list[NameExpr]:
    out: list[NameExpr] = []
    stack: list[object] = list(b.body)
    while stack:
        x = stack.pop()
        if isinstance(x, NameExpr):
            out.append(x)
        if isinstance(x, Expression):
            stack.extend(expr_children(x))
            if isinstance(x, LambdaExpr):
                stack.append(x.expr())
        elif isinstance(x, ExpressionStmt):
            stack.append(x.expr)
        elif isinstance(x, AssignmentStmt):
            stack.append(x.rvalue)
        elif isinstance(x, ReturnStmt) and x.expr is not None:
            stack.append(x.expr)
        elif isinstance(x, (IfStmt,)):
            stack.extend(x.expr)
            stack.extend(x.body)
            if x.else_body is not None:
                stack.append(x.else_body)
        elif isinstance(x, (WhileStmt, ForStmt)):
            stack.append(x.expr)
            stack.append(x.body)
        elif isinstance(x, WithStmt):
            stack.extend(x.expr)
            stack.append(x.body)
        elif isinstance(x, Block):
            stack.extend(x.body)
        elif isinstance(x, TryStmt):
            stack.append(x.body)
            stack.extend(x.handlers)
    return out


def join(states: list[State | None]) -> State | None:
    """The state after paths meet: a section open on only some paths is not definite."""
    live = [s for s in states if s is not None]
    if not live:
        return None
    if len(live) == 1:
        return dict(live[0])
    keys: dict[str, Region] = {}
    for s in live:
        for k, r in s.items():
            keys.setdefault(k, r)
    out: State = {}
    for k, r in keys.items():
        definite = all(k in s and s[k].definite for s in live)
        out[k] = r if r.definite == definite else replace(r, definite=definite)
    return out


def _same(a: State, b: State) -> bool:
    return a.keys() == b.keys() and all(a[k].definite == b[k].definite for k in a)


def extract_module(
    tree: MypyFile, typer: Typer, lines: list[str], classes: ClassLookup
) -> ModuleFacts:
    """Walk every function of `tree` and return its facts."""
    return ModuleWalker(tree, typer, lines, classes).run()
