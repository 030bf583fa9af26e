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

passed=0
failed=0
for scenario_dir in extensions/molecule/*/; do
    scenario=$(basename "${scenario_dir}")
    echo "--- molecule scenario ${scenario}"
    if molecule test -s "${scenario}"; then
        passed=$((passed + 1))
    else
        echo "molecule scenario ${scenario} FAILED"
        failed=$((failed + 1))
    fi
done
echo "molecule: ${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
