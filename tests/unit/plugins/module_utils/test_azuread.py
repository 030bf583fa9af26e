# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import azuread
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.graph import EXCHANGE_APP_ID

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc)
IMAP, POP, SMTP = "5e5addcd-3e8d-4e90-baf5-964efab2b20a", "cb842b43-da6e-4506-86fe-bb12199c656d", "7146a1f0-8703-45b3-9eae-527a64c00995"
EXCHANGE_SP = {"id": "exo-sp", "appRoles": [{"value": "IMAP.AccessAsApp", "id": IMAP}, {"value": "POP.AccessAsApp", "id": POP},
                                            {"value": "SMTP.SendAsApp", "id": SMTP}]}


def secret_options(**kwargs):
    options = dict(name="CE", lifetime_days=365, renew_before_days=30, rotate=False, retire_previous=False)
    options.update(kwargs)
    return options


def cred(key, days):
    return {"keyId": key, "displayName": "CE", "endDateTime": azuread.format_time(NOW + datetime.timedelta(days=days))}


def test_parse_time_accepts_graphs_seven_digit_fractions():
    assert azuread.parse_time("2027-01-02T03:04:05.1234567Z") == datetime.datetime(2027, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    assert azuread.parse_time("2027-01-02T03:04:05Z").tzinfo is not None


def test_role_ids_are_resolved_from_the_directory_and_unknown_names_fail_clearly():
    assert azuread.exchange_role_ids(EXCHANGE_SP, ["IMAP.AccessAsApp"]) == {"IMAP.AccessAsApp": IMAP}
    with pytest.raises(ValueError, match="offers no application permission SMTP.SendAsApp"):
        azuread.exchange_role_ids({"appRoles": [{"value": "IMAP.AccessAsApp", "id": IMAP}]}, ["SMTP.SendAsApp"])


def test_required_resource_access_keeps_other_apis_and_delegated_scopes():
    current = [{"resourceAppId": "graph", "resourceAccess": [{"id": "g", "type": "Scope"}]},
               {"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": "d", "type": "Scope"}, {"id": POP, "type": "Role"}]}]
    result = azuread.desired_required_resource_access(current, {IMAP})
    assert result[0] == current[0]
    assert result[1]["resourceAccess"] == [{"id": "d", "type": "Scope"}, {"id": IMAP, "type": "Role"}]
    assert azuread.requested_role_ids(result) == {IMAP}
    assert azuread.desired_required_resource_access([], set()) == []


@pytest.mark.parametrize("creds,options,create,remove", [
    ([], {}, True, []),                                            # none yet
    ([cred("a", 200)], {}, False, []),                             # valid, nothing to do
    ([cred("a", 10)], {}, True, []),                               # within the renewal window: new one, old kept
    ([cred("a", 200)], {"rotate": True}, True, []),                # forced
    ([cred("a", 200), cred("b", -1)], {}, False, ["b"]),           # expired ones always go
    ([cred("a", 200), cred("b", 100)], {"retire_previous": True}, False, ["b"]),
    ([cred("a", 10), cred("b", 5)], {"retire_previous": True}, True, ["a", "b"]),
    # Named removal (a secret CE never got, or the ones a lost secret left): exactly those, and never a new one, even
    # when the one to remove is not listed yet or is the only one, or the newest is within its renewal window.
    ([cred("a", 200), cred("b", 100)], {"remove_key_ids": ["A"]}, False, ["a"]),
    ([cred("a", 200)], {"remove_key_ids": ["gone"]}, False, []),
    ([], {"remove_key_ids": ["a"], "rotate": True}, False, []),
    ([cred("a", 10), cred("b", -1)], {"remove_key_ids": ["a", "b"]}, False, ["b", "a"]),
])
def test_secret_plan(creds, options, create, remove):
    ordered = azuread.secrets_named({"passwordCredentials": creds}, "CE")
    assert azuread.plan_secrets(ordered, secret_options(**options), NOW) == (create, remove)


def test_secrets_of_other_names_are_never_considered():
    other = dict(cred("x", -5), displayName="someone else's")
    assert azuread.secrets_named({"passwordCredentials": [other, cred("a", 20)]}, "CE") == [cred("a", 20)]


def test_token_tenant_reads_tid_without_validation():
    import base64
    import json
    payload = base64.urlsafe_b64encode(json.dumps({"tid": "t-1"}).encode()).decode().rstrip("=")
    assert azuread.token_tenant("h.%s.s" % payload) == "t-1"
    assert azuread.token_tenant("garbage") is None


def test_equal_expiries_sort_the_later_start_first():
    old = dict(cred("old", 100), startDateTime="2026-11-28T10:00:00Z")
    new = dict(cred("new", 100), startDateTime="2026-11-28T10:00:01.5Z")
    ordered = azuread.secrets_named({"passwordCredentials": [old, new]}, "CE")
    assert [c["keyId"] for c in ordered] == ["new", "old"]
    assert azuread.plan_secrets(ordered, secret_options(retire_previous=True), NOW) == (False, ["old"])


# -- the reconciler against a fake Graph: several named secrets, and another run getting there first ---------------------
class FakeAuth:
    def graph_token(self):
        return "h.e30.s"  # claims {}: the directory comes from the params


class FakeGraph:
    """Holds one directory's app; ``raced`` names what another run does between our read and our write."""

    def __init__(self, app=None, sp=None, assignments=(), raced=(), others=(), policy=None):
        self.app, self.sp, self.assignments, self.raced = app, sp, list(assignments), set(raced)
        self.others = list(others)  # other apps of the directory
        self.policy = policy
        self.writes = []
        self.patches = []

    def find_applications(self, display_name=None, unique_name=None, app_id=None):
        apps = ([] if self.app is None or "app" in self.raced else [self.app]) + self.others
        if app_id:
            return [a for a in apps if a.get("appId") == app_id]
        if unique_name:
            return [a for a in apps if a.get("uniqueName") == unique_name]
        return [a for a in apps if a.get("displayName") == display_name]

    def default_app_management_policy(self):
        return self.policy

    def update_application(self, object_id, patch):
        self.writes.append("patch " + ",".join(sorted(patch)))
        self.patches.append(patch)
        target = next(a for a in [self.app] + self.others if a and a["id"] == object_id)
        target.update(patch)

    def get_application_by_unique_name(self, unique_name):
        return self.app

    def create_application(self, body, unique_name=None):
        self.writes.append("upsert app")
        if self.app is not None:
            return None  # 204: the upsert updated the app another run had made
        self.app = dict(body, id="app-object", appId="app-id", uniqueName=unique_name, passwordCredentials=[])
        return self.app

    def get_service_principal(self, app_id):
        if app_id == EXCHANGE_APP_ID:
            return EXCHANGE_SP
        return None if "sp" in self.raced else self.sp

    def create_service_principal(self, app_id):
        self.writes.append("create sp")
        if self.sp is not None:
            return self.sp, False
        self.sp = {"id": "client-sp", "appId": app_id}
        return self.sp, True

    def list_app_role_assignments(self, principal_id, just_created=False):
        return [] if "consent" in self.raced else [{"appRoleId": r, "resourceId": "exo-sp", "id": "as-" + r} for r in self.assignments]

    def add_app_role_assignment(self, resource_id, principal_id, role_id):
        self.writes.append("assign " + role_id)
        if role_id in self.assignments:
            return False
        self.assignments.append(role_id)
        return True

    def add_password(self, object_id, name, end):
        self.writes.append("add " + name)
        return {"keyId": "new-" + name, "displayName": name, "endDateTime": end, "startDateTime": azuread.format_time(NOW),
                "secretText": "text-" + name}

    def remove_password(self, object_id, key_id):
        self.writes.append("remove " + key_id)


def reconcile(graph, check_mode=False, **params):
    base = dict(tenant_id="t", display_name="CE Email", unique_name="ce-email", app_id=None, state="present",
                exchange_permissions=["IMAP.AccessAsApp", "POP.AccessAsApp"], admin_consent=True, app_secret=None, app_secrets=None)
    base.update(params)
    return azuread.AppReconciler(graph, FakeAuth(), base, check_mode=check_mode, now=NOW).run()


def named(name, key, days):
    return dict(cred(key, days), displayName=name)


def test_several_named_secrets_in_one_run_each_with_its_own_result_and_others_untouched():
    app = {"id": "app-object", "appId": "app-id", "displayName": "CE Email", "uniqueName": "ce-email",
           "requiredResourceAccess": azuread.desired_required_resource_access([], {IMAP, POP}),
           "passwordCredentials": [named("CE (acme)", "a1", 200), named("CE (globex)", "g1", -1), named("CE (initech)", "i1", 5)]}
    graph = FakeGraph(app=app, sp={"id": "client-sp", "appId": "app-id"}, assignments=[IMAP, POP])
    result = reconcile(graph, app_secrets=[secret_options(name="CE (acme)"), secret_options(name="CE (globex)")])
    acme, globex = result["app_secrets"]["CE (acme)"], result["app_secrets"]["CE (globex)"]
    assert acme["created"] is False and acme["key_id"] == "a1" and "client_secret" not in acme
    assert globex["created"] is True and globex["client_secret"] == "text-CE (globex)" and globex["key_id"] == "new-CE (globex)"
    assert globex["expired_key_ids"] == ["g1"] == globex["removed_key_ids"]
    assert graph.writes == ["add CE (globex)", "remove g1"]  # initech's secret, about to expire, is not ours to renew
    assert "client_secret" not in result and "client_secret_created" not in result  # flat fields belong to app_secret
    assert "text-" not in str(result["diff"])


def test_single_app_secret_keeps_its_flat_result_fields():
    graph = FakeGraph(app={"id": "app-object", "appId": "app-id", "displayName": "CE Email", "passwordCredentials": [],
                           "uniqueName": "ce-email", "requiredResourceAccess": azuread.desired_required_resource_access([], {IMAP, POP})},
                      sp={"id": "client-sp", "appId": "app-id"}, assignments=[IMAP, POP])
    result = reconcile(graph, app_secret=secret_options(name="CE"))
    assert result["client_secret_created"] is True and result["client_secret"] == "text-CE"
    assert result["client_secret_key_id"] == "new-CE" == result["app_secrets"]["CE"]["key_id"]


def test_check_mode_plans_every_name_and_writes_nothing():
    graph = FakeGraph(app={"id": "app-object", "appId": "app-id", "displayName": "CE Email", "passwordCredentials": [],
                           "uniqueName": "ce-email", "requiredResourceAccess": azuread.desired_required_resource_access([], {IMAP, POP})},
                      sp={"id": "client-sp", "appId": "app-id"}, assignments=[IMAP, POP])
    result = reconcile(graph, check_mode=True, app_secrets=[secret_options(name="A"), secret_options(name="B")])
    assert graph.writes == [] and result["changed"] is True
    assert [result["app_secrets"][n]["created"] for n in "AB"] == [True, True]


def test_another_run_creating_the_app_sp_and_consent_first_is_taken_over_not_duplicated():
    # Our reads found nothing; by the time we write, the other run has made all three.
    theirs = {"id": "app-object", "appId": "app-id", "displayName": "CE Email", "uniqueName": "ce-email", "passwordCredentials": [],
              "requiredResourceAccess": azuread.desired_required_resource_access([], {IMAP, POP})}
    graph = FakeGraph(app=theirs, sp={"id": "their-sp", "appId": "app-id"}, assignments=[IMAP, POP], raced={"app", "sp", "consent"})
    result = reconcile(graph)
    assert result["app_id"] == "app-id" and result["service_principal_id"] == "their-sp"
    assert graph.assignments == [IMAP, POP]
    assert all("another run" in a for a in result["actions"]), result["actions"]
    # The upsert did write (the same values): that one stays a change; the SP and the consent were not ours.
    assert result["changed"] is True
    assert sum("already done by another run" in a for a in result["actions"]) == 3


def test_a_consent_granted_by_another_run_alone_is_no_change():
    app = {"id": "app-object", "appId": "app-id", "displayName": "CE Email", "passwordCredentials": [], "uniqueName": "ce-email",
           "requiredResourceAccess": azuread.desired_required_resource_access([], {IMAP, POP})}
    graph = FakeGraph(app=app, sp={"id": "client-sp", "appId": "app-id"}, assignments=[IMAP, POP], raced={"consent"})
    result = reconcile(graph)
    assert result["changed"] is False and len(result["actions"]) == 2


def test_duplicate_secret_names_are_reported():
    assert azuread.duplicate_names([{"name": "a"}, {"name": "b"}, {"name": "a"}]) == ["a"]


def test_other_parts_are_what_the_collection_does_not_manage():
    app = {"requiredResourceAccess": [
        {"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": IMAP, "type": "Role"}, {"id": "exo-scope", "type": "Scope"}]},
        {"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": [{"id": "user-read", "type": "Scope"}]}],
        "keyCredentials": [{"keyId": "k1", "displayName": "CN=ops"}],
        "passwordCredentials": [named("CE mailbox access (acme)", "s1", 30), named("ce 2025", "s2", 30)]}
    assert azuread.other_parts(app, {IMAP, POP}, ["CE mailbox access (acme)"]) == [
        "delegated permission exo-scope of Office 365 Exchange Online", "delegated permission user-read of Microsoft Graph",
        "certificate 'CN=ops'", "client secret 'ce 2025'"]
    assert azuread.other_parts({"requiredResourceAccess": [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": POP, "type": "Role"}]}],
                                "passwordCredentials": [named("CE", "s1", 30)]}, {IMAP, POP}, ["CE"]) == []


def test_an_app_holding_what_the_collection_does_not_manage_is_not_deleted():
    app = {"id": "app-object", "appId": "app-id", "uniqueName": "ce-email", "displayName": "CE Email",
           "requiredResourceAccess": [{"resourceAppId": "00000003-0000-0000-c000-000000000000",
                                       "resourceAccess": [{"id": "user-read", "type": "Scope"}]}],
           "passwordCredentials": [named("ce 2025", "s2", 30)]}
    graph = FakeGraph(app=app)
    graph.delete_application = lambda object_id: graph.writes.append("delete " + object_id)
    with pytest.raises(Exception) as refused:
        reconcile(graph, state="absent", unique_name="ce-email")
    assert graph.writes == []
    assert "holds what this collection does not manage: delegated permission user-read of Microsoft Graph" in str(refused.value)
    app["requiredResourceAccess"] = [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": IMAP, "type": "Role"}]}]
    result = reconcile(graph, state="absent", unique_name="ce-email")
    assert graph.writes == ["delete app-object"] and result["changed"]  # its secrets go with it
