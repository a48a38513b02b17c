#!/usr/bin/env bash
# The whole test suite plus mypy --strict, with the runtime checks on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python
# The API reference is built alongside (it is single-threaded, like mypy), so a docstring
# or module that pdoc cannot render fails the test command.
bash scripts/docs.sh docs/api > .venv/docs.log 2>&1 &
docs_pid=$!
echo "== mypy --strict"
$py -m mypy --strict ownership binder proofs tests
echo "== import contracts (the layers; binder never touches ownership.bindings)"
.venv/bin/lint-imports
echo "== API reference (scripts/docs.sh)"
wait "$docs_pid" || { cat .venv/docs.log; exit 1; }
tail -1 .venv/docs.log
echo "== ruff check and ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== pytest"
$py -m pytest -q -n 2 "$@"
echo "== the static tests with the lowest supported mypy"
low=$(bash scripts/setup_mypy_lowest.sh)
echo "mypy $low"
.venv/mypy-lowest/bin/python -m pytest -q -n 2 tests/static/test_corpus.py \
    tests/static/test_agreement.py tests/static/test_cli.py tests/static/test_check_config.py \
    tests/static/test_incremental.py
