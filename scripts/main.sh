#!/usr/bin/env bash
# The main job: contract review, the runtime demo, the invariant solver runs, the
# static check of the Binder driver, and the Binder demo.
#
# Every stage runs, whatever an earlier one did, so one run shows every failure; the
# summary at the end lists each stage's result, and the script fails if any stage failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python

summary=()
failed=0

# Run one stage: `stage NAME COMMAND...` prints a header, runs the command and records
# whether it passed, without stopping the script.
stage() {
    local name=$1
    shift
    echo
    echo "== $name"
    if "$@"; then
        summary+=("ok    $name")
    else
        summary+=("FAIL  $name (exit $?)")
        failed=1
    fi
}

stage "python -m ownership contracts" "$py" -m ownership contracts
stage "python -m ownership demo" "$py" -m ownership demo
stage "python -m proofs" "$py" -m proofs
stage "python -m ownership check binder/" "$py" -m ownership check binder
stage "python -m binder demo" "$py" -m binder demo

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
