#!/usr/bin/env bash
# Make sure the Debian packages given as arguments are installed.
#
# Usage: scripts/ensure-system-packages.sh package ...
#   e.g. scripts/ensure-system-packages.sh dovecot-imapd shellcheck time
#
# Who asks for what: make demo asks for dovecot-imapd (the lab's IMAP server), make test also for shellcheck
# (ansible-test's shellcheck sanity test and scripts/lint.sh are silently weaker without it) and time (GNU time, the
# benchmark test), and scripts/venv.sh for python3.X-venv where python3 cannot make a virtualenv.
#
# Idempotent and quiet when everything is already installed. Runs non-interactively (CI=true, no stdin): as root
# directly, otherwise via `sudo -n` if that works without a password. `apt-get update` runs only when a package has no
# install candidate or the first install attempt fails (stale package lists).
#
# This machine's own Dovecot is never stopped, restarted or reconfigured: the lab runs a private Dovecot instance of
# its own (lab/ceops_lab/dovecot.py: its own configuration, 127.0.0.1 and a free port). Installing a package never starts
# or restarts a daemon here (a temporary policy-rc.d denies it). Where dovecot-imapd brings Dovecot to this machine for
# the first time, its system service is left disabled, so that no Dovecot listens on this machine's interfaces after a
# reboot either. Where a Dovecot is already installed without dovecot-imapd, adding it would add IMAP to that service at
# its next restart: the script stops and says so, and the operator decides.
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

packages=("$@")
missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

new_dovecot=false
for pkg in "${missing[@]}"; do
    if [ "$pkg" = dovecot-imapd ]; then
        if is_installed dovecot-core; then
            log "this machine has a Dovecot of its own (dovecot-core) without dovecot-imapd; installing dovecot-imapd would add" \
                "IMAP to that service when it next restarts. The lab only needs the binaries (it runs a private instance): install" \
                "dovecot-imapd yourself if that is fine for this machine's Dovecot, or start the lab with CEOPS_LAB_NO_IMAP=1"
            exit 1
        fi
        new_dovecot=true
    fi
done

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

# invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 = "action forbidden", so no daemon starts or restarts.
policy=${CEOPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}
policy_backup=""
deny_service_starts() {
    if "${as_root[@]}" test -e "$policy"; then
        policy_backup=$("${as_root[@]}" mktemp "$policy.ensure.XXXXXX")
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
# The Dovecot this script brought to the machine stays off at boot too (nothing was running: starts were denied).
keep_new_dovecot_disabled() {
    if command -v systemctl >/dev/null 2>&1; then
        "${as_root[@]}" systemctl disable dovecot.service dovecot.socket >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        "${as_root[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
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
if [ "$new_dovecot" = true ]; then
    keep_new_dovecot_disabled
fi

for pkg in "${missing[@]}"; do
    if ! is_installed "$pkg"; then
        log "package $pkg is still not installed"
        exit 1
    fi
done
log "installed: ${missing[*]}"
