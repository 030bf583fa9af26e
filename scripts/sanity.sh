#!/usr/bin/env bash
# Run `ansible-test sanity` offline (no Docker, no internet) on a real copy of
# the collection.
#
# Usage: [VENV=<venv>] scripts/sanity.sh [extra ansible-test sanity args]
#   e.g. scripts/sanity.sh --test pep8 --test shellcheck
#
# Environment:
#   VENV            virtualenv holding ansible-core (its bin/ is put first on PATH)
#   SANITY_PYTHON   Python version to test with (default: that of `python3` on PATH)
#   SANITY_KEEP=1   keep the temporary copy (and its tests/output) for inspection
#
# What it does:
#   1. Copies the files git knows (`git ls-files -co --exclude-standard`) into
#      <tmp>/ansible_collections/ceops/exchange_oauth (a real copy: ansible-test
#      does not accept a symlinked collection root), minus everything galaxy.yml's
#      build_ignore excludes (lab/, scripts/, .ci/, tests/lab/, tests/integration/,
#      ...). The list is read from galaxy.yml, so sanity checks exactly what
#      `ansible-galaxy collection build` ships.
#   2. Seeds ansible-test's pip bootstrap cache (~/.ansible/test/cache/get_pip_X_Y.py)
#      with a stand-in for get-pip.py that uses ensurepip plus the configured
#      package index, because ansible-test would otherwise download get-pip.py from
#      ci-files.testing.ansible.com, which this network does not reach.
#   3. Runs `ansible-test sanity --local --python X.Y` in the copy, with no
#      ignore files, and ends with the line `sanity: N passed, N failed`.
set -euo pipefail

log() { printf 'sanity: %s\n' "$*" >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd "${script_dir}/.." && pwd -P)

if [[ -n "${VENV:-}" ]]; then
    PATH="${VENV}/bin:${PATH}"
    export PATH
fi

for tool in git python3 ansible-test; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
        log "${tool} not found on PATH (set VENV=<venv with ansible-core>)"
        exit 2
    fi
done
# Without shellcheck ansible-test only warns and skips its shellcheck test.
if ! command -v shellcheck >/dev/null 2>&1; then
    log "shellcheck not found; run scripts/ensure-system-packages.sh first"
    exit 2
fi

python_version=${SANITY_PYTHON:-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')}

# Namespace and name from galaxy.yml.
collection=$(cd "${repo_root}" && python3 -c '
import yaml
with open("galaxy.yml", encoding="utf-8") as f:
    g = yaml.safe_load(f)
print(g["namespace"], g["name"])
')
read -r namespace name <<<"${collection}"

tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/sanity.XXXXXX")
# shellcheck disable=SC2317  # only invoked through the trap
cleanup() {
    if [[ "${SANITY_KEEP:-0}" == 1 ]]; then
        log "kept ${tmp_root}"
    else
        rm -rf "${tmp_root}"
    fi
}
trap cleanup EXIT

copy="${tmp_root}/ansible_collections/${namespace}/${name}"
mkdir -p "${copy}"

# 1. Copy what git knows, minus galaxy.yml's build_ignore (same fnmatch rules
#    as ansible-galaxy: a pattern matches a file's path or any parent folder).
(cd "${repo_root}" && git ls-files -z -co --exclude-standard) |
    python3 -c '
import fnmatch, os, shutil, sys
import yaml

src, dst = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "galaxy.yml"), encoding="utf-8") as f:
    patterns = yaml.safe_load(f).get("build_ignore") or []
patterns += ["tests/output"]  # ansible-galaxy always ignores it, so ansible-test writes there

def ignored(rel):
    parts = rel.split("/")
    paths = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(p, pat) for p in paths for pat in patterns)

copied = 0
for rel in sys.stdin.buffer.read().decode("utf-8", "surrogateescape").split("\0"):
    s = os.path.join(src, rel)
    if not rel or ignored(rel) or not os.path.lexists(s) or os.path.isdir(s) and not os.path.islink(s):
        continue  # deleted but tracked files, submodules
    d = os.path.join(dst, rel)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    shutil.copy2(s, d, follow_symlinks=False)
    copied += 1
print("sanity: copied %d files to %s" % (copied, dst), file=sys.stderr)
' "${repo_root}" "${copy}"

# 2. Seed the pip bootstrap script ansible-test would download. Its file name
#    carries the pip version pinned in ansible_test/_internal/python_requirements.py
#    (ansible-core 2.19: pip 24.2 -> get_pip_24_2.py).
pip_version=$(python3 -c '
import os, re, ansible_test
path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
with open(path, encoding="utf-8") as f:
    print(re.search(r"pip=.([0-9][0-9.]*).", f.read()).group(1))
')
get_pip="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
marker="# offline get-pip stand-in seeded by scripts/sanity.sh"
if [[ ! -e "${get_pip}" ]] || grep -qxF "${marker}" "${get_pip}"; then
    mkdir -p "$(dirname "${get_pip}")"
    cat >"${get_pip}.tmp" <<EOF
${marker}
"""Bootstrap pip into an empty venv without get-pip.py: ensurepip, then pip install <args>."""
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet"] + args, check=True)


if __name__ == "__main__":
    main()
EOF
    mv "${get_pip}.tmp" "${get_pip}"
fi

# 3. Run the tests.
skip_tests=(
    # pslint needs PowerShell (pwsh) with PSScriptAnalyzer; neither is in
    # Debian 12 nor on PyPI, so it cannot run here (it would only warn and skip).
    --skip-test pslint
)
output="${tmp_root}/ansible-test.out"
set +e
(
    cd "${copy}" &&
        ansible-test sanity --local --python "${python_version}" --color no \
            "${skip_tests[@]}" "$@"
) 2>&1 | tee "${output}"
status=${PIPESTATUS[0]}
set -e

# ansible-test prints `Running sanity test "NAME"` for each test it runs and, when
# some fail, `FATAL: The N sanity test(s) listed below (out of M) failed. ...`.
ran=$(grep -c '^Running sanity test ' "${output}" || true)
summary='^[A-Z]*: The \([0-9][0-9]*\) sanity test(s) listed below (out of \([0-9][0-9]*\)).*'
failed=$(sed -n "s/${summary}/\1/p" "${output}" | tail -n 1)
total=$(sed -n "s/${summary}/\2/p" "${output}" | tail -n 1)
failed=${failed:-0}
total=${total:-${ran}}
if [[ "${status}" -ne 0 && "${failed}" -eq 0 ]]; then
    failed=1 # ansible-test itself failed (setup error, bad arguments, ...)
fi
passed=$((total - failed))
if ((passed < 0)); then
    passed=0
fi
echo "sanity: ${passed} passed, ${failed} failed"
exit "${status}"
