# -*- coding: utf-8 -*-
"""Numbers, names and URLs that would make wrong objects or leak credentials fail before the first request, with the range
or the rule in the message (issue "Hostile input and a hostile machine")."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import forget_warnings, patch_module_args

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import _http, msauth

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
MS = dict(tenant_id=TENANT, client_id="55555555-5555-4555-8555-555555555555", client_secret="s3cret")
CE = dict(ce_url="https://ce-portal.example.com", ce_token="cep_token-0123456789")
PASSWORD = "Pa55%2Fword"


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    sent = []

    def no_request(transport, method, url, **kwargs):
        sent.append((method, url))
        raise AssertionError("a request was sent: %s %s" % (method, url))
    monkeypatch.setattr(_http.Transport, "send", no_request)
    monkeypatch.setenv("CEOPS_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))

    def call(name, args):
        module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
        capsys.readouterr()
        forget_warnings()
        with patch_module_args(dict(args, _ansible_check_mode=False)):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        assert sent == [] and result.get("failed") is True and "Traceback" not in out, result
        assert "unexpected error" not in result["msg"]
        return result["msg"], out
    return call


def secret(**kwargs):
    return dict(MS, display_name="CE Email", unique_name="ce-email", app_secret=dict(kwargs))


@pytest.mark.parametrize("args,expected", [
    (secret(lifetime_days=0), "app_secret.lifetime_days must be between 1 and 730 days"),
    (secret(lifetime_days=-5), "app_secret.lifetime_days must be between 1 and 730 days"),
    (secret(lifetime_days=10000), "not 10000"),
    (secret(lifetime_days=10 ** 9), "must be between 1 and 730"),
    (secret(lifetime_days=30, renew_before_days=30), "app_secret.renew_before_days must be between 0 and 29 days"),
    (secret(renew_before_days=-1), "renew_before_days must be between 0 and 364"),
    (dict(MS, display_name="CE Email", app_secrets=[{"name": "CE (acme)"}, {"name": "CE (globex)", "lifetime_days": 3650}]),
     "app_secrets['CE (globex)'].lifetime_days must be between 1 and 730"),
    (dict(MS, display_name="   "), "display_name '   ' is empty or only spaces"),
    (dict(MS, display_name="CE Email", unique_name="ce\x07email"), "unique_name 'ce\\x07email' contains control characters"),
    (dict(MS, display_name="CE Email", unique_name="ce-email "), "begins or ends with spaces"),
    (dict(MS, tenant_id=TENANT + "\n", display_name="CE Email"), "is neither a GUID"),
    (dict(MS, display_name="CE Email", timeout=0), "timeout must be between 1 and 600 seconds"),
    (dict(MS, display_name="CE Email", timeout=100000), "timeout must be between 1 and 600 seconds"),
    (dict(MS, display_name="CE Email", graph_endpoint="https://ops:%s@graph.example.com" % PASSWORD), "user name or password"),
    (dict(MS, display_name="CE Email", authority_host="https://login.example.com/?x=1"), "query string or fragment"),
])
def test_azuread_app_refuses_before_any_request(run, args, expected):
    msg, out = run("azuread_app", args)
    assert expected in msg, msg
    assert PASSWORD not in out and "Pa55/word" not in out


@pytest.mark.parametrize("args,expected", [
    (dict(poll_interval=-1), "poll_interval must be between 0.1 and 300 seconds, not -1"),
    (dict(poll_interval=0), "poll_interval must be between 0.1 and 300 seconds, not 0"),
    (dict(wait_timeout=-10), "wait_timeout must be between 1 and 86400 seconds, not -10"),
    (dict(wait_timeout=0), "wait_timeout must be between 1 and 86400 seconds"),
    (dict(timeout=0), "timeout must be between 1 and 600 seconds"),
])
def test_ce_batch_update_refuses_impossible_waits_before_starting_anything(run, args, expected):
    msg, dummy = run("ce_batch_update", dict(CE, **args))
    assert expected in msg, msg


@pytest.mark.parametrize("module,args,expected", [
    ("ce_email_gateway", dict(name="   "), "the email gateway name '   ' is empty or only spaces"),
    ("ce_email_gateway", dict(name=""), "must have 1 to 128 characters"),
    ("ce_email_gateway", dict(name="Exchange Online", inbound={"port": 0}), "inbound.port 0 must be between 1 and 65535"),
    ("ce_email_gateway", dict(name="Exchange Online", outbound={"port": 70000}), "outbound.port 70000 must be between 1 and 65535"),
    ("ce_oauth_settings", dict(ce_tenant="acme", name=" Exchange Online OAuth", client_id=TENANT, tenant_id=TENANT),
     "begins or ends with spaces"),
    ("ce_email_connection", dict(ce_tenant="acme", name="\t", gateway="Exchange Online", oauth_settings="x"), "empty or only spaces"),
    ("ce_email_connection", dict(ce_tenant="acme", name="Exchange Online", gateway="  ", oauth_settings="x"),
     "the email gateway name '  ' is empty"),
])
def test_blank_names_and_ports_out_of_range_make_no_portal_object(run, module, args, expected):
    msg, dummy = run(module, dict(CE, **args))
    assert expected in msg, msg


@pytest.mark.parametrize("ce_url,expected", [
    ("https://ce-admin:%s@ce-portal.example.com" % PASSWORD, "carries a user name or password"),
    ("http://ce-portal.example.com", "is not https"),
    ("https://ce-portal.example.com/?tenant=acme", "query string or fragment"),
    ("https://ce-portal.example.com#top", "query string or fragment"),
])
def test_a_ce_url_that_would_leak_or_mislead_is_refused(run, ce_url, expected):
    msg, out = run("ce_email_gateway", dict(CE, ce_url=ce_url, name="Exchange Online"))
    assert expected in msg and "ce-portal.example.com" in msg
    assert PASSWORD not in out and "Pa55/word" not in out and "ce-admin" not in out  # the invocation's ce_url is masked too


@pytest.mark.parametrize("args,expected", [
    (dict(mailboxes=["ce-support"]), "mailboxes must be email addresses; 'ce-support' is not"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com\r\nA1 LOGOUT"]), "must be email addresses"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com"], smtp_send_test_to="ops"), "smtp_send_test_to 'ops' is not an email address"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com"], imap_port=0), "imap_port must be between 1 and 65535"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com"], smtp_port=65536), "smtp_port must be between 1 and 65535"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com"], token_endpoint_url="https://login.example.com/%s/oauth2/v2.0/token?x=1" % TENANT),
     "query string or fragment"),
    (dict(mailboxes=["ce@contoso.onmicrosoft.com"], token_endpoint_url="https://u:%s@login.example.com/%s/oauth2/v2.0/token"
          % (PASSWORD, TENANT)), "user name or password"),
])
def test_mailbox_oauth_check_refuses_what_cannot_be_a_mailbox_or_a_port(run, args, expected):
    msg, out = run("mailbox_oauth_check", dict(MS, **args))
    assert expected in msg, msg
    assert PASSWORD not in out


def test_a_trailing_newline_is_no_part_of_a_guid_or_a_domain():
    assert msauth.is_guid(TENANT) and not msauth.is_guid(TENANT + "\n")
    assert msauth.validate_tenant("contoso.onmicrosoft.com") is None and msauth.validate_tenant("contoso.onmicrosoft.com\n")
