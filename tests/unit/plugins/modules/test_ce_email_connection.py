# -*- coding: utf-8 -*-
"""ce_email_connection against the in-memory Portal."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from fake_portal import URL, FakePortal, ModuleRunner, warnings_of  # noqa: E402  pylint: disable=wrong-import-position


def make_portal(version="7.4.4"):
    fake = FakePortal(version=version)
    fake.gateway = fake.add_gateway("Exchange Online")
    fake.pop_gateway = fake.add_gateway("Legacy POP", protocol="pop3", host="pop.example.test", port=995)
    fake.oauth = fake.add_settings("acme", "Exchange Online OAuth")
    return fake


@pytest.fixture
def portal():
    fake = make_portal()
    yield fake
    assert fake.contract_problems() == []


@pytest.fixture
def run(portal, monkeypatch, capsys):
    return ModuleRunner(portal, monkeypatch, capsys)


def args(**kwargs):
    base = {"ce_tenant": "acme", "name": "Exchange Online", "gateway": "Exchange Online", "oauth_settings": "Exchange Online OAuth"}
    base.update(kwargs)
    return dict((k, v) for k, v in base.items() if v is not None)


def stored(portal, tenant="acme"):
    return next(iter(portal.connections.get(tenant, {}).values()), None)


def test_create_then_rerun_changes_nothing(portal, run):
    result = run("ce_email_connection", args())
    assert result["changed"] is True
    connection = stored(portal)
    assert connection["gateway_id"] == portal.gateway["id"] and connection["oauth_settings_id"] == portal.oauth["id"]
    assert connection["use_oauth_receive"] is True and connection["use_oauth_send"] is False
    assert result["diff"]["after"] == {"state": "present", "name": "Exchange Online", "gateway": "Exchange Online",
                                       "oauth_settings": "Exchange Online OAuth", "use_oauth_receive": True, "use_oauth_send": False}
    assert result["mailboxes"] == []
    writes = len(portal.writes())
    again = run("ce_email_connection", args())
    assert again["changed"] is False and len(portal.writes()) == writes


def test_existing_connection_is_switched_to_oauth_and_lists_its_mailboxes(portal, run):
    portal.add_connection("acme", "Exchange Online", portal.gateway["id"], mailboxes=["support@acme.example", "sales@acme.example"])
    result = run("ce_email_connection", args())
    assert result["changed"] is True and result["mailboxes"] == ["support@acme.example", "sales@acme.example"]
    assert result["diff"]["before"]["oauth_settings"] is None and result["diff"]["before"]["use_oauth_receive"] is False
    assert "use_oauth_receive False -> True" in result["actions"][0]


def test_check_mode_writes_nothing(portal, run):
    result = run("ce_email_connection", args(), check_mode=True)
    assert result["changed"] is True and portal.writes() == [] and "mailboxes" not in result


def test_drift_shows_names_not_ids(portal, run):
    run("ce_email_connection", args())
    other = portal.add_gateway("Other")
    stored(portal).update(gateway_id=other["id"], use_oauth_receive=False, revision=2)
    drift = run("ce_email_connection", args(), check_mode=True)
    assert drift["diff"]["before"]["gateway"] == "Other" and drift["diff"]["after"]["gateway"] == "Exchange Online"
    repaired = run("ce_email_connection", args())
    assert repaired["changed"] is True and stored(portal)["gateway_id"] == portal.gateway["id"]


def test_pop3_gateway_with_oauth_is_refused_before_any_write(portal, run):
    result = run("ce_email_connection", args(gateway="Legacy POP"))
    assert result["failed"] is True and "CE does not support OAuth for POP3" in result["msg"]
    assert "use_oauth_receive=false" in result["msg"] and portal.writes() == []


def test_pop3_gateway_without_oauth_is_allowed(portal, run):
    result = run("ce_email_connection", args(gateway="Legacy POP", use_oauth_receive=False, oauth_settings=None))
    assert result["changed"] is True and stored(portal)["oauth_settings_id"] is None


def test_oauth_send_needs_the_capability(portal, run):
    result = run("ce_email_connection", args(use_oauth_send=True))
    assert result["failed"] is True and "oauth_send_smtp" in result["msg"] and "CE 7.4.4" in result["msg"]
    assert portal.writes() == []


def test_oauth_send_where_the_release_has_it(monkeypatch, capsys):
    portal = make_portal(version="7.6.0")
    result = ModuleRunner(portal, monkeypatch, capsys)("ce_email_connection", args(use_oauth_send=True))
    assert result["changed"] is True and stored(portal)["use_oauth_send"] is True


def test_too_old_ce_refuses_oauth_but_not_basic(monkeypatch, capsys):
    portal = make_portal(version="7.4.3")
    run = ModuleRunner(portal, monkeypatch, capsys)
    refused = run("ce_email_connection", args())
    assert refused["failed"] is True and "requires CE 7.4 CU4 or later" in refused["msg"] and "7.4.3" in refused["msg"]
    assert run("ce_email_connection", args(use_oauth_receive=False, oauth_settings=None))["changed"] is True


@pytest.mark.parametrize("overrides,expected", [
    ({"gateway": "Exchange", "gateway_inbound_host": "imap.elsewhere.example"},
     "found no email gateway named 'Exchange' on this deployment: create it with ce_email_gateway"),
    ({"oauth_settings": "EXO"}, "found no OAuth settings named 'EXO' in this tenant: create them with ce_oauth_settings"),
    ({"oauth_settings": None}, "oauth_settings is required when use_oauth_receive or use_oauth_send is true"),
    ({"gateway": None}, "state is present but all of the following are missing: gateway"),
])
def test_unknown_references_fail_clearly(portal, run, overrides, expected):
    result = run("ce_email_connection", args(**overrides))
    assert result["failed"] is True and expected in result["msg"], result["msg"]
    assert portal.writes() == []


def test_check_mode_assumes_missing_references_come_from_earlier_tasks(portal, run):
    result = run("ce_email_connection", args(gateway="New gateway", oauth_settings="New settings", gateway_inbound_host="imap.new.example"),
                 check_mode=True)
    assert result["changed"] is True and portal.writes() == []
    warnings = warnings_of(result)
    assert len(warnings) == 2 and all("check mode assumes an earlier task" in w for w in warnings)


def test_oauth_settings_kept_when_not_given_and_detached_with_an_empty_name(portal, run):
    run("ce_email_connection", args())
    kept = run("ce_email_connection", args(oauth_settings=None, use_oauth_receive=False))
    assert kept["changed"] is True and stored(portal)["oauth_settings_id"] == portal.oauth["id"]
    detached = run("ce_email_connection", args(oauth_settings="", use_oauth_receive=False))
    assert detached["changed"] is True and stored(portal)["oauth_settings_id"] is None


def test_removal(portal, run):
    run("ce_email_connection", args())
    gone = run("ce_email_connection", {"ce_tenant": "acme", "name": "Exchange Online", "state": "absent"})
    assert gone["changed"] is True and portal.connections["acme"] == {}
    assert run("ce_email_connection", {"ce_tenant": "acme", "name": "Exchange Online", "state": "absent"})["changed"] is False


def test_name_conflict_that_is_not_a_race_fails_with_the_portals_words(portal, run):
    # A Portal that compares names without case: our exact lookup finds nothing, its create refuses twice.
    portal.faults.extend([("POST", "/email-connections$", 409, "name_conflict", {}), ("POST", "/email-connections$", 409, "name_conflict", {})])
    result = run("ce_email_connection", args())
    assert result["failed"] is True and "409 name_conflict" in result["msg"] and "pick another name" in result["msg"]
    assert result["msg"].startswith("CE deployment %s, tenant acme, email connection 'Exchange Online'" % URL)
