# -*- coding: utf-8 -*-
"""playbooks/verify.yml and the role mailbox_oauth_verify as ops run them: ansible-playbook over the lab
inventory, CE's app and secrets from the earlier parts (same run) or from extra vars (run alone), the mail
endpoints from ms_endpoints (the lab's own IMAP/SMTP, or the in-process fakes where the lab has none)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_fleet import BIN, REPO, TENANTS  # noqa: E402  pylint: disable=wrong-import-position
from mail_support import cached_tokens, lab_tls, mail  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from playbook_output import recap, summary


@pytest.fixture
def endpoints(fresh_lab, mail):
    """(ms_endpoints of the lab with its mail endpoints, the mail endpoints' view: logins() and messages())."""
    return dict(authority_host=fresh_lab.vars["lab_authority_host"], graph_endpoint=fresh_lab.vars["lab_graph_endpoint"],
                exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"], ca_path=fresh_lab.vars["lab_ca_path"],
                imap_host=mail.imap_host, imap_port=mail.imap_port, smtp_host=mail.smtp_host, smtp_port=mail.smtp_port), mail


@pytest.fixture
def playbook(fresh_lab, tmp_path):
    def run(name, extra_vars, *args):
        extra = tmp_path / "extra-vars.json"
        extra.write_text(json.dumps(extra_vars))
        env = dict(os.environ, CEOPS_LAB_DIR=fresh_lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
        path = name if os.path.isabs(name) else "playbooks/" + name
        return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", path, "-e", "@%s" % extra] + list(args),
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return run


@pytest.fixture
def ce_apps(fresh_lab, run_module, directory_auth):
    """CE's app in every lab directory, with Exchange access to the directory's CE tenants' mailboxes except ``skip``."""
    def build(skip=()):
        apps = {}
        for name, d in fresh_lab.vars["lab_directories"].items():
            # As the Azure AD role does: SMTP.SendAsApp where a CE tenant of the directory sends with OAuth (hooli, northwind).
            sends = any(t.get("ce_send_with_oauth") and t["ms_tenant_id"] == d["tenant_id"] for t in TENANTS.values())
            permissions = ["IMAP.AccessAsApp", "POP.AccessAsApp"] + (["SMTP.SendAsApp"] if sends else [])
            app = run_module("azuread_app", directory_auth(fresh_lab, name, display_name="CE Email", unique_name="ce-email",
                                                           exchange_permissions=permissions, app_secret={"name": "CE mailbox access"}))
            assert app.get("failed") is not True, app.get("msg")
            exo = directory_auth(fresh_lab, name, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"])
            if name == "northwind":  # its automation identity logs in with a certificate
                exo.pop("client_secret")
                exo["client_certificate_path"] = d["automation_certificate_path"]
            assert run_module("exo_service_principal", dict(exo, app_id=app["app_id"], object_id=app["service_principal_id"])).get("failed") is not True
            mailboxes = sorted(set(m for t in TENANTS.values() if t["ms_tenant_id"] == d["tenant_id"] for m in t["ce_mailboxes"]) - set(skip))
            granted = run_module("exo_mailbox_permission", dict(exo, user=app["service_principal_id"], mailboxes=mailboxes))
            assert granted.get("failed") is not True, granted.get("msg")
            apps[d["tenant_id"]] = {"app_id": app["app_id"], "service_principal_id": app["service_principal_id"], "client_secret": app["client_secret"]}
        return apps
    return build


def test_verify_alone_checks_every_tenant_with_ces_settings_and_shows_no_secret(fresh_lab, playbook, endpoints, ce_apps, tmp_path):
    ms_endpoints, mail_view = endpoints
    apps = ce_apps()
    # The runbook's basic-auth test rides along, so its password is in play too.
    password = mail_view.password("ce-support@contoso.onmicrosoft.com")
    basic = [{"username": "ce-support@contoso.onmicrosoft.com", "password": password}]
    result = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": apps, "mailbox_oauth_verify_smtp_basic_auth": basic}, "-vvv")
    assert result.returncode == 0, result.stdout[-4000:]
    hosts = recap(result.stdout)
    assert set(hosts) == set(TENANTS) and all(h["failed"] == 0 and h["changed"] == 0 for h in hosts.values())
    every_mailbox = sorted(m for t in TENANTS.values() for m in t["ce_mailboxes"])
    assert sorted(user for protocol, user, ok in mail_view.logins() if ok and protocol == "imap") == every_mailbox
    assert [ok for protocol, user, ok in mail_view.logins() if protocol == "smtp-basic"] == [True] * len(TENANTS)
    lines = summary(result.stdout)
    assert all(re.match(r"%s\s+ok\s.*logins (\d)/\1 ok$" % host, lines[host][0]) for host in TENANTS), lines
    assert "app %s" % apps["7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"]["app_id"] in lines["stark"][0] and "logins 3/3 ok" in lines["stark"][0]
    output = result.stdout + result.stderr
    for app in apps.values():
        assert app["client_secret"] not in output
    for d in fresh_lab.vars["lab_directories"].values():
        assert d["automation_client_secret"] not in output  # the automation identity is not used at all
    assert password not in output
    tokens = cached_tokens(str(tmp_path / "tokens"))
    assert len(tokens) >= 3 and not [t for t in tokens if t in output or t.split(".")[1] in output]  # CE's and the automation's
    # One token per directory's CE app, shared by its CE tenants through the cache.
    ce_tokens = dict((key, n) for key, n in fresh_lab.counters()["tokens"].items()
                     if key.split("|")[1] in [a["app_id"] for a in apps.values()])
    assert sorted(ce_tokens.values()) == [1, 1, 1]


def test_a_mailbox_without_full_access_fails_only_its_ce_tenant(fresh_lab, playbook, endpoints, ce_apps):
    ms_endpoints, dummy = endpoints
    apps = ce_apps(skip=["ce-billing@contoso.onmicrosoft.com"])
    result = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": apps})
    hosts = recap(result.stdout)
    assert result.returncode != 0
    assert [h for h, r in hosts.items() if r["failed"]] == ["globex"]
    lines = summary(result.stdout)
    message = " ".join(lines["globex"][1:])
    assert message.startswith("Verify: CE's logins failed for 1 of 2") and "ce-billing@contoso.onmicrosoft.com" in message
    assert 'AUTHENTICATE failed."' in message and "Add-MailboxPermission -Identity ce-billing@contoso.onmicrosoft.com" in message
    assert "ce-returns@contoso.onmicrosoft.com" not in message  # globex's other mailbox logged in
    assert "logins 1/2 ok" in lines["globex"][0] and re.search(r"acme\s+ok\s.*logins 2/2 ok$", lines["acme"][0])


def test_check_mode_runs_the_same_logins_and_sends_nothing(fresh_lab, playbook, endpoints, ce_apps):
    ms_endpoints, mail_view = endpoints
    apps = ce_apps()
    extra = {"ms_endpoints": ms_endpoints, "ms_apps": apps, "mailbox_oauth_verify_smtp_send_test_to": "ops@example.com",
             "ceops_hosts": "acme"}
    result = playbook("verify.yml", extra, "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert [u for p, u, ok in mail_view.logins() if ok] and mail_view.messages() == []


def test_without_ces_secret_the_logins_are_reported_not_checked_or_fail_when_required(fresh_lab, playbook, endpoints, ce_apps):
    ms_endpoints, mail_view = endpoints
    apps = ce_apps()
    without = dict((tid, {"app_id": a["app_id"]}) for tid, a in apps.items())
    # By default a run without CE's secret (any run that neither created nor rotated it) says so and does not fail.
    result = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": without, "ceops_hosts": "acme"})
    assert result.returncode == 0, result.stdout[-3000:]
    line = summary(result.stdout)["acme"][0]
    assert "logins not checked: CE's client secret is not known in this run" in line and "Ansible Vault" in line, line
    assert re.match(r"acme\s+done\s", line)  # never "ok" for what was not proven
    assert mail_view.logins() == []
    # A verify job that must prove the logins fails instead, with how to give the secret.
    required = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": without, "ceops_hosts": "acme",
                                       "mailbox_oauth_verify_require_secret": True})
    lines = summary(required.stdout)["acme"]
    assert required.returncode != 0 and re.match(r"acme\s+FAILED\s", lines[0]), lines
    assert "mailbox_oauth_verify_require_secret is set" in lines[1] and "Ansible Vault" in lines[1]
    assert mail_view.logins() == []
    checked = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": without, "ceops_hosts": "acme"}, "--check")
    assert checked.returncode == 0 and "CE's client secret is not known in this run" in summary(checked.stdout)["acme"][0]


def test_in_one_run_the_new_secret_is_handed_on_in_memory(fresh_lab, playbook, endpoints, tmp_path):
    """Azure AD, Exchange Online, CE and the proof in one run from an empty lab, each part's playbook as its administrator runs
    it: the secret made for CE never leaves memory, and the proof logs in with it."""
    ms_endpoints, mail_view = endpoints
    site = tmp_path / "azure-exchange-verify.yml"
    site.write_text("---\n" + "".join("- name: %s\n  ansible.builtin.import_playbook: %s\n" % (name, os.path.join(REPO, "playbooks", name))
                                      for name in ("azuread.yml", "exchange_online.yml", "ce.yml", "verify.yml")))
    result = playbook(str(site), {"ms_endpoints": ms_endpoints})
    assert result.returncode == 0, result.stdout[-4000:]
    assert all(h["failed"] == 0 for h in recap(result.stdout).values())
    logins = mail_view.logins()
    assert len([1 for p, u, ok in logins if ok and p == "imap"]) == sum(len(t["ce_mailboxes"]) for t in TENANTS.values())
    # verify.yml alone follows the inventory's ce_send_with_oauth: hooli's mailboxes are proven over SMTP too.
    senders = [m for t in TENANTS.values() if t.get("ce_send_with_oauth") for m in t["ce_mailboxes"]]
    assert sorted(u for p, u, ok in logins if ok and p == "smtp") == sorted(senders) and senders
    assert "secretText" not in result.stdout and not re.search(r'"client_secret": "(?!VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")[^"]', result.stdout)
    lines = summary(result.stdout)
    for host, tenant in TENANTS.items():
        n = len(tenant["ce_mailboxes"])
        assert re.search(r"%s\s+ok .*logins %d/%d ok" % (host, n, n), lines[host][0]), lines[host]


def test_a_failed_verification_is_in_the_summary_with_its_reason(fresh_lab, playbook, endpoints, ce_apps, tmp_path):
    ms_endpoints, dummy = endpoints
    apps = ce_apps(skip=["ce-billing@contoso.onmicrosoft.com"])
    result = playbook("verify.yml", {"ms_endpoints": ms_endpoints, "ms_apps": apps})
    lines = summary(result.stdout)
    assert re.match(r"globex\s+FAILED .*logins 1/2 ok", lines["globex"][0]) and lines["globex"][1].startswith("Verify: CE's logins failed for 1 of 2")
    assert re.match(r"acme\s+ok .*logins 2/2 ok", lines["acme"][0])


def test_the_ce_parts_result_decides_settings_and_mailboxes(fresh_lab, playbook, endpoints, ce_apps):
    """After the CE part, the check uses what the Portal holds: its client id, token URL, scope and mailbox list."""
    ms_endpoints, mail_view = endpoints
    apps = ce_apps()
    contoso = apps["6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"]
    token_url = "%s/contoso.onmicrosoft.com/oauth2/v2.0/token" % fresh_lab.vars["lab_authority_host"]
    # What the CE part registers in the same run: the settings as the Portal returned them (holding a current secret of CE's
    # app), the connection and its mailboxes.
    settings = {"oauth_settings": {"client_id": contoso["app_id"], "token_endpoint_url": token_url,
                                   "scopes": ["https://outlook.office365.com/.default"]}, "client_secret_held": True}
    connection = {"email_connection": {"name": "Exchange Online", "use_oauth_send": False}, "mailboxes": ["ce-info@contoso.onmicrosoft.com"]}
    extra = {"ms_endpoints": ms_endpoints, "ms_apps": {"6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51": {"client_secret": contoso["client_secret"]}},
             "ce_email_oauth_settings_result": settings, "ce_email_oauth_connection_result": connection, "ceops_hosts": "acme"}
    result = playbook("verify.yml", extra, "-v")
    assert result.returncode == 0, result.stdout[-3000:]
    assert mail_view.logins() == [("imap", "ce-info@contoso.onmicrosoft.com", True)]
    assert '"client_id": "%s"' % contoso["app_id"] in result.stdout and '"token_endpoint_url": "%s"' % token_url in result.stdout
    assert re.match(r"acme\s+ok .*logins 1/1 ok$", summary(result.stdout)["acme"][0])
    # The same settings without a current secret of CE's app: the secret from Vault is not CE's, so nothing is logged in to.
    settings["client_secret_held"] = False
    refused = playbook("verify.yml", extra)
    assert mail_view.logins() == [("imap", "ce-info@contoso.onmicrosoft.com", True)]
    assert "logins not checked: CE's OAuth settings do not hold a current secret of CE's app" in summary(refused.stdout)["acme"][0]
