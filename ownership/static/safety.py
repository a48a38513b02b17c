"""Reading the justification of an unsafe block, for the rule `undocumented-unsafe`.

A `with unsafe("SAFETY: ...")` block is justified by its string argument, the text the
runtime `ownership.unsafe.unsafe` also keeps: one place for the reason, as Rust keeps
one `// SAFETY:` comment per block. `argument_state` classifies it the way the runtime
does (`strip_safety`: the text after an optional `SAFETY:` prefix must not be empty). A
comment above the block is not read. A call to an `@unsafe_fn` from another unsafe
function's body needs a block of its own (rule `unsafe-call`, as the kernel builds with
`-D unsafe_op_in_unsafe_fn`), so every unsafe call's reason is such a string.
"""

from __future__ import annotations

from mypy.nodes import Expression, NameExpr, OpExpr, StrExpr, Var

__all__ = ["argument_state", "str_value", "strip_safety", "text_value"]


def str_value(e: Expression | None) -> str | None:
    """The value of a literal string (or a `+` of literal strings), else None."""
    if isinstance(e, StrExpr):
        return e.value
    if isinstance(e, OpExpr) and e.op == "+":
        left, right = str_value(e.left), str_value(e.right)
        if left is not None and right is not None:
            return left + right
    return None


def text_value(e: Expression | None) -> str | None:
    """A literal string, or the value of the `Final` string constant `e` names."""
    if isinstance(e, NameExpr) and isinstance(e.node, Var) and isinstance(e.node.final_value, str):
        return e.node.final_value
    return str_value(e)


def strip_safety(text: str) -> str:
    """A justification without surrounding blanks and its `SAFETY:` prefix."""
    body = text.strip()
    if body.upper().startswith("SAFETY:"):
        body = body[len("SAFETY:") :].strip()
    return body


def argument_state(args: list[Expression]) -> str:
    """Whether the arguments of an `unsafe(...)` call justify the block: "ok", "empty"
    (a literal string with no text after its `SAFETY:` prefix) or "missing" (no
    argument). An argument that is not a literal string is taken as given ("ok"): its
    value is only known when the block runs, where the runtime checks it."""
    if not args:
        return "missing"
    text = str_value(args[0])
    if text is not None and not strip_safety(text):
        return "empty"
    return "ok"
