"""The golden corpus: where it is, what each file expects, and one shared check run.

Every corpus file marks its expectations in trailing comments:

* `# expect: atomic-sleep` (or several codes, comma-separated): the static checker
  reports this rule on this line;
* `# runtime-site` / `# runtime-origin`: when `main()` runs, the runtime's
  `SafetyViolation` names this line as where the bug happened / where the conflicting
  lock, guard or declaration came from.

A bad file the runtime cannot catch says why in a module constant `STATIC_ONLY`.
Directories under `bad/` are named after the rule (`atomic_sleep` for `atomic-sleep`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ownership.static.cli import CheckResult, run_check

__all__ = [
    "BAD",
    "GOOD",
    "ROOT",
    "UNSEEN",
    "CorpusFile",
    "all_files",
    "check_corpus",
    "config_file",
]

ROOT = Path(__file__).resolve().parent
PROJECT = ROOT.parent.parent
BAD = ROOT / "bad"
GOOD = ROOT / "good"
UNSEEN = ROOT / "unseen"

_EXPECT = re.compile(r"#.*\bexpect:\s*([a-z-]+(?:\s*,\s*[a-z-]+)*)")
_SITE = re.compile(r"#.*\bruntime-site\b")
_ORIGIN = re.compile(r"#.*\bruntime-origin\b")


@dataclass(frozen=True)
class CorpusFile:
    """One corpus file and the expectations written in it."""

    path: Path

    @property
    def module(self) -> str:
        rel = self.path.relative_to(PROJECT).with_suffix("")
        return ".".join(rel.parts)

    @property
    def rule_dir(self) -> str | None:
        """The rule a bad file breaks (from its directory), None for good/unseen files."""
        if BAD in self.path.parents:
            return self.path.parent.name.replace("_", "-")
        return None

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def expected(self) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for n, line in enumerate(self.text.splitlines(), start=1):
            m = _EXPECT.search(line)
            if m:
                out.update((code.strip(), n) for code in m.group(1).split(","))
        return out

    def marker_lines(self, pattern: re.Pattern[str]) -> list[int]:
        return [n for n, line in enumerate(self.text.splitlines(), start=1) if pattern.search(line)]

    def runtime_sites(self) -> list[tuple[str, int]]:
        """(file name, line) of every `# runtime-site`, here and in corpus modules it imports."""
        return [(f.path.name, n) for f in self.with_imports() for n in f.marker_lines(_SITE)]

    def runtime_origins(self) -> list[tuple[str, int]]:
        return [(f.path.name, n) for f in self.with_imports() for n in f.marker_lines(_ORIGIN)]

    def with_imports(self) -> list[CorpusFile]:
        """This file and the corpus files it imports, transitively (relative imports)."""
        seen: dict[Path, CorpusFile] = {}
        todo = [self]
        while todo:
            f = todo.pop()
            if f.path in seen:
                continue
            seen[f.path] = f
            for node in ast.walk(ast.parse(f.text)):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                    for name in names:
                        target = f.path.parent / f"{name}.py"
                        if target.exists():
                            todo.append(CorpusFile(target))
        return list(seen.values())

    def static_only(self) -> str | None:
        for node in ast.parse(self.text).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "STATIC_ONLY" for t in node.targets
            ):
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
        return None

    def has_main(self) -> bool:
        return any(
            isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(self.text).body
        )


def all_files(directory: Path) -> list[CorpusFile]:
    return [CorpusFile(p) for p in sorted(directory.rglob("*.py")) if p.name != "__init__.py"]


CONFIG = """\
[mypy]
python_version = 3.11
strict = True
warn_unreachable = True
plugins = ownership.static.plugin
"""


def config_file(directory: Path) -> Path:
    """A mypy configuration with the plugin and without the project's corpus exclusions."""
    path = directory / "mypy.ini"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@cache
def _cached_check(cache_root: str) -> CheckResult:
    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    return run_check(
        [str(BAD), str(GOOD), str(UNSEEN)],
        config_file=str(config_file(root)),
        cache_dir=str(root / "cache"),
    )


def check_corpus(cache_root: Path) -> CheckResult:
    """One static check of the whole corpus (memoised per cache directory)."""
    return _cached_check(str(cache_root))
