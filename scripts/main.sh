#!/usr/bin/env bash
# The main job: contract review, the runtime demo, the invariant solver runs, the
# static check of the Binder driver, and the Binder demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python
echo "== python -m ownership contracts"; $py -m ownership contracts
echo; echo "== python -m ownership demo"; $py -m ownership demo
if [ -f proofs/__main__.py ]; then echo; echo "== python -m proofs"; $py -m proofs; fi
if [ -f ownership/static/__init__.py ] && [ -d binder ]; then
    echo; echo "== python -m ownership check binder/"; $py -m ownership check binder
fi
if [ -f binder/__main__.py ]; then echo; echo "== python -m binder demo"; $py -m binder demo; fi
