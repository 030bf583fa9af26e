# -*- coding: utf-8 -*-
"""ce_send_with_oauth: SMTP.SendAsApp for the directory's app, added when a CE tenant of the directory sends; taken away only on
ceops_revoke_send_with_oauth (a run may not see every CE tenant of the directory)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NORTHWIND = "8b3c4d5e-3c4d-4e5f-8a1b-2c3d4e5f6a73"
SMTP_SEND_AS_APP = "7146a1f0-8703-45b3-9eae-527a64c00995"


def azuread(lab, tmp_path, *extra):
    """azuread.yml over the lab fleet plus 'hooli2', a second northwind tenant that does not send with OAuth."""
    with open(os.path.join(REPO, "inventories/lab/hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    inventory["all"]["children"]["ce_tenants"]["children"]["ce_deployment_us"]["hosts"]["hooli2"] = {
        "ce_tenant": "hooli2", "ms_tenant_id": NORTHWIND, "ce_mailboxes": ["ce-info@northwind.onmicrosoft.com"]}
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir(exist_ok=True)
    (inventory_dir / "hosts.yml").write_text(yaml.safe_dump(inventory))
    if not (inventory_dir / "group_vars").exists():
        os.symlink(os.path.join(REPO, "inventories/lab/group_vars"), str(inventory_dir / "group_vars"))
    env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory_dir),
                           os.path.join(REPO, "playbooks/azuread.yml")] + list(extra), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def northwind_consents(lab):
    directory = lab.state("graph")["directories"]["northwind"]
    app = [a for a in directory["applications"] if a.get("uniqueName") == "ce-email"][0]
    principal = [sp for sp in directory["servicePrincipals"] if sp["appId"] == app["appId"]][0]
    return set(a["appRoleId"] for a in directory["appRoleAssignments"] if a["principalId"] == principal["id"])


def test_a_run_limited_to_a_non_sending_tenant_keeps_the_directorys_send_permission(fresh_lab, tmp_path):
    converged = azuread(fresh_lab, tmp_path)
    assert converged.returncode == 0, converged.stdout[-2000:]
    assert SMTP_SEND_AS_APP in northwind_consents(fresh_lab)  # hooli sends with OAuth

    fresh_lab.reset_counters()
    limited = azuread(fresh_lab, tmp_path, "--limit", "hooli2")
    assert limited.returncode == 0, limited.stdout[-2000:]
    assert "revoke admin consent" not in limited.stdout
    assert fresh_lab.counters()["services"]["graph"]["totals"]["writes"] == 0
    assert SMTP_SEND_AS_APP in northwind_consents(fresh_lab)


def northwind_requested(lab):
    directory = lab.state("graph")["directories"]["northwind"]
    app = [a for a in directory["applications"] if a.get("uniqueName") == "ce-email"][0]
    return set(r["id"] for entry in app["requiredResourceAccess"] for r in entry["resourceAccess"] if r["type"] == "Role")


def test_the_send_permission_goes_only_when_the_inventory_says_so(fresh_lab, tmp_path):
    """No CE tenant of the run sends any more: a run cannot tell whether one outside it (another AWX slice) still does, so
    SMTP.SendAsApp stays until ceops_revoke_send_with_oauth says to take it away."""
    northwind = ("--limit", "hooli,hooli2")
    converged = azuread(fresh_lab, tmp_path, *northwind)
    assert converged.returncode == 0, converged.stdout[-2000:]
    assert SMTP_SEND_AS_APP in northwind_consents(fresh_lab) and SMTP_SEND_AS_APP in northwind_requested(fresh_lab)

    fresh_lab.reset_counters()
    nobody_sends = azuread(fresh_lab, tmp_path, "-e", "ce_send_with_oauth=false", *northwind)
    assert nobody_sends.returncode == 0, nobody_sends.stdout[-2000:]
    assert fresh_lab.counters()["services"]["graph"]["totals"]["writes"] == 0
    assert SMTP_SEND_AS_APP in northwind_consents(fresh_lab) and SMTP_SEND_AS_APP in northwind_requested(fresh_lab)

    revoked = azuread(fresh_lab, tmp_path, "-v", "-e", "ce_send_with_oauth=false", "-e", "ceops_revoke_send_with_oauth=true", *northwind)
    assert revoked.returncode == 0, revoked.stdout[-2000:]
    assert "revoke admin consent for SMTP.SendAsApp" in revoked.stdout
    assert SMTP_SEND_AS_APP not in northwind_consents(fresh_lab) and SMTP_SEND_AS_APP not in northwind_requested(fresh_lab)
