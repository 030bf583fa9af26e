# -*- coding: utf-8 -*-
"""ceops_app_per_ce_tenant: each CE tenant gets its own app, which opens only that tenant's mailboxes."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_one_app_per_ce_tenant_with_access_to_its_own_mailboxes_only(fresh_lab, tmp_path):
    wrapper = tmp_path / "run.yml"
    wrapper.write_text("".join("- ansible.builtin.import_playbook: %s/playbooks/%s\n" % (REPO, name)
                               for name in ("azuread.yml", "exchange_online.yml")))
    env = dict(os.environ, CEOPS_LAB_DIR=fresh_lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "inventories/lab", str(wrapper),
                             "-e", "ceops_app_per_ce_tenant=true"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]

    with open(os.path.join(REPO, "inventories/lab/hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    tenants = {}
    for group in inventory["all"]["children"]["ce_tenants"]["children"].values():
        tenants.update(group["hosts"])
    directories = fresh_lab.state("graph")["directories"]
    by_tenant_id = dict((d["tenant_id"], name) for name, d in directories.items())

    for tenant, host in tenants.items():
        directory = by_tenant_id[host["ms_tenant_id"]]
        apps = [a for a in directories[directory]["applications"] if a.get("uniqueName") == "ce-email-" + tenant]
        assert len(apps) == 1, tenant
        assert apps[0]["displayName"] == "CE Email (%s)" % tenant
        service_principal = [sp for sp in directories[directory]["servicePrincipals"] if sp["appId"] == apps[0]["appId"]][0]
        organization = fresh_lab.exchange_state(directory)
        granted = set()
        for mailbox in organization["mailboxes"]:
            for entry in mailbox.get("permissions", mailbox.get("acl", [])):
                if service_principal["id"] in str(entry.get("User", "")) and "FullAccess" in entry.get("AccessRights", []) \
                        and not entry.get("Deny") and not entry.get("IsInherited"):
                    granted.add(mailbox["PrimarySmtpAddress"].lower())
        assert granted == set(m.lower() for m in host["ce_mailboxes"]), (tenant, granted)
    # No shared app was made.
    assert not [a for d in directories.values() for a in d["applications"] if a.get("uniqueName") == "ce-email"]
