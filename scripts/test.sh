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

tally() {  # stage name, status, its log, seconds; a stage counts as one check unless it reports its own counts
  local counts p f
  counts=$(grep -Eo '[0-9]+ passed(, [0-9]+ failed)?' "$3" 2>/dev/null | tail -1)
  p=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$counts")
  f=$(sed -nE 's/.*, ([0-9]+) failed/\1/p' <<<"$counts")
  p=${p:-0}
  f=${f:-0}
  if [ -z "$counts" ]; then
    if [ "$2" = ok ]; then p=1; else f=1; fi
  elif [ "$2" = FAILED ] && [ "$f" = 0 ]; then
    f=1   # a stage that failed without failing a test (an error before or after) still fails the run
  fi
  record "$1" "$2" "$p" "$f" "$4"
}

run_stage() {  # stage name, command...
  local name=$1 log status started=$SECONDS
  shift
  log=$(mktemp)
  echo "=== $name: $*"
  if "$@" 2>&1 | tee "$log"; then status=ok; else status=FAILED; fi
  tally "$name" "$status" "$log" $((SECONDS - started))
  rm -f "$log"
}

# The cores stage's venvs (one per ansible-core release, cached in $VENV/cores) are made while the other stages run.
cores_prepare=""
if [[ " ${stages[*]} " == *" cores "* && ${#stages[@]} -gt 1 ]]; then
  cores_prepare_log=$(mktemp)
  scripts/cores.sh --prepare >"$cores_prepare_log" 2>&1 &
  cores_prepare=$!
fi

stage_command() {  # stage -> its command in the array "command"
  case $1 in
    system)    command=(scripts/ensure-system-packages.sh dovecot-imapd shellcheck time) ;;
    pytest)    command=(python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadscope --durations=15) ;;
    changelog) command=(antsibull-changelog lint) ;;
    docs)      command=(scripts/docs.sh lint) ;;
    sanity)    command=(scripts/sanity.sh) ;;
    lint)      command=(scripts/lint.sh) ;;
    molecule)  command=(scripts/molecule.sh) ;;
    cores)     command=(scripts/cores.sh) ;;
    *) echo "unknown stage $1" >&2; exit 2 ;;
  esac
}

wait_cores_prepare() {
  if [ -n "$cores_prepare" ]; then wait "$cores_prepare"; cat "$cores_prepare_log"; rm -f "$cores_prepare_log"; cores_prepare=""; fi
}

# The stages after pytest run side by side, in three lanes (the checks that only read files, one after another; molecule;
# cores): molecule and cores wait on their labs and module processes much of the time, so together they take little more
# than the longer of them. Each lane's output is shown when all have
# ended, stage by stage in the usual order. A run of some stages only (make sanity, make unit, ...) runs them one after another.
side_by_side=(changelog docs sanity lint molecule cores)
lanes_wanted=false
if [ ${#stages[@]} -gt 1 ]; then
  for stage in "${stages[@]}"; do
    [[ " ${side_by_side[*]} " == *" $stage "* ]] && lanes_wanted=true
  done
fi

run_lane() {  # result directory, stages...: each stage's output to <dir>/<stage>.log, "<status> <seconds>" to <dir>/<stage>.status
  local dir=$1 stage started
  shift
  for stage in "$@"; do
    started=$SECONDS
    stage_command "$stage"
    if "${command[@]}" >>"$dir/$stage.log" 2>&1; then echo "ok $((SECONDS - started))" >"$dir/$stage.status"
    else echo "FAILED $((SECONDS - started))" >"$dir/$stage.status"; fi
  done
}

lane_stages=()
for stage in "${stages[@]}"; do
  if [ "$lanes_wanted" = true ] && [[ " ${side_by_side[*]} " == *" $stage "* ]]; then
    lane_stages+=("$stage")
    continue
  fi
  stage_command "$stage"
  [ "$stage" = cores ] && wait_cores_prepare
  run_stage "$stage" "${command[@]}"
done

if [ ${#lane_stages[@]} -gt 0 ]; then
  lanes=$(mktemp -d)
  reading=() others=()
  for stage in "${lane_stages[@]}"; do
    case $stage in molecule|cores) others+=("$stage") ;; *) reading+=("$stage") ;; esac
  done
  [[ " ${lane_stages[*]} " == *" cores "* ]] && wait_cores_prepare
  echo "=== side by side: ${reading[*]:-} | ${others[*]}"
  [ ${#reading[@]} -gt 0 ] && run_lane "$lanes" "${reading[@]}" &
  for stage in "${others[@]}"; do
    run_lane "$lanes" "$stage" &
  done
  wait
  for stage in "${lane_stages[@]}"; do
    echo "=== $stage"
    cat "$lanes/$stage.log" 2>/dev/null
    read -r status seconds <"$lanes/$stage.status" 2>/dev/null || { status=FAILED; seconds=0; }
    tally "$stage" "$status" "$lanes/$stage.log" "$seconds"
  done
  rm -rf "$lanes"
fi

echo
echo "=== summary (each stage's wall time; all of make test: $((SECONDS / 60))m$(printf '%02d' $((SECONDS % 60)))s)"
printf '%s\n' "${report[@]}"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
