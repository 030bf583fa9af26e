# -*- coding: utf-8 -*-
"""playbooks/ce.yml and the role ce_email_oauth as ops run them: ansible-playbook over the lab inventory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from lab_fleet import playbook
from playbook_output import recap

EMEA, US = ["acme", "globex", "initech"], ["umbrella", "hooli", "stark"]
CLIENT_ID = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c"


def ce_writes(lab):
    return lab.counters()["services"].get("ce", {}).get("totals", {}).get("writes", 0)


def test_check_mode_on_an_empty_lab_plans_and_writes_nothing(fresh_lab, tmp_path):
    result = playbook(fresh_lab, tmp_path, "playbooks/azuread.yml", "playbooks/ce.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert ce_writes(fresh_lab) == 0
    # The plan shows the OAuth settings it would create for the app the Azure AD part would create, with a new secret.
    assert result.stdout.count('"client_id": "(CE\'s app, to be created)"') == 6
    batch_task = result.stdout.split("Apply the deployment's pending configuration with one batch update]")[1].split("TASK [")[0]
    assert batch_task.count("changed: [") == 2 and batch_task.count("skipping: [") == 0  # one per CE deployment


def test_one_batch_update_per_deployment_after_all_its_tenants_then_nothing(fresh_lab, tmp_path):
    result = playbook(fresh_lab, tmp_path, "playbooks/azuread.yml", "playbooks/ce.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    for name, tenants in (("emea", EMEA), ("us", US)):
        assert fresh_lab.ce_counters(name)["batch_updates"] == 1
        state = fresh_lab.ce_state(name)
        assert state["pending"]["pending"] is False
        applied = state["applied"]["tenants"]
        for tenant in tenants:
            connection = next(c for c in applied[tenant]["email_connections"] if c["name"] == "Exchange Online")
            settings = next(s for s in applied[tenant]["oauth_settings"] if s["name"] == "Exchange Online OAuth")
            assert connection["use_oauth_receive"] is True and connection["oauth_settings_id"] == settings["id"]
            assert settings["client_secret_set"] is True
    assert len([g for g in fresh_lab.ce_state("us")["configured"]["email_gateways"] if g["name"] == "Exchange Online"]) == 1

    again = playbook(fresh_lab, tmp_path, "playbooks/azuread.yml", "playbooks/ce.yml")
    assert all(host["changed"] == 0 and host["failed"] == 0 for host in recap(again.stdout).values()), again.stdout[-2000:]
    assert fresh_lab.ce_counters("emea")["batch_updates"] == 1 and fresh_lab.ce_counters("us")["batch_updates"] == 1


def test_ce_admins_alone_and_a_failed_batch_update_fails_only_its_deployment(fresh_lab, tmp_path):
    fresh_lab.ce_settings("emea", fail_next_update="Mail server mail01.emea.ce.lab did not confirm the new configuration.")
    secret = "vault-kept-secret-0123456789"
    result = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "-e", "ce_email_oauth_client_id=" + CLIENT_ID,
                      "-e", "ce_email_oauth_client_secret=" + secret)
    hosts = recap(result.stdout)
    assert all(hosts[t]["failed"] == 1 for t in EMEA) and all(hosts[t]["failed"] == 0 for t in US), result.stdout[-3000:]
    summary = result.stdout.split("Show what every CE tenant got")[-1]
    assert summary.count("CE: CE deployment %s, batch update: batch update" % fresh_lab.vars["lab_ce_deployments"]["emea"]["url"]) == 3
    assert "did not confirm the new configuration" in result.stdout and secret not in result.stdout
    # Fixed on the Portal's side, the next run applies what stayed pending and changes nothing else.
    again = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "-e", "ce_email_oauth_client_id=" + CLIENT_ID)
    assert again.returncode == 0, again.stdout[-3000:]
    assert fresh_lab.ce_state("emea")["pending"]["pending"] is False and fresh_lab.ce_counters("emea")["batch_updates"] == 2
