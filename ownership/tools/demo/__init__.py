"""`python -m ownership demo`: one buggy and one correct driver snippet per rule.

The runner (`runner`: the registry, `run`, the command line) is apart from the
snippets it runs, which are driver code: `snippets_core` holds the core rules' and
`snippets_mm` the mm/VMA rules' (layer "mm", skipped by `--core`). Importing this package
registers both, core first; other layers' `demo_snippets` modules are loaded by
`load_extra_snippets` when the command runs.
"""

from __future__ import annotations

# The snippet modules are imported for their side effect: each registers its snippets
# with the runner, in this order (the order the demo prints them).
from . import snippets_core, snippets_mm  # noqa: F401
from .runner import Snippet, load_extra_snippets, main, register, registry, run, snippet

__all__ = ["Snippet", "load_extra_snippets", "main", "register", "registry", "run", "snippet"]
