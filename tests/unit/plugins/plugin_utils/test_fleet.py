# -*- coding: utf-8 -*-
"""The fleet's decisions (plugins/plugin_utils/fleet.py): who stands for what, who gets a secret and when, what the proof
may log in with, which secrets go, and what the summary says."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import fleet

CONTOSO, FABRIKAM = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"
EMEA, US = "https://ce.example/emea", "https://ce.example/us"
NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)


def view(host, tenant_id=CONTOSO, deployment=EMEA, **extra):
    base = {"host": host, "ce_tenant": host, "tenant_id": tenant_id, "deployment": deployment, "failures": [], "mailboxes": [],
            "per_ce_tenant": False, "sends": False, "rotate": False}
    base.update(extra)
    base.setdefault("secret_name", fleet.secret_name(base))
    return base


# -- the fleet model ------------------------------------------------------------------------------------------------------
def test_one_lead_per_app_and_per_deployment_the_first_by_name_whatever_the_order():
    views = [view("umbrella", deployment=US), view("globex"), view("initech", FABRIKAM), view("acme"), view("stark", FABRIKAM, US)]
    entries = dict((e["name"], e) for e in fleet.elect(list(reversed(views))))
    assert entries["acme"]["groups"] == [fleet.APP_GROUP, fleet.DEPLOYMENT_GROUP]
    assert entries["acme"]["ceops_app_unit"] == {"key": CONTOSO, "tenant_id": CONTOSO, "members": ["acme", "globex", "umbrella"],
                                                 "inventory_members": ["acme", "globex", "umbrella"]}
    assert entries["acme"]["ceops_deployment_unit"]["members"] == ["acme", "globex", "initech"]
    assert entries["initech"]["groups"] == [fleet.APP_GROUP] and entries["initech"]["ceops_app_unit"]["members"] == ["initech", "stark"]
    assert entries["stark"]["groups"] == [fleet.DEPLOYMENT_GROUP] and entries["stark"]["ceops_deployment_unit"]["members"] == ["stark", "umbrella"]
    assert "globex" not in entries and "umbrella" not in entries


def test_each_app_unit_knows_its_ce_tenants_in_the_inventory_outside_the_run_too():
    """A --limit run (or an AWX slice) sees some CE tenants; the inventory's others that share the app are named in the unit,
    so the send permission, revocations and the app's removal count them, without any later task reading every host."""
    inventory = [{"host": h, "tenant_id": t, "per_ce_tenant": p} for h, t, p in (
        ("acme", CONTOSO, False), ("globex", CONTOSO, False), ("hooli", CONTOSO, True), ("initech", FABRIKAM, False))]
    entries = dict((e["name"], e) for e in fleet.elect([view("acme"), view("hooli", per_ce_tenant=True)], inventory + [{"host": "localhost"}]))
    assert entries["acme"]["ceops_app_unit"]["inventory_members"] == ["acme", "globex"]
    assert entries["hooli"]["ceops_app_unit"]["inventory_members"] == ["hooli"]


def test_one_app_per_ce_tenant_makes_each_its_own_lead():
    entries = fleet.elect([view("acme", per_ce_tenant=True), view("globex", per_ce_tenant=True)])
    units = [e["ceops_app_unit"] for e in entries if "ceops_app_unit" in e]
    assert [u["members"] for u in units] == [["acme"], ["globex"]] and units[0]["key"] == CONTOSO + "/acme"
    assert fleet.secret_name(view("acme", per_ce_tenant=True)) == "CE mailbox access"
    assert fleet.secret_name(view("acme")) == "CE mailbox access (acme)"


def test_a_failed_ce_tenant_leads_nothing_and_one_with_a_broken_inventory_fails_naming_what_is_missing():
    entries = dict((e["name"], e) for e in fleet.elect([
        view("acme", failures=[fleet.failure("AWX credentials", "no file")]), view("globex"), view("bad", tenant_id=None, deployment="")]))
    assert entries["globex"]["ceops_app_unit"]["members"] == ["globex"]
    assert "acme" not in entries
    problem = entries["bad"]["ceops_failures"][0]
    assert problem["part"] == "Inventory" and "ms_tenant_id is not set" in problem["message"] and "ce_url is not set" in problem["message"]
    assert entries["bad"]["groups"] == []


def test_ce_tenants_taking_mailboxes_from_the_portal_get_a_group_of_their_own():
    entries = dict((e["name"], e) for e in fleet.elect([view("acme"), view("globex", mailboxes_from_portal=True)]))
    assert entries["globex"]["groups"] == [fleet.PORTAL_MAILBOXES_GROUP]


# -- the Azure AD part ----------------------------------------------------------------------------------------------------
def test_the_app_sends_when_any_inventory_ce_tenant_of_the_directory_sends():
    assert fleet.exchange_permissions(["IMAP.AccessAsApp"], [view("acme"), view("umbrella", sends=True)]) == \
        ["IMAP.AccessAsApp", "SMTP.SendAsApp"]
    assert fleet.exchange_permissions(["IMAP.AccessAsApp"], [view("acme")]) == ["IMAP.AccessAsApp"]


def test_the_report_reads_each_live_members_own_secret_with_its_own_lifetime():
    views = [view("acme"), view("globex", lifetime_days=90, renew_before_days=7), view("gone", failures=[{"part": "x"}])]
    assert fleet.secret_report_entries(views, 365, 30) == [
        {"name": "CE mailbox access (acme)", "report_only": True, "lifetime_days": 365, "renew_before_days": 30},
        {"name": "CE mailbox access (globex)", "report_only": True, "lifetime_days": 90, "renew_before_days": 7}]


AZURE_RESULT = {"tenant_id": CONTOSO, "app_id": "app-1", "object_id": "obj-1", "service_principal_id": "sp-1", "found_by": "adopted",
                "adopted": True, "app_secrets": {
                    "CE mailbox access (acme)": {"name": "CE mailbox access (acme)", "created": True, "client_secret": "s3cret-acme",
                                                 "key_id": "k-acme", "start_date_time": "2026-12-07T11:00:00Z", "secrets": [{"key_id": "k-acme"}]},
                    "CE mailbox access (globex)": {"name": "CE mailbox access (globex)", "created": False, "key_id": "k-globex",
                                                   "start_date_time": "2026-01-01T00:00:00Z", "due": None, "secrets": [{"key_id": "k-globex"}]}}}


def test_each_member_gets_the_apps_ids_and_only_its_own_secret():
    handoff = dict((h["host"], h) for h in fleet.app_handoff([view("acme"), view("globex")], AZURE_RESULT))
    assert handoff["acme"]["fact"]["client_secret"] == "s3cret-acme" and handoff["acme"]["fact"]["app_id"] == "app-1"
    assert "client_secret" not in handoff["globex"]["fact"] and handoff["globex"]["fact"]["client_secret_key_id"] == "k-globex"
    assert "s3cret-acme" not in str(handoff["globex"])
    assert handoff["acme"]["fact"]["adopted"] is True and handoff["acme"]["failures"] == []
    # The secrets part finds the app by the unique name the first call gave it: the run still adopted it.
    later = dict(AZURE_RESULT, adopted=False, found_by="unique_name")
    again = fleet.app_handoff([view("acme", app=handoff["acme"]["fact"])], later)
    assert again[0]["fact"]["adopted"] is True


def test_a_failed_unit_fails_every_live_member_with_the_leads_message_and_keeps_earlier_failures():
    earlier = fleet.failure("CE mailboxes", "no connection")
    handoff = fleet.app_handoff([view("acme"), view("globex", failures=[earlier])], {"failed": True, "msg": "AADSTS7000215 bad secret"})
    assert [h["host"] for h in handoff] == ["acme"]
    assert handoff[0]["failures"] == [{"part": "Azure AD", "task": "", "message": "AADSTS7000215 bad secret"}]


@pytest.mark.parametrize("settings,app,rotate,reason", [
    ({"client_secret_needed": True, "client_secret_needed_reason": "CE's settings name app X"}, {}, False, "CE's settings name app X"),
    ({"client_secret_held": True}, {"client_secret_due": "the newest expires 2026-12-20T00:00:00Z"}, False, "the newest expires 2026-12-20"),
    ({"client_secret_held": True}, {}, True, "rotation asked for"),
    ({"client_secret_held": True}, {"client_secret_due": None}, False, None),
])
def test_a_new_secret_only_for_a_ce_tenant_whose_ce_needs_one_or_whose_secret_is_due(settings, app, rotate, reason):
    entries = fleet.secrets_to_make([view("acme", settings=settings, app=dict(app, app_id="app-1"))], rotate=rotate)
    if reason is None:
        assert entries == []
    else:
        assert len(entries) == 1 and entries[0]["name"] == "CE mailbox access (acme)" and entries[0]["rotate"] is True
        assert entries[0]["reason"].startswith(reason)
        assert fleet.azuread_secret_entries(entries) == [dict((k, v) for k, v in entries[0].items() if k != "reason")]


def test_no_secret_for_a_ce_tenant_that_failed_earlier_nor_one_due_that_ce_does_not_hold_nor_without_the_app():
    failed = view("old", settings={"client_secret_needed": True}, app={"app_id": "app-1"},
                  failures=[fleet.failure("CE", "requires CE 7.4 CU4")])
    assert fleet.secrets_to_make([failed]) == []
    # Due (none exists), but CE holds a secret given from Vault (settings of ce.yml run alone): not this run's to replace.
    vault_held = view("acme", settings={"client_secret_held": False}, app={"app_id": "app-1", "client_secret_due": "none exists"})
    assert fleet.secrets_to_make([vault_held]) == []
    assert fleet.secrets_to_make([view("acme", settings={"client_secret_needed": True}, app={})]) == []


def test_when_making_secrets_fails_half_way_the_ce_tenants_whose_secret_was_made_still_get_it():
    views = [view("acme", settings={"client_secret_needed": True}, app={"app_id": "app-1"}),
             view("globex", settings={"client_secret_needed": True}, app={"app_id": "app-1"})]
    result = {"failed": True, "msg": "Credential lifetime exceeds the max value allowed as per assigned policy",
              "app_secrets": {"CE mailbox access (acme)": AZURE_RESULT["app_secrets"]["CE mailbox access (acme)"]}}
    handoff = dict((h["host"], h) for h in fleet.secret_handoff(views, result))
    assert handoff["acme"]["failures"] == [] and handoff["acme"]["fact"]["client_secret"] == "s3cret-acme"
    assert handoff["globex"]["failures"][0]["part"] == "Azure AD (new client secret)"


# -- the Exchange Online part ------------------------------------------------------------------------------------------------
def test_mailboxes_are_the_union_of_the_live_members_lower_cased():
    views = [view("acme", mailboxes=["A@x.example", "b@x.example "]), view("globex", mailboxes=["a@X.example", "c@x.example"]),
             view("gone", mailboxes=["d@x.example"], failures=[{"part": "x"}])]
    assert fleet.unit_mailboxes(views) == ["a@x.example", "b@x.example", "c@x.example"]


def test_a_mailbox_fails_only_the_ce_tenants_that_list_it():
    records = [{"mailbox": "a@x.example", "result": "added"}, {"mailbox": "gone@x.example", "result": "failed", "message": "does not exist",
                                                               "request_id": "r-1"}]
    handoff = dict((h["host"], h) for h in fleet.exchange_handoff(
        [view("acme", mailboxes=["a@x.example", "Gone@x.example"]), view("globex", mailboxes=["a@x.example"])],
        {"object_id": "sp-1", "actions": []}, {"mailboxes": records}, {"app_id": "app-1"}))
    assert [r["mailbox"] for r in handoff["globex"]["fact"]["mailboxes"]] == ["a@x.example"] and handoff["globex"]["failures"] == []
    assert "gone@x.example" not in str(handoff["globex"])
    message = handoff["acme"]["failures"][0]["message"]
    assert "1 of 2 mailboxes" in message and "does not exist (request id r-1)" in message and "ce_mailboxes" in message


def test_an_unknown_app_fails_the_directory_outside_a_plan_only():
    failing = fleet.exchange_handoff([view("acme")], {"skipped": True}, {"skipped": True}, {})
    assert "ms_apps['%s']" % CONTOSO in failing[0]["failures"][0]["message"]
    assert fleet.exchange_handoff([view("acme")], {"skipped": True}, {"skipped": True}, {}, check_mode=True)[0]["failures"] == []


# -- mailboxes that leave --------------------------------------------------------------------------------------------------
def reading(host, listed, read, **extra):
    """A CE tenant whose inventory lists ``listed`` and whose CE email connection reads ``read`` (as the CE part found it); its
    inventory says its list is complete (ceops_revoke_mailboxes: true), unless ``extra`` says otherwise."""
    extra.setdefault("revoke_unlisted", True)
    return view(host, mailboxes=listed, ce={"mailboxes": read}, **extra)


def test_by_default_a_mailbox_ce_reads_that_the_inventory_does_not_list_keeps_its_fullaccess():
    """Brownfield: the runbook's admin may have given CE a mailbox the inventory forgot; its FullAccess is what keeps CE reading
    it. Only ceops_revoke_mailboxes: true (the inventory is complete) or ce_mailboxes_removed takes it away."""
    forgot = reading("acme", ["a@x.example"], ["a@x.example", "forgotten@x.example"], revoke_unlisted=False)
    assert fleet.mailbox_revocations([forgot], [forgot]) == {"revoke": [], "candidates": {}, "kept": {}, "unknown": []}
    named = dict(forgot, mailboxes_removed=["forgotten@x.example"])
    assert fleet.mailbox_revocations([named], [named])["revoke"] == ["forgotten@x.example"]


def test_a_mailbox_ce_still_reads_but_no_ce_tenant_of_the_directory_lists_loses_fullaccess():
    acme = reading("acme", ["a@x.example"], ["a@x.example", "Gone@x.example", "shared@x.example"])
    globex = reading("globex", ["shared@x.example"], ["shared@x.example"])
    decision = fleet.mailbox_revocations([acme, globex], [acme, globex])
    assert decision["revoke"] == ["gone@x.example"]
    assert decision["candidates"] == {"gone@x.example": ["acme"], "shared@x.example": ["acme"]}
    assert decision["kept"] == {"shared@x.example": ["globex"]} and decision["unknown"] == []
    # Nothing left a list: nothing to look at (a converged fleet costs no Exchange request for it).
    assert fleet.mailbox_revocations([globex], [globex])["candidates"] == {}


def test_a_partial_run_keeps_the_mailboxes_a_ce_tenant_outside_it_lists():
    acme = reading("acme", ["a@x.example"], ["a@x.example", "b@x.example"])
    umbrella = view("umbrella", mailboxes=["B@x.example"])  # in the inventory, not in the run (--limit acme)
    decision = fleet.mailbox_revocations([acme], [acme, umbrella])
    assert decision["revoke"] == [] and decision["kept"] == {"b@x.example": ["umbrella"]}


def test_nothing_is_revoked_while_a_ce_tenant_of_the_directory_reads_mailboxes_this_run_cannot_see():
    acme = reading("acme", ["a@x.example"], ["a@x.example", "b@x.example"])
    outside = view("umbrella", mailboxes_from_portal=True)
    decision = fleet.mailbox_revocations([acme], [acme, outside])
    assert decision["revoke"] == [] and decision["unknown"] == ["umbrella"]
    # In the run and alive, its list is the one its connection gave: known.
    inside = view("umbrella", mailboxes_from_portal=True, mailboxes=["c@x.example"], ce={"mailboxes": ["c@x.example"]})
    assert fleet.mailbox_revocations([acme, inside], [acme, inside])["revoke"] == ["b@x.example"]
    # In the run but failed (before its connection was read, maybe): not known.
    broken = dict(inside, failures=[fleet.failure("CE mailboxes", "no connection")])
    assert fleet.mailbox_revocations([acme, broken], [acme, broken])["unknown"] == ["umbrella"]
    handoff = fleet.revocation_handoff([acme, broken], [acme, broken], {"skipped": True})
    assert "umbrella" in handoff[0]["fact"]["held"] and handoff[0]["fact"]["revoked"] == []


def test_a_mailbox_the_inventory_names_as_removed_goes_also_when_the_connection_no_longer_reads_it():
    # A CE tenant that takes its mailboxes from the Portal: a mailbox removed there leaves no record, so the inventory names it.
    portal = view("acme", mailboxes_from_portal=True, mailboxes=["a@x.example"], ce={"mailboxes": ["a@x.example"]},
                  mailboxes_removed=["old@x.example", "a@x.example"])
    decision = fleet.mailbox_revocations([portal], [portal])
    assert decision["revoke"] == ["old@x.example"] and decision["kept"] == {"a@x.example": ["acme"]}
    # A failed CE tenant names nothing (its part may not have run); what it lists still counts.
    failed = dict(portal, failures=[fleet.failure("CE", "boom")])
    assert fleet.mailbox_revocations([failed], [failed])["candidates"] == {}


def test_ce_tenants_that_leave_give_up_every_mailbox_no_other_ce_tenant_of_the_directory_lists():
    acme = reading("acme", ["a@x.example", "shared@x.example"], ["a@x.example", "extra@x.example"])
    globex = view("globex", mailboxes=["shared@x.example"])
    umbrella = view("umbrella", mailboxes=["u@x.example"])
    decision = fleet.mailbox_revocations([acme], [acme, globex, umbrella], offboarding=True)
    assert decision["revoke"] == ["a@x.example", "extra@x.example"] and decision["kept"] == {"shared@x.example": ["globex"]}
    # Two leaving together do not keep each other's.
    other = reading("globex", ["shared@x.example"], ["shared@x.example"])
    assert fleet.mailbox_revocations([acme, other], [acme, other, umbrella], True)["revoke"] == [
        "a@x.example", "shared@x.example", "extra@x.example"]


def test_each_ce_tenant_is_told_which_of_its_mailboxes_lost_fullaccess_and_one_that_failed_fails_it():
    acme = reading("acme", ["a@x.example"], ["a@x.example", "gone@x.example", "was@x.example"])
    globex = reading("globex", ["g@x.example"], ["g@x.example", "broken@x.example"])
    result = {"changed": True, "mailboxes": [{"mailbox": "gone@x.example", "result": "removed"}, {"mailbox": "was@x.example", "result": "unchanged"},
                                             {"mailbox": "broken@x.example", "result": "failed", "message": "Exchange says no (request id r-9)"}]}
    handoff = dict((h["host"], h) for h in fleet.revocation_handoff([acme, globex], [acme, globex], result))
    fact = handoff["acme"]["fact"]
    assert fact["revoked"] == ["gone@x.example"] and fact["already_gone"] == ["was@x.example"]
    assert fact["still_read"] == ["gone@x.example", "was@x.example"] and handoff["acme"]["failures"] == []
    message = handoff["globex"]["failures"][0]["message"]
    assert "broken@x.example" in message and "Exchange says no (request id r-9)" in message and "gone@x.example" not in message
    # The whole task failed (Exchange refused the automation identity): every CE tenant with a mailbox to revoke fails.
    failed = fleet.revocation_handoff([acme], [acme], {"failed": True, "msg": "401 unauthorized"})
    assert "401 unauthorized" in failed[0]["failures"][0]["message"]


def test_the_summary_names_the_mailboxes_that_left_and_what_ce_still_reads():
    revoked = {"revoked": ["gone@x.example"], "already_gone": [], "still_read": ["gone@x.example"], "kept": {"shared@x.example": ["globex"]},
               "held": None, "planned": False}
    acme = view("acme", app={"app_id": "app-1"}, revoked=revoked, ce={"client_secret_held": True, "oauth_settings": {"client_id": "app-1"}})
    done = fleet.summary([acme])
    record = done["records"][0]
    assert record["status"] == "ok" and record["revocation"]["revoked"] == ["gone@x.example"]
    assert "    FullAccess revoked on gone@x.example: no CE tenant of the directory lists it" in done["lines"]
    assert "    FullAccess kept on shared@x.example: listed by globex" in done["lines"]
    assert any(line.startswith("    CE's email connection still reads gone@x.example") for line in done["lines"])
    planned = fleet.summary([dict(acme, revoked=dict(revoked, planned=True))])["lines"]
    assert "    FullAccess to be revoked on gone@x.example: no CE tenant of the directory lists it" in planned
    # Nothing left any list: nothing said.
    assert "revocation" not in fleet.summary([dict(acme, revoked={"revoked": [], "kept": {}, "held": None})])["records"][0]


def test_a_proof_skipped_on_purpose_says_so_and_fails_nobody():
    acme = view("acme", app={"app_id": "app-1"}, require_secret=True,
                ce={"client_secret_held": True, "oauth_settings": {"client_id": "app-1"}, "email_connection": {"name": "Mail"}})
    skipped = fleet.summary([acme], proof_skipped=True)
    assert skipped["records"][0]["status"] == "ok" and skipped["records"][0]["logins"] == {"checked": False, "skipped": True, "reason": "skipped"}
    assert skipped["lines"][0].endswith("logins not checked (skipped)")
    assert fleet.summary([dict(acme, skip_proof=True)])["records"][0]["logins"]["skipped"] is True
    # Not skipped, the required secret is missing: a failure.
    assert fleet.summary([acme])["records"][0]["status"] == "FAILED"


# -- the CE part ---------------------------------------------------------------------------------------------------------------
def test_the_gateway_hands_its_own_name_and_fails_senders_on_a_release_without_sending():
    result = {"email_gateway": {"name": "Office 365"}, "adopted": True, "ce_version": "7.4.4", "ce_capabilities": ["oauth_receive_imap"]}
    handoff = dict((h["host"], h) for h in fleet.gateway_handoff([view("acme"), view("globex", sends=True)], result, "Exchange Online"))
    assert handoff["acme"]["fact"] == {"gateway": "Office 365", "ce_version": "7.4.4", "capabilities": ["oauth_receive_imap"], "adopted": True}
    assert handoff["acme"]["failures"] == []
    assert "oauth_send_smtp" in handoff["globex"]["failures"][0]["message"] and "ce_send_with_oauth: false" in handoff["globex"]["failures"][0]["message"]
    # Not managed (skipped): the configured name, nothing known of the release, nobody fails.
    skipped = fleet.gateway_handoff([view("acme", sends=True)], {"skipped": True}, "Exchange Online")
    assert skipped[0]["fact"]["gateway"] == "Exchange Online" and skipped[0]["failures"] == []


def test_ce_result_takes_the_delivery_over_the_first_read():
    settings = {"oauth_settings": {"client_id": "other"}, "client_secret_held": False, "client_secret_needed": True}
    delivery = {"oauth_settings": {"client_id": "app-1"}, "client_secret_held": True, "client_secret_updated": True}
    merged = fleet.ce_result(settings, delivery, {"email_connection": {"name": "Mail"}, "mailboxes": ["a@x.example"], "ce_version": "7.6.0"})
    assert merged["oauth_settings"]["client_id"] == "app-1" and merged["client_secret_held"] and merged["client_secret_updated"]
    assert merged["client_secret_needed"] is False and merged["email_connection"]["name"] == "Mail"
    assert fleet.ce_result(settings, {"skipped": True})["client_secret_held"] is False


def test_a_plan_starts_a_batch_update_when_any_task_of_the_deployment_would_change():
    assert fleet.deployment_changed([view("acme", connection={"changed": True})])
    assert fleet.deployment_changed([view("acme")], {"changed": True})
    assert not fleet.deployment_changed([view("acme", settings={"changed": False}), view("b", connection={"changed": True}, failures=[{}])])


# -- the proof -------------------------------------------------------------------------------------------------------------
def test_the_proof_uses_a_secret_only_when_ce_holds_it():
    app = {"app_id": "app-1", "client_secret": "made-now"}
    assert fleet.proof_secret({"client_secret_updated": True}, app) == ("made-now", None)
    # Made now but not given to CE (another run's got there first, or CE kept another app's): it proves nothing about CE.
    secret, why = fleet.proof_secret({"client_secret_superseded": True, "client_secret_held": True}, app)
    assert secret is None and "another run" in why
    assert fleet.proof_secret({"client_secret_held": False}, app)[0] is None
    # A secret from Vault: only where CE holds a current secret of CE's app, or when the CE part did not run.
    assert fleet.proof_secret({"client_secret_held": True}, {"app_id": "app-1"}, "from-vault") == ("from-vault", None)
    assert fleet.proof_secret({"client_secret_held": False}, {"app_id": "app-1"}, "from-vault")[0] is None
    assert fleet.proof_secret({}, {"app_id": "app-1"}, "from-vault", ce_part_ran=False) == ("from-vault", None)
    assert "not available to this run" in fleet.proof_secret({"client_secret_held": True}, {"app_id": "app-1"})[1]


# -- retiring secrets ------------------------------------------------------------------------------------------------------
def retiring(ce, proof=None, start="2026-12-07T11:00:00Z", created=True, batch="succeeded"):
    app = {"client_secret_key_id": "new", "client_secret_start": start, "client_secret_created": created,
           "client_secrets": [{"key_id": "new"}, {"key_id": "old"}]}
    return view("acme", app=app, ce=ce, proof=proof or {}, batch_update={"status": batch} if batch else None)


def test_older_secrets_go_only_after_ce_runs_on_the_new_one_and_the_proof_passed():
    proven = {"mailboxes": [{"ok": True}], "failed_mailboxes": []}
    delivered = {"client_secret_updated": True, "client_secret_held": True}
    assert fleet.retire_key_ids(retiring(delivered, proven))[0] == ["old"]
    assert fleet.retire_key_ids(retiring({"client_secret_updated": True}, {"mailboxes": [{"ok": False}], "failed_mailboxes": ["a"]}))[0] == []
    assert fleet.retire_key_ids(retiring(delivered))[0] == []
    # Stored in the Portal but not applied to the mail servers (no batch update): CE still runs on an older one.
    assert fleet.retire_key_ids(retiring(delivered, proven, batch=None))[0] == []
    assert fleet.retire_key_ids(retiring(delivered, proven, batch="failed"))[0] == []


def test_older_secrets_ce_never_held_go_as_soon_as_ce_has_the_new_one():
    app = {"app_id": "app-1", "client_secret_key_id": "new", "client_secret_start": "2026-12-07T11:00:00Z", "client_secret_created": True,
           "client_secrets": [{"key_id": "new", "start_date_time": "2026-12-07T11:00:00Z"},
                              {"key_id": "lost", "start_date_time": "2026-12-05T00:00:00Z"},
                              {"key_id": "held", "start_date_time": "2026-11-01T00:00:00Z"}]}
    delivered = {"client_secret_updated": True, "client_secret_held": True}
    # CE got its secret on 2026-11-02, after "held" was made and before "lost" was: "lost" never reached CE, "held" may run it.
    settings = {"oauth_settings": {"client_id": "app-1", "client_secret_set": True, "client_secret_updated_at": "2026-11-02T00:00:00Z"}}
    assert fleet.retire_key_ids(view("acme", app=app, ce=delivered, settings=settings))[0] == ["lost"]
    # CE had no settings, or settings of another app: it held none of them.
    for before in (None, {"client_id": "other-app", "client_secret_set": True, "client_secret_updated_at": "2026-12-06T00:00:00Z"}):
        assert fleet.retire_key_ids(view("acme", app=app, ce=delivered, settings={"oauth_settings": before}))[0] == ["lost", "held"]
    # Not given to CE in this run, or what CE held before unknown: none.
    assert fleet.retire_key_ids(view("acme", app=app, ce={"client_secret_held": True}, settings=settings))[0] == []
    assert fleet.retire_key_ids(view("acme", app=app, ce=delivered))[0] == []


def test_without_a_proof_the_grace_period_decides():
    held = {"client_secret_held": True}
    assert fleet.retire_key_ids(retiring(held, start="2026-12-06T11:00:00Z", created=False), grace_hours=12, now=NOW)[0] == ["old"]
    assert fleet.retire_key_ids(retiring(held, start="2026-12-07T10:00:00Z", created=False), grace_hours=12, now=NOW)[0] == []
    assert fleet.retire_key_ids(retiring(held, start="2026-12-01T00:00:00Z", created=False), grace_hours=None, now=NOW)[0] == []
    # Not held: CE may still use an older one.
    assert fleet.retire_key_ids(retiring({}, start="2026-12-01T00:00:00Z", created=False), grace_hours=1, now=NOW)[0] == []


def test_the_new_secret_ce_did_not_take_goes_and_nothing_else():
    assert fleet.retire_key_ids(retiring({"client_secret_superseded": True, "client_secret_held": True}))[0] == ["new"]


# -- the summary -----------------------------------------------------------------------------------------------------------
def test_ok_is_ces_truth_and_a_failed_ce_tenant_still_shows_what_is_known():
    converged = view("acme", mailboxes=["a@x.example"], app={"app_id": "app-1", "service_principal_id": "sp-1"},
                     access={"mailboxes": [{"mailbox": "a@x.example", "result": "unchanged"}]},
                     ce={"client_secret_held": True, "email_connection": {"name": "Mail"}, "oauth_settings": {"client_id": "app-1"}})
    failed = view("globex", app={"app_id": "app-1", "service_principal_id": "sp-1"},
                  failures=[fleet.failure("CE", "boom\x00\x07 with\nlines")])
    plan = view("initech", settings={"oauth_settings": {"client_id": "x"}, "client_secret_needed": True},
                ce={"client_secret_held": False, "email_connection": {"name": "Mail"}, "oauth_settings": {"client_id": "x"}})
    done = fleet.summary([failed, converged, plan])
    records = dict((r["host"], r) for r in done["records"])
    assert records["acme"]["status"] == "ok" and records["globex"]["status"] == "FAILED" and records["initech"]["status"] == "not converged"
    assert done["counts"] == {"tenants": 3, "ok": 1, "failed": 1}
    lines = done["lines"]
    acme = next(line for line in lines if line.startswith("acme"))
    assert "app app-1" in acme and "sp sp-1" in acme and "FullAccess 1/1" in acme and "CE Mail" in acme
    assert "logins not checked: CE's client secret is not available to this run" in acme
    globex = lines[lines.index(next(line for line in lines if line.startswith("globex"))) + 1]
    assert globex == "    CE: boom   with lines"  # control characters and NUL bytes never reach the summary
    assert "app app-1" in next(line for line in lines if line.startswith("globex"))


def test_a_plan_says_todo_for_a_ce_tenant_whose_settings_do_not_exist_yet_and_not_that_the_ce_part_did_not_run():
    planned = view("fjord", mailboxes=["a@x.example"], app={"app_id": "app-1"}, settings={"changed": True, "oauth_settings": None},
                   ce={"client_secret_held": False, "oauth_settings": None})
    records = fleet.summary([planned])
    assert records["records"][0]["status"] == "not converged" and records["lines"][0].startswith("fjord      todo")
    # A part run alone (no CE part): the CE part did not run, so nothing is said of CE, and never "ok".
    alone = view("fjord", mailboxes=["a@x.example"], app={"app_id": "app-1"}, ce={"client_secret_held": False, "oauth_settings": None})
    assert fleet.summary([alone])["records"][0]["status"] == "done"


def test_a_ce_tenant_that_failed_before_its_apps_part_shows_the_app_its_directory_has():
    lead = view("alpine", app={"app_id": "app-1", "service_principal_id": "sp-1", "client_secret": "x"})
    too_old = view("jasper", failures=[fleet.failure("CE", "CE 7.4.3")])
    other_directory = dict(view("islet", failures=[fleet.failure("Exchange Online", "401")]), tenant_id="other")
    records = dict((r["host"], r) for r in fleet.summary([lead, too_old, other_directory])["records"])
    assert (records["jasper"]["app_id"], records["jasper"]["service_principal_id"]) == ("app-1", "sp-1")
    assert records["jasper"]["status"] == "FAILED" and records["jasper"].get("new_secret") is None
    assert records["islet"]["app_id"] is None


def test_a_held_secret_that_has_expired_is_not_ok():
    held = {"client_secret_held": True, "email_connection": {"name": "Mail"}, "oauth_settings": {"client_id": "app-1"}}
    expired = view("acme", app={"app_id": "app-1", "client_secret_end": "2026-12-01T00:00:00Z"}, ce=held)
    record = fleet.summary([expired], now=NOW)["records"][0]
    assert record["status"] == "FAILED" and record["ce_holds_current_secret"] is False
    assert "expired on 2026-12-01T00:00:00Z" in record["failures"][0]["message"]
    current = view("acme", app={"app_id": "app-1", "client_secret_end": "2027-12-01T00:00:00Z"}, ce=held)
    assert fleet.summary([current], now=NOW)["records"][0]["status"] == "ok"


def test_a_rotation_leaves_alone_a_ce_tenant_whose_only_secret_is_young_and_held():
    young = view("acme", app={"app_id": "app-1", "client_secret_start": "2026-12-07T06:00:00Z", "client_secrets": [{"key_id": "k"}]},
                 settings={"client_secret_held": True})
    assert "only secret is 6.0 h old" in fleet.rotation_skipped(young, 24, NOW)
    assert fleet.secrets_to_make([young], rotate=True, min_age_hours=24, now=NOW) == []
    assert fleet.secrets_to_make([young], rotate=True, min_age_hours=None, now=NOW)[0]["reason"] == "rotation asked for"
    two = dict(young, app=dict(young["app"], client_secrets=[{"key_id": "k"}, {"key_id": "j"}]))
    assert fleet.rotation_skipped(two, 24, NOW) is None  # an unfinished rotation: only a new one finishes it
    unheld = dict(young, settings={"client_secret_held": False})
    assert fleet.rotation_skipped(unheld, 24, NOW) is None


def test_the_secret_report_counts_days_to_the_soonest_expiry_and_says_what_to_run():
    def app(*ends):
        return {"app_id": "app-1", "client_secrets": [{"key_id": "k%d" % i, "end_date_time": end} for i, end in enumerate(ends)]}
    views = [view("acme", app=app("2027-06-01T00:00:00Z")), view("globex", app=app("2026-12-17T12:00:00Z", "2027-12-01T00:00:00Z")),
             view("hooli", app=app()), view("initech", app={}), view("stark", app=app("2027-06-01T00:00:00Z", "2027-07-01T00:00:00Z"))]
    report = fleet.secret_report(views, warn_days=30, now=NOW)
    status = dict((e["ce_tenants"][0], (e["status"], e["days_left"])) for e in report["entries"])
    assert status == {"acme": ("OK", 175.5), "globex": ("WARNING", 10.0), "hooli": ("EXPIRED", None), "initech": ("ERROR", None),
                      "stark": ("OK", 175.5)}
    assert [e["ce_tenants"][0] for e in report["bad"]] == ["globex", "hooli", "initech"]
    assert "rotation is unfinished" in next(e["note"] for e in report["entries"] if e["ce_tenants"] == ["stark"])
    assert report["lines"][0].startswith("OK       directory %s app app-1 secret 'CE mailbox access (acme)' (acme): 175.5 days left" % CONTOSO)


def test_the_connection_uses_the_settings_the_ce_part_found_or_wrote():
    adopted = {"changed": False, "adopted": True, "oauth_settings": {"id": "oas-1", "name": "O365 OAuth"}}
    assert fleet.settings_name("Exchange Online OAuth", adopted) == "O365 OAuth"
    # After the secret went in, the delivery's record is the latest.
    delivered = {"changed": True, "oauth_settings": {"id": "oas-1", "name": "O365 OAuth", "client_secret_set": True}}
    assert fleet.settings_name("Exchange Online OAuth", {"skipped": True}, delivered) == "O365 OAuth"
    # Nothing found yet (a plan before they exist, or a part that did not run): the configured name.
    assert fleet.settings_name("Exchange Online OAuth", {"changed": True, "oauth_settings": None}) == "Exchange Online OAuth"
    assert fleet.settings_name("Exchange Online OAuth", None, {"skipped": True}) == "Exchange Online OAuth"


def test_the_new_secrets_go_to_the_ce_tenants_that_got_one_in_this_run():
    made = view("acme", app={"app_id": "app-1", "client_secret": "s3cret"})
    kept = view("globex", app={"app_id": "app-1", "client_secret_key_id": "k"})
    failed = view("initech", app={"app_id": "app-1", "client_secret": "s3cret-2"}, failures=[fleet.failure("CE", "boom")])
    assert fleet.new_secret_hosts([made, kept, failed]) == ["acme"]


def test_a_failed_task_whose_settings_need_a_secret_the_run_cannot_make_says_how_to_get_one():
    result = {"failed": True, "msg": "CE deployment x, tenant acme, OAuth settings 'Exchange Online OAuth': client_secret is required",
              "client_secret_required": True, "oauth_settings": None}
    recorded = fleet.failure("CE", result, "Make sure", view("acme"))
    assert recorded["part"] == "CE" and recorded["task"] == "Make sure"
    for fragment in ("CE tenant acme", "has no Microsoft credentials for directory %s" % CONTOSO, "'CE mailbox access (acme)'",
                     "Run playbooks/site.yml", "ce_email_oauth_client_secret"):
        assert fragment in recorded["message"]
    # Any other failure keeps the module's own message.
    assert fleet.failure("CE", {"msg": "HTTP 403"}, "t", view("acme"))["message"] == "HTTP 403"


def test_a_failure_outside_the_modules_fails_every_live_ce_tenant_of_the_unit():
    earlier = fleet.failure("CE", "CE 7.4.3")
    handed = fleet.unit_failure([view("acme"), view("globex", failures=[earlier])], "Azure AD", {"msg": "bad variable"}, "Validating")
    assert handed == [{"host": "acme", "failures": [{"part": "Azure AD", "task": "Validating", "message": "bad variable"}]}]


# -- the report files --------------------------------------------------------------------------------------------------------
def test_the_report_files_are_the_summary_as_json_and_markdown_named_after_the_run():
    converged = view("acme", mailboxes=["a@x.example"], app={"app_id": "app-1", "client_secret": "s3cret-acme"},
                     access={"mailboxes": [{"mailbox": "a@x.example", "result": "unchanged"}]},
                     proof={"mailboxes": [{"ok": True}]}, ce={"client_secret_held": True, "email_connection": {"name": "Mail|box"}})
    failed = view("globex", failures=[fleet.failure("CE", "refused | HTTP 403")])
    done = fleet.summary([converged, failed])
    files = fleet.report_files(done, True, "/var/reports", now=NOW)
    assert [f["name"] for f in files] == ["ceops-summary-20261207T120000Z-check.json", "ceops-summary-20261207T120000Z-check.md"]
    report = json.loads(files[0]["content"])
    assert report["generated_at"] == "2026-12-07T12:00:00Z" and report["check_mode"] is True
    assert report["counts"] == {"tenants": 2, "ok": 1, "failed": 1} and [r["status"] for r in report["records"]] == ["ok", "FAILED"]
    markdown = files[1]["content"]
    assert "| acme | ok | %s | app-1 | 1/1 | Mail\\|box | 1/1 ok |" % CONTOSO in markdown
    assert "## globex (FAILED)\n\n- CE: refused | HTTP 403\n" in markdown and "A plan (--check)" in markdown
    assert "s3cret-acme" not in files[0]["content"] + markdown
    assert fleet.report_files(done, False, "/var/reports", now=NOW)[0]["name"] == "ceops-summary-20261207T120000Z.json"
    assert fleet.report_files(done, False, "", now=NOW) == [] and fleet.report_files(done, False, None, now=NOW) == []


def test_the_last_ce_tenant_leaving_takes_ces_app_only_when_it_holds_nothing_of_anyone_else():
    app = {"app_id": "ce-app", "other_parts": []}
    assert fleet.app_removal([view("hooli", app=app)], [view("hooli")], remove=True)["remove"] is True
    hand_made = dict(app, other_parts=["delegated permission e1fe6dd8 of Microsoft Graph", "client secret 'ce 2025'"])
    decision = fleet.app_removal([view("fjord", app=hand_made)], [view("fjord")], remove=True)
    assert decision["remove"] is False and decision["app_id"] == "ce-app"
    assert "delegated permission e1fe6dd8 of Microsoft Graph; client secret 'ce 2025'" in decision["reason"]
    assert "stays with its Exchange service principal" in decision["reason"]
    # Without the operator's switch, or with a CE tenant staying, that is the reason, whatever the app holds.
    assert "ceops_offboard_remove_app" in fleet.app_removal([view("fjord", app=hand_made)], [view("fjord")])["reason"]


# -- the secret store -------------------------------------------------------------------------------------------------------
def stored(host, key_id, start, app_id="app-1", tenant_id=CONTOSO, end="2027-12-01T00:00:00Z", **extra):
    entry = {"tenant_id": tenant_id, "app_id": app_id, "key_id": key_id, "secret_name": "CE mailbox access (%s)" % host, "ce_tenant": host,
             "start_date_time": start, "end_date_time": end, "client_secret": "value-%s" % key_id}
    entry.update(extra)
    return entry


def test_the_stored_secret_is_the_apps_current_one_when_the_run_read_the_app_else_the_newest_valid():
    entries = [stored("acme", "k1", "2026-01-01T00:00:00Z"), stored("acme", "k2", "2026-06-01T00:00:00Z"),
               stored("acme", "k3", "2026-09-01T00:00:00Z", end="2026-10-01T00:00:00Z"),  # the newest, expired
               stored("acme", "k9", "2026-11-01T00:00:00Z", app_id="another-app"),
               stored("acme", "k8", "2026-11-01T00:00:00Z", tenant_id=FABRIKAM),
               stored("acme", "k7", "2026-11-01T00:00:00Z", secret_name="CE mailbox access (globex)"),
               stored("globex", "k6", "2026-11-01T00:00:00Z")]
    # A part run alone: no app read, so the newest valid one of its own directory, app and name.
    assert fleet.stored_secret(view("acme", stored=entries, app={"app_id": "APP-1"}), NOW)["key_id"] == "k2"
    # The app was read: its current own secret, and no other (not in the store: none).
    assert fleet.stored_secret(view("acme", stored=entries, app={"app_id": "app-1", "client_secret_key_id": "K1"}), NOW)["key_id"] == "k1"
    assert fleet.stored_secret(view("acme", stored=entries, app={"app_id": "app-1", "client_secret_key_id": "k5"}), NOW) is None
    # Without the app's id the store tells it (the newest of the directory and name, whichever app).
    assert fleet.stored_secret(view("acme", stored=entries), NOW)["key_id"] == "k9"
    assert fleet.stored_secret(view("hooli", stored=entries), NOW) is None


def test_the_store_gets_the_secrets_made_in_the_run_before_ce_does_and_loses_those_retired_or_gone():
    made = {"app_id": "app-1", "client_secret": "new-value", "client_secret_made": {"key_id": "K4", "start_date_time": "s", "end_date_time": "e"},
            "client_secret_key_id": "k4", "client_secrets": [{"key_id": "k4"}, {"key_id": "k1"}]}
    acme = view("acme", app=made, stored=[stored("acme", "k1", "2026-01-01T00:00:00Z")])
    # globex's list no longer has k2 (removed by hand in Entra); initech's app was not read (no client_secrets): nothing judged.
    globex = view("globex", app={"app_id": "app-1", "client_secrets": [{"key_id": "k3"}]},
                  stored=[stored("globex", "k2", "2026-01-01T00:00:00Z"), stored("globex", "k3", "2026-02-01T00:00:00Z")])
    initech = view("initech", app={"app_id": "app-1"}, stored=[stored("initech", "k5", "2026-01-01T00:00:00Z")])
    update = fleet.store_update([acme, globex, initech])
    assert update["add"] == [{"tenant_id": CONTOSO, "app_id": "app-1", "key_id": "k4", "secret_name": "CE mailbox access (acme)",
                              "ce_tenant": "acme", "start_date_time": "s", "end_date_time": "e", "client_secret": "new-value"}]
    assert update["remove_key_ids"] == ["k2"]
    # After the retirement: the old one goes; a secret this run made and retired again (CE took another run's) is not kept.
    retired = dict(made, client_secret_removed_key_ids=["K1"], client_secrets=[{"key_id": "k4"}])
    assert fleet.store_update([dict(acme, app=retired)])["remove_key_ids"] == ["k1"]
    superseded = dict(made, client_secret_key_id="k1", client_secret_removed_key_ids=["k4"], client_secrets=[{"key_id": "k1"}])
    assert fleet.store_update([dict(acme, app=superseded)]) == {"add": [], "remove_key_ids": ["k4"]}
    # An entry another run added after this one read the store is not in this run's snapshot: never judged by its list.
    assert fleet.store_update([view("acme", app={"app_id": "app-1", "client_secrets": []}, stored=[])]) == {"add": [], "remove_key_ids": []}


def test_with_a_store_the_app_leads_join_its_group_and_a_store_the_run_could_not_read_fails_every_ce_tenant():
    read = {"changed": False, "path": "/keep/store.yml"}
    views = [view("acme", secret_store="/keep/store.yml", secret_store_read=read), view("globex", secret_store="/keep/store.yml", secret_store_read=read),
             view("initech", FABRIKAM, secret_store="/keep/store.yml", secret_store_read=read)]
    entries = dict((e["name"], e) for e in fleet.elect(views))
    assert fleet.SECRET_STORE_GROUP in entries["acme"]["groups"] and fleet.SECRET_STORE_GROUP in entries["initech"]["groups"]
    assert all(fleet.SECRET_STORE_GROUP not in e["groups"] for e in fleet.elect([view("acme"), view("initech", FABRIKAM)]))

    failed = {"failed": True, "msg": "secret store /keep/store.yml cannot be decrypted with the vault secrets of this run"}
    entries = fleet.elect([dict(v, secret_store_read=failed) for v in views])
    assert sorted(e["name"] for e in entries) == ["acme", "globex", "initech"] and all(e["groups"] == [] for e in entries)
    assert all(e["ceops_failures"] == [{"part": "Secret store", "task": "", "message": failed["msg"]}] for e in entries)
    # One CE tenant naming another store than the run read fails alone, saying to set it once.
    entries = dict((e["name"], e) for e in fleet.elect([views[0], dict(views[1], secret_store="/other.yml")]))
    assert "set ceops_secret_store once for the run" in entries["globex"]["ceops_failures"][0]["message"]
    # Set on some CE tenants only, the run's read (on the first) was skipped: those that name one fail the same way.
    entries = dict((e["name"], e) for e in fleet.elect([view("acme", secret_store_read={"skipped": True}),
                                                        dict(views[1], secret_store_read={"skipped": True})]))
    assert "this run reads none" in entries["globex"]["ceops_failures"][0]["message"] and "ceops_failures" not in entries["acme"]
    assert fleet.APP_GROUP in entries["acme"]["groups"]
