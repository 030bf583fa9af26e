# -*- coding: utf-8 -*-
"""ce_mailboxes_from_portal: a CE tenant's mailboxes come from its CE email connection, not the inventory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTOSO = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"


def run(lab, tmp_path, inventory_edit):
    with open(os.path.join(REPO, "inventories/lab/hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    inventory_edit(inventory["all"]["children"]["ce_tenants"]["children"])
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "hosts.yml").write_text(yaml.safe_dump(inventory))
    # The lab inventory's group_vars read the running lab; reuse them as they are.
    os.symlink(os.path.join(REPO, "inventories/lab/group_vars"), str(inventory_dir / "group_vars"))
    wrapper = tmp_path / "run.yml"
    wrapper.write_text("".join("- ansible.builtin.import_playbook: %s/playbooks/%s\n" % (REPO, name)
                               for name in ("azuread.yml", "ce_mailboxes.yml", "exchange_online.yml")))
    env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory_dir), str(wrapper)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def full_access_holders(lab, address):
    organization = lab.exchange_state("contoso")
    mailbox = [m for m in organization["mailboxes"] if m["PrimarySmtpAddress"].lower() == address][0]
    return [e["User"] for e in mailbox.get("permissions", mailbox.get("acl", []))
            if "FullAccess" in e.get("AccessRights", []) and not e.get("IsInherited") and not e.get("Deny")]


def test_mailboxes_come_from_the_existing_ce_connection(fresh_lab, tmp_path):
    def take_umbrella_from_portal(groups):
        umbrella = groups["ce_deployment_us"]["hosts"]["umbrella"]
        umbrella.pop("ce_mailboxes")
        umbrella["ce_mailboxes_from_portal"] = True

    result = run(fresh_lab, tmp_path, take_umbrella_from_portal)
    assert result.returncode == 0, result.stdout[-3000:]
    # umbrella's connection in the Portal (seeded, OAuth still off) reads these two mailboxes.
    portal = sorted(fresh_lab.vars["lab_ce_deployments"]["us"]["tenants"]["umbrella"]["mailboxes"])
    apps = [a for a in fresh_lab.state("graph")["directories"]["contoso"]["servicePrincipals"] if a.get("displayName") == "CE Email"]
    assert len(apps) == 1
    for address in portal:
        assert any(apps[0]["id"] in str(user) for user in full_access_holders(fresh_lab, address.lower())), address


def test_a_tenant_without_a_connection_fails_alone_with_what_to_do(fresh_lab, tmp_path):
    def take_acme_from_portal(groups):
        acme = groups["ce_deployment_emea"]["hosts"]["acme"]
        acme.pop("ce_mailboxes")
        acme["ce_mailboxes_from_portal"] = True

    result = run(fresh_lab, tmp_path, take_acme_from_portal)
    assert result.returncode != 0
    summary = result.stdout.split("Show what every CE tenant got")[-1]
    assert "acme       FAILED" in summary and "CE mailboxes: " in summary and "does not exist yet" in summary
    assert "globex     done" in summary and "List the mailboxes as ce_mailboxes" in summary
