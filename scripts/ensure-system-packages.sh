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
# Installing a package never starts its daemon here (a temporary policy-rc.d denies it), and a
# system Dovecot that dovecot-imapd brings is stopped and disabled: the lab runs its own private
# Dovecot on 127.0.0.1 only, and nothing of this machine may listen on other interfaces.
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

# invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 = "action forbidden", so no daemon starts.
policy=/usr/sbin/policy-rc.d
policy_backup=""
deny_service_starts() {
    if "${as_root[@]}" test -e "$policy"; then
        policy_backup=$("${as_root[@]}" mktemp /usr/sbin/policy-rc.d.ensure.XXXXXX)
        "${as_root[@]}" cp -p "$policy" "$policy_backup"
    fi
    printf '#!/bin/sh\n# temporary, from scripts/ensure-system-packages.sh\nexit 101\n' \
        | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
}
restore_service_starts() {
    if [ -n "$policy_backup" ]; then
        "${as_root[@]}" mv -f "$policy_backup" "$policy"
    else
        "${as_root[@]}" rm -f "$policy"
    fi
}
stop_system_dovecot() {
    is_installed dovecot-core || return 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${as_root[@]}" systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    else
        "${as_root[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
    fi
    if [ -s /run/dovecot/master.pid ]; then
        log "stopping the system Dovecot (the lab runs its own on 127.0.0.1)"
        "${as_root[@]}" kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
    fi
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
deny_service_starts
trap restore_service_starts EXIT
if ! apt_install; then
    if [ "$updated" = true ]; then
        exit 1
    fi
    apt_update
    apt_install
fi
restore_service_starts
trap - EXIT
stop_system_dovecot

for pkg in "${missing[@]}"; do
    if ! is_installed "$pkg"; then
        log "package $pkg is still not installed"
        exit 1
    fi
done
log "installed: ${missing[*]}"
