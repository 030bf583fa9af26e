#!/usr/bin/env bash
# make bench [ARGS='--tenants 50,200,500 --forks 50']: the fleet benchmark (docs/benchmark.md).
# Generates a lab fleet per size, runs cold / warm / verify / floor / profile / --check with drift against a lab of
# its own, and writes bench/results/bench.json, bench.md and bench.png. Exit code 1 when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

# The plot needs matplotlib, which make demo's venv has not (make venv installs it, for the picture's test): installed here.
python -c 'import matplotlib' 2>/dev/null || python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
# The lab's IMAP endpoint (the proof's logins) is a private Dovecot; GNU time measures each module process.
scripts/ensure-system-packages.sh dovecot-imapd time

# shellcheck source=scripts/collection-tree.sh
source scripts/collection-tree.sh
trap collection_tree_cleanup EXIT

python bench/fleet_bench.py "$@"
