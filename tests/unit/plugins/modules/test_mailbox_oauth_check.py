# -*- coding: utf-8 -*-
"""mailbox_oauth_check: the module end to end against fake Exchange mail servers, tokens without Entra."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import forget_warnings, patch_module_args, warnings_of

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import mailbox_check, msauth
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.modules import mailbox_oauth_check

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from mail_login_fakes import (  # noqa: E402  pylint: disable=wrong-import-position
    IMAP_REFUSAL, SMTP_REFUSAL, ExchangeRules, FakeImapServer, FakeSmtpServer, make_ca, unsigned_token)

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
OTHER_TENANT = "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"
APP, SP = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c", "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
SECRET = "ce-secret-Value~0123456789"
SUPPORT, SALES = "ce-support@contoso.onmicrosoft.com", "ce-sales@contoso.onmicrosoft.com"


class Entra:
    """Stands in for the token endpoint: MicrosoftAuth._fetch returns what the test says."""

    def __init__(self):
        self.roles = ["IMAP.AccessAsApp", "POP.AccessAsApp"]
        self.claims = {}
        self.errors = []
        self.requests = []
        self.issued = []

    def fetch(self, auth, resource):
        auth.token_requests += 1
        self.requests.append({"authority": auth.authority(), "client_id": auth.client_id, "secret": auth.client_secret,
                              "resource": resource, "certificate": auth.client_certificate_path})
        if self.errors:
            raise self.errors[0]
        claims = dict(tid=TENANT, appid=APP, oid=SP, roles=list(self.roles), aud=resource)
        claims.update(self.claims)
        token = unsigned_token(**claims)
        self.issued.append(token)
        return token, 3599


@pytest.fixture
def entra(monkeypatch):
    fake = Entra()

    def fetch(auth, resource):
        return fake.fetch(auth, resource)
    monkeypatch.setattr(msauth.MicrosoftAuth, "_fetch", fetch)
    return fake


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("fake-ca"))


@pytest.fixture
def rules():
    rules = ExchangeRules(TENANT, [SUPPORT, SALES])
    rules.register(APP, SP)
    rules.grant(SP, SUPPORT, SALES)
    return rules


@pytest.fixture
def servers(rules, tls):
    with FakeImapServer(rules, tls[1], tls[2]) as imap, FakeSmtpServer(rules, tls[1], tls[2]) as smtp:
        yield imap, smtp


@pytest.fixture
def run(capsys, tmp_path, monkeypatch):
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"):
        monkeypatch.delenv(name, raising=False)

    def runner(args, check_mode=False):
        full = dict(args, _ansible_check_mode=check_mode, _ansible_diff=False)
        full.setdefault("token_cache_dir", str(tmp_path / "tokens"))
        capsys.readouterr()
        forget_warnings()  # each module run here starts without the last one's warnings
        with patch_module_args(full):
            with pytest.raises(SystemExit):
                mailbox_oauth_check.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        result["_raw"] = out
        return result
    return runner


def args(servers, tls, **kwargs):
    imap, smtp = servers
    base = dict(tenant_id=TENANT, client_id=APP, client_secret=SECRET, mailboxes=[SUPPORT, SALES], imap_host=imap.host, imap_port=imap.port,
                smtp_host=smtp.host, smtp_port=smtp.port, ca_path=tls[0])
    base.update(kwargs)
    return base


# -- the module -----------------------------------------------------------------------------------
def test_all_mailboxes_pass_over_imap_and_smtp_and_nothing_secret_is_returned(run, entra, servers, tls):
    entra.roles.append("SMTP.SendAsApp")
    result = run(args(servers, tls, smtp=True))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    assert [m["mailbox"] for m in result["mailboxes"]] == [SUPPORT, SALES]
    assert all(m["ok"] and m["imap"]["ok"] and m["smtp"]["ok"] for m in result["mailboxes"])
    assert result["mailboxes"][0]["imap"]["response"] == "AUTHENTICATE completed."
    assert result["summary"] == {"mailboxes": 2, "ok": 2, "failed": 0, "imap_failed": 0, "smtp_failed": 0, "smtp_basic_auth": 0,
                                 "smtp_basic_auth_failed": 0, "test_messages_sent": 0}
    assert result["token"]["roles"] == ["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"] and result["token"]["oid"] == SP
    assert result["settings"]["token_endpoint_url"] == "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT
    assert result["settings"]["scope"] == "https://outlook.office365.com/.default"
    assert entra.issued[0] not in result["_raw"] and SECRET not in result["_raw"]
    assert entra.requests[0]["resource"] == "https://outlook.office365.com"


def test_each_failure_is_named_with_the_servers_text_cause_and_fix(run, entra, servers, tls, rules):
    rules.full_access[SALES.lower()].discard(SP)
    result = run(args(servers, tls))
    assert result["failed"] is True and result["failed_mailboxes"] == [SALES]
    sales = result["mailboxes"][1]["imap"]
    assert sales["response"] == IMAP_REFUSAL and sales["stage"] == "authenticate"
    assert "not registered in Exchange" in sales["cause"] and "no FullAccess on %s" % SALES in sales["cause"]
    assert "New-ServicePrincipal -AppId %s -ObjectId %s" % (APP, SP) in sales["fix"]
    assert "Add-MailboxPermission -Identity %s -User %s -AccessRights FullAccess" % (SALES, SP) in sales["fix"]
    assert SALES in result["msg"] and '"AUTHENTICATE failed."' in result["msg"] and "Add-MailboxPermission" in result["msg"]
    assert SUPPORT not in result["msg"].split(":", 1)[1]
    assert result["mailboxes"][0]["ok"] is True  # one failure does not stop the others


def test_no_consent_is_read_from_the_token(run, entra, servers, tls):
    entra.roles = []
    result = run(args(servers, tls, fail_on_error=False))
    assert "failed" not in result or result["failed"] is False
    assert result["failed_mailboxes"] == [SUPPORT, SALES]
    cause = result["mailboxes"][0]["imap"]["cause"]
    assert cause.startswith("no admin consent for IMAP.AccessAsApp") and "roles: none" in cause
    assert "azuread_app" in result["mailboxes"][0]["imap"]["fix"]


def test_smtp_without_send_as_app_consent(run, entra, servers, tls):
    result = run(args(servers, tls, smtp=True, mailboxes=[SUPPORT]))
    assert result["failed"] is True
    entry = result["mailboxes"][0]
    assert entry["imap"]["ok"] is True and entry["smtp"]["response"] == SMTP_REFUSAL
    assert entry["smtp"]["cause"].startswith("no admin consent for SMTP.SendAsApp")
    assert result["summary"]["smtp_failed"] == 1 and result["summary"]["imap_failed"] == 0


def test_smtp_auth_disabled_on_the_mailbox(run, entra, servers, tls, rules):
    entra.roles.append("SMTP.SendAsApp")
    rules.smtp_auth_disabled.add(SUPPORT.lower())
    result = run(args(servers, tls, smtp=True, mailboxes=[SUPPORT]))
    assert "5.7.139" in result["mailboxes"][0]["smtp"]["response"]
    assert "Set-CASMailbox -Identity %s -SmtpClientAuthenticationDisabled $false" % SUPPORT in result["mailboxes"][0]["smtp"]["fix"]


@pytest.mark.parametrize("code,expected", [
    (7000215, "Value (not its ID) into CE's OAuth settings"),
    (7000222, "create a new secret"),
])
def test_wrong_or_expired_secret(run, entra, servers, tls, code, expected):
    text = "AADSTS%d: %s" % (code, "Invalid client secret provided." if code == 7000215 else "The provided client secret keys are expired.")
    entra.errors.append(ServiceError("Entra ID", "token request for client %s in directory %s was refused: %s" % (APP, TENANT, text),
                                     code="invalid_client", hint=msauth.AADSTS_HINTS[code]))
    result = run(args(servers, tls))
    assert result["failed"] is True and result["token"] is None
    imap = result["mailboxes"][0]["imap"]
    assert imap["stage"] == "token" and "AADSTS%d" % code in imap["response"] and expected in imap["fix"]
    assert imap["cause"] == msauth.AADSTS_HINTS[code]
    assert servers[0].connections == 0  # no login is tried without a token
    assert result["msg"].count("token:") == 2 and SECRET not in result["_raw"]


def test_check_mode_logs_in_but_sends_nothing(run, entra, servers, tls, rules):
    entra.roles.append("SMTP.SendAsApp")
    rules.passwords[SUPPORT.lower()] = "Basic-Pa55"
    options = args(servers, tls, smtp=True, smtp_send_test_to="ops@example.com", mailboxes=[SUPPORT],
                   smtp_basic_auth=[{"mailbox": SUPPORT, "password": "Basic-Pa55"}])
    checked = run(options, check_mode=True)
    assert checked["changed"] is False and checked.get("failed") is not True
    assert servers[1].messages == [] and checked["summary"]["test_messages_sent"] == 0
    assert checked["mailboxes"][0]["smtp"]["test_message"]["response"] == "not sent in check mode"
    assert checked["smtp_basic_auth"][0]["smtp"]["ok"] is True

    sent = run(options)
    assert sent["changed"] is False and sent["summary"]["test_messages_sent"] == 2 and len(servers[1].messages) == 2
    assert "Basic-Pa55" not in sent["_raw"] and "Basic-Pa55" not in checked["_raw"]


def test_runbooks_basic_auth_test_alone_needs_no_token(run, entra, servers, tls, rules):
    rules.passwords[SUPPORT.lower()] = "right"
    rules.basic_auth_disabled = True
    result = run(args(servers, tls, mailboxes=None, smtp_basic_auth=[{"username": SUPPORT, "password": "right"}]))
    assert entra.requests == [] and result["failed"] is True
    login = result["smtp_basic_auth"][0]["smtp"]
    assert "basic authentication is disabled" in login["response"] and "send with OAuth" in login["fix"]
    assert result["failed_smtp_basic_auth"] == [SUPPORT] and "SMTP basic auth" in result["msg"]


def test_a_cached_token_from_before_the_consent_is_renewed_once(run, entra, servers, tls):
    entra.roles = []
    before = run(args(servers, tls, fail_on_error=False))
    assert before["failed_mailboxes"] == [SUPPORT, SALES] and len(entra.requests) == 1

    entra.roles = ["IMAP.AccessAsApp"]  # the admin granted consent since
    after = run(args(servers, tls))
    assert after.get("failed") is not True, after.get("msg")
    assert after["token"]["refreshed"] is True and after["token"]["from_cache"] is False and len(entra.requests) == 2

    again = run(args(servers, tls))
    assert again["token"]["from_cache"] is True and again["token"]["refreshed"] is False and len(entra.requests) == 2


def test_fresh_token_bypasses_the_cache(run, entra, servers, tls):
    run(args(servers, tls))
    result = run(args(servers, tls, fresh_token=True))
    assert len(entra.requests) == 2 and result["token"]["from_cache"] is False


def test_uses_ces_secret_even_under_the_automation_identitys_module_defaults(run, entra, servers, tls, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "automation-secret")
    result = run(args(servers, tls, client_certificate_path=str(tmp_path / "automation.pem"), managed_identity=False))
    assert result.get("failed") is not True, result.get("msg")
    assert entra.requests[0]["secret"] == SECRET and entra.requests[0]["certificate"] is None


def test_a_missing_secret_is_not_taken_from_the_environment(run, entra, servers, tls, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "automation-secret")
    result = run(args(servers, tls, client_secret=None))
    assert result["failed"] is True and "client_secret is required" in result["msg"] and entra.requests == []


def test_the_token_endpoint_url_is_used_exactly(run, entra, servers, tls):
    url = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    result = run(args(servers, tls, token_url=url, scope="https://outlook.office365.com/.default"))
    assert entra.requests[0]["authority"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert result["settings"]["token_endpoint_url"] == url and result.get("warnings") is None


def test_a_token_endpoint_url_of_another_directory_is_warned_and_diagnosed(run, entra, servers, tls):
    entra.claims = {"tid": OTHER_TENANT}
    url = "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % OTHER_TENANT
    result = run(args(servers, tls, token_endpoint_url=url, mailboxes=[SUPPORT]))
    assert any("names directory %s" % OTHER_TENANT in w for w in warnings_of(result))
    cause = result["mailboxes"][0]["imap"]["cause"]
    assert "comes from directory %s" % OTHER_TENANT in cause


def test_a_scope_for_another_resource_is_diagnosed_from_the_audience(run, entra, servers, tls):
    result = run(args(servers, tls, scopes=["https://graph.microsoft.com/.default"], mailboxes=[SUPPORT]))
    assert entra.requests[0]["resource"] == "https://graph.microsoft.com"
    assert "not Exchange Online" in result["mailboxes"][0]["imap"]["cause"] and "is not Exchange Online's" in warnings_of(result)[0]


@pytest.mark.parametrize("options,message", [
    ({"scopes": ["https://outlook.office365.com/IMAP.AccessAsUser.All"]}, "does not end with /.default"),
    ({"scopes": ["https://outlook.office365.com/.default", "https://graph.microsoft.com/.default"]}, "exactly one scope"),
    ({"token_endpoint_url": "https://login.microsoftonline.com/%s/oauth2/token" % TENANT}, "not a v2.0 token endpoint"),
    ({"token_endpoint_url": "http://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT}, "not an https URL"),
    ({"client_id": "CE Email"}, "not a GUID"),
    ({"mailboxes": []}, "no mailboxes to check"),
    ({"parallelism": 0}, "parallelism must be at least 1"),
])
def test_impossible_settings_fail_before_any_request(run, entra, servers, tls, options, message):
    result = run(args(servers, tls, **options))
    assert result["failed"] is True and message in result["msg"] and entra.requests == [] and servers[0].connections == 0


def test_an_automation_identity_token_is_warned_about(run, entra, servers, tls):
    entra.roles = ["Exchange.ManageAsApp"]
    result = run(args(servers, tls, fail_on_error=False, mailboxes=[SUPPORT]))
    assert any("automation identity" in w for w in warnings_of(result))


def test_duplicates_are_checked_once_with_bounded_parallelism(run, entra, servers, tls, rules):
    result = run(args(servers, tls, mailboxes=[SUPPORT, SUPPORT.upper(), SALES], parallelism=1))
    assert [m["mailbox"] for m in result["mailboxes"]] == [SUPPORT, SALES] and len(rules.logins) == 2


def test_unreachable_server(run, entra, tls, rules):
    result = run(dict(tenant_id=TENANT, client_id=APP, client_secret=SECRET, mailboxes=[SUPPORT], imap_host="127.0.0.1", imap_port=1,
                      ca_path=tls[0], timeout=2, login_retries=2, login_retry_delay=0))
    imap = result["mailboxes"][0]["imap"]
    # A refused connection may be a blip, so it is tried again, and then named as unreachable.
    assert imap["stage"] == "connect" and "not reachable" in imap["cause"] and imap["attempts"] == 3 and imap["temporary"]


# -- pure helpers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cloud,imap,smtp", [
    ("public", "outlook.office365.com", "smtp.office365.com"),
    ("usgov", "outlook.office365.us", "smtp.office365.us"),
    ("usgov_dod", "outlook-dod.office365.us", "outlook-dod.office365.us"),
    ("china", "partner.outlook.cn", "smtp.partner.outlook.cn"),
])
def test_cloud_defaults(cloud, imap, smtp):
    settings, warnings = mailbox_check.resolve_settings(dict(cloud=cloud, tenant_id=TENANT, client_id=APP))
    resource = msauth.CLOUDS[cloud]["exchange"]
    assert (settings["imap_host"], settings["smtp_host"], settings["imap_port"], settings["smtp_port"]) == (imap, smtp, 993, 587)
    assert settings["scope"] == resource + "/.default" and settings["resource"] == resource and warnings == []
    assert settings["token_endpoint_url"] == "%s/%s/oauth2/v2.0/token" % (msauth.CLOUDS[cloud]["authority_host"], TENANT)


def test_token_endpoint_of_another_cloud_is_warned():
    settings, warnings = mailbox_check.resolve_settings(dict(
        cloud="usgov", tenant_id=TENANT, client_id=APP,
        token_endpoint_url="https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT))
    assert settings["authority_host"] == "https://login.microsoftonline.com" and "expects https://login.microsoftonline.us" in warnings[0]


def test_claims_are_decoded_without_verification():
    token = unsigned_token(tid=TENANT, roles=["IMAP.AccessAsApp"], exp=1767225600)
    summary = mailbox_check.token_summary(mailbox_check.decode_claims(token), cached=False)
    assert summary["roles"] == ["IMAP.AccessAsApp"] and summary["expires_on"] == "2026-01-01T00:00:00Z"
    assert mailbox_check.decode_claims("not a token") == {}


def test_failure_message_is_empty_when_all_passed():
    result = {"settings": {}, "mailboxes": [{"mailbox": SUPPORT, "ok": True, "imap": {"ok": True}}], "smtp_basic_auth": [],
              "summary": {"mailboxes": 1, "smtp_basic_auth": 0}, "failed_mailboxes": [], "failed_smtp_basic_auth": []}
    assert mailbox_check.failure_message(result) == ""


def test_msg_says_what_worked_or_what_failed(run, entra, servers, tls, rules):
    ok = run(args(servers, tls))
    assert ok["msg"] == "CE's OAuth settings (client %s) log in to all 2 mailboxes over IMAP" % APP
    rules.full_access[SALES.lower()].discard(SP)
    reported = run(args(servers, tls, fail_on_error=False))
    assert reported.get("failed") is not True and reported["msg"].startswith("CE's logins failed for 1 of 2") and SALES in reported["msg"]


def test_a_server_without_xoauth2_is_named():
    settings, dummy = mailbox_check.resolve_settings(dict(cloud="public", tenant_id=TENANT, client_id=APP))
    login = {"ok": False, "stage": "authenticate", "response": "504 5.5.4 Unrecognized authentication type", "mechanisms": ["LOGIN"]}
    cause, fix = mailbox_check.diagnose_oauth("smtp", login, {"roles": ["SMTP.SendAsApp"]}, SUPPORT, settings)
    assert cause == "the SMTP server does not offer XOAUTH2" and "smtp.office365.com" in fix
