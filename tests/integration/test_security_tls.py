# -*- coding: utf-8 -*-
"""Issue 8, TLS: certificate validation is on by default for every client, turning it off warns, and credentials or
tokens are never sent to a plain-http endpoint.

The lab serves every endpoint with its own CA, which is in no system store (nor in REQUESTS_CA_BUNDLE, set machine-wide
here): a client that verifies by default therefore fails against the lab unless it is given the lab CA. Each client is
reached by a module as an operator would run it; the lab's counters show that nothing got past the handshake.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import warnings_of

from ce_support import ce_args
from security_support import automation, check_args, ms, winrm

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


def requests_to(lab, service):
    return lab.counters()["services"].get(service, {}).get("totals", {}).get("requests", 0)


def without(args, *names):
    return dict((k, v) for k, v in args.items() if k not in names)


# -- on by default ----------------------------------------------------------------------------------------------------
def test_the_token_endpoint_is_verified_by_default(fresh_lab, run_module):
    result = run_module("azuread_app", without(ms(fresh_lab, display_name="CE Email"), "ca_path"))
    assert result["failed"] is True and "TLS verification failed" in result["msg"] and "check ca_path" in result["msg"]
    assert fresh_lab.vars["lab_authority_host"] in result["msg"]
    assert requests_to(fresh_lab, "login") == 0


@pytest.mark.parametrize("module,args,service,endpoint", [
    ("azuread_app", dict(display_name="CE Email"), "graph", "lab_graph_endpoint"),
    ("exo_service_principal", dict(verify_object_id=False), "exchange", "lab_exchange_endpoint"),
])
def test_graph_and_exchange_are_verified_by_default(fresh_lab, run_module, module, args, service, endpoint):
    d = automation(fresh_lab)
    args = dict(args, app_id=d["automation_client_id"], object_id=d["automation_service_principal_id"]) if service == "exchange" else args
    # A first run with the lab CA leaves a valid token in the run's cache, so the second run's first request is to the service.
    assert not run_module(module, ms(fresh_lab, **args), check_mode=True).get("failed")
    fresh_lab.reset_counters()
    result = run_module(module, without(ms(fresh_lab, **args), "ca_path"), check_mode=True)
    assert result["failed"] is True and "TLS verification failed" in result["msg"], result["msg"]
    assert fresh_lab.vars[endpoint] in result["msg"] and "check ca_path" in result["msg"]
    assert requests_to(fresh_lab, service) == 0 and requests_to(fresh_lab, "login") == 0


def test_the_ce_portal_is_verified_by_default(fresh_lab, run_module):
    result = run_module("ce_email_gateway", without(ce_args(fresh_lab, name="Exchange Online"), "ca_path"))
    assert result["failed"] is True and "TLS verification failed" in result["msg"] and "CE deployment" in result["msg"]
    assert requests_to(fresh_lab, "ce") == 0


def test_the_winrm_host_is_verified_by_default(fresh_lab, run_module, monkeypatch):
    # pywinrm falls back to REQUESTS_CA_BUNDLE; with it unset the system store decides, which does not hold the lab CA.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    d = automation(fresh_lab)
    options = without(winrm(fresh_lab), "ca_path")
    result = run_module("exo_service_principal", ms(fresh_lab, app_id=d["automation_client_id"], object_id=d["automation_service_principal_id"],
                                                    transport="winrm", winrm=options), check_mode=True)
    assert result["failed"] is True and "WinRM" in result["msg"] and "certificate" in result["msg"].lower(), result["msg"]
    assert requests_to(fresh_lab, "winrm") == 0


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_the_mail_servers_are_verified_by_default(fresh_lab, run_module, protocol):
    # The token comes from the lab (ca_path); the mail servers get only what mail_ca_path says, here the system store.
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, mail_ca_path=SYSTEM_CA, smtp=protocol == "smtp"))
    login = result["mailboxes"][0][protocol]
    assert result["failed"] is True and login["stage"] in ("tls", "starttls") and "not trusted" in login["response"], login
    assert "mail_ca_path" in login["fix"]
    assert fresh_lab.mail_logins(protocol) == []  # no login was attempted over the untrusted channel


# -- turning it off warns ---------------------------------------------------------------------------------------------
def test_validate_certs_false_warns_for_microsoft_endpoints(fresh_lab, run_module):
    result = run_module("azuread_app", without(ms(fresh_lab, display_name="CE Email", validate_certs=False), "ca_path"), check_mode=True)
    assert result.get("failed") is not True, result.get("msg")
    assert any("validate_certs is false" in w and "man in the middle" in w for w in warnings_of(result))


def test_validate_certs_false_warns_for_the_ce_portal(fresh_lab, run_module):
    result = run_module("ce_email_gateway", without(ce_args(fresh_lab, name="Exchange Online", validate_certs=False), "ca_path"),
                        check_mode=True)
    assert result.get("failed") is not True, result.get("msg")
    assert any("validate_certs is false" in w and "CE Portal" in w for w in warnings_of(result))


def test_validate_certs_false_warns_for_the_mail_servers(fresh_lab, run_module):
    result = run_module("mailbox_oauth_check", check_args(fresh_lab, validate_certs=False, ca_path=None))
    assert any("validate_certs is false" in w for w in warnings_of(result))
    # The automation identity has no IMAP role, so the login itself is refused: what matters is that TLS got that far.
    assert result["mailboxes"][0]["imap"]["stage"] not in ("connect", "tls", "starttls"), result["mailboxes"][0]


def test_winrm_validate_certs_false_warns(fresh_lab, run_module):
    d = automation(fresh_lab)
    options = dict(without(winrm(fresh_lab), "ca_path"), validate_certs=False)
    result = run_module("exo_service_principal", ms(fresh_lab, app_id=d["automation_client_id"], object_id=d["automation_service_principal_id"],
                                                    transport="winrm", winrm=options), check_mode=True)
    assert result.get("failed") is not True, result.get("msg")
    assert any("winrm.validate_certs is false" in w and options["host"] in w for w in warnings_of(result))


def test_a_plain_http_ce_portal_is_refused_unless_opted_in_and_then_warned_about(fresh_lab, run_module):
    url = ce_args(fresh_lab)["ce_url"].replace("https://", "http://")
    refused = run_module("ce_email_gateway", ce_args(fresh_lab, name="Exchange Online", ce_url=url))
    assert refused["failed"] is True and "is not https" in refused["msg"] and "ce_allow_plain_http" in refused["msg"]
    assert fresh_lab.counters()["services"].get("ce", {}).get("totals", {}).get("requests", 0) == 0
    # Opted in (a lab), the module tries: the lab answers TLS only, so it fails after the warning.
    result = run_module("ce_email_gateway", ce_args(fresh_lab, name="Exchange Online", ce_url=url, ce_allow_plain_http=True))
    assert any("plain http" in w and url in w for w in warnings_of(result))


# -- plain http is refused where a credential or a token would travel -------------------------------------------------
@pytest.mark.parametrize("module,overrides,expected", [
    ("azuread_app", dict(authority_host="http://{login}"), "is not https"),
    ("azuread_app", dict(graph_endpoint="http://{graph}"), "graph_endpoint http://"),
    ("exo_service_principal", dict(exchange_endpoint="http://{exchange}"), "exchange_endpoint http://"),
    ("mailbox_oauth_check", dict(token_endpoint_url="http://{login}/{tenant}/oauth2/v2.0/token"), "not an https URL"),
    ("ce_oauth_settings", dict(token_endpoint_url="http://{login}/{tenant}/oauth2/v2.0/token"), "must be an https URL"),
])
def test_plain_http_endpoints_for_tokens_are_refused(fresh_lab, run_module, module, overrides, expected):
    hosts = dict(login=fresh_lab.vars["lab_authority_host"].split("://")[1], graph=fresh_lab.vars["lab_graph_endpoint"].split("://")[1],
                 exchange=fresh_lab.vars["lab_exchange_endpoint"].split("://")[1],
                 tenant=fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"])
    overrides = dict((k, v.format(**hosts)) for k, v in overrides.items())
    d = automation(fresh_lab)
    if module == "mailbox_oauth_check":
        args = check_args(fresh_lab, **overrides)
    elif module == "ce_oauth_settings":
        args = ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online OAuth", client_id=d["automation_client_id"],
                       client_secret="s3cret-for-ce", **overrides)
    else:
        args = ms(fresh_lab, display_name="CE Email", app_id=d["automation_client_id"] if module != "azuread_app" else None,
                  object_id=d["automation_service_principal_id"] if module != "azuread_app" else None, **overrides)
    result = run_module(module, args)
    assert result["failed"] is True and expected in result["msg"], result["msg"]
    counters = fresh_lab.counters()["services"]
    assert sum(counters.get(s, {}).get("totals", {}).get("requests", 0) for s in ("login", "graph", "exchange")) == 0
    assert counters.get("ce", {}).get("totals", {}).get("writes", 0) == 0


def test_an_http_authority_from_the_environment_is_refused(fresh_lab, run_module, monkeypatch):
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", fresh_lab.vars["lab_authority_host"].replace("https://", "http://"))
    result = run_module("azuread_app", without(ms(fresh_lab, display_name="CE Email"), "authority_host"))
    assert result["failed"] is True and "is not https" in result["msg"] and requests_to(fresh_lab, "login") == 0
