# -*- coding: utf-8 -*-
"""A CE tenant's client secret made by a run that ended before CE got it (docs/azuread.md, "A secret lost with an
interrupted run"): the CE part makes a new one, removes the lost one and gives CE the new one, or, run without the
directory's Microsoft credentials, fails the CE tenant saying what to run. The interruptions themselves are in
test_reliability_interruptions.py; here the secret is lost the plain way: made in Graph under the CE tenant's name after
the parts before CE ran, as a run that died right after making it would have left it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type


from lab_fleet import playbook
from playbook_output import recap

SECRET_NAME = "CE mailbox access (acme)"
ACME_MAILBOXES = set(("imap", m) for m in ("ce-support@contoso.onmicrosoft.com", "ce-sales@contoso.onmicrosoft.com"))


def ce_app(lab):
    (app,) = [a for a in lab.directory_state("contoso")["applications"] if a.get("uniqueName") == "ce-email"]
    return app


def acme_secret_ids(lab):
    return [p["keyId"] for p in ce_app(lab)["passwordCredentials"] if p["displayName"] == SECRET_NAME]


def graph_writes(lab):
    return lab.counters()["services"].get("graph", {}).get("totals", {}).get("writes", 0)


def acme_settings(lab):
    tenants = lab.ce_state("emea")["configured"]["tenants"]
    return [s for s in tenants.get("acme", {}).get("oauth_settings", []) if s["name"] == "Exchange Online OAuth"]


def lose_a_secret(lab):
    """addPassword of the CE tenant's secret, whose value nobody keeps: what a run that died right after it leaves."""
    status, _, body = lab.request("POST", "%s/v1.0/applications/%s/addPassword" % (lab.graph_url, ce_app(lab)["id"]),
                                  body={"passwordCredential": {"displayName": SECRET_NAME}},
                                  headers={"Authorization": "Bearer " + lab.token("contoso")})
    assert status == 200, body
    return body["keyId"]


def test_ce_gets_a_new_secret_when_the_one_made_for_it_was_lost(fresh_lab, tmp_path, monkeypatch):
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    limit = ("--limit", "acme")
    before = playbook(fresh_lab, tmp_path, "playbooks/azuread.yml", "playbooks/exchange_online.yml", *limit)
    assert before.returncode == 0, before.stdout[-3000:]
    assert acme_secret_ids(fresh_lab) == []  # the Azure AD part makes no secret: CE's part asks for the ones CE needs
    lost_key_id = lose_a_secret(fresh_lab)
    app_id = "ce_email_oauth_client_id=" + ce_app(fresh_lab)["appId"]

    # The CE administrators alone, without the directory's credentials: nothing is made, and the message says what to run.
    fresh_lab.reset_counters()
    alone = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "-e", app_id, "-e", '{"ms_credentials": {}}', *limit)
    assert recap(alone.stdout)["acme"]["failed"] == 1, alone.stdout[-3000:]
    for fragment in ("CE tenant acme", "'%s'" % SECRET_NAME, "has no Microsoft credentials for directory",
                     "Run playbooks/site.yml", "ce_email_oauth_client_secret"):
        assert fragment in alone.stdout, alone.stdout[-3000:]
    assert graph_writes(fresh_lab) == 0
    assert acme_secret_ids(fresh_lab) == [lost_key_id] and acme_settings(fresh_lab) == []

    # With them, in check mode: the plan says a new secret would be made, and nothing is written anywhere.
    fresh_lab.reset_counters()
    plan = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "--check", "-e", app_id, *limit)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert "new client secret (to be made) for this CE tenant" in plan.stdout, plan.stdout[-3000:]
    services = fresh_lab.counters()["services"]
    assert sum(services.get(name, {}).get("totals", {}).get("writes", 0) for name in ("graph", "ce")) == 0

    # With them: a new secret replaces the lost one, CE holds it, and the proof in the same run logs in with it.
    recovered = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "playbooks/verify.yml", "-e", app_id, *limit)
    assert recovered.returncode == 0, recovered.stdout[-3000:]
    (new_key_id,) = acme_secret_ids(fresh_lab)
    assert new_key_id != lost_key_id
    (settings,) = acme_settings(fresh_lab)
    assert settings["client_secret_set"] is True
    logins = set((e["service"], e["mailbox"].lower()) for e in fresh_lab.mail_logins() if e["outcome"] == "ok")
    assert logins == ACME_MAILBOXES

    # CE holds a secret now: the next run makes none and writes nothing.
    fresh_lab.reset_counters()
    again = playbook(fresh_lab, tmp_path, "playbooks/ce.yml", "-e", app_id, *limit)
    assert again.returncode == 0 and recap(again.stdout)["acme"]["changed"] == 0, again.stdout[-3000:]
    assert graph_writes(fresh_lab) == 0
    assert acme_secret_ids(fresh_lab) == [new_key_id]
