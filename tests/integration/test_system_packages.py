# -*- coding: utf-8 -*-
"""scripts/ensure-system-packages.sh, with apt, dpkg and the service managers replaced by recorders: it installs what
is missing, never starts, stops or reconfigures this machine's own Dovecot, and leaves a Dovecot it brought disabled."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "ensure-system-packages.sh")

# Each stub records its command line in $STUB/calls; dpkg-query reports the packages in $STUB/installed/ as installed,
# apt-get install adds them there (and records whether the policy-rc.d that denies service starts was in place).
STUBS = {
    "id": 'echo 0\n',
    "dpkg-query": 'pkg="${@: -1}"; [ -e "$STUB/installed/$pkg" ] || exit 1; printf "install ok installed"\n',
    "apt-cache": 'echo "  Candidate: 1.0-1"\n',
    "apt-get": '''echo "apt-get $*" >> "$STUB/calls"
if [ "$1" = install ]; then
    "$CEOPS_POLICY_RC_D"; echo "policy-rc.d answered $?" >> "$STUB/calls"
    for arg in "$@"; do case $arg in -*|install) ;; *) touch "$STUB/installed/$arg" ;; esac; done
fi
''',
    "systemctl": 'echo "systemctl $*" >> "$STUB/calls"\n',
    "update-rc.d": 'echo "update-rc.d $*" >> "$STUB/calls"\n',
    "service": 'echo "service $*" >> "$STUB/calls"\n',
    "invoke-rc.d": 'echo "invoke-rc.d $*" >> "$STUB/calls"\n',
}


@pytest.fixture
def machine(tmp_path):
    stub = tmp_path / "stub"
    (stub / "installed").mkdir(parents=True)
    (stub / "calls").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)
    policy = tmp_path / "policy-rc.d"

    class Machine:
        def install(self, *packages):
            for package in packages:
                (stub / "installed" / package).touch()

        def run(self, *packages):
            env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), STUB=str(stub), CEOPS_POLICY_RC_D=str(policy))
            return subprocess.run(["bash", SCRIPT] + list(packages), env=env, capture_output=True, text=True, timeout=60)

        def calls(self):
            return (stub / "calls").read_text().splitlines()

        def installed(self):
            return sorted(os.listdir(str(stub / "installed")))

        def policy_left(self):
            return policy.exists()
    return Machine()


def service_calls(machine):
    return [c for c in machine.calls() if c.split()[0] in ("systemctl", "update-rc.d", "service", "invoke-rc.d")]


def test_the_operators_dovecot_is_left_alone_when_something_else_is_installed(machine):
    machine.install("dovecot-core", "dovecot-imapd")  # this machine's own mail server
    result = machine.run("dovecot-imapd", "shellcheck", "time")
    assert result.returncode == 0, result.stderr
    assert "apt-get install -y -q --no-install-recommends shellcheck time" in machine.calls()
    assert service_calls(machine) == []  # not stopped, not disabled, not restarted


def test_imap_is_not_added_to_the_operators_dovecot_without_asking(machine):
    machine.install("dovecot-core", "dovecot-pop3d")
    result = machine.run("dovecot-imapd", "shellcheck")
    assert result.returncode == 1
    assert "install dovecot-imapd yourself" in result.stderr and "CEOPS_LAB_NO_IMAP=1" in result.stderr
    assert machine.calls() == [] and "dovecot-imapd" not in machine.installed()


def test_a_dovecot_it_brings_never_starts_and_stays_disabled(machine):
    result = machine.run("dovecot-imapd")
    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert calls[:2] == ["apt-get install -y -q --no-install-recommends dovecot-imapd", "policy-rc.d answered 101"]
    assert "dovecot-imapd" in machine.installed() and not machine.policy_left()
    assert all(" stop" not in c and "--now" not in c and "restart" not in c for c in service_calls(machine)), calls
    assert "systemctl disable dovecot.service dovecot.socket" in calls or "update-rc.d dovecot disable" in calls


def test_nothing_missing_nothing_done(machine):
    machine.install("shellcheck", "time")
    result = machine.run("shellcheck", "time")
    assert (result.returncode, machine.calls()) == (0, [])
