#!/usr/bin/env bash
# Build the API reference from the docstrings into docs/api/ (pdoc; the output is
# gitignored). A module that fails to import, or a docstring pdoc cannot render, fails
# the build: pdoc reports both as RuntimeWarnings, which are errors here.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/api}
py=${PYTHON:-.venv/bin/python}
rm -rf "$out"
# Each package's direct submodules by name: a package's `__all__` lists its API, not its
# submodules, and pdoc documents only what `__all__` names (it walks deeper on its own).
mapfile -t modules < <("$py" - <<'PY'
import importlib
import pkgutil

for root in ("ownership", "binder", "proofs"):
    print(root)
    pkg = importlib.import_module(root)
    for info in pkgutil.iter_modules(pkg.__path__, root + "."):
        if not info.name.endswith("__main__"):
            print(info.name)
PY
)
"$py" -W error::RuntimeWarning -m pdoc --docformat markdown -o "$out" "${modules[@]}"
test -f "$out/index.html" && test -f "$out/ownership/pytest_plugin.html"
echo "API reference: $out/index.html"
