#!/usr/bin/env bash
# Create .venv/mypy-lowest (if missing): the lowest mypy the project supports (the
# `mypy>=` bound in pyproject.toml) with what the static tests need, and the project
# installed editable without its dependencies and without build isolation (either
# would bring the newest mypy). Not through PYTHONPATH: mypy takes the interpreter's
# path entries for installed packages and strips their function bodies; it does not
# follow an editable install, and finds the sources in the working directory or
# through MYPYPATH, as in the project's own venv. Re-created when pyproject.toml or
# this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."
low=$(grep -o '"mypy>=[0-9.]*' pyproject.toml | head -1 | cut -d'=' -f2)
venv=.venv/mypy-lowest
stamp=$venv/.installed-$(cat pyproject.toml "$0" | cksum | cut -d' ' -f1)
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # The project's other runtime dependencies, as pyproject.toml names them.
    deps=$(python3 -c 'import tomllib
d = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(x for x in d if not x.startswith("mypy")))')
    # shellcheck disable=SC2086  # one word per requirement
    "$venv/bin/python" -m pip install --quiet "mypy==$low" $deps \
        pytest hypothesis jsonschema pytest-xdist "setuptools>=77"
    "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
    touch "$stamp"
fi
echo "$low"
