#!/usr/bin/env bash
# Run every molecule scenario under extensions/molecule against this working tree.
# Each scenario starts and stops its own lab. Ends with `molecule: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [[ -n "${VENV:-}" ]]; then
    PATH="${VENV}/bin:${PATH}"
    export PATH
fi

# shellcheck source=scripts/collection-tree.sh
source scripts/collection-tree.sh
trap collection_tree_cleanup EXIT

# The scenarios run two at a time (each has its own lab, state directory and token cache, and spends most of its time
# waiting on its lab), each into a log of its own, printed whole when it ends; make test's budget is 20 minutes.
logs=$(mktemp -d)
trap 'collection_tree_cleanup; rm -rf "${logs}"' EXIT
JOBS=${MOLECULE_JOBS:-2}

run_scenario() {  # scenario: molecule test into its log, its outcome into <log>.rc
    if molecule test -s "$1" >"${logs}/$1.log" 2>&1; then echo 0 >"${logs}/$1.rc"; else echo 1 >"${logs}/$1.rc"; fi
}

scenarios=()
for scenario_dir in extensions/molecule/*/; do
    scenarios+=("$(basename "${scenario_dir}")")
done
running=0
for scenario in "${scenarios[@]}"; do
    if [[ ${running} -ge ${JOBS} ]]; then
        wait -n
        running=$((running - 1))
    fi
    run_scenario "${scenario}" &
    running=$((running + 1))
done
wait

passed=0
failed=0
for scenario in "${scenarios[@]}"; do
    echo "--- molecule scenario ${scenario}"
    cat "${logs}/${scenario}.log"
    if [[ "$(cat "${logs}/${scenario}.rc" 2>/dev/null)" == 0 ]]; then
        passed=$((passed + 1))
    else
        echo "molecule scenario ${scenario} FAILED"
        failed=$((failed + 1))
    fi
done
echo "molecule: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
