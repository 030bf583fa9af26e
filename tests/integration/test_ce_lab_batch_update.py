# -*- coding: utf-8 -*-
"""ce_batch_update against the lab's CE Portals (batch updates take update_seconds there)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ce_support import HandEdits, ce_args, writes  # noqa: F401 pylint: disable=unused-import

FAST = {"poll_interval": 0.1, "wait_timeout": 30}


@pytest.fixture(autouse=True)
def quick_updates(fresh_lab):
    """Batch updates of 0.3 s unless a test needs them longer (the lab's reset restores 1 s)."""
    fresh_lab.ce_settings("emea", update_seconds=0.3)


def change_something(lab, run_module, name="Exchange Online", deployment_name="emea"):
    # A second gateway needs a host of its own: one of the same inbound host would be the first, adopted under its name.
    inbound = {} if name == "Exchange Online" else {"inbound": {"host": "imap.%s.example" % name.lower().replace(" ", "-")}}
    assert run_module("ce_email_gateway", ce_args(lab, deployment_name, name=name, **inbound))["changed"] is True


def batch_args(lab, deployment_name="emea", **kwargs):
    return ce_args(lab, deployment_name, **dict(FAST, **kwargs))


def starts(lab, deployment_name="emea"):
    return lab.ce_counters(deployment_name)["batch_updates"]


def test_nothing_pending_nothing_started(fresh_lab, run_module):
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["changed"] is False and result["pending"] is False and writes(fresh_lab) == 0


def test_pending_configuration_is_applied(fresh_lab, run_module):
    change_something(fresh_lab, run_module)
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["changed"] is True and result["batch_update"]["status"] == "succeeded" and result["pending"] is False
    state = fresh_lab.ce_state("emea")
    assert state["pending"]["pending"] is False and state["applied"]["update_id"] == result["batch_update"]["id"]
    assert [g["name"] for g in state["applied"]["email_gateways"]] == ["Exchange Online"]
    again = run_module("ce_batch_update", batch_args(fresh_lab))
    assert again["changed"] is False and starts(fresh_lab) == 1


def test_check_mode_reports_pending_and_starts_nothing(fresh_lab, run_module):
    change_something(fresh_lab, run_module)
    fresh_lab.reset_counters()
    result = run_module("ce_batch_update", batch_args(fresh_lab), check_mode=True)
    assert result["changed"] is True and writes(fresh_lab) == 0 and fresh_lab.ce_state("emea")["pending"]["pending"] is True
    assert result["diff"]["before"]["pending_changes"][0].startswith("deployment email_gateway ")


def test_force(fresh_lab, run_module):
    assert run_module("ce_batch_update", batch_args(fresh_lab, force=True))["changed"] is True and starts(fresh_lab) == 1


def test_coalesces_with_a_running_update_then_applies_what_it_did_not_cover(fresh_lab, run_module):
    fresh_lab.ce_settings("emea", update_seconds=1.5)
    change_something(fresh_lab, run_module)
    theirs = HandEdits(fresh_lab).start_update()          # someone clicked "batch update" in the Portal
    change_something(fresh_lab, run_module, name="Second gateway")  # made after theirs started: not covered by it
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["changed"] is True and result["coalesced_with"] == [theirs["id"]] and result["batch_update"]["id"] != theirs["id"]
    assert result["actions"][0] == "waited for batch update %s, started elsewhere, to finish (succeeded)" % theirs["id"]
    state = fresh_lab.ce_state("emea")
    assert state["pending"]["pending"] is False and len(state["applied"]["email_gateways"]) == 2


def test_a_running_update_that_covers_everything_is_enough(fresh_lab, run_module):
    fresh_lab.ce_settings("emea", update_seconds=1)
    change_something(fresh_lab, run_module)
    theirs = HandEdits(fresh_lab).start_update()
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["changed"] is False and result["coalesced_with"] == [theirs["id"]] and starts(fresh_lab) == 1


def test_a_failed_update_reports_the_portals_errors(fresh_lab, run_module):
    change_something(fresh_lab, run_module)
    fresh_lab.ce_settings("emea", fail_next_update="Mail server mail01.emea.ce.lab refused the IMAP settings.")
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["failed"] is True and "failed: Mail server mail01.emea.ce.lab refused the IMAP settings." in result["msg"]
    assert result["msg"].startswith("CE deployment %s, batch update: " % ce_args(fresh_lab)["ce_url"])
    assert "stays pending" in result["msg"] and result["batch_update"]["status"] == "failed"
    # Fixed (here: nothing to fix), the next run applies it.
    assert run_module("ce_batch_update", batch_args(fresh_lab))["changed"] is True


def test_timeout_then_the_next_run_waits_for_the_same_update(fresh_lab, run_module):
    fresh_lab.ce_settings("emea", update_seconds=2.5)
    change_something(fresh_lab, run_module)
    timed_out = run_module("ce_batch_update", batch_args(fresh_lab, wait_timeout=1))
    assert timed_out["failed"] is True and "after 1 seconds" in timed_out["msg"] and "run this task again" in timed_out["msg"]
    again = run_module("ce_batch_update", batch_args(fresh_lab))
    assert again["changed"] is False and again["coalesced_with"] == [timed_out["batch_update"]["id"]] and starts(fresh_lab) == 1
    assert fresh_lab.ce_state("emea")["pending"]["pending"] is False


def test_an_interrupted_run_is_finished_by_the_next(fresh_lab, run_module):
    # Configuration written, then the run died before its batch update: the next run sees it pending.
    change_something(fresh_lab, run_module)
    run_module("ce_oauth_settings", ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online OAuth", client_id="0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c",
                                            client_secret="lab-secret-0123456789", tenant_id="contoso.onmicrosoft.com"))
    result = run_module("ce_batch_update", batch_args(fresh_lab))
    assert result["changed"] is True and len(result["pending_changes"]) == 2


def test_a_tenant_administrator_may_start_it(fresh_lab, run_module):
    change_something(fresh_lab, run_module)
    result = run_module("ce_batch_update", batch_args(fresh_lab, tenant_admin="globex"))
    assert result["changed"] is True and fresh_lab.ce_state("emea")["pending"]["pending"] is False


def test_throttled_polling_is_retried(fresh_lab, run_module):
    change_something(fresh_lab, run_module)
    fresh_lab.fail_next("ce", 503, method="GET", path_regex="/server-updates/upd_", count=2, retry_after=0)
    assert run_module("ce_batch_update", batch_args(fresh_lab))["changed"] is True
