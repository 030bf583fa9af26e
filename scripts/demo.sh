#!/usr/bin/env bash
# make demo: start the lab, run the site playbook over the lab fleet twice (the second run must
# change nothing), print a per-tenant summary, stop the lab.
# Usage: [VENV=<venv>] [CEOPS_LAB_DIR=<dir>] scripts/demo.sh [ansible-playbook options]
# (scripts/cores.sh runs it with each ansible-core release's venv and a lab directory of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${VENV:-.venv}" && pwd)
export PATH="$VENV/bin:$PATH"
export CEOPS_LAB_DIR=${CEOPS_LAB_DIR:-$PWD/.lab}
# A private token cache per demo, so the demo shows the token requests a fresh run makes.
CEOPS_TOKEN_CACHE_DIR=$(mktemp -d)
export CEOPS_TOKEN_CACHE_DIR ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-1}

# shellcheck source=scripts/collection-tree.sh
source scripts/collection-tree.sh

cleanup() {
  python -m ceops_lab stop --state-dir "$CEOPS_LAB_DIR" || true
  rm -rf "$CEOPS_TOKEN_CACHE_DIR"
  collection_tree_cleanup
}
trap cleanup EXIT

# The lab's IMAP endpoint is a private Dovecot; shellcheck is not needed for the demo.
scripts/ensure-system-packages.sh dovecot-imapd

if python -m ceops_lab status --state-dir "$CEOPS_LAB_DIR" >/dev/null 2>&1; then
  echo "A lab is already running in $CEOPS_LAB_DIR; stopping it to start the demo on a fresh one."
  python -m ceops_lab stop --state-dir "$CEOPS_LAB_DIR"
fi
python -m ceops_lab start --state-dir "$CEOPS_LAB_DIR"

playbook_options=("$@")
run_site() {  # label, log file
  echo
  echo "################ $1 ################"
  ansible-playbook -i inventories/lab playbooks/site.yml "${playbook_options[@]}" | tee "$2"
}

first=$(mktemp)
second=$(mktemp)
run_site "first run: converge the lab fleet" "$first"
run_site "second run: must change nothing" "$second"

echo
echo "################ result ################"
recap=$(sed -n '/PLAY RECAP/,$p' "$second" | sed 's/\x1b\[[0-9;]*m//g')
if grep -Eq 'changed=[1-9]|failed=[1-9]|unreachable=[1-9]' <<<"$recap"; then
  echo "The second run changed or failed something; it must not:"
  echo "$recap"
  exit 1
fi
echo "Second run: changed=0 and failed=0 on every CE tenant."
echo "Requests the two runs sent to the lab (reads / writes), and token requests:"
python -m ceops_lab counters --state-dir "$CEOPS_LAB_DIR" | python -c '
import json, sys
counters = json.load(sys.stdin)
for service, data in sorted(counters["services"].items()):
    if service != "admin":
        print("  %-8s %5d reads %5d writes" % (service, data["totals"]["reads"], data["totals"]["writes"]))
print("  tokens   %5d (one per directory, client and resource: the cache serves every other task)" % sum(counters["tokens"].values()))
' 
rm -f "$first" "$second"
