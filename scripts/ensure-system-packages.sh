#!/usr/bin/env bash
# Make sure the Debian packages the test tooling needs are installed.
#
# Usage: scripts/ensure-system-packages.sh [extra-package ...]
#   e.g. scripts/ensure-system-packages.sh dovecot-imapd
#
# The `shellcheck` package is always ensured (ansible-test's shellcheck sanity
# test and scripts/lint.sh are silently weaker without it); further package
# names may be given as arguments. Idempotent and quiet when everything is already installed.
# Runs non-interactively (CI=true, no stdin): as root directly, otherwise via
# `sudo -n` if that works without a password. `apt-get update` runs only when a
# package has no install candidate or the first install attempt fails
# (stale package lists).
set -euo pipefail

log() { printf 'ensure-system-packages: %s\n' "$*" >&2; }

is_installed() {
    local status
    # shellcheck disable=SC2016  # ${Status} is a dpkg-query format field, not a shell expansion
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [ "$status" = "install ok installed" ]
}

has_candidate() {
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

packages=(shellcheck "$@")
missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages (${missing[*]}) and no apt-get on this machine; install them by hand"
    exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        log "missing packages (${missing[*]}); run this script as root or with passwordless sudo"
        exit 1
    fi
fi

apt_update() {
    log "running apt-get update"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
}

apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

updated=false
for pkg in "${missing[@]}"; do
    if ! has_candidate "$pkg"; then
        apt_update
        updated=true
        break
    fi
done

log "installing: ${missing[*]}"
if ! apt_install; then
    if [ "$updated" = true ]; then
        exit 1
    fi
    apt_update
    apt_install
fi

for pkg in "${missing[@]}"; do
    if ! is_installed "$pkg"; then
        log "package $pkg is still not installed"
        exit 1
    fi
done
log "installed: ${missing[*]}"
