"""Reading mypy's trees: expression types, call targets and the model's type facts.

The analysis runs on mypy's semantically analysed trees. For a module mypy has just
type-checked, the types of expressions come from the checker's type map; for a module
of the same import cycle that mypy has not checked yet, they are inferred here from
declarations (parameters, attributes, return types) and local assignments, which is
enough to resolve calls and recognise guards. `Typer` hides the difference.

The second half names what the model's types mean to the checks: which guard types
make the holder atomic (`SpinLockGuard`, `RcuReadGuard`), which types are lock guards
at all, which values are references that die with a guard (`Ref`, `VmAreaRef`), and
which types are `!Send` (the class declarations of `ownership.marker`, read from the
trees or from the summary store through `ClassLookup`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# `mypy.argmap` imported first, before `mypy.types`, hits an import cycle inside mypy.
import mypy.types  # noqa: F401
from mypy.argmap import map_actuals_to_formals
from mypy.maptype import map_instance_to_supertype
from mypy.nodes import (
    ArgKind,
    AssertTypeExpr,
    AssignmentExpr,
    AwaitExpr,
    CallExpr,
    CastExpr,
    ComparisonExpr,
    ConditionalExpr,
    Decorator,
    DictExpr,
    DictionaryComprehension,
    Expression,
    FuncDef,
    GeneratorExpr,
    IndexExpr,
    LambdaExpr,
    ListComprehension,
    ListExpr,
    MemberExpr,
    MypyFile,
    NameExpr,
    Node,
    OpExpr,
    OverloadedFuncDef,
    RefExpr,
    RevealExpr,
    SetComprehension,
    SetExpr,
    SliceExpr,
    StarExpr,
    TupleExpr,
    TypeApplication,
    TypeInfo,
    UnaryExpr,
    Var,
    YieldExpr,
    YieldFromExpr,
)
from mypy.subtypes import find_member
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    LiteralType,
    NoneType,
    Overloaded,
    ProperType,
    TupleType,
    Type,
    TypeOfAny,
    UnionType,
    get_proper_type,
)

from .summary import ClassDecl

__all__ = [
    "ATOMIC_CONTEXT_FUNCS",
    "ATOMIC_GUARD_TYPES",
    "Callee",
    "ClassLookup",
    "Typer",
    "atomic_kind",
    "bind_args",
    "expr_children",
    "format_type",
    "is_copy_type",
    "is_guard_type",
    "is_reference_type",
    "not_send_reason",
    "optional_items",
]

# Guard types whose holder is in atomic context, and the kind of section they open.
ATOMIC_GUARD_TYPES: dict[str, str] = {
    "ownership.sync.lock.SpinLockGuard": "spinlock",
    "ownership.context.RcuReadGuard": "rcu",
}

# Context-manager functions whose `with` body runs in atomic context.
ATOMIC_CONTEXT_FUNCS: dict[str, str] = {
    "ownership.context.preempt_disabled": "preempt",
    "ownership.context.local_irq_disable": "irq",
    "ownership.context.rcu_read_lock": "rcu",
}

# References that die with the guard they were obtained through (`&'a T`).
REFERENCE_TYPES: frozenset[str] = frozenset({"ownership.borrow.Ref", "ownership.mm.virt.VmAreaRef"})

# Types whose Send-ness is their contents': `Lock<T>` is Send iff T is; `Arc<T>` and
# `ARef<T>` are Send iff T is Send and Sync (as their `__ownership_is_send__` hooks say).
_SEND_BY_CONTENTS: dict[str, tuple[str, ...]] = {
    "ownership.sync.lock.Lock": ("send",),
    "ownership.aref.ARef": ("send", "sync"),
    "ownership.sync.arc.Arc": ("send", "sync"),
}
_CONTAINERS = frozenset(
    {
        "builtins.list",
        "builtins.tuple",
        "builtins.dict",
        "builtins.set",
        "builtins.frozenset",
        "collections.deque",
    }
)
_COPY_TYPES = frozenset(
    {
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.str",
        "builtins.bytes",
        "builtins.complex",
        "builtins.range",
        "builtins.object",
    }
)
NOT_THREAD_SAFE = "ownership.marker.NotThreadSafe"


def proper(t: Type | None) -> ProperType | None:
    return get_proper_type(t) if t is not None else None


def optional_items(t: ProperType | None) -> list[ProperType]:
    """The non-None members of a (possibly Optional/union) type."""
    if t is None:
        return []
    if isinstance(t, UnionType):
        out: list[ProperType] = []
        for item in t.items:
            p = get_proper_type(item)
            if not isinstance(p, NoneType):
                out.extend(optional_items(p))
        return out
    if isinstance(t, NoneType):
        return []
    return [t]


def instances(t: ProperType | None) -> list[Instance]:
    out: list[Instance] = []
    for item in optional_items(t):
        if isinstance(item, Instance):
            out.append(item)
        elif isinstance(item, (TupleType, LiteralType)):
            out.append(item.partial_fallback if isinstance(item, TupleType) else item.fallback)
    return out


def mro_names(info: TypeInfo) -> list[str]:
    return [b.fullname for b in info.mro] if info.mro else [info.fullname]


def atomic_kind(t: ProperType | None) -> str | None:
    """The atomic section a value of this type stands for ("spinlock", "rcu"), if any."""
    for inst in instances(t):
        for name in mro_names(inst.type):
            kind = ATOMIC_GUARD_TYPES.get(name)
            if kind is not None:
                return kind
    return None


def is_guard_type(t: ProperType | None) -> bool:
    """A lock guard of the model: a class of `ownership` named `...Guard`, or a subclass."""
    for inst in instances(t):
        for b in inst.type.mro or [inst.type]:
            if b.fullname.startswith("ownership.") and b.name.endswith("Guard"):
                return True
    return False


def is_reference_type(t: ProperType | None) -> bool:
    """A reference (`Ref`, `VmAreaRef` and its subclasses) that dies with its guard."""
    return any(n in REFERENCE_TYPES for inst in instances(t) for n in mro_names(inst.type))


def is_copy_type(t: ProperType | None) -> bool:
    """Plain values that are copied out of a guard, never borrowed (`Copy` in Rust)."""
    if t is None:
        return True
    if isinstance(t, (NoneType, LiteralType, AnyType)):
        return True
    if isinstance(t, UnionType):
        return all(is_copy_type(get_proper_type(i)) for i in t.items)
    if isinstance(t, TupleType):
        return all(is_copy_type(get_proper_type(i)) for i in t.items)
    if isinstance(t, Instance):
        if t.type.is_enum or t.type.fullname in _COPY_TYPES:
            return True
        return any(
            b.fullname in ("builtins.int", "builtins.str", "builtins.bytes") for b in t.type.mro
        )
    return False


def format_type(t: Type | None) -> str:
    """A short rendering of a type for messages (`SpinLockGuard[Inner]`)."""
    p = proper(t)
    if p is None:
        return "?"
    if isinstance(p, Instance):
        if p.args:
            return f"{p.type.name}[{', '.join(format_type(a) for a in p.args)}]"
        return p.type.name
    if isinstance(p, UnionType):
        return " | ".join(format_type(i) for i in p.items)
    if isinstance(p, NoneType):
        return "None"
    if isinstance(p, TupleType):
        return f"tuple[{', '.join(format_type(i) for i in p.items)}]"
    if isinstance(p, AnyType):
        return "Any"
    return str(p)


# ---------------------------------------------------------------------------
# Send / Sync.

ClassLookup = Callable[[str], ClassDecl | None]
"""Finds the explicit Send/Sync declarations of a class by full name."""


def not_send_reason(
    t: Type | None, classes: ClassLookup, trait: str = "send", depth: int = 0
) -> str | None:
    """Why a value of type `t` is `!Send` (or `!Sync`), or None if it is, or is unknown.

    Mirrors `ownership.marker.is_send`: the first class of the MRO with a contents
    rule (`Lock`, `Arc`, `ARef`) or an explicit declaration decides; `NotThreadSafe`
    is `!Send + !Sync`; builtin containers are Send iff their items are; undeclared
    classes are Send.
    """
    p = proper(t)
    if p is None or depth > 6:
        return None
    if isinstance(p, (UnionType, TupleType)):
        for item in p.items:
            r = not_send_reason(item, classes, trait, depth + 1)
            if r is not None:
                return r
        return None
    if not isinstance(p, Instance):
        return None
    info = p.type
    for base in info.mro or [info]:
        name = base.fullname
        rule = _SEND_BY_CONTENTS.get(name)
        if rule is not None:
            mapped = map_instance_to_supertype(p, base)
            for arg in mapped.args:
                for needed in rule:
                    r = not_send_reason(arg, classes, needed, depth + 1)
                    if r is not None:
                        return f"{format_type(p)} is !{trait.capitalize()} because {r}"
            return None
        if name == NOT_THREAD_SAFE:
            return f"{format_type(p)} is !{trait.capitalize()} (it derives from NotThreadSafe)"
        decl = classes(name)
        if decl is not None:
            value = decl.send if trait == "send" else decl.sync
            if value is False:
                how = "not_send" if trait == "send" else "not_sync"
                return f"{format_type(p)} is !{trait.capitalize()} (declared {how} on {base.name})"
            if value is True:
                return None
        if name in _CONTAINERS:
            for arg in p.args:
                r = not_send_reason(arg, classes, trait, depth + 1)
                if r is not None:
                    return f"{format_type(p)} is !{trait.capitalize()} because {r}"
            return None
    return None


# ---------------------------------------------------------------------------
# Walking expressions.


def _no_children(e: Expression) -> Sequence[Expression]:
    return ()


def _gen_children(e: GeneratorExpr) -> Sequence[Expression]:
    gen: list[Expression] = list(e.sequences)
    for conds in e.condlists:
        gen.extend(conds)
    gen.append(e.left_expr)
    return gen


def _dict_comp_children(e: DictionaryComprehension) -> Sequence[Expression]:
    dc: list[Expression] = list(e.sequences)
    for conds in e.condlists:
        dc.extend(conds)
    if e.key is not None:
        dc.append(e.key)
    dc.append(e.value)
    return dc


def _dict_children(e: DictExpr) -> Sequence[Expression]:
    out: list[Expression] = []
    for k, v in e.items:
        if k is not None:
            out.append(k)
        out.append(v)
    return out


_CHILDREN: dict[type, Callable[[Any], Sequence[Expression]]] = {
    NameExpr: _no_children,
    CallExpr: lambda e: [e.callee, *e.args],
    MemberExpr: lambda e: (e.expr,),
    IndexExpr: lambda e: (e.base, e.index),
    OpExpr: lambda e: (e.left, e.right),
    ComparisonExpr: lambda e: e.operands,
    UnaryExpr: lambda e: (e.expr,),
    TupleExpr: lambda e: e.items,
    ListExpr: lambda e: e.items,
    SetExpr: lambda e: e.items,
    DictExpr: _dict_children,
    ConditionalExpr: lambda e: (e.cond, e.if_expr, e.else_expr),
    StarExpr: lambda e: (e.expr,),
    CastExpr: lambda e: (e.expr,),
    AssertTypeExpr: lambda e: (e.expr,),
    AwaitExpr: lambda e: (e.expr,),
    YieldFromExpr: lambda e: (e.expr,),
    TypeApplication: lambda e: (e.expr,),
    YieldExpr: lambda e: (e.expr,) if e.expr is not None else (),
    RevealExpr: lambda e: (e.expr,) if e.expr is not None else (),
    AssignmentExpr: lambda e: (e.value,),
    SliceExpr: lambda e: tuple(x for x in (e.begin_index, e.end_index, e.stride) if x is not None),
    ListComprehension: lambda e: _gen_children(e.generator),
    SetComprehension: lambda e: _gen_children(e.generator),
    GeneratorExpr: _gen_children,
    DictionaryComprehension: _dict_comp_children,
}


def expr_children(e: Expression) -> Sequence[Expression]:
    """The sub-expressions of `e` evaluated when `e` is (not lambdas' bodies)."""
    f = _CHILDREN.get(type(e))
    return f(e) if f is not None else ()


def iter_exprs(e: Expression) -> Iterator[Expression]:
    """`e` and every sub-expression, lambdas' bodies included (for capture analysis)."""
    stack = [e]
    while stack:
        x = stack.pop()
        yield x
        if isinstance(x, LambdaExpr):
            ret = x.expr()
            stack.append(ret)
        else:
            stack.extend(expr_children(x))


# ---------------------------------------------------------------------------
# Types of expressions and targets of calls.


@dataclass(frozen=True)
class Callee:
    """One possible target of a call: its full name and its formal parameters.

    Invariants: `formals` are the parameters the call's arguments bind to (a bound
    method's `self` already removed), as `(name, kind)` pairs.
    """

    fullname: str
    formals: tuple[tuple[str | None, ArgKind], ...]


def _ref_node(e: Expression) -> Node | None:
    return e.node if isinstance(e, RefExpr) else None


def _lookup_member(info: TypeInfo, name: str) -> Node | None:
    for base in info.mro or [info]:
        sym = base.names.get(name)
        if sym is not None and sym.node is not None:
            return sym.node
    return None


def _func_of(node: Node | None) -> FuncDef | None:
    if isinstance(node, FuncDef):
        return node
    if isinstance(node, Decorator):
        return node.func
    if isinstance(node, OverloadedFuncDef):
        if node.impl is not None:
            return _func_of(node.impl)
        if node.items:
            return _func_of(node.items[0])
    return None


def _is_static(node: Node | None) -> bool:
    fn = _func_of(node)
    return fn is not None and fn.is_static


def _formals_of(fn: FuncDef, bound: bool) -> tuple[tuple[str | None, ArgKind], ...]:
    # `arg_names`/`arg_kinds` survive mypy's cache; `arguments` does not.
    formals = tuple(zip(fn.arg_names, fn.arg_kinds))
    return formals[1:] if bound and formals else formals


def _callable_items(t: ProperType | None) -> list[CallableType]:
    if isinstance(t, CallableType):
        return [t]
    if isinstance(t, Overloaded):
        return list(t.items)
    if isinstance(t, UnionType):
        out: list[CallableType] = []
        for item in t.items:
            out.extend(_callable_items(get_proper_type(item)))
        return out
    return []


class Typer:
    """Types of expressions of one module: the type map when mypy has checked the code,
    else inference from declarations and the local assignments seen so far.

    Invariants: `locals` maps a local variable to the last expression assigned to it in
    the walk (used only when the type map has no entry); `local_names` maps each
    function defined inside another function to its qualified name in the module
    (mypy names such a function by its bare name only, so two nested `buggy`s of
    different functions would otherwise be one).
    """

    def __init__(self, type_map: dict[Expression, Type] | None) -> None:
        self.type_map = type_map
        self.locals: dict[Var, Expression] = {}
        self.local_names: dict[FuncDef, str] = {}

    def name_of(self, fn: FuncDef) -> str:
        """The full name the analysis knows a function by (qualified when nested)."""
        return self.local_names.get(fn) or fn.fullname or fn.name

    def type_of(self, e: Expression, depth: int = 0) -> ProperType | None:
        tm = self.type_map
        if tm is not None:
            t = tm.get(e)
            if t is not None:
                return get_proper_type(t)
        if depth > 8:
            return None
        try:
            return self._infer(e, depth + 1)
        except (AssertionError, AttributeError, KeyError, IndexError, TypeError):
            # Inference on a tree mypy has not checked yet is best effort: an
            # incomplete node means "unknown", never a crash of the type checker.
            return None

    def _node_type(self, node: Node | None, depth: int) -> ProperType | None:
        if isinstance(node, Var):
            if node.type is not None:
                return get_proper_type(node.type)
            value = self.locals.get(node)
            return self.type_of(value, depth) if value is not None else None
        if isinstance(node, FuncDef):
            return proper(node.type)
        if isinstance(node, Decorator):
            return proper(node.var.type) or proper(node.func.type)
        if isinstance(node, OverloadedFuncDef):
            return proper(node.type)
        return None

    def _infer(self, e: Expression, depth: int) -> ProperType | None:
        if isinstance(e, NameExpr):
            return self._node_type(e.node, depth)
        if isinstance(e, MemberExpr):
            base_node = _ref_node(e.expr)
            if isinstance(base_node, MypyFile):
                return self._node_type(e.node, depth)
            if isinstance(base_node, TypeInfo):
                return self._node_type(_lookup_member(base_node, e.name), depth)
            for inst in instances(self.type_of(e.expr, depth)):
                t = find_member(e.name, inst, inst)
                if t is not None:
                    return get_proper_type(t)
            return None
        if isinstance(e, CallExpr):
            node = _ref_node(e.callee)
            if isinstance(node, TypeInfo):
                return Instance(node, [AnyType(TypeOfAny.special_form)] * len(node.defn.type_vars))
            items = _callable_items(self.type_of(e.callee, depth))
            if items:
                return get_proper_type(items[0].ret_type)
            return None
        if isinstance(e, (CastExpr, AssertTypeExpr)):
            return get_proper_type(e.type)
        if isinstance(e, AssignmentExpr):
            return self.type_of(e.value, depth)
        return None

    # --- calls ---------------------------------------------------------------

    def callees(self, call: CallExpr) -> list[Callee]:
        """Every function the call may reach, as mypy resolved it (or as declared)."""
        out: list[Callee] = []
        seen: set[str] = set()
        tm_type = None
        if self.type_map is not None:
            raw = self.type_map.get(call.callee)
            tm_type = get_proper_type(raw) if raw is not None else None
        for item in _callable_items(tm_type):
            d = item.definition
            if isinstance(d, FuncDef):
                fullname: str | None = self.name_of(d)
            else:
                fullname = getattr(d, "fullname", None) if d is not None else None
            if fullname and fullname not in seen:
                seen.add(fullname)
                formals = tuple(zip(item.arg_names, item.arg_kinds))
                out.append(Callee(fullname, formals))
        if out:
            return out
        return self._declared_callees(call)

    def _declared_callees(self, call: CallExpr) -> list[Callee]:
        callee = call.callee
        node = _ref_node(callee)
        if isinstance(callee, MemberExpr) and not isinstance(_ref_node(callee.expr), MypyFile):
            base_node = _ref_node(callee.expr)
            if isinstance(base_node, TypeInfo):
                target = _lookup_member(base_node, callee.name)
                fn = _func_of(target)
                if fn is not None:
                    bound = fn.is_class
                    return [Callee(self.name_of(fn), _formals_of(fn, bound))]
                return []
            out: list[Callee] = []
            for inst in instances(self.type_of(callee.expr)):
                target = _lookup_member(inst.type, callee.name)
                fn = _func_of(target)
                if fn is not None and self.name_of(fn) not in {c.fullname for c in out}:
                    out.append(Callee(self.name_of(fn), _formals_of(fn, not _is_static(target))))
            return out
        if isinstance(node, TypeInfo):
            init = _lookup_member(node, "__init__")
            fn = _func_of(init)
            if fn is not None and fn.info.fullname != "builtins.object":
                return [Callee(self.name_of(fn), _formals_of(fn, True))]
            return []
        fn = _func_of(node)
        if fn is not None:
            return [Callee(self.name_of(fn), _formals_of(fn, False))]
        return []


def bind_args(call: CallExpr, callee: Callee) -> dict[str, list[Expression]]:
    """Which argument expressions of `call` go to which named formal of `callee`."""
    formal_kinds = [k for _, k in callee.formals]
    formal_names = [n for n, _ in callee.formals]
    try:
        mapping = map_actuals_to_formals(
            list(call.arg_kinds),
            list(call.arg_names),
            formal_kinds,
            formal_names,
            lambda _i: AnyType(TypeOfAny.special_form),
        )
    except (AssertionError, IndexError, KeyError, TypeError):
        # A call mypy itself rejects binds nothing; mypy reports it.
        return {}
    out: dict[str, list[Expression]] = {}
    for fi, actuals in enumerate(mapping):
        name = formal_names[fi]
        if name is None or not actuals:
            continue
        out[name] = [call.args[ai] for ai in actuals]
    return out
