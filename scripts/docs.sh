#!/usr/bin/env bash
# The collection's reference docs, generated from the code with antsibull-docs (offline, from this working tree).
#
#   scripts/docs.sh          regenerate docs/collection/ (module docs from DOCUMENTATION/EXAMPLES/RETURN, role docs
#                            from roles/*/meta/argument_specs.yml); commit the result with the change that caused it
#   scripts/docs.sh lint     antsibull-docs lint-collection-docs --plugin-docs, then fail when docs/collection/ is not
#                            what the code generates now (a doc change without `make docs`)
#
# docs/collection/ is simplified RST: readable on the repository host without a Sphinx build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV=$(cd "$VENV" && pwd)
export PATH="$VENV/bin:$PATH"
export ANSIBLE_NOCOLOR=1

COLLECTION=ceops.exchange_oauth
OUTPUT=docs/collection

# shellcheck source=scripts/collection-tree.sh
source scripts/collection-tree.sh
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ceops-docs.XXXXXX")
trap 'collection_tree_cleanup; rm -rf "$scratch"' EXIT
# Only the working tree: no installed copy and no other collection can answer for ceops.exchange_oauth.
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false

generate() {  # destination directory (antsibull-docs wants it to exist, owned by us, not writable by others)
  mkdir -p "$1"
  chmod go-w "$1"
  antsibull-docs collection --use-current --squash-hierarchy --output-format simplified-rst \
    --no-add-antsibull-docs-version --fail-on-error --cleanup everything --dest-dir "$1" "$COLLECTION" >"$scratch/generate.log" 2>&1 \
    || { cat "$scratch/generate.log" >&2; echo "docs: antsibull-docs could not generate the docs (above)" >&2; return 1; }
}

case ${1:-generate} in
  generate)
    generate "$OUTPUT"
    echo "docs: $OUTPUT/ regenerated ($(find "$OUTPUT" -name '*.rst' | wc -l) files)"
    ;;
  lint)
    antsibull-docs lint-collection-docs --plugin-docs "$collection_tree_link"
    generate "$scratch/generated"
    if ! diff -ru "$OUTPUT" "$scratch/generated" >"$scratch/stale.diff"; then
      head -n 60 "$scratch/stale.diff"
      echo "docs: $OUTPUT/ is not what the code generates: run \`make docs\` (scripts/docs.sh) and commit $OUTPUT/" >&2
      exit 1
    fi
    echo "docs: lint passed and $OUTPUT/ is up to date"
    ;;
  *)
    echo "usage: $0 [lint]" >&2
    exit 2
    ;;
esac
