# -*- coding: utf-8 -*-
"""ce_batch_update against the in-memory Portal (whose clock moves only when the module sleeps)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from fake_portal import FakePortal, ModuleRunner, warnings_of  # noqa: E402  pylint: disable=wrong-import-position

FAST = {"poll_interval": 1, "wait_timeout": 60}


@pytest.fixture
def portal():
    fake = FakePortal()
    yield fake
    assert fake.contract_problems() == []


@pytest.fixture
def run(portal, monkeypatch, capsys):
    return ModuleRunner(portal, monkeypatch, capsys)


def pending_change(portal, tenant="acme"):
    portal.record_change(tenant, "oauth_settings", portal.new_id("oauth"))


def starts(portal):
    return [entry for entry in portal.log if entry[0] == "POST" and entry[1] == "/server-updates"]


def test_nothing_pending_starts_nothing(portal, run):
    result = run("ce_batch_update", FAST)
    assert result["changed"] is False and result["pending"] is False and portal.writes() == [] and result["ce_version"] == "7.4.4"


def test_pending_configuration_is_applied_and_waited_for(portal, run):
    pending_change(portal)
    result = run("ce_batch_update", FAST)
    assert result["changed"] is True and result["batch_update"]["status"] == "succeeded" and result["pending"] is False
    assert result["actions"] == ["started batch update %s for 1 pending change(s)" % result["batch_update"]["id"]]
    assert result["diff"]["before"]["pending"] is True and result["diff"]["after"]["pending"] is False
    assert run("ce_batch_update", FAST)["changed"] is False and len(starts(portal)) == 1


def test_check_mode_reports_pending_and_starts_nothing(portal, run):
    pending_change(portal)
    result = run("ce_batch_update", FAST, check_mode=True)
    assert result["changed"] is True and portal.writes() == [] and portal.now == 0
    assert run("ce_batch_update", FAST, check_mode=True)["changed"] is True  # still pending: nothing was applied


def test_force_starts_one_without_pending_configuration(portal, run):
    result = run("ce_batch_update", dict(FAST, force=True))
    assert result["changed"] is True and len(starts(portal)) == 1


def test_a_running_update_is_waited_for_then_ours_applies_what_is_still_pending(portal, run):
    pending_change(portal)
    theirs = portal.start_update()       # covers the first change only
    pending_change(portal, "globex")     # made after theirs started
    result = run("ce_batch_update", FAST)
    assert result["changed"] is True and result["coalesced_with"] == [theirs["id"]]
    assert result["batch_update"]["id"] != theirs["id"] and result["batch_update"]["status"] == "succeeded"
    assert result["actions"][0] == "waited for batch update %s, started elsewhere, to finish (succeeded)" % theirs["id"]
    assert portal.pending == []


def test_a_running_update_that_covers_everything_is_enough(portal, run):
    pending_change(portal)
    theirs = portal.start_update()
    result = run("ce_batch_update", FAST)
    assert result["changed"] is False and result["coalesced_with"] == [theirs["id"]] and starts(portal) == []


def test_an_update_started_between_our_look_and_our_start_is_coalesced(portal, run):
    pending_change(portal)
    portal.hooks.append(("POST", "^/server-updates$", portal.start_update))
    result = run("ce_batch_update", FAST)
    assert result["changed"] is False and len(result["coalesced_with"]) == 1 and portal.pending == []


def test_an_interrupted_run_is_finished_by_the_next(portal, run):
    # The last run changed configuration and died before its batch update.
    pending_change(portal)
    pending_change(portal, "globex")
    assert run("ce_batch_update", FAST)["changed"] is True and portal.pending == []


def test_a_failed_update_reports_its_errors(portal, run):
    pending_change(portal)
    portal.update_outcome, portal.update_errors = "failed", ["tenant acme: IMAP server outlook.office365.com unreachable"]
    result = run("ce_batch_update", FAST)
    assert result["failed"] is True and "failed: tenant acme: IMAP server outlook.office365.com unreachable" in result["msg"]
    assert "stays pending" in result["msg"] and result["batch_update"]["status"] == "failed" and result["changed"] is True


def test_timeout_says_the_update_goes_on_and_a_rerun_waits_for_it(portal, run):
    pending_change(portal)
    portal.update_duration = 100
    result = run("ce_batch_update", dict(FAST, wait_timeout=30))
    assert result["failed"] is True and "still running after 30 seconds" in result["msg"] and "run this task again" in result["msg"]
    again = run("ce_batch_update", dict(FAST, wait_timeout=120))
    assert again["changed"] is False and again["coalesced_with"] == [result["batch_update"]["id"]] and len(starts(portal)) == 1


def test_throttled_polls_are_retried(portal, run):
    pending_change(portal)
    portal.faults.append(("GET", "^/server-updates/upd-", 503, "unavailable", {"Retry-After": "2"}))
    assert run("ce_batch_update", FAST)["changed"] is True


def test_someone_else_starting_updates_again_and_again_ends_with_a_warning_not_a_loop(portal, run):
    pending_change(portal)

    def someone_starts_one_and_changes_more():
        portal.start_update()
        pending_change(portal, "globex")
    portal.hooks.extend([("POST", "^/server-updates$", someone_starts_one_and_changes_more)] * 3)
    result = run("ce_batch_update", FAST)
    assert result["changed"] is False and len(result["coalesced_with"]) == 3 and result["pending"] is True
    assert any("still pending after 3 batch updates started elsewhere" in w for w in warnings_of(result))
