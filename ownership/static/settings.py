"""The plugin's own settings, read from the mypy configuration file's own section.

mypy knows the plugin's error codes only once the plugin is loaded, and it validates a
per-module `disable_error_code` lazily, with a `KeyError` for an unknown code: a
`[mypy-tests.*]` section disabling `atomic-sleep` crashes every mypy run that does not
load the plugin. So the plugin's settings live in a section of their own, which mypy
ignores:

    [ownership-static]                 # mypy.ini, .mypy.ini, setup.cfg
    silent_modules = tests.*, examples.bad

    [tool.ownership-static]            # pyproject.toml
    silent_modules = ["tests.*"]

`silent_modules` lists modules (mypy's patterns: `pkg.*` is `pkg` and everything under
it, `*` matches within one name component) whose findings are not reported: code that
breaks the rules on purpose, such as the runtime tests. Their summaries are still
computed, and the plugin's own failures are still reported.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import tomllib
from dataclasses import dataclass

__all__ = ["SECTION", "Settings", "SettingsError", "read_settings"]

SECTION = "ownership-static"
_KNOWN = frozenset({"silent_modules"})


class SettingsError(ValueError):
    """The configuration file cannot be read, or its `[ownership-static]` section is wrong."""


@dataclass(frozen=True)
class Settings:
    """The plugin's settings. Invariants: patterns are stripped and non-empty."""

    silent_modules: tuple[str, ...] = ()

    def is_silent(self, module: str) -> bool:
        for pattern in self.silent_modules:
            if pattern.endswith(".*") and (
                module == pattern[:-2] or module.startswith(pattern[:-1])
            ):
                return True
            if fnmatch.fnmatchcase(module, pattern) and pattern.count(".") == module.count("."):
                return True
        return False


def _patterns(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.replace("\n", ",").split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [str(v) for v in value]
    else:
        raise SettingsError(f"{where}: silent_modules must be a list of module patterns")
    return tuple(p.strip() for p in items if p.strip())


def read_settings(config_file: str | None) -> Settings:
    """The settings in `config_file` (defaults when it is None or has no section).

    Raises SettingsError when the file cannot be read or parsed, or when the section
    has an unknown key or a bad value.
    """
    if config_file is None:
        return Settings()
    where = f"{config_file}: [{SECTION}]"
    try:
        if os.path.basename(config_file) == "pyproject.toml" or config_file.endswith(".toml"):
            with open(config_file, "rb") as f:
                doc = tomllib.load(f)
            tool = doc.get("tool", {})
            section = tool.get(SECTION) if isinstance(tool, dict) else None
            where = f"{config_file}: [tool.{SECTION}]"
            if section is None:
                return Settings()
            if not isinstance(section, dict):
                raise SettingsError(f"{where}: not a table")
            items: dict[str, object] = dict(section)
        else:
            parser = configparser.RawConfigParser()
            with open(config_file, encoding="utf-8") as f:
                parser.read_file(f, source=config_file)
            if not parser.has_section(SECTION):
                return Settings()
            items = dict(parser.items(SECTION))
    except (OSError, UnicodeDecodeError, configparser.Error, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{config_file}: cannot be read: {e}") from e
    unknown = sorted(set(items) - _KNOWN)
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    return Settings(_patterns(items.get("silent_modules", ""), where))
