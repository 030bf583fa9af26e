# -*- coding: utf-8 -*-
"""ce_email_connection against the lab's CE Portals."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import warnings_of

from ce_support import (CLIENT_ID, TENANT_ID, HandEdits, ce_args, connection_named, deployment, gateway_named,  # noqa: F401
                        settings_named, writes)  # pylint: disable=unused-import

SECRET = "lab-secret~connection-0123456789"


def prepare(lab, run_module, deployment_name="emea", tenant="acme", gateway=True):
    if gateway:
        assert not run_module("ce_email_gateway", ce_args(lab, deployment_name, name="Exchange Online")).get("failed")
    assert not run_module("ce_oauth_settings", ce_args(lab, deployment_name, ce_tenant=tenant, name="Exchange Online OAuth",
                                                       client_id=CLIENT_ID, client_secret=SECRET, tenant_id=TENANT_ID)).get("failed")


def connection_args(lab, deployment_name="emea", **kwargs):
    args = dict(ce_tenant="acme", name="Exchange Online", gateway="Exchange Online", oauth_settings="Exchange Online OAuth")
    args.update(kwargs)
    return ce_args(lab, deployment_name, **args)


def test_create_then_rerun_changes_nothing(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    first = run_module("ce_email_connection", connection_args(fresh_lab))
    assert first["changed"] is True
    stored = connection_named(fresh_lab, "acme", "Exchange Online")
    assert stored["gateway_id"] == gateway_named(fresh_lab, "Exchange Online")["id"]
    assert stored["oauth_settings_id"] == settings_named(fresh_lab, "acme", "Exchange Online OAuth")["id"]
    assert stored["use_oauth_receive"] is True and stored["use_oauth_send"] is False
    assert first["mailboxes"] == deployment(fresh_lab)["tenants"]["acme"]["mailboxes"]
    before = writes(fresh_lab)
    second = run_module("ce_email_connection", connection_args(fresh_lab))
    assert second["changed"] is False and writes(fresh_lab) == before


def test_the_existing_us_connection_is_switched_to_oauth(fresh_lab, run_module):
    prepare(fresh_lab, run_module, "us", "umbrella", gateway=False)
    result = run_module("ce_email_connection", connection_args(fresh_lab, "us", ce_tenant="umbrella"))
    assert result["changed"] is True
    assert result["diff"]["before"] == {"state": "present", "name": "Exchange Online", "gateway": "Exchange Online", "oauth_settings": None,
                                        "use_oauth_receive": False, "use_oauth_send": False}
    assert result["diff"]["after"]["oauth_settings"] == "Exchange Online OAuth" and result["diff"]["after"]["use_oauth_receive"] is True
    assert connection_named(fresh_lab, "umbrella", "Exchange Online", "us")["use_oauth_receive"] is True


def test_oauth_send_where_the_release_supports_it(fresh_lab, run_module):
    prepare(fresh_lab, run_module, "us", "umbrella", gateway=False)
    result = run_module("ce_email_connection", connection_args(fresh_lab, "us", ce_tenant="umbrella", use_oauth_send=True))
    assert result["changed"] is True and connection_named(fresh_lab, "umbrella", "Exchange Online", "us")["use_oauth_send"] is True


def test_oauth_send_is_refused_without_the_capability(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    before = writes(fresh_lab)
    result = run_module("ce_email_connection", connection_args(fresh_lab, use_oauth_send=True))
    assert result["failed"] is True and "capability oauth_send_smtp (CE 7.6 or later)" in result["msg"] and "CE 7.4.4" in result["msg"]
    assert "use_oauth_send=false" in result["msg"] and writes(fresh_lab) == before


def test_oauth_on_a_pop3_gateway_is_refused(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    run_module("ce_email_gateway", ce_args(fresh_lab, name="POP", inbound={"protocol": "pop3", "port": 995}))
    before = writes(fresh_lab)
    result = run_module("ce_email_connection", connection_args(fresh_lab, gateway="POP"))
    assert result["failed"] is True and "CE does not support OAuth for POP3" in result["msg"] and "inbound.protocol=imap" in result["msg"]
    assert writes(fresh_lab) == before
    plain = run_module("ce_email_connection", connection_args(fresh_lab, gateway="POP", use_oauth_receive=False))
    assert plain["changed"] is True


def test_too_old_ce_refuses_oauth(fresh_lab, run_module):
    result = run_module("ce_email_connection", connection_args(fresh_lab, "legacy", ce_tenant="oldco", name="Legacy POP", gateway="Legacy POP",
                                                               oauth_settings="Exchange Online OAuth"))
    assert result["failed"] is True and "requires CE 7.4 CU4 or later" in result["msg"] and "7.4.3" in result["msg"]
    assert writes(fresh_lab) == 0


@pytest.mark.parametrize("overrides,expected", [
    ({"gateway": "Exchange", "gateway_inbound_host": "imap.elsewhere.example"}, "found no email gateway named 'Exchange' on this deployment: create it with ce_email_gateway"),
    ({"oauth_settings": "EXO OAuth"}, "found no OAuth settings named 'EXO OAuth' in this tenant: create them with ce_oauth_settings"),
])
def test_unknown_gateway_or_settings_name(fresh_lab, run_module, overrides, expected):
    prepare(fresh_lab, run_module)
    before = writes(fresh_lab)
    result = run_module("ce_email_connection", connection_args(fresh_lab, **overrides))
    assert result["failed"] is True and expected in result["msg"], result["msg"]
    assert result["msg"].startswith("CE deployment %s, tenant acme, email connection 'Exchange Online'" % deployment(fresh_lab)["url"])
    assert writes(fresh_lab) == before


def test_check_mode_on_a_fresh_deployment_makes_no_write(fresh_lab, run_module):
    result = run_module("ce_email_connection", connection_args(fresh_lab), check_mode=True)
    assert result["changed"] is True and writes(fresh_lab) == 0
    assert len([w for w in warnings_of(result) if "check mode assumes an earlier task" in w]) == 2


def test_drift_is_repaired(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    created = run_module("ce_email_connection", connection_args(fresh_lab))
    HandEdits(fresh_lab).edit("/tenants/acme/email-connections/" + created["email_connection"]["id"], use_oauth_receive=False,
                              oauth_settings_id=None)
    drift = run_module("ce_email_connection", connection_args(fresh_lab), check_mode=True)
    assert drift["changed"] is True and drift["diff"]["before"]["oauth_settings"] is None
    assert run_module("ce_email_connection", connection_args(fresh_lab))["changed"] is True
    assert connection_named(fresh_lab, "acme", "Exchange Online")["use_oauth_receive"] is True


def test_removal(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    run_module("ce_email_connection", connection_args(fresh_lab))
    gone = run_module("ce_email_connection", ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online", state="absent"))
    assert gone["changed"] is True and connection_named(fresh_lab, "acme", "Exchange Online") is None
    assert run_module("ce_email_connection", ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online", state="absent"))["changed"] is False


def test_tenant_administrator_with_the_deployments_gateway(fresh_lab, run_module):
    prepare(fresh_lab, run_module)
    own = run_module("ce_email_connection", connection_args(fresh_lab, tenant_admin="acme"))
    assert own["changed"] is True
    other = run_module("ce_email_connection", connection_args(fresh_lab, tenant_admin="acme", ce_tenant="globex"))
    assert other["failed"] is True and "HTTP 403 forbidden" in other["msg"] and "tenant globex" in other["msg"]
