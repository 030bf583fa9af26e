#!/usr/bin/env bash
# Sourced by scripts that run Ansible from this working tree: makes ceops.exchange_oauth.* resolve to
# the tree itself (never to an installed copy) through a throwaway symlink tree
# <tmp>/ansible_collections/ceops/exchange_oauth -> repo, exported as ANSIBLE_COLLECTIONS_PATH.
# Call collection_tree_cleanup on exit (it removes the link before the directory, so nothing can
# ever recurse into the working tree).

collection_tree_root=$(mktemp -d "${TMPDIR:-/tmp}/ceops-collections.XXXXXX")
collection_tree_link="${collection_tree_root}/ansible_collections/ceops/exchange_oauth"
mkdir -p "$(dirname "${collection_tree_link}")"
ln -s "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)" "${collection_tree_link}"
export ANSIBLE_COLLECTIONS_PATH="${collection_tree_root}"

collection_tree_cleanup() {
    rm -f "${collection_tree_link}"
    rm -rf "${collection_tree_root}"
}
