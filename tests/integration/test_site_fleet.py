# -*- coding: utf-8 -*-
"""playbooks/site.yml over the whole lab fleet: six CE tenants on two CE deployments over three Microsoft directories.

One cold converge is shared by the module (site.yml takes ~15-25 s on the lab); each later test runs on that converged
fleet, breaks only what it is about and leaves the fleet as the next test expects it (the file's order is the order).
Every ansible-playbook run has its own token cache, as separate AWX jobs would, so token requests are countable and a
revoked consent shows in the next token.

CE's client secret exists only in the memory of the run that creates it, and the collection never writes it anywhere.
So that later runs can prove the logins, the cold converge here ends with a test-only play that writes ms_apps (app id,
service principal id, secret) per directory to a 0600 file; later runs get it with -e @file, as Ansible Vault would
give it (docs/verify.md).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

import pytest

from lab_fleet import (DEPLOYMENTS, DIRECTORIES, EXCHANGE, GRAPH, TENANTS, changed, converged_fleet, directory_mailboxes, task_output,
                       writes)
from playbook_output import recap, summary

NAMES = dict((tenant_id, name) for name, tenant_id in DIRECTORIES.items())
def token_requests(lab):
    """{(directory name, client id, resource): count}."""
    counted = {}
    for key, number in lab.counters()["tokens"].items():
        tenant_id, client_id, resource = key.split("|")
        counted[(NAMES[tenant_id], client_id, resource.rstrip("/"))] = number
    return counted


def expected_tokens(lab, apps, own_secrets=False):
    """One per (directory, client, resource): the automation identity for Graph and Exchange, CE's app for the logins.

    With ``own_secrets`` (the run that made them, or a later run given them as ms_apps[...].client_secrets), each CE
    tenant proves its logins with its own secret: a token each, since a token got with another CE tenant's secret would
    not prove this one's.
    """
    expected = {}
    for name, tenant_id in DIRECTORIES.items():
        automation = lab.vars["lab_directories"][name]["automation_client_id"]
        logins = len([t for t in TENANTS.values() if t["ms_tenant_id"] == tenant_id]) if own_secrets else 1
        expected.update({(name, automation, GRAPH): 1, (name, automation, EXCHANGE): 1, (name, apps[tenant_id]["app_id"], EXCHANGE): logins})
    return expected


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    """The fleet after one cold converge of site.yml from the lab's seed; counters as the cold run left them."""
    fleet = converged_fleet(lab, tmp_path_factory.mktemp("fleet"))
    fleet.cold_tokens = token_requests(lab)
    return fleet


def test_a_cold_converge_does_each_directorys_and_deployments_work_once(fleet):
    result, counters = fleet.cold, fleet.cold_counters
    assert result.returncode == 0, result.output[-4000:]
    hosts = recap(result.stdout)
    assert set(hosts) == set(TENANTS) | {"localhost"} and all(h["failed"] == 0 for h in hosts.values())
    apps = fleet.apps()
    assert set(apps) == set(DIRECTORIES.values())

    graph = counters["services"]["graph"]["writes"]
    assert graph["PATCH /v1.0/applications(uniqueName={uniqueName})"] == 3  # the upsert that creates the app
    # One app per directory, one client secret per CE tenant.
    assert graph["POST /v1.0/servicePrincipals"] == 3 and graph["POST /v1.0/applications/{id}/addPassword"] == len(TENANTS)
    exchange = counters["services"]["exchange"]["writes"]
    assert exchange["POST InvokeCommand New-ServicePrincipal"] == 3
    assert exchange["POST InvokeCommand Add-MailboxPermission"] == sum(len(directory_mailboxes(t)) for t in DIRECTORIES.values())
    for name, tenant_id in DIRECTORIES.items():
        per = counters["directories"][tenant_id]
        # One app (create, service principal, one consent per permission), one secret per CE tenant; northwind's hooli sends
        # with OAuth.
        permissions = 3 if name == "northwind" else 2
        ce_tenants = [host for host, tenant in TENANTS.items() if tenant["ms_tenant_id"] == tenant_id]
        assert per["graph"]["writes"] == 2 + permissions + len(ce_tenants), (name, per)
        app = next(a for a in fleet.lab.state("graph")["directories"][name]["applications"] if a.get("uniqueName") == "ce-email")
        assert sorted(c["displayName"] for c in app["passwordCredentials"]) == sorted("CE mailbox access (%s)" % h for h in ce_tenants)
        # One New-ServicePrincipal and one Add-MailboxPermission per distinct mailbox of the directory's CE tenants.
        assert per["exchange"]["writes"] == 1 + len(directory_mailboxes(tenant_id)), (name, per)
        state = fleet.lab.exchange_state(name)
        sp_ids = [s["ObjectId"] for s in state["service_principals"]]
        assert sp_ids == [apps[tenant_id]["service_principal_id"]]
        granted = sorted(m["PrimarySmtpAddress"].lower() for m in state["mailboxes"]
                         if any(p["User"] == sp_ids[0] and "FullAccess" in p["AccessRights"] for p in m["permissions"]))
        assert granted == directory_mailboxes(tenant_id)
    assert fleet.cold_tokens == expected_tokens(fleet.lab, apps, own_secrets=True)

    for deployment, tenants in DEPLOYMENTS.items():
        ce = fleet.cold_ce[deployment]
        assert ce["batch_updates"] == 1 and ce["endpoints"]["writes"]["POST /%s/api/v1/server-updates" % deployment] == 1
        assert sorted(ce["tenants"]) == sorted(tenants) and all(t["writes"] == 2 for t in ce["tenants"].values())
        assert fleet.lab.ce_state(deployment)["pending"]["pending"] is False
    # The CE tenants that stand for each directory and deployment did the work: the first (sorted) of each.
    assert set(h for t, h in changed(result.stdout) if t == "Register CE's app, its permissions and admin consent, and read its CE tenants' "
               "client secrets") == {"acme", "initech", "hooli"}
    assert set(h for t, h in changed(result.stdout) if t == "Make a new client secret for each CE tenant of the app that needs one") == \
        {"acme", "initech", "hooli"}
    assert set(h for t, h in changed(result.stdout) if t == "Apply the deployment's pending configuration with one batch update") == \
        {"acme", "hooli"}

    # And every CE tenant's mailboxes logged in with CE's settings, over SMTP too where CE sends with OAuth.
    ok = set((e["service"], e["mailbox"].lower()) for e in fleet.cold_logins if e["outcome"] == "ok")
    for host, tenant in TENANTS.items():
        for mailbox in tenant["ce_mailboxes"]:
            assert ("imap", mailbox.lower()) in ok, mailbox
            assert (("smtp", mailbox.lower()) in ok) == bool(tenant.get("ce_send_with_oauth")), mailbox
    lines = summary(result.stdout)
    for host, tenant in TENANTS.items():
        n = len(tenant["ce_mailboxes"])
        assert re.match(r"%s\s+ok\s.*FullAccess %d/%d .*logins %d/%d ok$" % (host, n, n, n, n), lines[host][0]), lines[host]
    assert "secretText" not in result.output and apps[DIRECTORIES["contoso"]]["client_secret"] not in result.output


def test_a_second_run_changes_nothing_and_writes_nothing(fleet):
    fleet.lab.reset_counters()
    result = fleet.run("site.yml")
    assert result.returncode == 0, result.output[-4000:]
    hosts = recap(result.stdout)
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in hosts.values()), hosts
    assert writes(fleet.lab) == {}
    assert all(fleet.lab.ce_counters(d)["batch_updates"] == 0 for d in DEPLOYMENTS)
    # The same one token per directory, client and resource; the proof ran again with the secret from "Vault".
    assert token_requests(fleet.lab) == expected_tokens(fleet.lab, fleet.apps(), own_secrets=True)
    lines = summary(result.stdout)
    assert all(re.search(r"\sok\s.*logins (\d+)/\1 ok$", lines[host][0]) for host in TENANTS), lines


def test_a_wrong_portal_token_and_an_unknown_mailbox_fail_only_their_ce_tenants(fleet):
    """The us deployment's Portal token is wrong, and acme lists a mailbox its directory does not have."""
    result = fleet.run("site.yml", group_vars={"ce_deployment_us": {"ce_token": "not-the-us-token"}},
                       host_vars={"acme": {"ce_mailboxes": TENANTS["acme"]["ce_mailboxes"] + ["ce-gone@contoso.onmicrosoft.com"]}})
    hosts = recap(result.stdout)
    assert result.returncode != 0
    assert set(h for h, r in hosts.items() if r["failed"]) == {"acme", "umbrella", "hooli", "stark"}, result.output[-4000:]
    lines = summary(result.stdout)
    # The others converge and are proven: globex shares acme's directory and deployment, initech shares acme's deployment.
    for host in ("globex", "initech"):
        assert hosts[host]["changed"] == 0 and re.search(r"\sok\s.*logins (\d+)/\1 ok$", lines[host][0]), lines[host]
    # Each failed CE tenant is named with the part that failed and why, in the service's own words.
    assert re.match(r"acme\s+FAILED\s", lines["acme"][0]) and "logins" not in lines["acme"][0], lines["acme"]
    assert lines["acme"][1].startswith("Exchange Online: CE tenant acme, directory %s:" % DIRECTORIES["contoso"])
    assert "ce-gone@contoso.onmicrosoft.com" in lines["acme"][1] and "does not exist" in lines["acme"][1]
    us_url = fleet.lab.vars["lab_ce_deployments"]["us"]["url"]
    for host in DEPLOYMENTS["us"]:
        assert re.match(r"%s\s+FAILED\s" % host, lines[host][0]) and len(lines[host]) == 2, lines[host]
        assert lines[host][1].startswith("CE: CE deployment %s, email gateway 'Exchange Online': " % us_url), lines[host]
        assert "401" in lines[host][1] and "ce_token" in lines[host][1], lines[host]
    # Their CE deployment failed first (site.yml reads every CE deployment before the Microsoft parts), so the Microsoft parts
    # did nothing for them; the summary still shows the app their directory has.
    apps = fleet.apps()
    for host in DEPLOYMENTS["us"]:
        assert "FullAccess" not in lines[host][0]
        assert "app %s" % apps[TENANTS[host]["ms_tenant_id"]]["app_id"] in lines[host][0], lines[host]
    assert "not-the-us-token" not in result.output


def test_check_mode_reports_exactly_the_drift_made_by_hand_then_a_run_repairs_it(fleet):
    lab = fleet.lab
    # Three admins undo one thing each: consent in Entra, a mailbox grant in Exchange, an email connection in CE's Portal.
    fleet.revoke_consent("contoso", "IMAP.AccessAsApp")
    fleet.remove_full_access("fabrikam", "ce-info@fabrikam.onmicrosoft.com")
    connection = fleet.connection("emea", "globex")
    fleet.portal("emea", "PUT", "/tenants/globex/email-connections/%s" % connection["id"],
                 dict(dict((k, connection[k]) for k in ("name", "gateway_id", "oauth_settings_id", "use_oauth_send")), use_oauth_receive=False))
    lab.reset_counters()

    checked = fleet.run("site.yml", "--check", "--diff")
    assert writes(lab) == {}, lab.counters()["services"]
    assert changed(checked.stdout) == {
        ("Register CE's app, its permissions and admin consent, and read its CE tenants' client secrets", "acme"),
        ("Give CE's app access to the mailboxes of the app's CE tenants", "initech"),
        ("Make sure the CE tenant's email connection uses them", "globex"),
        ("Apply the deployment's pending configuration with one batch update", "acme"),
    }, checked.output[-4000:]
    # The Azure AD drift shows as a diff, as the CE and Exchange drift does.
    report = task_output(checked.stdout, "Register CE's app, its permissions and admin consent, and read its CE tenants' client secrets")
    assert re.search(r'^\+\s+"IMAP.AccessAsApp"', report, re.M) and "consented_permissions" in report, report
    assert "ce-info@fabrikam.onmicrosoft.com" in task_output(checked.stdout, "Give CE's app access to the mailboxes of the app's CE tenants")
    diff = task_output(checked.stdout, "Make sure the CE tenant's email connection uses them")
    assert re.search(r"^-\s+\"use_oauth_receive\": false", diff, re.M) and re.search(r"^\+\s+\"use_oauth_receive\": true", diff, re.M), diff
    # The proof runs in check mode too and says what the drift breaks for CE now (a new token has no IMAP role in contoso).
    lines = summary(checked.stdout)
    for host in ("acme", "globex", "umbrella"):
        assert "no admin consent for IMAP.AccessAsApp" in " ".join(lines[host][1:]), lines[host]
    assert "ce-info@fabrikam.onmicrosoft.com" in " ".join(lines["initech"][1:]) and re.search(r"\sok\s", lines["stark"][0])
    assert lab.ce_state("emea")["pending"]["pending"] is True  # the hand-made change waits for a batch update

    lab.reset_counters()
    repaired = fleet.run("site.yml")
    assert repaired.returncode == 0, repaired.output[-4000:]
    assert changed(repaired.stdout) == changed(checked.stdout)  # what check mode announced is what was done
    assert lab.count("graph", "POST", "/v1.0/servicePrincipals/{id}/appRoleAssignedTo") == 1
    assert lab.count("exchange", "POST", "InvokeCommand Add-MailboxPermission") == 1
    assert lab.ce_counters("emea")["batch_updates"] == 1 and lab.ce_counters("us")["batch_updates"] == 0
    assert lab.ce_state("emea")["pending"]["pending"] is False
    applied = lab.ce_state("emea")["applied"]["tenants"]["globex"]["email_connections"]
    assert next(c for c in applied if c["name"] == "Exchange Online")["use_oauth_receive"] is True
    lines = summary(repaired.stdout)
    assert all(re.search(r"\sok\s.*logins (\d+)/\1 ok$", lines[host][0]) for host in TENANTS), lines


def test_verify_names_each_broken_link_in_the_summary(fleet):
    """One broken link per CE tenant but umbrella, then the proof alone (site.yml would repair the Microsoft side first).
    Leaves the fleet broken: only the proof with a wrong secret follows."""
    lab, apps = fleet.lab, fleet.apps()
    fabrikam = apps[DIRECTORIES["fabrikam"]]
    fleet.revoke_consent("fabrikam", "IMAP.AccessAsApp")                                        # initech
    fleet.cmdlet("northwind", "Remove-ServicePrincipal", Identity=apps[DIRECTORIES["northwind"]]["service_principal_id"])  # hooli
    fleet.remove_full_access("contoso", "ce-sales@contoso.onmicrosoft.com")                      # acme
    # stark's settings hold a secret that expired yesterday (Entra checks the secret before the consent);
    # globex's hold the secret's ID instead of its Value, the runbook's classic slip.
    app = fleet.graph("fabrikam", "GET", "/applications(appId='%s')" % fabrikam["app_id"])
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = fleet.graph("fabrikam", "POST", "/applications/%s/addPassword" % app["id"], {"passwordCredential": {
        "displayName": "CE Email, last year", "startDateTime": (now - datetime.timedelta(days=366)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": (now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}})
    contoso_app = fleet.graph("contoso", "GET", "/applications(appId='%s')" % apps[DIRECTORIES["contoso"]]["app_id"])
    key_id = next(c["keyId"] for c in contoso_app["passwordCredentials"] if c["displayName"] == "CE mailbox access (globex)")
    host_vars = {"globex": {"mailbox_oauth_verify_client_secret": key_id},
                 "stark": {"mailbox_oauth_verify_client_secret": expired["secretText"]}}
    lab.reset_counters()
    earlier = len(lab.mail_logins())  # the login log is not reset with the counters

    result = fleet.run("verify.yml", host_vars=host_vars)
    assert result.returncode != 0
    assert set(h for h, r in recap(result.stdout).items() if r["failed"]) == set(TENANTS) - {"umbrella"}, result.output[-3000:]
    assert writes(lab) == {}
    lines = dict((host, " ".join(found)) for host, found in summary(result.stdout).items())
    assert re.match(r"umbrella\s+ok\s.*logins 2/2 ok$", lines["umbrella"]), lines["umbrella"]
    for host in set(TENANTS) - {"umbrella"}:
        assert re.match(r"%s\s+FAILED\s" % host, lines[host]), lines[host]
        assert "Verify: CE's logins failed for" in lines[host], lines[host]
    # No consent: the token carries no IMAP role.
    assert re.search(r"logins 0/3 ok", lines["initech"]) and lines["initech"].count("no admin consent for IMAP.AccessAsApp") == 3
    # Not registered in Exchange / no FullAccess: Exchange only says "AUTHENTICATE failed."; the cause and fix name both.
    # verify.yml alone follows the inventory's ce_send_with_oauth: hooli's 2 mailboxes fail over IMAP and SMTP alike.
    assert re.search(r"logins 0/2 ok", lines["hooli"]) and lines["hooli"].count("the service principal is not registered in Exchange") == 4
    assert "New-ServicePrincipal -AppId %s" % apps[DIRECTORIES["northwind"]]["app_id"] in lines["hooli"]
    assert re.search(r"logins 1/2 ok", lines["acme"]) and 'ce-sales@contoso.onmicrosoft.com IMAP: "' in lines["acme"]
    assert "it has no FullAccess on ce-sales@contoso.onmicrosoft.com" in lines["acme"] and "ce-support@contoso" not in lines["acme"]
    assert "Add-MailboxPermission -Identity ce-sales@contoso.onmicrosoft.com" in lines["acme"]
    # Wrong and expired secrets: Entra's own code, the cause and what to do.
    assert "AADSTS7000215" in lines["globex"] and "use the secret's Value (not its ID)" in lines["globex"]
    assert "AADSTS7000222" in lines["stark"] and "the client secret has expired" in lines["stark"]
    assert "create a new secret (azuread_app app_secret.rotate)" in lines["stark"]
    assert key_id not in result.output and expired["secretText"] not in result.output and fabrikam["client_secret"] not in result.output
    # The lab refused each login for the reason the summary gives; no login was tried without a token.
    refused = set((e["service"], e["mailbox"].lower(), e["reason"]) for e in lab.mail_logins()[earlier:] if e["outcome"] == "refused")
    assert refused == set([("imap", "ce-sales@contoso.onmicrosoft.com", "no_full_access")]
                          + [("imap", m, "missing_role") for m in ("ce-support@fabrikam.onmicrosoft.com", "ce-sales@fabrikam.onmicrosoft.com",
                                                                     "ce-info@fabrikam.onmicrosoft.com")]
                          + [(protocol, m, "service_principal_not_registered") for m in directory_mailboxes(DIRECTORIES["northwind"])
                             for protocol in ("imap", "smtp")])


def test_the_summary_names_the_failures_even_when_every_ce_tenant_fails(fleet):
    result = fleet.run("verify.yml", "-e", "mailbox_oauth_verify_client_secret=not-ces-secret")
    assert result.returncode != 0
    assert set(h for h, r in recap(result.stdout).items() if r["failed"]) == set(TENANTS)
    lines = summary(result.stdout)
    assert all("AADSTS7000215" in " ".join(lines[host]) for host in TENANTS)


def test_a_role_variable_a_directorys_part_refuses_fails_its_ce_tenants_in_the_summary(fleet):
    """The Azure AD part's argument check refuses the value on the CE tenant standing for each app: every CE tenant of those
    apps fails with the check's message in the summary, and the run still ends with the summary."""
    result = fleet.run("azuread.yml", "-e", "azuread_app_registration_secret_lifetime_days=many")
    assert result.returncode != 0
    assert set(h for h, r in recap(result.stdout).items() if r["failed"]) == set(TENANTS)
    lines = summary(result.stdout)
    for host in TENANTS:
        assert lines[host][1].startswith("Azure AD: ") and "azuread_app_registration_secret_lifetime_days" in lines[host][1], lines[host]
