#!/usr/bin/env bash
# make test's stage "cores": the collection on every ansible-core minor release of meta/runtime.yml's requires_ansible
# other than the one of the main venv (requirements-dev.txt's, which every other stage tests), each in a virtualenv of
# its own: the unit tests, then playbooks/site.yml against a fresh lab twice, the second run changing nothing
# (scripts/demo.sh). The releases run side by side (CEOPS_CORES_JOBS at once, default one per core of the machine), each
# against a lab of its own. Ends with `cores: N passed, N failed` (one unit run and one converge per release).
#
# Usage: [VENV=.venv] scripts/cores.sh [--prepare] [2.16 2.17 ...]   (default: the range's releases, less the main venv's)
#   --prepare only makes the venvs (scripts/test.sh starts that in the background while the other stages run).
#
# The venvs live in $VENV/cores/<release> and are reused while tests/unit/requirements.txt, lab/pyproject.toml,
# constraints-dev.txt and the release line are unchanged (the stamp records a hash of them); they hold ansible-core ~= <release>.0, pytest and
# pytest-xdist, tests/unit/requirements.txt (so it is tested to be all the unit tests need) and the lab.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
VENV=$(cd "${VENV:-.venv}" && pwd)
python=$VENV/bin/python

prepare=false
if [ "${1:-}" = --prepare ]; then
    prepare=true
    shift
fi
releases=("$@")
if [ ${#releases[@]} -eq 0 ]; then
    # shellcheck disable=SC2207  # one release per word
    releases=($("$python" - <<'PY'
import re
import yaml
from ansible.module_utils.ansible_release import __version__
spec = yaml.safe_load(open("meta/runtime.yml"))["requires_ansible"]
low = re.search(r">=\s*2\.(\d+)", spec).group(1)
high = re.search(r"<\s*2\.(\d+)", spec).group(1)
main = int(__version__.split(".")[1])
print(" ".join("2.%d" % minor for minor in range(int(low), int(high)) if minor != main))
PY
))
fi

make_venv() {  # release: its venv, made unless the stamp says it is current
    local release=$1 venv=$VENV/cores/$1 want
    want=$(cat tests/unit/requirements.txt lab/pyproject.toml constraints-dev.txt <(echo "$release") | sha256sum | cut -c1-16)
    [ "$(cat "$venv/.cores-stamp" 2>/dev/null)" = "$want" ] && return 0
    echo "--- ansible-core $release: making $venv"
    rm -rf "$venv"
    PYTHON="$python" scripts/venv.sh "$venv" "ansible-core~=$release.0" pytest pytest-xdist -r tests/unit/requirements.txt -e ./lab \
        -c constraints-dev.txt || return 1
    echo "$want" > "$venv/.cores-stamp"
}

if [ "$prepare" = true ]; then
    for release in "${releases[@]}"; do
        make_venv "$release" || echo "--- ansible-core $release: the venv could not be made (the cores stage tries again)"
    done
    exit 0
fi

# One release: its unit tests, then the converge and re-run. Writes "<passed> <failed> <summary line>" to $2 and its log
# (what failed, shown at the end) to $2.log. A site.yml run uses under one core of CPU (it waits on the lab and its module
# processes), so the releases run side by side, one more at a time than the machine has cores (three on two: measured
# 3m16s two at a time, the third waiting).
run_release() {  # release, result file
    local release=$1 out=$2 venv=$VENV/cores/$1 passed=0 failed=0 started made version unit site unit_time lab_dir
    started=$SECONDS
    if ! make_venv "$release" >>"$out.log" 2>&1; then
        echo "0 2 ansible-core $release: the venv could not be made" >"$out"
        return
    fi
    made=$((SECONDS - started))
    version=$("$venv/bin/python" -c 'from ansible.module_utils.ansible_release import __version__; print(__version__)')

    started=$SECONDS
    if CEOPS_NO_LAB=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 tests/unit >"$out.unit" 2>&1; then
        unit="unit $(grep -Eo '[0-9]+ passed(, [0-9]+ skipped)?' "$out.unit" | tail -1)"
        passed=$((passed + 1))
    else
        { echo "--- ansible-core $version: the unit tests failed"; tail -40 "$out.unit"; } >>"$out.log"
        unit="unit FAILED"
        failed=$((failed + 1))
    fi
    unit_time=$((SECONDS - started))

    started=$SECONDS
    lab_dir=$(mktemp -d "${TMPDIR:-/tmp}/ceops-cores-lab.XXXXXX")
    if VENV=$venv CEOPS_LAB_DIR=$lab_dir ANSIBLE_FORCE_COLOR=0 scripts/demo.sh -f 10 -e ce_email_oauth_batch_update_poll_interval=0.5 \
            >"$out.site" 2>&1; then
        site="converge + re-run changed=0"
        passed=$((passed + 1))
    else
        { echo "--- ansible-core $version: playbooks/site.yml failed or changed something on its re-run"; tail -60 "$out.site"; } >>"$out.log"
        site="converge FAILED"
        failed=$((failed + 1))
    fi
    rm -rf "$lab_dir"
    echo "$passed $failed ansible-core $version: $unit (${unit_time}s), $site ($((SECONDS - started))s), venv ${made}s" >"$out"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs_at_once=${CEOPS_CORES_JOBS:-$(($(nproc) + 1))}
for release in "${releases[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_at_once" ]; do
        wait -n
    done
    echo "--- ansible-core $release: the unit tests, then playbooks/site.yml twice against a fresh lab"
    run_release "$release" "$work/$release" &
done
wait

passed=0
failed=0
echo
for release in "${releases[@]}"; do
    [ -s "$work/$release.log" ] && cat "$work/$release.log"
    if [ -s "$work/$release" ] && read -r p f line <"$work/$release"; then
        passed=$((passed + p))
        failed=$((failed + f))
        echo "$line"
    else
        failed=$((failed + 2))
        echo "ansible-core $release: no result"
    fi
done
echo "cores: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
