#!/usr/bin/env bash
# Lint the collection offline: ansible-lint (config in .ansible-lint, profile
# production) and shellcheck on every shell script git knows.
#
# Usage: [VENV=<venv>] scripts/lint.sh [extra ansible-lint args]
#
# ansible-lint must resolve ceops.exchange_oauth.* to THIS working tree, so
# ANSIBLE_COLLECTIONS_PATH points first at a throwaway symlink tree
# <tmp>/ansible_collections/ceops/exchange_oauth -> repo root. With `offline: true`
# in .ansible-lint nothing is installed into ~/.ansible/collections (a copy
# there would shadow the working tree in later runs).
#
# Ends with `lint: N passed, N failed` (one count per check: ansible-lint, shellcheck).
set -euo pipefail

log() { printf 'lint: %s\n' "$*" >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd "${script_dir}/.." && pwd -P)

if [[ -n "${VENV:-}" ]]; then
    PATH="${VENV}/bin:${PATH}"
    export PATH
fi

for tool in git python3 ansible-lint shellcheck; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
        case "${tool}" in
            shellcheck) log "shellcheck not found; run scripts/ensure-system-packages.sh first" ;;
            *) log "${tool} not found on PATH (set VENV=<venv with ansible-lint>)" ;;
        esac
        exit 2
    fi
done

collection=$(cd "${repo_root}" && python3 -c '
import yaml
with open("galaxy.yml", encoding="utf-8") as f:
    g = yaml.safe_load(f)
print(g["namespace"], g["name"])
')
read -r namespace name <<<"${collection}"

tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/lint.XXXXXX")
link="${tmp_root}/ansible_collections/${namespace}/${name}"
# shellcheck disable=SC2317  # only invoked through the trap
cleanup() {
    # Drop the link first so nothing can ever recurse into the working tree.
    rm -f "${link}"
    rm -rf "${tmp_root}"
}
trap cleanup EXIT
mkdir -p "$(dirname "${link}")"
ln -s "${repo_root}" "${link}"
export ANSIBLE_COLLECTIONS_PATH="${tmp_root}${ANSIBLE_COLLECTIONS_PATH:+:${ANSIBLE_COLLECTIONS_PATH}}"

cd "${repo_root}"
passed=0
failed=0

# 1. ansible-lint (plain output when not on a terminal, e.g. in CI logs)
lint_args=()
if [[ ! -t 1 ]]; then
    lint_args+=(--nocolor)
fi
if ansible-lint "${lint_args[@]}" "$@"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

# 2. shellcheck on all shell scripts git knows (scripts/ and lab/ are outside
#    the collection, so ansible-test's shellcheck sanity test never sees them).
shell_scripts=()
while IFS= read -r -d '' path; do
    if [[ -f "${path}" ]]; then
        shell_scripts+=("${path}")
    fi
done < <(git ls-files -z -co --exclude-standard -- '*.sh' '*.bash')
if ((${#shell_scripts[@]} == 0)); then
    passed=$((passed + 1))
elif shellcheck "${shell_scripts[@]}"; then
    log "shellcheck: ${#shell_scripts[@]} script(s) clean"
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

echo "lint: ${passed} passed, ${failed} failed"
((failed == 0))
