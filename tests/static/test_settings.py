"""The plugin's own section of the mypy configuration, and mypy.ini without the plugin."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from ownership.static.settings import Settings, SettingsError, read_settings

from .corpus import PROJECT


def test_silent_modules_follow_mypy_patterns() -> None:
    s = Settings(("tests.*", "examples.bad_*"))
    assert s.is_silent("tests") and s.is_silent("tests.static.bad.x")
    assert s.is_silent("examples.bad_lock")
    assert not s.is_silent("testsuite") and not s.is_silent("examples.bad_lock.sub")
    assert not s.is_silent("drivers.net")


def test_sections_of_ini_and_pyproject(tmp_path: Path) -> None:
    ini = tmp_path / "mypy.ini"
    ini.write_text(
        "[mypy]\nstrict = True\n[ownership-static]\nsilent_modules = a.*, b\n", encoding="utf-8"
    )
    assert read_settings(str(ini)).silent_modules == ("a.*", "b")
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[tool.ownership-static]\nsilent_modules = ["c.*"]\n', encoding="utf-8")
    assert read_settings(str(toml)).silent_modules == ("c.*",)
    plain = tmp_path / "setup.cfg"
    plain.write_text("[mypy]\nstrict = True\n", encoding="utf-8")
    assert read_settings(str(plain)) == Settings()
    assert read_settings(None) == Settings()


@pytest.mark.parametrize(
    "text",
    ["[ownership-static]\nsilent = tests.*\n", "[mypy\nstrict = True\n", "no section header\n"],
)
def test_bad_settings_are_errors(tmp_path: Path, text: str) -> None:
    ini = tmp_path / "mypy.ini"
    ini.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError):
        read_settings(str(ini))


def test_project_config_does_not_crash_mypy_without_the_plugin(tmp_path: Path) -> None:
    # The project's mypy.ini with its `plugins` line removed, as a run that does not load
    # the plugin sees it: mypy must check the tests (whose findings the plugin's section
    # silences) without a crash.
    parser = configparser.ConfigParser()
    parser.read(PROJECT / "mypy.ini")
    parser.remove_option("mypy", "plugins")
    config = tmp_path / "without.ini"
    with open(config, "w", encoding="utf-8") as f:
        parser.write(f)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "-c",
            "x: int = 1",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
