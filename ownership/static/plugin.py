"""The mypy plugin: `plugins = ownership.static.plugin` in mypy.ini.

It reports, as mypy errors with one error code per rule (`ownership.static.codes`):

* `atomic-sleep`: a may-sleep call while a `SpinLock` guard is held, inside
  `preempt_disabled()`, `rcu_read_lock()` or `local_irq_disable()`, with klint-style
  notes ("this call expects the preemption count to be 0 / but the possible
  preemption count here is 1.. / which is called from here") showing where the
  atomic section began and the chain of calls down to the declaration that sleeps;
* `undocumented-unsafe`: a `with unsafe(...)` block whose string gives no SAFETY
  justification; `unsafe-call`: a call to an unsafe function outside an unsafe block
  (the body of an unsafe function is not one: `unsafe_op_in_unsafe_fn`);
* `send-handoff`: a `!Send` value passed to `spawn`, `queue_work` or any function
  that hands a parameter to `check_send`;
* `guard-escape`: a reference obtained through a guard returned or stored beyond it.

How it hooks into mypy: the analysis needs each module's complete, typed tree, which
mypy offers once the module is checked, in `get_additional_indirect_deps` (called from
`State.finish_passes`, before the module's errors are flushed and its tree freed).
Function and method hooks on calls into analysed code only note the module's type
checker, whose type map and error list the analysis then uses. Findings therefore go
through mypy's own error machinery: `# type: ignore[atomic-sleep]` works, editors show
them, and mypy's incremental cache replays them. Summaries are kept in a store beside
mypy's cache (`ownership.static.store`), and `report_config_data` marks a cached module
stale when a module whose summaries it used has changed. Installed from a wheel,
`ownership` and `binder` are summarised by the records shipped inside it
(`ownership.static.shipped`): mypy strips the bodies of installed packages. The
plugin's settings are read from the configuration's `[ownership-static]` section
(`ownership.static.settings`); it needs mypy 2.4 or newer and refuses older ones.

Nested functions are analysed as functions of their own, named after the function
that defines them (`make_demo.buggy`); a lambda's body is too, with no atomic section
open (it runs when called) but within the unsafe block it is written in.

Limits: calls through a `Callable` value or a protocol method are not followed
(dynamic dispatch: only the runtime sees those); a reference kept in a local and used
after its guard was released is seen by the runtime only (`guard-escape` covers
references that leave the function); the analysis is flow-sensitive within
a function but not path-sensitive; mypy's parallel and daemon modes are not supported
(each worker would keep its own summaries). List this plugin after other plugins that
hook the same calls: mypy uses the first plugin answering for a name.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mypy
from mypy.checker import TypeChecker
from mypy.errorcodes import ErrorCode
from mypy.nodes import MypyFile
from mypy.options import Options
from mypy.plugin import FunctionContext, MethodContext, Plugin, ReportConfigContext
from mypy.types import Type

from .codes import RULES
from .facts import Finding
from .settings import read_settings
from .shipped import load_shipped
from .store import STORE_VERSION, Store

if TYPE_CHECKING:
    from .analysis import Analyzer

__all__ = [
    "CODES",
    "MIN_MYPY",
    "BuildProbe",
    "OwnershipPlugin",
    "mypy_supported",
    "plugin",
    "take_probe",
]

MIN_MYPY = (2, 4)
"""The oldest mypy the plugin works with: `get_additional_indirect_deps`, the hook the
analysis runs in, is called for every checked module from mypy 2.4 on (before it, the
plugin loads and finds nothing)."""


def mypy_supported(version: str) -> bool:
    """Whether a mypy version string (`2.4.1`, `2.5.0+dev.abc`) is MIN_MYPY or newer."""
    parts = [int(x) for x in re.findall(r"\d+", version.split("+", 1)[0])[:2]]
    return tuple(parts) >= MIN_MYPY


CODES: dict[str, ErrorCode] = {r.code: ErrorCode(r.code, r.summary, "ownership") for r in RULES}
INTERNAL = ErrorCode(
    "ownership-static", "The ownership static checker could not analyse a module", "ownership"
)

_STATIC_DIR = os.path.dirname(os.path.abspath(__file__))


# The modules whose code decides the findings (not the report writers).
_ANALYSIS_SOURCES = (
    "analysis.py",
    "codes.py",
    "facts.py",
    "gfp.py",
    "plugin.py",
    "resolve.py",
    "safety.py",
    "shipped.py",
    "store.py",
    "summary.py",
    "walker.py",
)


def _version_token() -> str:
    """A digest of the analysis' own sources: a new checker invalidates old findings."""
    h = hashlib.sha1(str(STORE_VERSION).encode(), usedforsecurity=False)
    for name in _ANALYSIS_SOURCES:
        with open(os.path.join(_STATIC_DIR, name), "rb") as f:
            h.update(name.encode())
            h.update(f.read())
    return h.hexdigest()[:16]


def _out_of_scope_dirs() -> tuple[str, ...]:
    typeshed = os.path.join(os.path.dirname(os.path.abspath(mypy.__file__)), "typeshed")
    return (typeshed + os.sep,)


@dataclass
class BuildProbe:
    """What the check asks of the plugin after a build: was it made, did it work.

    Invariants: `modules_seen` counts the modules the plugin analysed or validated the
    cache of; the probe outlives the plugin object (mypy drops it with the build).
    """

    modules_seen: int = 0


_PROBES: dict[int, BuildProbe] = {}


def take_probe(options: Options) -> BuildProbe | None:
    """The probe of the plugin made for a build with these options, forgotten once taken."""
    return _PROBES.pop(id(options), None)


class OwnershipPlugin(Plugin):
    """The plugin object mypy creates once per build.

    Invariants: `_checkers` maps the path of a module being checked to its type
    checker, from the first hooked call until the module is finished; `analyzer`
    holds the summaries of every module finished in this build; `probe` is shared
    with the check (`take_probe`).
    """

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.probe = _PROBES.setdefault(id(options), BuildProbe())
        self._token = _version_token()
        self.settings = read_settings(options.config_file)
        cache = options.cache_dir
        directory: str | None = None
        if cache and cache != os.devnull:
            ver = f"{options.python_version[0]}.{options.python_version[1]}"
            directory = os.path.join(cache, ver, "ownership-static")
        # The summaries of the installed model and driver, made when the wheel was built:
        # mypy keeps no function bodies of installed packages to analyse.
        self.store = Store(directory, load_shipped())
        self._analyzer: Analyzer | None = None
        self._checkers: dict[str, TypeChecker] = {}
        self._last_checker: TypeChecker | None = None
        self._scope_by_path: dict[str, bool] = {}
        self._scope_by_module: dict[str, bool] = {}
        self._scope_by_top: dict[str, bool] = {}
        self._excluded = _out_of_scope_dirs()
        self._fn_cb: Callable[[FunctionContext], Type] = self._capture_fn
        self._meth_cb: Callable[[MethodContext], Type] = self._capture_meth

    @property
    def analyzer(self) -> Analyzer:
        """The analysis, loaded when a module is first checked (a warm run never is)."""
        if self._analyzer is None:
            # The analysis (and the walker under it) is heavy: a warm run, whose modules
            # all come from mypy's cache, never loads it.
            from .analysis import Analyzer

            self._analyzer = Analyzer(self._all_modules, self.store, self._module_in_scope)
        return self._analyzer

    def _module_of(self, fullname: str) -> str | None:
        mods = self._all_modules()
        name = fullname
        while "." in name:
            name = name.rsplit(".", 1)[0]
            if name in mods:
                return name
        return None

    # --- scope -------------------------------------------------------------------

    def _all_modules(self) -> dict[str, MypyFile]:
        return self._modules or {}

    def path_in_scope(self, module: str, path: str) -> bool:
        """Driver code and the model itself; not stubs, typeshed or installed packages
        (but the installed model and driver, whose summaries ship with them)."""
        res = self._scope_by_path.get(path)
        if res is None:
            if not path.endswith(".py"):
                res = False
            else:
                full = os.path.abspath(path)
                if full.startswith(self._excluded):
                    res = False
                elif self.store.accept_shipped(module, full):
                    # The installed model and driver: summarised by their shipped records.
                    res = True
                else:
                    res = not ("site-packages" in full or "dist-packages" in full)
            self._scope_by_path[path] = res
        return res

    def _module_in_scope(self, module: str) -> bool:
        res = self._scope_by_module.get(module)
        if res is None:
            tree = self._all_modules().get(module)
            if tree is None:
                return False
            res = self._scope_by_module[module] = self.path_in_scope(module, tree.path)
        return res

    def _name_in_scope(self, fullname: str) -> bool:
        top = fullname.split(".", 1)[0]
        res = self._scope_by_top.get(top)
        if res is None:
            mods = self._all_modules()
            if top in mods:
                res = self._module_in_scope(top)
            else:
                mod = self._module_of(fullname)
                res = mod is not None and self._module_in_scope(mod)
            self._scope_by_top[top] = res
        return res

    # --- hooks: note each module's checker ---------------------------------------------

    def _capture_fn(self, ctx: FunctionContext) -> Type:
        api = ctx.api
        if isinstance(api, TypeChecker):
            self._checkers.setdefault(api.path, api)
        return ctx.default_return_type

    def _capture_meth(self, ctx: MethodContext) -> Type:
        api = ctx.api
        if isinstance(api, TypeChecker):
            self._checkers.setdefault(api.path, api)
        return ctx.default_return_type

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        return self._fn_cb if self._name_in_scope(fullname) else None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        return self._meth_cb if self._name_in_scope(fullname) else None

    # --- cache validity ------------------------------------------------------------------

    def report_config_data(self, ctx: ReportConfigContext) -> Any:
        if ctx.is_check:
            self.probe.modules_seen += 1
        if not self.path_in_scope(ctx.id, ctx.path):
            return None
        # Whether the module's findings are reported is part of what the cache replays.
        data: dict[str, object] = {"ownership-static": self._token}
        if self.settings.is_silent(ctx.id):
            data["silent"] = True
        if (
            ctx.is_check
            and self.store.directory is not None
            and not self.store.is_current(ctx.id, ctx.path)
        ):
            # A module whose summaries this one used has changed (or none were
            # stored): mypy must re-check it rather than replay its findings.
            data["stale"] = True
        return data

    # --- the analysis, once a module is checked ------------------------------------------

    def get_additional_indirect_deps(self, file: MypyFile) -> set[str]:
        self.probe.modules_seen += 1
        # Always let go of the module's checker: its type map is large.
        checker = self._checkers.pop(file.path, None)
        if checker is not None:
            self._last_checker = checker
        if not self.path_in_scope(file.fullname, file.path) or self.store.is_shipped(file.fullname):
            # Out of scope, or installed: mypy stripped the bodies the shipped record
            # was made from, and an installed module's findings are not the user's.
            return set()
        type_map = checker._type_maps[0] if checker is not None else None
        try:
            findings = self.analyzer.analyze(file, type_map)
        except Exception as e:
            findings = [
                Finding(
                    "ownership-static",
                    1,
                    0,
                    f"ownership static checker failed on this module: {type(e).__name__}: {e}",
                )
            ]
        # Any checker will do to reach mypy's error list (there is one per build); a
        # module whose calls hooked nothing has no findings but a crash report.
        reporter = checker if checker is not None else self._last_checker
        if self.settings.is_silent(file.fullname):
            # The module breaks the rules on purpose (`silent_modules`): only the
            # checker's own failures are reported.
            findings = [f for f in findings if f.code not in CODES]
        if findings and reporter is not None:
            self._report(reporter, file, findings)
        return set()

    def _report(self, checker: TypeChecker, file: MypyFile, findings: list[Finding]) -> None:
        # Loaded with the analysis (see `analyzer`), which findings to report imply.
        from .analysis import display_path

        errors = checker.msg.errors
        saved = (errors.file, errors.target_module, errors.options, errors.scope)
        options = (
            checker.options
            if checker.path == file.path
            else self.options.clone_for_module(file.fullname)
        )
        errors.set_file(file.path, file.fullname, options)
        try:
            for f in findings:
                code = CODES.get(f.code, INTERNAL)
                info = errors.report(f.line, f.column, f.message, code=code)
                for note in f.notes:
                    text = note.text
                    if note.path is not None and note.line > 0:
                        text = f"{text} ({display_path(note.path)}:{note.line})"
                    errors.report(
                        f.line, f.column, text, code=code, severity="note", parent_error=info
                    )
        finally:
            errors.set_file(saved[0], saved[1], saved[2], saved[3])


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point: refuses a mypy on which the analysis would never run."""
    if not mypy_supported(version):
        message = (
            f"ownership.static.plugin needs mypy {MIN_MYPY[0]}.{MIN_MYPY[1]} or newer (found "
            f"{version}): "
            "older versions never call the hook its analysis runs in, so it would find nothing"
        )
        # mypy shows an entry point's exception only with --show-traceback.
        sys.stderr.write(message + "\n")
        raise RuntimeError(message)
    return OwnershipPlugin
