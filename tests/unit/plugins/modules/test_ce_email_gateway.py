# -*- coding: utf-8 -*-
"""ce_email_gateway, and the shared CE options of CeModule, against the in-memory Portal."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from fake_portal import URL, FakePortal, ModuleRunner, warnings_of  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def portal():
    fake = FakePortal()
    yield fake
    assert fake.contract_problems() == []


@pytest.fixture
def run(portal, monkeypatch, capsys):
    return ModuleRunner(portal, monkeypatch, capsys)


def gateway_in(portal, name="Exchange Online"):
    return next((g for g in portal.gateways.values() if g["name"] == name), None)


def test_create_with_the_runbooks_defaults_then_rerun_changes_nothing(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online"})
    assert result["changed"] is True and result["ce_version"] == "7.4.4"
    assert result["actions"] == ["create email gateway 'Exchange Online': inbound IMAP outlook.office365.com:993 (ssl), "
                                 "outbound smtp.office365.com:587 (starttls)"]
    stored = gateway_in(portal)
    assert stored["inbound"] == {"protocol": "imap", "host": "outlook.office365.com", "port": 993, "security": "ssl"}
    assert stored["outbound"] == {"host": "smtp.office365.com", "port": 587, "security": "starttls"}
    assert result["email_gateway"]["id"] == stored["id"]
    assert result["diff"]["before"] == {"state": "absent"}

    writes = len(portal.writes())
    again = run("ce_email_gateway", {"name": "Exchange Online"})
    assert again["changed"] is False and again["actions"] == [] and len(portal.writes()) == writes


def test_check_mode_writes_nothing(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online"}, check_mode=True)
    assert result["changed"] is True and result["email_gateway"]["id"] is None
    assert portal.writes() == [] and portal.gateways == {}


def test_drift_is_shown_then_repaired_and_the_description_kept(portal, run):
    portal.add_gateway("Exchange Online", port=995, description="managed by ops")
    drift = run("ce_email_gateway", {"name": "Exchange Online"}, check_mode=True)
    assert drift["changed"] is True and portal.writes() == []
    assert drift["actions"] == ["update email gateway 'Exchange Online': inbound.port 995 -> 993"]
    assert drift["diff"]["before"]["inbound"]["port"] == 995 and drift["diff"]["after"]["inbound"]["port"] == 993
    repaired = run("ce_email_gateway", {"name": "Exchange Online"})
    assert repaired["changed"] is True and gateway_in(portal)["inbound"]["port"] == 993
    assert gateway_in(portal)["description"] == "managed by ops"
    assert run("ce_email_gateway", {"name": "Exchange Online"})["changed"] is False


def test_every_endpoint_value_can_be_overridden(portal, run):
    run("ce_email_gateway", {"name": "Proxy", "description": "via proxy", "inbound": {"host": "imap.proxy.example", "port": 1993},
                             "outbound": {"security": "ssl", "port": 465}})
    stored = gateway_in(portal, "Proxy")
    assert stored["inbound"] == {"protocol": "imap", "host": "imap.proxy.example", "port": 1993, "security": "ssl"}
    assert stored["outbound"] == {"host": "smtp.office365.com", "port": 465, "security": "ssl"}
    assert stored["description"] == "via proxy"


def test_pop3_gateway_is_warned_about(portal, run):
    result = run("ce_email_gateway", {"name": "Legacy POP", "inbound": {"protocol": "pop3", "port": 995}})
    assert result["changed"] is True
    assert any("CE does not support OAuth on POP3" in w for w in warnings_of(result))


def test_removal_is_idempotent(portal, run):
    portal.add_gateway("Exchange Online")
    gone = run("ce_email_gateway", {"name": "Exchange Online", "state": "absent"})
    assert gone["changed"] is True and gone["actions"] == ["delete email gateway 'Exchange Online'"] and portal.gateways == {}
    assert run("ce_email_gateway", {"name": "Exchange Online", "state": "absent"})["changed"] is False


def test_removing_a_gateway_in_use_fails_and_says_what_to_do(portal, run):
    gateway = portal.add_gateway("Exchange Online")
    portal.add_connection("acme", "Exchange Online", gateway["id"])
    result = run("ce_email_gateway", {"name": "Exchange Online", "state": "absent"})
    assert result["failed"] is True
    assert result["msg"].startswith("CE deployment %s, email gateway 'Exchange Online': delete email gateway" % URL)
    assert "409 in_use" in result["msg"] and "remove that connection" in result["msg"]
    assert result["request_id"] and result["request_id"] in result["msg"] and result["error_code"] == "in_use"


def test_a_tenant_administrator_may_not_write_gateways(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online", "ce_token": "acme-admin-token"})
    assert result["failed"] is True and "403" in result["msg"] and "deployment administrator" in result["msg"]
    assert portal.gateways == {}


def test_concurrent_edit_is_reread_and_compared_again(portal, run):
    stored = portal.add_gateway("Exchange Online", port=995)

    def someone_edits():
        stored.update(description="edited in the Portal", revision=stored["revision"] + 1)
    portal.hooks.append(("PUT", "^/email-gateways/", someone_edits))
    result = run("ce_email_gateway", {"name": "Exchange Online"})
    assert result["changed"] is True and any("changed in the Portal while this task ran" in w for w in warnings_of(result))
    assert stored["inbound"]["port"] == 993 and stored["description"] == "edited in the Portal"  # their edit survives
    puts = [entry for entry in portal.log if entry[0] == "PUT"]
    assert [entry[2]["If-Match"] for entry in puts] == ['"1"', '"2"']


def test_concurrent_edit_that_already_fixed_it_writes_nothing_more(portal, run):
    stored = portal.add_gateway("Exchange Online", port=995)

    def someone_fixes():
        stored["inbound"]["port"] = 993
        stored["revision"] += 1
    portal.hooks.append(("PUT", "^/email-gateways/", someone_fixes))
    result = run("ce_email_gateway", {"name": "Exchange Online"})
    assert result["changed"] is False and len([e for e in portal.log if e[0] == "PUT"]) == 1


def test_two_stale_revisions_in_a_row_fail(portal, run):
    stored = portal.add_gateway("Exchange Online", port=995)

    def bump():
        stored["revision"] += 1
    portal.hooks.extend([("PUT", "^/email-gateways/", bump), ("PUT", "^/email-gateways/", bump)])
    result = run("ce_email_gateway", {"name": "Exchange Online"})
    assert result["failed"] is True and "412 revision_mismatch" in result["msg"] and "run the task again" in result["msg"]


def test_name_taken_between_lookup_and_create_is_reconciled_not_duplicated(portal, run):
    portal.hooks.append(("POST", "^/email-gateways$", lambda: portal.add_gateway("Exchange Online", port=995)))
    result = run("ce_email_gateway", {"name": "Exchange Online"})
    assert result["changed"] is True and len(portal.gateways) == 1 and gateway_in(portal)["inbound"]["port"] == 993


def test_bad_port_fails_before_any_request_to_write(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online", "outbound": {"port": 0}})
    assert result["failed"] is True and "outbound.port 0 must be between 1 and 65535" in result["msg"] and portal.writes() == []


# -- the shared CE options ---------------------------------------------------------------------------
def test_ce_url_is_required(run, monkeypatch):
    monkeypatch.delenv("CE_PORTAL_URL", raising=False)
    result = run("ce_email_gateway", {"name": "x", "ce_token": "some-long-token"}, auth=False)
    assert result["failed"] is True and "ce_url is required (or set CE_PORTAL_URL)" in result["msg"]


def test_credentials_are_required_and_exclusive(run, monkeypatch):
    for name in ("CE_PORTAL_TOKEN", "CE_PORTAL_USERNAME", "CE_PORTAL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    missing = run("ce_email_gateway", {"name": "x", "ce_url": URL}, auth=False)
    assert missing["failed"] is True and "credentials are required" in missing["msg"] and URL in missing["msg"]
    both = run("ce_email_gateway", {"name": "x", "ce_url": URL, "ce_token": "some-long-token", "ce_username": "someone",
                                    "ce_password": "some-password"}, auth=False)
    assert both["failed"] is True and "not both" in both["msg"]


def test_environment_fallbacks_and_basic_auth(portal, run, monkeypatch):
    monkeypatch.setenv("CE_PORTAL_URL", URL)
    monkeypatch.setenv("CE_PORTAL_USERNAME", "admin")
    monkeypatch.setenv("CE_PORTAL_PASSWORD", "admin-password")
    monkeypatch.delenv("CE_PORTAL_TOKEN", raising=False)
    result = run("ce_email_gateway", {"name": "Exchange Online"}, auth=False)
    assert result["changed"] is True and "admin-password" not in result["_raw"]


def test_wrong_token_fails_with_the_fix(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online", "ce_token": "wrong"})
    assert result["failed"] is True and "401" in result["msg"] and "check ce_token" in result["msg"] and URL in result["msg"]


def test_validate_certs_false_is_warned_about(portal, run):
    result = run("ce_email_gateway", {"name": "Exchange Online", "validate_certs": False})
    assert any("validate_certs is false" in w for w in warnings_of(result))


def test_a_url_that_is_not_a_url(run):
    result = run("ce_email_gateway", {"name": "x", "ce_url": "ce-portal.example.com"})
    assert result["failed"] is True and "is not a URL" in result["msg"]
