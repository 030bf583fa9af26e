# -*- coding: utf-8 -*-
"""Compare-and-act logic of exo_service_principal and exo_mailbox_permission against an in-memory Exchange."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import exo_permissions as logic
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import ExchangeClient
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.reconcile import StepError, TaskError

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exchange_fakes import (APP_ID, APP_OBJECT_ID, MAILBOXES, SP_ID, TENANT, FakeExchange, FakeGraph,  # noqa: E402
                            registered)  # pylint: disable=wrong-import-position

OTHER_ID = "44444444-4444-4444-8444-444444444444"


def mailbox_params(**kwargs):
    params = dict(tenant_id=TENANT, user=SP_ID, mailboxes=list(MAILBOXES), access_rights=["FullAccess"], state="present",
                  inheritance_type="All", automapping=False, parallelism=8, fail_on_mailbox_error=True)
    params.update(kwargs)
    return params


def converge(fake, check_mode=False, **kwargs):
    params = mailbox_params(**kwargs)
    mailboxes, problems = logic.mailbox_permission_problems(params)
    assert not problems
    reconciler = logic.MailboxPermissionReconciler(ExchangeClient(fake, TENANT), params, mailboxes, check_mode=check_mode)
    return reconciler.run(), reconciler


# -- inputs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mailboxes,words", [
    ([], "mailboxes is empty"),
    (None, "mailboxes is empty"),
    (["ce-support@contoso.onmicrosoft.com", "not an address"], "not an email address"),
    (["x'; Remove-Mailbox -Identity y; '"], "not an email address"),
    (["ce-support"], "not an email address"),
    (["a@b"], "not an email address"),
])
def test_bad_mailbox_lists_are_refused_before_anything_is_sent(mailboxes, words):
    unique, problems = logic.normalise_mailboxes(mailboxes)
    assert unique == [] and words in problems[0] and "nothing was sent" in problems[0]


def test_addresses_are_deduplicated_case_insensitively_and_apostrophes_are_legal():
    unique, problems = logic.normalise_mailboxes(["O'Brien@contoso.onmicrosoft.com", "o'brien@CONTOSO.onmicrosoft.com", " b@c.example "])
    assert problems == [] and unique == ["O'Brien@contoso.onmicrosoft.com", "b@c.example"]


def test_parallelism_and_rights_are_checked():
    _unique, problems = logic.mailbox_permission_problems(mailbox_params(parallelism=0, access_rights=[]))
    assert any("parallelism" in p for p in problems) and any("access_rights" in p for p in problems)


def test_entries_are_matched_by_any_name_of_the_principal_and_inherited_and_deny_kept_apart():
    principal = {"ObjectId": SP_ID, "AppId": APP_ID, "DisplayName": "CE Email", "Identity": "CE Email"}
    names = logic.principal_names(principal, SP_ID)
    entries = [
        {"User": "ce email", "AccessRights": "FullAccess, ReadPermission", "IsInherited": "False", "Deny": "False", "InheritanceType": "All"},
        {"User": APP_ID.upper(), "AccessRights": ["DeleteItem"], "IsInherited": True, "Deny": False},
        {"User": SP_ID, "AccessRights": ["ChangeOwner"], "IsInherited": False, "Deny": True},
        {"User": "NT AUTHORITY\\SELF", "AccessRights": ["FullAccess"], "IsInherited": False, "Deny": False},
    ]
    explicit, inherited, denied, inheritance = logic.summarise_entries(entries, names)
    assert explicit == {"FullAccess", "ReadPermission"} and inherited == {"DeleteItem"} and denied == {"ChangeOwner"}
    assert inheritance["FullAccess"] == "All"


# -- exo_mailbox_permission -----------------------------------------------------------------------
def test_grants_what_is_missing_then_changes_nothing():
    fake = registered(FakeExchange())
    first, _ignored = converge(fake)
    assert first["changed"] is True and first["summary"]["added"] == MAILBOXES and first["summary"]["failed"] == []
    assert [r["added_rights"] for r in first["mailboxes"]] == [["FullAccess"]] * 3
    assert fake.writes().count("Add-MailboxPermission") == 3
    added = [p for c, p in fake.calls if c == "Add-MailboxPermission"][0]
    assert added["User"] == SP_ID and added["AutoMapping"] is False and added["InheritanceType"] == "All"
    assert first["diff"]["before"]["access_rights"][MAILBOXES[0]] == [] and first["diff"]["after"]["access_rights"][MAILBOXES[0]] == ["FullAccess"]

    fake.calls = []
    second, _ignored = converge(fake)
    assert second["changed"] is False and second["summary"]["unchanged"] == MAILBOXES and fake.writes() == []
    # One read per mailbox plus one principal lookup: no per-mailbox extra round trips.
    assert second["invocations"] == {"Get-ServicePrincipal": 1, "Get-MailboxPermission": 3}


def test_check_mode_reads_and_predicts_but_writes_nothing():
    fake = registered(FakeExchange())
    result, _ignored = converge(fake, check_mode=True)
    assert result["changed"] is True and result["summary"]["added"] == MAILBOXES and fake.writes() == []


def test_check_mode_goes_on_when_the_principal_is_not_registered_yet():
    fake = FakeExchange()
    result, reconciler = converge(fake, check_mode=True)
    assert result["summary"]["added"] == MAILBOXES and fake.writes() == []
    assert "has no service principal with object id %s" % SP_ID in reconciler.warnings[0]


def test_an_unregistered_principal_fails_before_any_mailbox_is_touched():
    fake = FakeExchange()
    with pytest.raises(TaskError) as caught:
        converge(fake, user=APP_OBJECT_ID)
    assert "no service principal with object id %s" % APP_OBJECT_ID in str(caught.value) and "exo_service_principal" in str(caught.value)
    assert [c for c, _params in fake.calls] == ["Get-ServicePrincipal"]


def test_the_principal_may_be_named_by_app_id_and_is_granted_by_object_id():
    fake = registered(FakeExchange())
    result, _ignored = converge(fake, user=APP_ID)
    assert result["principal"]["object_id"] == SP_ID
    assert set(p["User"] for c, p in fake.calls if c == "Add-MailboxPermission") == {SP_ID}
    assert converge(fake, user=APP_ID)[0]["changed"] is False


def test_an_unknown_mailbox_fails_alone_after_the_others_were_processed():
    fake = registered(FakeExchange())
    params = dict(mailboxes=MAILBOXES + ["ce-nope@contoso.onmicrosoft.com"])
    with pytest.raises(TaskError) as caught:
        converge(fake, **params)
    partial = caught.value.partial
    assert partial["summary"]["added"] == MAILBOXES and partial["changed"] is True
    assert partial["summary"]["failed"] == ["ce-nope@contoso.onmicrosoft.com"]
    record = partial["mailboxes"][-1]
    assert "does not exist in Exchange Online of directory %s" % TENANT in record["message"] and "couldn't be found" in record["message"]
    assert "1 of 4 mailboxes failed" in str(caught.value) and "ce-nope@contoso.onmicrosoft.com" in str(caught.value)

    result, reconciler = converge(fake, fail_on_mailbox_error=False, **params)
    assert result["summary"]["failed"] == ["ce-nope@contoso.onmicrosoft.com"] and result["summary"]["unchanged"] == MAILBOXES
    assert "ce-nope@contoso.onmicrosoft.com" in reconciler.warnings[0]


def test_inherited_rights_do_not_count_and_deny_fails_the_mailbox_without_writing():
    fake = registered(FakeExchange())
    fake.permissions[MAILBOXES[0]].append({"User": SP_ID, "AccessRights": ["FullAccess"], "IsInherited": True, "Deny": False})
    fake.permissions[MAILBOXES[1]].append({"User": SP_ID, "AccessRights": ["FullAccess"], "IsInherited": False, "Deny": True})
    result, _ignored = converge(fake, fail_on_mailbox_error=False)
    inherited, denied, plain = result["mailboxes"]
    assert inherited["result"] == "added" and inherited["inherited_rights"] == ["FullAccess"] and "inherited" in inherited["message"]
    assert denied["result"] == "failed" and denied["denied_rights"] == ["FullAccess"] and "Deny" in denied["message"]
    assert plain["result"] == "added"
    assert sorted(p["Identity"] for c, p in fake.calls if c == "Add-MailboxPermission") == sorted([MAILBOXES[0], MAILBOXES[2]])


def test_absent_removes_only_the_listed_explicit_rights():
    fake = registered(FakeExchange())
    converge(fake, access_rights=["FullAccess", "ReadPermission"])
    fake.calls = []
    result, _ignored = converge(fake, state="absent", mailboxes=MAILBOXES[:2])
    assert result["summary"]["removed"] == MAILBOXES[:2] and result["mailboxes"][0]["access_rights"] == ["ReadPermission"]
    assert fake.writes() == ["Remove-MailboxPermission"] * 2
    again, _ignored = converge(fake, state="absent", mailboxes=MAILBOXES[:2])
    assert again["changed"] is False
    checked, _ignored = converge(fake, state="absent", mailboxes=MAILBOXES[2:], check_mode=True)
    assert checked["summary"]["removed"] == MAILBOXES[2:] and fake.writes().count("Remove-MailboxPermission") == 2


def test_an_entry_added_concurrently_is_no_change():
    fake = registered(FakeExchange(mailboxes=MAILBOXES[:1]))
    real_get = fake.get_mailboxpermission

    def stale_read(cmdlet, p):
        entries = real_get(cmdlet, p)
        fake.add_mailboxpermission("Add-MailboxPermission", {"Identity": p["Identity"], "User": SP_ID, "AccessRights": ["FullAccess"],
                                                             "InheritanceType": "All"})
        return entries
    fake.get_mailboxpermission = stale_read
    result, _ignored = converge(fake, mailboxes=MAILBOXES[:1])
    assert result["changed"] is False and "concurrently" in result["mailboxes"][0]["message"]


def test_failures_that_hit_every_mailbox_stop_the_run():
    fake = registered(FakeExchange(mailboxes=["m%d@contoso.onmicrosoft.com" % i for i in range(40)]))
    fake.fail["Get-MailboxPermission"] = ExchangeError("Access denied", cmdlet="Get-MailboxPermission", status=403, fatal=True,
                                                       hint="needs Exchange.ManageAsApp and Exchange Administrator")
    with pytest.raises(StepError) as caught:
        converge(fake, mailboxes=["m%d@contoso.onmicrosoft.com" % i for i in range(40)], parallelism=2)
    assert caught.value.cause.status == 403 and "stopped" in caught.value.doing
    assert len([c for c, _params in fake.calls if c == "Get-MailboxPermission"]) < 40


def test_parallelism_is_bounded_and_used():
    mailboxes = ["m%d@contoso.onmicrosoft.com" % i for i in range(24)]
    fake = registered(FakeExchange(mailboxes=mailboxes, delay=0.02))
    result, _ignored = converge(fake, mailboxes=mailboxes, parallelism=4)
    assert len(result["summary"]["added"]) == 24 and fake.max_active == 4
    assert [r["mailbox"] for r in result["mailboxes"]] == mailboxes  # order kept whatever finished first


# -- exo_service_principal ------------------------------------------------------------------------
def sp_params(**kwargs):
    params = dict(tenant_id=TENANT, app_id=APP_ID, object_id=SP_ID, display_name=None, state="present", verify_object_id=True)
    params.update(kwargs)
    return params


def reconcile_sp(fake, graph=None, check_mode=False, **kwargs):
    params = sp_params(**kwargs)
    assert not logic.service_principal_problems(params)
    reconciler = logic.ServicePrincipalReconciler(ExchangeClient(fake, TENANT), graph, params, check_mode=check_mode)
    return reconciler.run(), reconciler


def test_service_principal_is_created_with_the_directorys_name_then_left_alone():
    fake = FakeExchange()
    result, _ignored = reconcile_sp(fake, FakeGraph())
    assert result["changed"] is True and fake.service_principals[0]["DisplayName"] == "CE Email"
    assert result["diff"]["before"] == {"state": "absent"} and result["diff"]["after"]["object_id"] == SP_ID
    again, _ignored = reconcile_sp(fake, FakeGraph())
    assert again["changed"] is False and again["actions"] == []


class RacedExchange(FakeExchange):
    """Another run creates the service principal between this run's Get-ServicePrincipal and its New-ServicePrincipal."""

    def new_serviceprincipal(self, cmdlet, p):
        registered(self)
        raise ExchangeError("Active Directory operation failed on AM0PR07A017DC002.EURPR07A017.PROD.OUTLOOK.COM. The object "
                            "'CN=%s,OU=contoso.onmicrosoft.com' already exists." % p["ObjectId"], cmdlet=cmdlet,
                            error_type="Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException")


def test_a_service_principal_another_run_just_created_is_taken_as_done():
    fake = RacedExchange()
    result, _ignored = reconcile_sp(fake, FakeGraph())
    assert not result.get("failed") and result["changed"] is False and result["object_id"] == SP_ID
    assert result["actions"] == ["create the Exchange service principal (New-ServicePrincipal -AppId %s -ObjectId %s): already done by "
                                 "another run" % (APP_ID, SP_ID)]
    assert len(fake.service_principals) == 1


class OtherObjectExchange(FakeExchange):
    """Exchange already has a service principal for the app, with another object id."""

    def new_serviceprincipal(self, cmdlet, p):
        raise ExchangeError("A service principal with AppId '%s' already exists: '%s'." % (APP_ID, OTHER_ID), cmdlet=cmdlet)

    def get_serviceprincipal(self, cmdlet, p):
        if len([c for c, _params in self.calls if c == cmdlet]) == 1:
            raise self.not_found(cmdlet, p["Identity"])
        return [{"AppId": APP_ID, "ObjectId": OTHER_ID, "DisplayName": "x", "Identity": OTHER_ID}]


def test_an_existing_service_principal_with_another_object_id_still_fails():
    with pytest.raises(StepError) as failure:
        reconcile_sp(OtherObjectExchange(), FakeGraph())
    assert "already exists" in failure.value.cause.message


def test_check_mode_plans_without_writing():
    fake = FakeExchange()
    result, _ignored = reconcile_sp(fake, FakeGraph(), check_mode=True, display_name="CE Email")
    assert result["changed"] is True and fake.writes() == [] and result["object_id"] == SP_ID


def test_display_name_drift_is_renamed_and_a_wrong_object_id_replaced():
    fake = registered(FakeExchange(), display_name="old")
    renamed, _ignored = reconcile_sp(fake, display_name="CE Email")
    assert renamed["actions"] == ["rename the Exchange service principal from 'old' to 'CE Email'"]
    assert fake.writes() == ["Set-ServicePrincipal"]
    fake.service_principals[0]["ObjectId"] = OTHER_ID
    fake.calls = []
    replaced, _ignored = reconcile_sp(fake, display_name="CE Email")
    assert fake.writes() == ["Remove-ServicePrincipal", "New-ServicePrincipal"]
    assert fake.service_principals[0]["ObjectId"] == SP_ID and "repair the Exchange service principal" in replaced["actions"][0]
    assert replaced["replaced_object_id"] == OTHER_ID


def test_the_application_object_id_is_refused_with_an_explanation():
    fake = FakeExchange()
    with pytest.raises(TaskError) as caught:
        reconcile_sp(fake, FakeGraph(), object_id=APP_OBJECT_ID)
    assert "APPLICATION" in str(caught.value) and SP_ID in str(caught.value)
    assert fake.writes() == []
    with pytest.raises(TaskError) as caught:
        reconcile_sp(fake, FakeGraph(), object_id=OTHER_ID)
    assert str(caught.value).endswith("use %s as object_id" % SP_ID)


def test_graph_refusal_skips_the_check_with_a_warning():
    fake = FakeExchange()
    result, reconciler = reconcile_sp(fake, FakeGraph(error=ServiceError("Microsoft Graph", "Insufficient privileges", status=403)),
                                      display_name="CE Email")
    assert result["changed"] is True and "could not check object_id" in reconciler.warnings[0]


def test_absent_removes_and_is_idempotent():
    fake = registered(FakeExchange())
    removed, _ignored = reconcile_sp(fake, state="absent", object_id=None)
    assert removed["changed"] is True and fake.service_principals == []
    assert reconcile_sp(fake, state="absent", object_id=None)[0]["changed"] is False


def test_service_principal_inputs_are_checked():
    problems = logic.service_principal_problems(sp_params(app_id="CE Email", object_id=None))
    assert "not a GUID" in problems[0] and "object_id is required" in problems[1]
