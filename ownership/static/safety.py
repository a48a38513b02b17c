"""Reading the justification of unsafe code, for the rule `undocumented-unsafe`.

A `with unsafe("SAFETY: ...")` block is justified by its string argument, the text the
runtime `ownership.unsafe.unsafe` also keeps, as Rust keeps one `// SAFETY:` comment per
block: `argument_state` classifies it. A call to an `@unsafe_fn` made directly from the
body of another unsafe function, outside any block, has no string to carry its reason;
there the `# SAFETY:` comment on the lines right above the statement is the
justification, and `safety_comment` reads it. Both read source text only (no types), so
the walker and the contract review share one reading of what "justified" means.
"""

from __future__ import annotations

import re

from mypy.nodes import Expression, OpExpr, StrExpr

__all__ = ["argument_state", "safety_comment", "str_value", "strip_safety"]

_SAFETY_RE = re.compile(r"^#\s*SAFETY:(.*)$")


def str_value(e: Expression | None) -> str | None:
    """The value of a literal string (or a `+` of literal strings), else None."""
    if isinstance(e, StrExpr):
        return e.value
    if isinstance(e, OpExpr) and e.op == "+":
        left, right = str_value(e.left), str_value(e.right)
        if left is not None and right is not None:
            return left + right
    return None


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


def safety_comment(lines: list[str], line: int) -> str:
    """Whether the comment block right above `line` (1-based) has a `# SAFETY:`
    justification: "ok", "empty" (the marker with no text) or "missing"."""
    i = line - 2
    block: list[str] = []
    while 0 <= i < len(lines):
        text = lines[i].strip()
        if not text.startswith("#"):
            break
        block.append(text)
        i -= 1
    block.reverse()
    for j, text in enumerate(block):
        m = _SAFETY_RE.match(text)
        if m is None:
            continue
        body = m.group(1).strip()
        for cont in block[j + 1 :]:
            if _SAFETY_RE.match(cont):
                break
            body += " " + cont.lstrip("#").strip()
        return "ok" if body.strip() else "empty"
    return "missing"
