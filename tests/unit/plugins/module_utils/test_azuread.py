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
