# -*- coding: utf-8 -*-
"""ce_email_gateway and the shared Portal options against the lab's CE Portals."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import warnings_of

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_portal import CePortal

from ce_support import (HandEdits, ce_args, contract_error, deployment, gateway_named,  # noqa: F401 pylint: disable=unused-import
                        writes)

EXO = {"name": "Exchange Online"}


def test_create_then_rerun_changes_nothing(fresh_lab, run_module):
    first = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert first["changed"] is True and first["ce_version"] == "7.4.4"
    stored = gateway_named(fresh_lab, "Exchange Online")
    assert stored["inbound"] == {"protocol": "imap", "host": "outlook.office365.com", "port": 993, "security": "ssl"}
    assert stored["outbound"] == {"host": "smtp.office365.com", "port": 587, "security": "starttls"}
    assert first["email_gateway"]["id"] == stored["id"]
    assert fresh_lab.ce_state("emea")["pending"]["pending"] is True  # waits for a batch update

    before = writes(fresh_lab)
    second = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert second["changed"] is False and writes(fresh_lab) == before


def test_the_us_gateway_already_matches_the_runbook(fresh_lab, run_module):
    result = run_module("ce_email_gateway", ce_args(fresh_lab, "us", **EXO))
    assert result["changed"] is False and result["email_gateway"]["description"] == "Microsoft 365 (basic authentication)"
    assert writes(fresh_lab) == 0


def test_check_mode_makes_no_write(fresh_lab, run_module):
    result = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO), check_mode=True)
    assert result["changed"] is True and result["diff"]["before"] == {"state": "absent"}
    assert writes(fresh_lab) == 0 and gateway_named(fresh_lab, "Exchange Online") is None


def test_drift_made_in_the_portal_is_shown_and_repaired(fresh_lab, run_module):
    run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    gateway_id = gateway_named(fresh_lab, "Exchange Online")["id"]
    HandEdits(fresh_lab).edit("/email-gateways/" + gateway_id, inbound={"port": 143, "security": "starttls"}, description="by hand")

    fresh_lab.reset_counters()
    drift = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO), check_mode=True)
    assert drift["changed"] is True and writes(fresh_lab) == 0
    assert drift["actions"] == ["update email gateway 'Exchange Online': inbound.port 143 -> 993; inbound.security starttls -> ssl"]
    repaired = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert repaired["changed"] is True
    stored = gateway_named(fresh_lab, "Exchange Online")
    assert stored["inbound"]["port"] == 993 and stored["description"] == "by hand"
    assert run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))["changed"] is False


def test_removal_and_removal_while_in_use(fresh_lab, run_module):
    in_use = run_module("ce_email_gateway", ce_args(fresh_lab, "us", state="absent", **EXO))
    assert in_use["failed"] is True and "409 in_use" in in_use["msg"] and "remove that connection" in in_use["msg"]
    assert in_use["msg"].startswith("CE deployment %s, email gateway 'Exchange Online'" % deployment(fresh_lab, "us")["url"])
    run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    gone = run_module("ce_email_gateway", ce_args(fresh_lab, state="absent", **EXO))
    assert gone["changed"] is True and gateway_named(fresh_lab, "Exchange Online") is None
    assert run_module("ce_email_gateway", ce_args(fresh_lab, state="absent", **EXO))["changed"] is False


def test_pop3_is_warned_about(fresh_lab, run_module):
    result = run_module("ce_email_gateway", ce_args(fresh_lab, "legacy", name="Legacy POP", inbound={"protocol": "pop3", "port": 995}))
    assert result["changed"] is False  # as seeded
    assert any("CE does not support OAuth on POP3" in w for w in warnings_of(result))


def test_basic_authentication(fresh_lab, run_module):
    assert run_module("ce_email_gateway", ce_args(fresh_lab, basic=True, **EXO))["changed"] is True


def test_a_tenant_administrator_may_not_write_gateways(fresh_lab, run_module):
    result = run_module("ce_email_gateway", ce_args(fresh_lab, tenant_admin="acme", **EXO))
    assert result["failed"] is True and "HTTP 403 forbidden" in result["msg"] and "deployment administrator" in result["msg"]
    assert result["request_id"] and result["request_id"] in result["msg"] and gateway_named(fresh_lab, "Exchange Online") is None


def test_concurrent_edit_is_read_again_and_not_overwritten(fresh_lab, run_module, monkeypatch):
    run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    gateway_id = gateway_named(fresh_lab, "Exchange Online")["id"]
    HandEdits(fresh_lab).edit("/email-gateways/" + gateway_id, inbound={"port": 143})
    # Someone saves the gateway in the Portal right after the module has read it.
    original = CePortal.find_gateway
    edited = []

    def find_then_someone_edits(self, name):
        found = original(self, name)
        if not edited:
            edited.append(HandEdits(fresh_lab).edit("/email-gateways/" + gateway_id, description="saved in the Portal meanwhile"))
        return found
    monkeypatch.setattr(CePortal, "find_gateway", find_then_someone_edits)
    fresh_lab.reset_counters()
    result = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert result["changed"] is True
    assert any("changed in the Portal while this task ran (revision_mismatch)" in w for w in warnings_of(result))
    stored = gateway_named(fresh_lab, "Exchange Online")
    assert stored["inbound"]["port"] == 993 and stored["description"] == "saved in the Portal meanwhile"
    # The concurrent edit, the module's stale PUT (412, changes nothing) and its PUT after reading again.
    assert fresh_lab.count("ce", "PUT", kind="writes") == 3
    assert stored["revision"] == 4  # create, hand edit, concurrent edit, the module's one successful write


def test_a_stale_revision_twice_in_a_row_fails(fresh_lab, run_module):
    run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    gateway_id = gateway_named(fresh_lab, "Exchange Online")["id"]
    HandEdits(fresh_lab).edit("/email-gateways/" + gateway_id, inbound={"port": 143})
    fresh_lab.fail_next("ce", 412, method="PUT", path_regex="/email-gateways/", count=2, retry_after=None,
                        body=contract_error("revision_mismatch", "The resource was changed since it was read."))
    result = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert result["failed"] is True and "HTTP 412 revision_mismatch" in result["msg"] and "run the task again" in result["msg"]
    assert gateway_named(fresh_lab, "Exchange Online")["inbound"]["port"] == 143


def test_name_conflict_fails_with_the_portals_message(fresh_lab, run_module):
    # A second creator wins the race twice (the lab answers the create as the Portal would).
    fresh_lab.fail_next("ce", 409, method="POST", path_regex="/email-gateways$", count=2, retry_after=None,
                        body=contract_error("name_conflict", "An email gateway named 'Exchange Online' already exists."))
    result = run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))
    assert result["failed"] is True and "HTTP 409 name_conflict: An email gateway named 'Exchange Online' already exists" in result["msg"]
    assert "pick another name" in result["msg"] and result["request_id"]


def test_throttling_is_retried(fresh_lab, run_module):
    fresh_lab.set_faults("ce", rate_429=0.3, retry_after=0, seed=3)
    assert run_module("ce_email_gateway", ce_args(fresh_lab, **EXO))["changed"] is True
    fresh_lab.clear_faults()
    assert ce_totals_faults(fresh_lab) > 0
    assert len([g for g in fresh_lab.ce_state("emea")["configured"]["email_gateways"] if g["name"] == "Exchange Online"]) == 1


def ce_totals_faults(lab):
    return lab.counters()["services"]["ce"]["totals"]["faults"]


@pytest.mark.parametrize("overrides,expected", [
    ({"ce_token": "cep_wrong"}, "HTTP 401 unauthorized"),
    ({"ce_token": None, "ce_username": "emea-admin", "ce_password": "wrong"}, "check ce_token, or ce_username and ce_password"),
    ({"ce_url": "https://127.0.0.1:9/emea"}, "reachable"),
    ({"ce_url": "http://127.0.0.1:9/emea", "ce_allow_plain_http": True}, "reachable"),  # http only with the opt-in
    ({"ca_path": "/etc/ssl/certs/ca-certificates.crt"}, "TLS verification failed"),
])
def test_wrong_url_or_credentials_fail_with_one_clear_message(fresh_lab, run_module, overrides, expected):
    result = run_module("ce_email_gateway", ce_args(fresh_lab, **dict(EXO, **overrides)))
    assert result["failed"] is True and expected in result["msg"], result["msg"]
    assert "Traceback" not in result["_raw"] and writes(fresh_lab) == 0


def test_a_url_without_the_deployment_says_what_ce_url_must_be(fresh_lab, run_module):
    url = fresh_lab.vars["lab_ce_url"] + "/nowhere"
    result = run_module("ce_email_gateway", ce_args(fresh_lab, ce_url=url, **EXO))
    assert result["failed"] is True and "HTTP 404" in result["msg"] and "ce_url must be the Portal's base URL" in result["msg"]
    assert url in result["msg"]
