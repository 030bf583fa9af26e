#!/usr/bin/env bash
# Runs every test stage (or the ones named as arguments) and ends with one summary line.
# Stages: system (Debian packages), pytest (unit, lab, integration), changelog, docs (generated docs current and lint-clean),
# sanity, lint, molecule, cores (the unit tests and a converge on each other ansible-core release of meta/runtime.yml).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
VENV=${VENV:-.venv}
VENV=$(cd "$VENV" && pwd)
export VENV PATH="$VENV/bin:$PATH"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(system pytest changelog docs sanity lint molecule cores)

passed=0
failed=0
report=()

record() {  # stage, status, passed count, failed count, seconds
  report+=("$(printf '%-10s %-6s %s passed, %s failed  (%dm%02ds)' "$1" "$2" "$3" "$4" $(($5 / 60)) $(($5 % 60)))")
  passed=$((passed + $3))
  failed=$((failed + $4))
}

run_stage() {  # stage name, command...; a stage counts as one check unless it reports its own counts
  local name=$1 log counts p f started=$SECONDS
  shift
  log=$(mktemp)
  echo "=== $name: $*"
  if "$@" 2>&1 | tee "$log"; then status=ok; else status=FAILED; fi
  counts=$(grep -Eo '[0-9]+ passed(, [0-9]+ failed)?' "$log" | tail -1)
  p=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$counts")
  f=$(sed -nE 's/.*, ([0-9]+) failed/\1/p' <<<"$counts")
  p=${p:-0}
  f=${f:-0}
  if [ -z "$counts" ]; then
    if [ "$status" = ok ]; then p=1; else f=1; fi
  elif [ "$status" = FAILED ] && [ "$f" = 0 ]; then
    f=1   # a stage that failed without failing a test (an error before or after) still fails the run
  fi
  record "$name" "$status" "$p" "$f" $((SECONDS - started))
  rm -f "$log"
}

# The cores stage's venvs (one per ansible-core release, cached in $VENV/cores) are made while the other stages run.
cores_prepare=""
if [[ " ${stages[*]} " == *" cores "* && ${#stages[@]} -gt 1 ]]; then
  cores_prepare_log=$(mktemp)
  scripts/cores.sh --prepare >"$cores_prepare_log" 2>&1 &
  cores_prepare=$!
fi

for stage in "${stages[@]}"; do
  case $stage in
    system)    run_stage system scripts/ensure-system-packages.sh dovecot-imapd shellcheck time ;;
    pytest)    run_stage pytest python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadscope --durations=15 ;;
    changelog) run_stage changelog antsibull-changelog lint ;;
    docs)      run_stage docs scripts/docs.sh lint ;;
    sanity)    run_stage sanity scripts/sanity.sh ;;
    lint)      run_stage lint scripts/lint.sh ;;
    molecule)  run_stage molecule scripts/molecule.sh ;;
    cores)     if [ -n "$cores_prepare" ]; then wait "$cores_prepare"; cat "$cores_prepare_log"; rm -f "$cores_prepare_log"; fi
               run_stage cores scripts/cores.sh ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done

echo
echo "=== summary (each stage's wall time; all of make test: $((SECONDS / 60))m$(printf '%02d' $((SECONDS % 60)))s)"
printf '%s\n' "${report[@]}"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
