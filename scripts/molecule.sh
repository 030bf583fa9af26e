#!/usr/bin/env bash
# Run every molecule scenario under extensions/molecule against this working tree.
# Each scenario starts and stops its own lab. Ends with `molecule: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
if [[ -n "${VENV:-}" ]]; then
    PATH="${VENV}/bin:${PATH}"
    export PATH
fi

# ceops.exchange_oauth.* must resolve to this tree, never to an installed copy.
tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/molecule.XXXXXX")
link="${tmp_root}/ansible_collections/ceops/exchange_oauth"
cleanup() {
    rm -f "${link}"
    rm -rf "${tmp_root}"
}
trap cleanup EXIT
mkdir -p "$(dirname "${link}")"
ln -s "$PWD" "${link}"
export ANSIBLE_COLLECTIONS_PATH="${tmp_root}"

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
