"""Build hook: every wheel carries the static checker's summaries of its own sources.

mypy does not analyse the bodies of installed packages, so `ownership.static.plugin`
reads the summaries of `ownership` and `binder` from `ownership/static/summaries.json`
once installed. `build_py` makes that file from the sources being packaged, by
running `python -m ownership.static.build_summaries` (mypy is a build requirement).
An editable install analyses the sources themselves and gets no file. Everything else
about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
SUMMARIES = os.path.join("ownership", "static", "summaries.json")


class BuildPyWithSummaries(build_py):
    """`build_py`, then the shipped summaries of the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        out = os.path.join(os.path.abspath(self.build_lib), SUMMARIES)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [
            sys.executable,
            "-m",
            "ownership.static.build_summaries",
            out,
            "--root",
            ROOT,
            "--package-version",
            self.distribution.get_version(),
        ]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, SUMMARIES))
        return outputs


setup(cmdclass={"build_py": BuildPyWithSummaries})
