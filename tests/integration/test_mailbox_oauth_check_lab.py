# -*- coding: utf-8 -*-
"""mailbox_oauth_check against the lab: real tokens from the lab's Entra for the app azuread_app made, the
Exchange part done by the exo modules, and IMAP/SMTP endpoints that decide from the lab's Exchange state.

The mail endpoints are the lab's own (Dovecot for IMAP, aiosmtpd for SMTP) when the lab serves them
(lab_imap / lab_smtp in its vars). Without them, the fakes of tests/unit/plugins/module_utils/mail_login_fakes.py
stand in: they run in this process with a certificate of the lab's CA, verify token signatures with the lab's
published keys and read service principals and FullAccess entries from the lab's Exchange emulator at every login.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import mail_login

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "plugins", "module_utils"))
from mail_login_fakes import IMAP_REFUSAL, claims_of, unsigned_token  # noqa: E402  pylint: disable=wrong-import-position
from mail_support import CONTOSO, cached_tokens, lab_serves_mail, lab_tls, mail  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import

FABRIKAM = "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"
SUPPORT, SALES = "ce-support@contoso.onmicrosoft.com", "ce-sales@contoso.onmicrosoft.com"


# -- the parts before this one, done by the collection's own modules -------------------------------
@pytest.fixture
def parts(fresh_lab, run_module, directory_auth):
    """``parts.azuread(**options)``, ``parts.exchange(app, mailboxes)``: the Azure AD and Exchange parts in contoso."""
    class Parts:
        @staticmethod
        def azuread(name="contoso", **options):
            args = directory_auth(fresh_lab, name, display_name="CE Email", unique_name="ce-email",
                                  app_secret={"name": "CE mailbox access", "lifetime_days": 180})
            args.update(options)
            result = run_module("azuread_app", args)
            assert result.get("failed") is not True, result.get("msg")
            return result

        @staticmethod
        def exchange(app, mailboxes, name="contoso"):
            exo = directory_auth(fresh_lab, name, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"])
            registered = run_module("exo_service_principal", dict(exo, app_id=app["app_id"], object_id=app["service_principal_id"]))
            assert registered.get("failed") is not True, registered.get("msg")
            if mailboxes:
                granted = run_module("exo_mailbox_permission", dict(exo, user=app["service_principal_id"], mailboxes=mailboxes))
                assert granted.get("failed") is not True, granted.get("msg")
    return Parts()


def check_args(lab, app, mail, secret=None, **options):
    """Module options with CE's settings: CE's app and secret, never the automation identity."""
    args = dict(tenant_id=app["tenant_id"], client_id=app["app_id"], client_secret=secret or app["client_secret"],
                authority_host=lab.vars["lab_authority_host"], ca_path=lab.vars["lab_ca_path"], mailboxes=[SUPPORT, SALES],
                imap_host=mail.imap_host, imap_port=mail.imap_port, smtp_host=mail.smtp_host, smtp_port=mail.smtp_port)
    args.update(options)
    return args


def ce_token_requests(lab, app):
    return sum(n for key, n in lab.counters()["tokens"].items() if key.split("|")[1] == app["app_id"])



# -- the tests ----------------------------------------------------------------------------------------
def test_the_whole_chain_passes_and_nothing_secret_is_returned(fresh_lab, run_module, parts, mail, tmp_path):
    app = parts.azuread()
    parts.exchange(app, [SUPPORT, SALES])
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False and result["failed_mailboxes"] == []
    assert [(m["mailbox"], m["imap"]["stage"]) for m in result["mailboxes"]] == [(SUPPORT, "done"), (SALES, "done")]
    assert all(m["imap"]["folder"] == "INBOX" and m["imap"]["xoauth2_offered"] for m in result["mailboxes"])
    assert result["token"]["oid"] == app["service_principal_id"] and result["token"]["appid"] == app["app_id"]
    assert result["token"]["roles"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"] and result["token"]["tid"] == CONTOSO
    assert ce_token_requests(fresh_lab, app) == 1
    tokens = cached_tokens(str(tmp_path / "tokens"))
    assert tokens and all(t not in result["_raw"] for t in tokens)
    assert app["client_secret"] not in result["_raw"]
    assert sorted(mail.logins()) == [("imap", SALES, True), ("imap", SUPPORT, True)]


def test_before_the_exchange_part_the_fix_names_the_service_principal(fresh_lab, run_module, parts, mail):
    app = parts.azuread()
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, mailboxes=[SUPPORT]))
    assert result["failed"] is True
    imap = result["mailboxes"][0]["imap"]
    assert imap["response"].endswith(IMAP_REFUSAL) and "not registered in Exchange" in imap["cause"]
    assert "New-ServicePrincipal -AppId %s -ObjectId %s" % (app["app_id"], app["service_principal_id"]) in imap["fix"]
    assert app["object_id"] not in imap["fix"]  # the classic mistake is not suggested

    parts.exchange(app, [])  # registered, but no FullAccess yet
    still = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, mailboxes=[SUPPORT]))
    assert still["failed"] is True and "-User %s -AccessRights FullAccess" % app["service_principal_id"] in still["msg"]

    parts.exchange(app, [SUPPORT])
    assert run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, mailboxes=[SUPPORT])).get("failed") is not True


def test_without_admin_consent_then_with_it(fresh_lab, run_module, parts, mail):
    app = parts.azuread(admin_consent=False)
    parts.exchange(app, [SUPPORT, SALES])
    before = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, fail_on_error=False))
    assert before["failed_mailboxes"] == [SUPPORT, SALES] and before["token"]["roles"] == []
    assert before["mailboxes"][0]["imap"]["cause"].startswith("no admin consent for IMAP.AccessAsApp")

    parts.azuread()  # the Azure AD part grants consent; CE's cached token still has no roles
    after = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail))
    assert after.get("failed") is not True, after.get("msg")
    assert after["token"]["refreshed"] is True and after["token"]["roles"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    assert ce_token_requests(fresh_lab, app) == 2


def test_a_wrong_secret_is_entras_aadsts7000215_and_no_login_is_tried(fresh_lab, run_module, parts, mail):
    app = parts.azuread()
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, secret="not-the-secret"))
    imap = result["mailboxes"][0]["imap"]
    assert result["failed"] is True and imap["stage"] == "token" and "AADSTS7000215" in imap["response"]
    assert "CE's OAuth settings" in imap["fix"] and mail.logins() == []
    assert "not-the-secret" not in result["_raw"]


def test_after_rotation_the_retired_secret_fails_and_the_new_one_passes(fresh_lab, run_module, parts, mail):
    old = parts.azuread()
    parts.exchange(old, [SUPPORT])
    # A longer lifetime makes the new secret the newest even within the same second (azuread_app ranks by expiry).
    new = parts.azuread(app_secret={"name": "CE mailbox access", "lifetime_days": 200, "rotate": True})
    parts.azuread(app_secret={"name": "CE mailbox access", "retire_previous": True})
    assert new["client_secret"] != old["client_secret"]
    retired = run_module("mailbox_oauth_check", check_args(fresh_lab, old, mail, mailboxes=[SUPPORT]))
    assert retired["failed"] is True and "AADSTS7000215" in retired["msg"]
    current = run_module("mailbox_oauth_check", check_args(fresh_lab, new, mail, mailboxes=[SUPPORT]))
    assert current.get("failed") is not True, current.get("msg")


def test_smtp_with_send_as_app_and_a_test_message_outside_check_mode(fresh_lab, run_module, parts, mail):
    app = parts.azuread(exchange_permissions=["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"])
    parts.exchange(app, [SUPPORT])
    args = check_args(fresh_lab, app, mail, mailboxes=[SUPPORT], smtp=True, smtp_send_test_to="ops@example.com")
    checked = run_module("mailbox_oauth_check", args, check_mode=True)
    assert checked.get("failed") is not True, checked.get("msg")
    assert checked["mailboxes"][0]["smtp"]["code"] == 235 and mail.messages() == []
    sent = run_module("mailbox_oauth_check", args)
    assert sent["summary"]["test_messages_sent"] == 1 and sent["changed"] is False
    assert mail.messages() == [{"from": SUPPORT, "to": ["ops@example.com"], "subject": "Test"}]


def test_smtp_without_send_as_app_consent(fresh_lab, run_module, parts, mail):
    app = parts.azuread()
    parts.exchange(app, [SUPPORT])
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, mailboxes=[SUPPORT], smtp=True))
    assert result["mailboxes"][0]["imap"]["ok"] is True
    assert result["mailboxes"][0]["smtp"]["response"].startswith("535 5.7.3")
    assert "no admin consent for SMTP.SendAsApp" in result["mailboxes"][0]["smtp"]["cause"]


def test_a_token_endpoint_url_of_another_directory(fresh_lab, run_module, parts, mail):
    app = parts.azuread()
    url = "%s/%s/oauth2/v2.0/token" % (fresh_lab.vars["lab_authority_host"], FABRIKAM)
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, token_endpoint_url=url, mailboxes=[SUPPORT]))
    imap = result["mailboxes"][0]["imap"]
    assert imap["stage"] == "token" and "AADSTS700016" in imap["response"] and "app_id" in imap["fix"]
    assert any("names directory %s" % FABRIKAM in w["event"]["msg"] for w in result["warnings"])


def test_the_mail_ca_must_be_trusted(fresh_lab, run_module, parts, mail, tmp_path):
    from mail_login_fakes import make_ca  # pylint: disable=import-outside-toplevel
    app = parts.azuread()
    other_ca = make_ca(tmp_path)[0]
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, app, mail, mailboxes=[SUPPORT], mail_ca_path=other_ca))
    imap = result["mailboxes"][0]["imap"]
    assert imap["stage"] == "tls" and "mail_ca_path" in imap["fix"] and mail.logins() == []


def test_the_runbooks_basic_auth_test_and_its_switch_off(fresh_lab, run_module, parts, mail):
    app = parts.azuread()
    account = {"username": SUPPORT, "password": mail.password(SUPPORT)}
    args = check_args(fresh_lab, app, mail, mailboxes=None, smtp_basic_auth=[account], smtp_send_test_to=SALES)
    sent = run_module("mailbox_oauth_check", args)
    assert sent.get("failed") is not True, sent.get("msg")
    assert sent["smtp_basic_auth"][0]["smtp"]["test_message"]["sent"] is True and account["password"] not in sent["_raw"]
    assert mail.messages() == [{"from": SUPPORT, "to": [SALES], "subject": "Test"}]
    assert ce_token_requests(fresh_lab, app) == 0  # basic auth alone needs no token

    mail.disable_basic_auth("contoso")
    refused = run_module("mailbox_oauth_check", args)
    login = refused["smtp_basic_auth"][0]["smtp"]
    assert refused["failed"] is True and "5.7.139" in login["response"] and "send with OAuth" in login["fix"]


def test_only_tokens_the_lab_signed_get_in(fresh_lab, mail):
    d = fresh_lab.vars["lab_directories"]["contoso"]
    fresh_lab.exchange_register_service_principal("contoso", d["automation_client_id"], d["automation_service_principal_id"])
    fresh_lab.exchange_add_permission("contoso", SUPPORT, d["automation_service_principal_id"])
    minted = fresh_lab.mint_token("contoso", resource="https://outlook.office365.com", roles=["IMAP.AccessAsApp"])
    forged = unsigned_token(**claims_of(minted))
    no_role = fresh_lab.mint_token("contoso", resource="https://outlook.office365.com", roles=[])
    context = mail_login.tls_context(fresh_lab.vars["lab_ca_path"])
    results = [mail_login.imap_xoauth2(mail.imap_host, mail.imap_port, SUPPORT, token, context, timeout=5) for token in (minted, forged, no_role)]
    assert [r["ok"] for r in results] == [True, False, False], results
    assert results[1]["response"].endswith(IMAP_REFUSAL)
    assert results[0]["messages"] is not None  # EXAMINE INBOX worked after the login


def test_which_mail_endpoints_served_these_tests(lab):
    if not lab_serves_mail(lab):
        pytest.skip("the lab serves no IMAP/SMTP (no lab_imap / lab_smtp): the in-process fakes stood in")
