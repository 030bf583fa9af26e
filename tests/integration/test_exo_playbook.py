# -*- coding: utf-8 -*-
"""The Exchange Online playbook and role as ops run them: ansible-playbook over the lab inventory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
from playbook_output import recap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
CE_TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
DIRECTORIES = {"contoso": "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "fabrikam": "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62",
               "northwind": "8b3c4d5e-3c4d-4e5f-8a1b-2c3d4e5f6a73"}
# The lab inventory's ce_mailboxes, by directory (14 mailboxes; contoso's are read by three CE tenants).
MAILBOXES = {"contoso": 6, "fabrikam": 6, "northwind": 2}


def ansible_playbook(lab, tmp_path, playbook, *extra):
    env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default")
    # The lab inventory maps no Exchange endpoint yet: hand the whole ms_endpoints over.
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"ms_endpoints": {
        "authority_host": lab.vars["lab_authority_host"], "graph_endpoint": lab.vars["lab_graph_endpoint"],
        "exchange_endpoint": lab.vars["lab_exchange_endpoint"], "ca_path": lab.vars["lab_ca_path"]}}))
    command = [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", playbook, "-e", "@%s" % endpoints] + list(extra)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def both_parts(tmp_path):
    """What site.yml will run: the Azure AD part, then the Exchange Online part, in one run."""
    path = tmp_path / "both.yml"
    path.write_text("---\n- name: Azure AD part\n  ansible.builtin.import_playbook: %s/playbooks/azuread.yml\n"
                    "- name: Exchange Online part\n  ansible.builtin.import_playbook: %s/playbooks/exchange_online.yml\n" % (REPO, REPO))
    return str(path)


def cmdlets(lab):
    bucket = lab.counters()["services"].get("exchange", {})
    counted = {}
    for kind in ("reads", "writes"):
        for endpoint, number in bucket.get(kind, {}).items():
            if endpoint.startswith("POST InvokeCommand "):
                counted[endpoint[len("POST InvokeCommand "):]] = number
    return counted


def granted(lab, name):
    """Mailboxes of a lab directory on which some Exchange service principal has explicit FullAccess."""
    state = lab.exchange_state(name)
    principals = set(s["ObjectId"] for s in state["service_principals"])
    return sorted(m["PrimarySmtpAddress"] for m in state["mailboxes"]
                  if any(p["User"] in principals and "FullAccess" in p["AccessRights"] and not p["IsInherited"] for p in m["permissions"]))


def test_both_parts_run_once_per_directory_and_a_rerun_changes_nothing(fresh_lab, tmp_path):
    result = ansible_playbook(fresh_lab, tmp_path, both_parts(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:]
    counted = cmdlets(fresh_lab)
    # Three directories: one service principal each, one read per distinct mailbox, whatever the number of CE tenants.
    assert counted["New-ServicePrincipal"] == 3
    assert counted["Get-MailboxPermission"] == counted["Add-MailboxPermission"] == sum(MAILBOXES.values())
    assert len(granted(fresh_lab, "contoso")) == 6 and len(granted(fresh_lab, "northwind")) == 2
    hosts = recap(result.stdout)
    assert all(hosts[t]["failed"] == 0 for t in CE_TENANTS)

    fresh_lab.reset_counters()
    again = ansible_playbook(fresh_lab, tmp_path, both_parts(tmp_path))
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in recap(again.stdout).values()), again.stdout[-3000:]
    assert fresh_lab.writes("exchange") == 0


def test_check_mode_on_an_empty_lab_fails_nothing_and_writes_nothing(fresh_lab, tmp_path):
    result = ansible_playbook(fresh_lab, tmp_path, both_parts(tmp_path), "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    assert fresh_lab.writes("exchange") == 0 and fresh_lab.counters()["services"]["graph"]["totals"]["writes"] == 0
    # The plan reads Exchange as the converge will, before CE's app exists: the automation identity's access, every mailbox.
    counted = cmdlets(fresh_lab)
    assert counted["Get-ServicePrincipal"] == 3 and counted["Get-MailboxPermission"] == sum(MAILBOXES.values()), counted
    planned = result.stdout.split("TASK [ceops.exchange_oauth.exchange_online_access : Register CE's app as a service principal in Exchange Online]")[1]
    planned = planned.split("TASK [")[0]
    assert sorted(re.findall(r"^changed: \[(\w+)\]", planned, re.M)) == ["acme", "hooli", "initech"], planned


def test_the_exchange_admin_alone_with_the_ids_in_the_inventory(fresh_lab, tmp_path):
    made = ansible_playbook(fresh_lab, tmp_path, "playbooks/azuread.yml")
    assert made.returncode == 0, made.stdout[-3000:]
    graph = fresh_lab.state("graph")["directories"]
    apps = {}
    for name, tenant_id in DIRECTORIES.items():
        app = [a for a in graph[name]["applications"] if a.get("uniqueName") == "ce-email"][0]
        sp = [s for s in graph[name]["servicePrincipals"] if s.get("appId") == app["appId"]][0]
        apps[tenant_id] = {"app_id": app["appId"], "service_principal_id": sp["id"]}
    ids = tmp_path / "apps.json"
    ids.write_text(json.dumps({"ms_apps": apps}))
    fresh_lab.reset_counters()

    planned = ansible_playbook(fresh_lab, tmp_path, "playbooks/exchange_online.yml", "-e", "@%s" % ids, "--check")
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert fresh_lab.writes("exchange") == 0
    done = ansible_playbook(fresh_lab, tmp_path, "playbooks/exchange_online.yml", "-e", "@%s" % ids)
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(granted(fresh_lab, "fabrikam")) == 6
    assert re.search(r"hooli\s+done\s+directory %s\s+app %s\s+sp %s\s+FullAccess 2/2" % (
        DIRECTORIES["northwind"], apps[DIRECTORIES["northwind"]]["app_id"], apps[DIRECTORIES["northwind"]]["service_principal_id"]), done.stdout)


def test_without_the_apps_ids_every_tenant_fails_with_what_to_do(fresh_lab, tmp_path):
    result = ansible_playbook(fresh_lab, tmp_path, "playbooks/exchange_online.yml")
    assert result.returncode != 0
    assert all(recap(result.stdout)[t]["failed"] == 1 for t in CE_TENANTS)
    assert "ms_apps['%s']" % DIRECTORIES["contoso"] in result.stdout
    assert fresh_lab.counters()["services"].get("exchange", {}).get("totals", {}).get("requests", 0) == 0


def test_an_unknown_mailbox_fails_only_the_tenant_that_reads_it(fresh_lab, tmp_path):
    # globex's ce_mailboxes gain one its directory does not have, as its host_vars would give it.
    extra = tmp_path / "inventory"
    (extra / "host_vars").mkdir(parents=True)
    (extra / "hosts.yml").write_text("all:\n  hosts:\n    globex:\n")
    (extra / "host_vars" / "globex.yml").write_text(
        "ce_mailboxes: [ce-billing@contoso.onmicrosoft.com, ce-returns@contoso.onmicrosoft.com, ce-gone@contoso.onmicrosoft.com]\n")
    result = ansible_playbook(fresh_lab, tmp_path, both_parts(tmp_path), "-i", str(extra))
    hosts = recap(result.stdout)
    assert result.returncode != 0
    assert {h for h, r in hosts.items() if r["failed"]} == {"globex"}, result.stdout[-3000:]
    assert "ce-gone@contoso.onmicrosoft.com does not exist" in result.stdout
    # Every other mailbox of the directory, including globex's real ones, was granted all the same.
    assert len(granted(fresh_lab, "contoso")) == 6


def test_the_role_over_winrm(fresh_lab, tmp_path):
    w = fresh_lab.vars["lab_winrm"]
    extra = tmp_path / "winrm.json"
    extra.write_text(json.dumps({
        "exchange_online_access_transport": "winrm",
        "exchange_online_access_winrm": {"host": w["host"], "port": w["port"], "username": w["username"], "password": w["password"],
                                         "transport": w["transport"], "ca_path": fresh_lab.vars["lab_ca_path"],
                                         "certificate_thumbprint": "{{ ceops_lab.lab_winrm.certificate_thumbprints[ms_tenant_id "
                                                                   "| regex_replace('^6f1c.*', 'contoso') | regex_replace('^7a2b.*', 'fabrikam') "
                                                                   "| regex_replace('^8b3c.*', 'northwind')] }}"}}))
    result = ansible_playbook(fresh_lab, tmp_path, both_parts(tmp_path), "-e", "@%s" % extra)
    assert result.returncode == 0, result.stdout[-4000:]
    assert fresh_lab.counters()["services"]["winrm"]["writes"]["CMDLET New-ServicePrincipal"] == 3
    assert fresh_lab.counters()["services"].get("exchange", {}).get("totals", {}).get("requests", 0) == 0
    assert len(granted(fresh_lab, "contoso")) == 6
    assert w["password"] not in result.stdout + result.stderr
