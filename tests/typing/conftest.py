"""Run the pytest-mypy-plugins cases with the project's own mypy (from the venv).

The plugin looks `mypy` up on PATH; the test command runs `.venv/bin/python -m pytest`
without activating the venv, so the interpreter's directory is put on PATH here.
"""

from __future__ import annotations

import os
import sys

_bin = os.path.dirname(sys.executable)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")
