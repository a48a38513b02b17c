"""The VMA flag rule table, as the Rust side names it (API.md: `ownership.mm.vma_rules`).

One namespace over the floor's three headers: the expression language
(`ownership.include.vma_expr`), the rules (`ownership.include.vma_rules`) and the
flag-changing operations (`ownership.include.vma_ops`). Nothing is defined here; the
logic lives in `ownership.include`, which the simulated kernel and `proofs/` read
directly.

Lock order: no locks.
"""

from __future__ import annotations

from ..include.vma_expr import *  # noqa: F403 - the whole table, re-exported by name.
from ..include.vma_expr import __all__ as _expr_all
from ..include.vma_ops import *  # noqa: F403
from ..include.vma_ops import __all__ as _ops_all
from ..include.vma_rules import *  # noqa: F403
from ..include.vma_rules import __all__ as _rules_all

__all__ = [*_expr_all, *_rules_all, *_ops_all]
