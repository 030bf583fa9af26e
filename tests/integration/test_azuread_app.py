# -*- coding: utf-8 -*-
"""azuread_app against the lab's Entra ID and Graph: the behaviour an operator relies on."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import re

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.graph import EXCHANGE_APP_ID, GraphClient
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import MicrosoftAuth


IMAP, POP = "5e5addcd-3e8d-4e90-baf5-964efab2b20a", "cb842b43-da6e-4506-86fe-bb12199c656d"
SECRET = {"name": "CE mailbox access", "lifetime_days": 180}


def graph_totals(lab):
    return lab.counters()["services"].get("graph", {}).get("totals", {"reads": 0, "writes": 0})


def token_requests(lab):
    return sum(lab.counters()["tokens"].values())


@pytest.fixture
def app_args(directory_auth):
    def build(lab, **kwargs):
        args = directory_auth(lab)
        args.update(display_name="CE Email", unique_name="ce-email", app_secret=dict(SECRET))
        args.update(kwargs)
        return args
    return build


def graph_client(lab, name="contoso"):
    d = lab.vars["lab_directories"][name]
    auth = MicrosoftAuth(d["tenant_id"], d["automation_client_id"], d["automation_client_secret"],
                         authority_host=lab.vars["lab_authority_host"], graph_endpoint=lab.vars["lab_graph_endpoint"],
                         ca_path=lab.vars["lab_ca_path"])
    return GraphClient(auth)


def exchange_assignments(graph, service_principal_id):
    exchange = graph.get_service_principal(EXCHANGE_APP_ID)
    return dict((a["appRoleId"], a["id"]) for a in graph.list_app_role_assignments(service_principal_id)
                if a["resourceId"] == exchange["id"])


def test_create_then_rerun_changes_nothing(fresh_lab, run_module, app_args):
    first = run_module("azuread_app", app_args(fresh_lab))
    assert first["changed"] is True, first
    assert first["tenant_id"] == fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"]
    assert first["client_secret_created"] is True and first["client_secret"]
    assert first["service_principal_id"] and first["service_principal_id"] != first["object_id"]
    assert first["consented_permissions"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]

    # What the lab holds is what the runbook asks for.
    graph = graph_client(fresh_lab)
    app = graph.find_applications(unique_name="ce-email")[0]
    assert app["appId"] == first["app_id"] and app["displayName"] == "CE Email"
    assert graph.get_service_principal(first["app_id"])["id"] == first["service_principal_id"]
    assert set(exchange_assignments(graph, first["service_principal_id"])) == {IMAP, POP}
    assert [c["keyId"] for c in app["passwordCredentials"]] == [first["client_secret_key_id"]]

    writes = graph_totals(fresh_lab)["writes"]
    second = run_module("azuread_app", app_args(fresh_lab))
    assert second["changed"] is False, second["actions"]
    assert "client_secret" not in second and second["client_secret_created"] is False
    assert second["app_id"] == first["app_id"] and second["client_secret_key_id"] == first["client_secret_key_id"]
    assert graph_totals(fresh_lab)["writes"] == writes


def test_the_new_secret_really_gets_a_token_with_the_consented_roles(fresh_lab, run_module, app_args):
    result = run_module("azuread_app", app_args(fresh_lab))
    ce_auth = MicrosoftAuth(result["tenant_id"], result["app_id"], result["client_secret"],
                            authority_host=fresh_lab.vars["lab_authority_host"], ca_path=fresh_lab.vars["lab_ca_path"])
    import base64
    import json
    token = ce_auth.exchange_token()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert sorted(claims["roles"]) == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    assert claims["oid"] == result["service_principal_id"]


def test_check_mode_reports_the_plan_and_writes_nothing(fresh_lab, run_module, app_args):
    planned = run_module("azuread_app", app_args(fresh_lab), check_mode=True)
    assert planned["changed"] is True
    assert any("create app registration" in a for a in planned["actions"])
    assert any("create client secret" in a for a in planned["actions"])
    assert planned["diff"]["before"] == {"state": "absent"}
    assert planned["diff"]["after"]["consented_permissions"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    assert graph_totals(fresh_lab)["writes"] == 0
    assert not graph_client(fresh_lab).find_applications(unique_name="ce-email")


def test_check_mode_on_a_converged_app_is_quiet(fresh_lab, run_module, app_args):
    run_module("azuread_app", app_args(fresh_lab))
    fresh_lab.reset_counters()
    result = run_module("azuread_app", app_args(fresh_lab), check_mode=True)
    assert result["changed"] is False and graph_totals(fresh_lab)["writes"] == 0


def test_drift_in_permissions_and_consent_is_shown_then_repaired(fresh_lab, run_module, app_args):
    created = run_module("azuread_app", app_args(fresh_lab))
    graph = graph_client(fresh_lab)
    # Someone removed POP from the requested permissions and revoked IMAP's consent in the portal.
    graph.update_application(created["object_id"], {"requiredResourceAccess": [
        {"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": IMAP, "type": "Role"}]}]})
    graph.remove_app_role_assignment(created["service_principal_id"], exchange_assignments(graph, created["service_principal_id"])[IMAP])

    fresh_lab.reset_counters()
    drift = run_module("azuread_app", app_args(fresh_lab), check_mode=True)
    assert drift["changed"] is True and graph_totals(fresh_lab)["writes"] == 0
    assert drift["diff"]["before"]["exchange_permissions"] == ["IMAP.AccessAsApp"]
    assert drift["diff"]["after"]["exchange_permissions"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    assert sorted(drift["actions"]) == ["grant admin consent for IMAP.AccessAsApp", "update requested Exchange permissions of the app registration"]

    repaired = run_module("azuread_app", app_args(fresh_lab))
    assert repaired["changed"] is True
    assert set(exchange_assignments(graph, created["service_principal_id"])) == {IMAP, POP}
    assert run_module("azuread_app", app_args(fresh_lab))["changed"] is False


def test_dropping_a_permission_revokes_its_consent_and_keeps_other_apis(fresh_lab, run_module, app_args):
    created = run_module("azuread_app", app_args(fresh_lab))
    graph = graph_client(fresh_lab)
    other_api = {"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": [{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"}]}
    app = graph.get_application(created["object_id"])
    graph.update_application(created["object_id"], {"requiredResourceAccess": app["requiredResourceAccess"] + [other_api]})

    result = run_module("azuread_app", app_args(fresh_lab, exchange_permissions=["IMAP.AccessAsApp"]))
    assert "revoke admin consent for POP.AccessAsApp" in result["actions"]
    assert set(exchange_assignments(graph, created["service_principal_id"])) == {IMAP}
    assert other_api in graph.get_application(created["object_id"])["requiredResourceAccess"]


def test_secret_renewal_keeps_the_old_secret_until_retired(fresh_lab, run_module, app_args):
    created = run_module("azuread_app", app_args(fresh_lab))
    graph = graph_client(fresh_lab)
    # A secret of that name that expires in 10 days, as if the first one was made long ago.
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    graph.remove_password(created["object_id"], created["client_secret_key_id"])
    old = graph.add_password(created["object_id"], "CE mailbox access", soon)

    renewed = run_module("azuread_app", app_args(fresh_lab))
    assert renewed["changed"] is True and renewed["client_secret_created"] is True and renewed["client_secret"]
    keys = [c["keyId"] for c in graph.get_application(created["object_id"])["passwordCredentials"]]
    assert sorted(keys) == sorted([old["keyId"], renewed["client_secret_key_id"]])  # the old one still works

    retired = run_module("azuread_app", app_args(fresh_lab, app_secret=dict(SECRET, retire_previous=True)))
    assert retired["changed"] is True and retired["client_secret_created"] is False
    assert [c["keyId"] for c in graph.get_application(created["object_id"])["passwordCredentials"]] == [renewed["client_secret_key_id"]]
    assert run_module("azuread_app", app_args(fresh_lab, app_secret=dict(SECRET, retire_previous=True)))["changed"] is False


def test_secrets_of_other_names_are_left_alone(fresh_lab, run_module, app_args):
    created = run_module("azuread_app", app_args(fresh_lab))
    graph = graph_client(fresh_lab)
    theirs = graph.add_password(created["object_id"], "someone else's", "2030-01-01T00:00:00Z")
    run_module("azuread_app", app_args(fresh_lab, app_secret=dict(SECRET, rotate=True, retire_previous=True)))
    keys = [c["keyId"] for c in graph.get_application(created["object_id"])["passwordCredentials"]]
    assert theirs["keyId"] in keys and created["client_secret_key_id"] not in keys


def test_state_absent_deletes_and_is_idempotent(fresh_lab, run_module, directory_auth, app_args):
    created = run_module("azuread_app", app_args(fresh_lab))
    gone = run_module("azuread_app", directory_auth(fresh_lab, unique_name="ce-email", state="absent"))
    assert gone["changed"] is True and gone["app_id"] == created["app_id"]
    assert not graph_client(fresh_lab).find_applications(unique_name="ce-email")
    assert run_module("azuread_app", directory_auth(fresh_lab, unique_name="ce-email", state="absent"))["changed"] is False


def test_eventual_consistency_window_is_waited_out(fresh_lab, run_module, app_args):
    fresh_lab.set_faults("graph", consistency_window=3)
    result = run_module("azuread_app", app_args(fresh_lab))
    assert result["changed"] is True and result["service_principal_id"]
    assert result["consented_permissions"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]
    fresh_lab.clear_faults()
    assert run_module("azuread_app", app_args(fresh_lab))["changed"] is False


def test_throttling_is_retried_within_bounds(fresh_lab, run_module, app_args):
    fresh_lab.set_faults("graph", rate_429=0.3, retry_after=0, seed=7)
    result = run_module("azuread_app", app_args(fresh_lab))
    assert result["changed"] is True
    counters = fresh_lab.counters()["services"]["graph"]
    assert counters["totals"]["faults"] > 0
    fresh_lab.clear_faults()
    # Exactly one app, one secret, one assignment per permission: retries duplicated nothing.
    graph = graph_client(fresh_lab)
    apps = graph.find_applications(display_name="CE Email")
    assert len(apps) == 1 and len(apps[0]["passwordCredentials"]) == 1
    assert len(exchange_assignments(graph, result["service_principal_id"])) == 2


def test_one_token_per_directory_client_and_resource_across_invocations(fresh_lab, run_module, app_args):
    for _ in range(3):
        run_module("azuread_app", app_args(fresh_lab))
    assert token_requests(fresh_lab) == 1


def test_certificate_credential(fresh_lab, run_module, app_args):
    d = fresh_lab.vars["lab_directories"]["northwind"]
    args = app_args(fresh_lab, tenant_id=d["tenant_id"], client_id=d["automation_client_id"], client_secret=None,
                    client_certificate_path=d["automation_certificate_path"])
    assert run_module("azuread_app", args)["changed"] is True


def test_ambiguous_display_name_fails_and_lists_the_candidates(fresh_lab, run_module, app_args):
    graph = graph_client(fresh_lab)
    first = graph.create_application({"displayName": "CE Email"})
    second = graph.create_application({"displayName": "CE Email"})
    result = run_module("azuread_app", app_args(fresh_lab, unique_name=None))
    assert result["failed"] is True
    assert "2 app registrations are named 'CE Email'" in result["msg"] and first["appId"] in result["msg"] and second["appId"] in result["msg"]
    assert "ms_apps['%s'].app_id" % fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"] in result["msg"]
    assert [c["app_id"] for c in result["candidates"]] == [first["appId"], second["appId"]]
    assert all(re.match(r"^\d{4}-\d\d-\d\d$", c["created"]) for c in result["candidates"])


@pytest.mark.parametrize("overrides,expected", [
    ({"tenant_id": "not-a-tenant"}, "neither a GUID"),
    ({"client_id": "CE automation"}, "not a GUID"),
    ({"client_secret": "wrong-secret"}, "AADSTS7000215"),
    ({"tenant_id": "00000000-0000-4000-8000-000000000001"}, "AADSTS90002"),
    ({"authority_host": "http://127.0.0.1:9"}, "not https"),
    ({"authority_host": "https://127.0.0.1:9"}, "reachable"),
    ({"ca_path": "/etc/ssl/certs/ca-certificates.crt"}, "TLS verification failed"),
])
def test_bad_input_fails_with_one_clear_message_and_writes_nothing(fresh_lab, run_module, app_args, overrides, expected):
    result = run_module("azuread_app", app_args(fresh_lab, **overrides))
    assert result["failed"] is True
    assert expected in result["msg"], result["msg"]
    assert "Traceback" not in result["_raw"]
    assert graph_totals(fresh_lab)["writes"] == 0


def test_wrong_secret_error_names_the_directory_and_says_what_to_do(fresh_lab, run_module, app_args):
    result = run_module("azuread_app", app_args(fresh_lab, client_secret="wrong-secret"))
    tenant = fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"]
    assert tenant in result["msg"] and "Value (not its ID)" in result["msg"]
    assert result["request_id"]


def test_missing_graph_permission_fails_clearly(fresh_lab, run_module, app_args):
    tenant = fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"]
    fresh_lab.revoke_app_roles(tenant, "AppRoleAssignment.ReadWrite.All")
    result = run_module("azuread_app", app_args(fresh_lab))
    assert result["failed"] is True
    # Refused from the token's roles before the consent write is sent, naming the permission and what to do.
    assert "may not grant or revoke admin consent" in result["msg"] and "AppRoleAssignment.ReadWrite.All" in result["msg"]
    assert "with admin consent" in result["msg"] and result["app_id"] and result["service_principal_id"]
    # A re-run with the permission back finishes what was started.
    fresh_lab.grant_app_roles(tenant, "AppRoleAssignment.ReadWrite.All")
    assert run_module("azuread_app", app_args(fresh_lab))["consented_permissions"] == ["IMAP.AccessAsApp", "POP.AccessAsApp"]


def test_secret_values_never_appear_in_output_except_the_new_secret_field(fresh_lab, run_module, app_args):
    auth_secret = fresh_lab.vars["lab_directories"]["contoso"]["automation_client_secret"]
    first = run_module("azuread_app", app_args(fresh_lab))
    assert auth_secret not in first["_raw"]
    raw_without_field = first["_raw"].replace('"client_secret": "%s"' % first["client_secret"], "")
    assert first["client_secret"] not in raw_without_field
    assert first["client_secret"] not in str(first["diff"])
