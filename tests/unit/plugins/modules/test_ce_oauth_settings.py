# -*- coding: utf-8 -*-
"""ce_oauth_settings against the in-memory Portal."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from fake_portal import URL, FakePortal, ModuleRunner  # noqa: E402  pylint: disable=wrong-import-position

TENANT_ID = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
CLIENT_ID = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c"
SECRET = "first-secret-value~1"


@pytest.fixture
def portal():
    fake = FakePortal()
    yield fake
    assert fake.contract_problems() == []


@pytest.fixture
def run(portal, monkeypatch, capsys):
    return ModuleRunner(portal, monkeypatch, capsys)


def args(**kwargs):
    base = {"ce_tenant": "acme", "name": "Exchange Online OAuth", "client_id": CLIENT_ID, "client_secret": SECRET, "tenant_id": TENANT_ID}
    base.update(kwargs)
    # None means "not given", as omit does in a task.
    return dict((k, v) for k, v in base.items() if v is not None)


def stored(portal, tenant="acme"):
    return next(iter(portal.settings.get(tenant, {}).values()), None)


def test_create_with_the_runbooks_values_then_rerun_changes_nothing(portal, run):
    result = run("ce_oauth_settings", args())
    assert result["changed"] is True and result["client_secret_updated"] is True
    settings = stored(portal)
    assert settings["token_endpoint_url"] == "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT_ID
    assert settings["scopes"] == ["https://outlook.office365.com/.default"] and settings["client_id"] == CLIENT_ID
    assert portal.secrets[settings["id"]] == SECRET
    assert result["oauth_settings"]["client_secret_set"] is True and result["oauth_settings"]["id"] == settings["id"]
    assert SECRET not in result["_raw"] and "client_secret" not in str(result["diff"]).replace("client_secret_set", "")

    writes = len(portal.writes())
    again = run("ce_oauth_settings", args())
    assert again["changed"] is False and again["client_secret_updated"] is False and len(portal.writes()) == writes


def test_on_create_keeps_the_stored_secret_even_when_another_is_given(portal, run):
    run("ce_oauth_settings", args())
    result = run("ce_oauth_settings", args(client_secret="a-different-secret"))
    assert result["changed"] is False and portal.secrets[stored(portal)["id"]] == SECRET


def test_always_sends_the_secret_and_says_so_without_showing_it(portal, run):
    run("ce_oauth_settings", args())
    result = run("ce_oauth_settings", args(client_secret="rotated-secret-value", update_secret="always"))
    assert result["changed"] is True and result["client_secret_updated"] is True
    assert result["actions"] == ["update OAuth settings 'Exchange Online OAuth': client secret replaced"]
    assert result["diff"]["after"]["client_secret_replaced"] is True
    assert portal.secrets[stored(portal)["id"]] == "rotated-secret-value" and "rotated-secret-value" not in result["_raw"]


def test_settings_without_a_stored_secret_get_it_on_create_policy(portal, run):
    existing = portal.add_settings("acme", "Exchange Online OAuth", secret=None,
                                   token_endpoint_url="https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT_ID)
    result = run("ce_oauth_settings", args())
    assert result["changed"] is True and portal.secrets[existing["id"]] == SECRET


def test_create_without_a_secret_fails_clearly_and_writes_nothing(portal, run):
    result = run("ce_oauth_settings", args(client_secret=None))
    assert result["failed"] is True
    assert result["msg"].startswith("CE deployment %s, tenant acme, OAuth settings 'Exchange Online OAuth': client_secret is required" % URL)
    assert portal.writes() == []


def test_existing_settings_need_no_secret(portal, run):
    run("ce_oauth_settings", args())
    assert run("ce_oauth_settings", args(client_secret=None))["changed"] is False


def test_check_mode_writes_nothing(portal, run):
    result = run("ce_oauth_settings", args(), check_mode=True)
    assert result["changed"] is True and result["oauth_settings"]["id"] is None and portal.writes() == []
    assert result["diff"]["after"]["client_secret_set"] is True


def test_drift_is_repaired_and_the_secret_left_alone(portal, run):
    run("ce_oauth_settings", args())
    settings = stored(portal)
    settings.update(scopes=["https://graph.microsoft.com/.default"], revision=settings["revision"] + 1)
    result = run("ce_oauth_settings", args(client_secret="not-sent"))
    assert result["changed"] is True and result["client_secret_updated"] is False
    assert result["actions"] == ["update OAuth settings 'Exchange Online OAuth': scopes https://graph.microsoft.com/.default -> "
                                 "https://outlook.office365.com/.default"]
    assert "client_secret" not in portal.log[-1][4] and portal.secrets[settings["id"]] == SECRET


@pytest.mark.parametrize("cloud,url,scope", [
    ("usgov", "https://login.microsoftonline.us/%s/oauth2/v2.0/token", "https://outlook.office365.us/.default"),
    ("usgov_dod", "https://login.microsoftonline.us/%s/oauth2/v2.0/token", "https://outlook-dod.office365.us/.default"),
    ("china", "https://login.chinacloudapi.cn/%s/oauth2/v2.0/token", "https://partner.outlook.cn/.default"),
])
def test_sovereign_clouds(portal, run, cloud, url, scope):
    run("ce_oauth_settings", args(cloud=cloud))
    assert stored(portal)["token_endpoint_url"] == url % TENANT_ID and stored(portal)["scopes"] == [scope]


def test_explicit_token_endpoint_scopes_and_authority_host(portal, run):
    run("ce_oauth_settings", args(tenant_id=None, token_endpoint_url="https://login.example.test/t/oauth2/v2.0/token",
                                  scopes=["https://outlook.office365.com/.default", "offline_access"]))
    assert stored(portal)["token_endpoint_url"] == "https://login.example.test/t/oauth2/v2.0/token"
    run("ce_oauth_settings", args(name="Lab", authority_host="127.0.0.1:8443"))
    assert portal.settings["acme"][sorted(portal.settings["acme"])[-1]]["token_endpoint_url"] == \
        "https://127.0.0.1:8443/%s/oauth2/v2.0/token" % TENANT_ID


def test_too_old_ce_fails_with_the_version_found(monkeypatch, capsys):
    portal = FakePortal(version="7.4.3")
    result = ModuleRunner(portal, monkeypatch, capsys)("ce_oauth_settings", args())
    assert result["failed"] is True and "requires CE 7.4 CU4 or later" in result["msg"] and "CE 7.4.3" in result["msg"]
    assert portal.writes() == [] and [entry[1] for entry in portal.log] == ["/info"]


@pytest.mark.parametrize("overrides,expected", [
    ({"client_id": "CE Email"}, "client_id 'CE Email' is not a GUID"),
    ({"tenant_id": "not a tenant"}, "neither a GUID"),
    ({"token_endpoint_url": "http://login.example.test/token", "tenant_id": None}, "must be an https URL"),
    ({"ce_tenant": "Acme"}, "is not a Portal tenant name"),
    ({"token_endpoint_url": "https://x.example/token"}, "mutually exclusive"),
    ({"tenant_id": None}, "tenant_id, token_endpoint_url"),
    ({"update_secret": "always", "client_secret": None}, "client_secret"),
])
def test_bad_input_fails_before_any_write(portal, run, overrides, expected):
    result = run("ce_oauth_settings", args(**overrides))
    assert result["failed"] is True and expected in result["msg"], result["msg"]
    assert portal.writes() == []


def test_unknown_tenant(portal, run):
    result = run("ce_oauth_settings", args(ce_tenant="umbrella"))
    assert result["failed"] is True and "404 tenant_not_found" in result["msg"] and "check ce_tenant" in result["msg"]


def test_tenant_admin_of_another_tenant_is_refused(portal, run):
    result = run("ce_oauth_settings", args(ce_tenant="globex", ce_token="acme-admin-token"))
    assert result["failed"] is True and "tenant globex" in result["msg"] and "403" in result["msg"]
    assert result["request_id"] in result["msg"]


def test_tenant_admin_on_its_own_tenant(portal, run):
    assert run("ce_oauth_settings", args(ce_token="acme-admin-token"))["changed"] is True


def test_removal(portal, run):
    run("ce_oauth_settings", args())
    gone = run("ce_oauth_settings", {"ce_tenant": "acme", "name": "Exchange Online OAuth", "state": "absent"})
    assert gone["changed"] is True and portal.settings["acme"] == {}
    assert run("ce_oauth_settings", {"ce_tenant": "acme", "name": "Exchange Online OAuth", "state": "absent"})["changed"] is False


def test_removal_with_an_owner_removes_only_the_settings_of_that_app(portal, run):
    """offboard.yml removes a CE tenant's OAuth settings only when they name CE's app: another app's stay, and so does anything
    when CE's app is not known (an empty client_id)."""
    run("ce_oauth_settings", args())
    absent = {"ce_tenant": "acme", "name": "Exchange Online OAuth", "state": "absent"}
    written = portal.writes()
    for owner, named in ((HAND_APP, HAND_APP), ("", "(not known in the directory)")):
        refused = run("ce_oauth_settings", dict(absent, client_id=owner))
        assert refused["failed"] is True and portal.settings["acme"] != {} and portal.writes() == written, refused
        assert "name app %s, not CE's app %s" % (CLIENT_ID, named) in refused["msg"] and "were not removed" in refused["msg"]
        assert "tenant acme" in refused["msg"] and "'Exchange Online OAuth'" in refused["msg"]
    gone = run("ce_oauth_settings", dict(absent, client_id=CLIENT_ID.upper()))
    assert gone["changed"] is True and portal.settings["acme"] == {}


def test_removal_while_a_connection_uses_them_fails_clearly(portal, run):
    settings = portal.add_settings("acme", "Exchange Online OAuth")
    portal.add_connection("acme", "Exchange Online", portal.add_gateway("Exchange Online")["id"], settings["id"], receive=True)
    result = run("ce_oauth_settings", {"ce_tenant": "acme", "name": "Exchange Online OAuth", "state": "absent"})
    assert result["failed"] is True and "in_use" in result["msg"] and "email connection" in result["msg"]


# -- settings made by hand: adopted only through the tenant's Exchange Online connection ------------------------------
HAND_APP = "9d3e1f20-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
HAND_SECRET = "typed-in-by-hand~2"
OUR_SECRET_START = "2026-06-01T00:00:00Z"


def hand_made(portal, settings_name="O365 OAuth", client_id=HAND_APP, connection=True):
    """What the runbook's CE tenant administrator made by hand, a year before CE's app got its current secret."""
    gateway = portal.gateway = portal.add_gateway("Office 365")
    settings = portal.add_settings("acme", settings_name, client_id=client_id, secret=HAND_SECRET)
    settings["_secret_updated_at"] = "2025-06-01T00:00:00.000Z"
    if connection:
        portal.add_connection("acme", "Office 365", gateway["id"], settings_id=settings["id"], receive=True)
    return settings


def not_held(**kwargs):
    return args(update_secret="when_not_held", client_secret_start=OUR_SECRET_START, gateway="Exchange Online", **kwargs)


def test_settings_the_tenants_connection_uses_are_adopted_and_switched_with_a_secret_in_one_write(portal, run):
    settings = hand_made(portal)
    result = run("ce_oauth_settings", not_held())
    assert result["changed"] is True and result["adopted"] is True and result["client_secret_updated"] is True
    assert result["oauth_settings"]["name"] == "O365 OAuth"  # keeps the name its administrator gave it
    writes = portal.writes()
    assert [(w[0], w[1]) for w in writes] == [("PUT", "/tenants/acme/oauth-settings/%s" % settings["id"])]
    assert writes[0][4]["client_id"] == CLIENT_ID and writes[0][4]["client_secret"] == SECRET  # the client id with its secret
    assert portal.secrets[settings["id"]] == SECRET and stored(portal)["client_id"] == CLIENT_ID
    assert len(portal.settings["acme"]) == 1  # no second settings object
    assert any("'O365 OAuth'" in str(w) and "made by hand" in str(w) for w in result["warnings"])

    again = run("ce_oauth_settings", not_held())
    assert again["changed"] is False and again["client_secret_held"] is True and len(portal.writes()) == 1


def test_adopted_settings_of_another_app_without_a_secret_to_give_are_not_written(portal, run):
    hand_made(portal)
    result = run("ce_oauth_settings", not_held(client_secret=None))
    assert result["changed"] is False and result["client_secret_needed"] is True and result["client_secret_held"] is False
    assert HAND_APP in result["client_secret_needed_reason"] and "not one of CE's app" in result["client_secret_needed_reason"]
    assert portal.writes() == [] and portal.secrets[stored(portal)["id"]] == HAND_SECRET

    plan = run("ce_oauth_settings", not_held(client_secret=None), check_mode=True)
    assert plan["changed"] is True and portal.writes() == []
    assert "update OAuth settings 'O365 OAuth'" in plan["actions"][0] and "with a new client secret" in plan["actions"][0]


def test_hand_made_secret_of_the_same_app_is_replaced_because_it_cannot_be_vouched_for(portal, run):
    settings = hand_made(portal, client_id=CLIENT_ID)
    result = run("ce_oauth_settings", not_held())
    assert result["changed"] is True and "client secret replaced" in result["actions"][0]
    assert portal.secrets[settings["id"]] == SECRET


def test_settings_no_connection_uses_are_left_alone(portal, run):
    settings = hand_made(portal, settings_name="Old experiment", connection=False)
    result = run("ce_oauth_settings", not_held())
    assert result["adopted"] is False and result["oauth_settings"]["name"] == "Exchange Online OAuth"
    assert [w[0] for w in portal.writes()] == ["POST"]
    assert portal.secrets[settings["id"]] == HAND_SECRET and settings["client_id"] == HAND_APP


def test_connections_on_the_gateway_with_different_settings_stop_the_task_naming_them(portal, run):
    settings = hand_made(portal)
    other = portal.add_settings("acme", "Second try", client_id=HAND_APP)
    portal.add_connection("acme", "Office 365 (2)", portal.gateway["id"], settings_id=other["id"], receive=True)
    result = run("ce_oauth_settings", not_held())
    assert result["failed"] is True
    assert "use 2 different ones" in result["msg"] and "'Office 365'" in result["msg"] and "'Office 365 (2)'" in result["msg"]
    assert "ce_email_oauth_settings_name" in result["msg"] and portal.writes() == []


def test_a_new_client_id_goes_only_with_a_secret_of_it_whatever_update_secret_says(portal, run):
    settings = portal.add_settings("acme", "Exchange Online OAuth", client_id=HAND_APP, secret=HAND_SECRET)
    # on_create would keep a stored secret: not when the settings name another app.
    switched = run("ce_oauth_settings", args())
    assert switched["changed"] is True and switched["client_secret_updated"] is True
    body = portal.writes()[0][4]
    assert body["client_id"] == CLIENT_ID and body["client_secret"] == SECRET and portal.secrets[settings["id"]] == SECRET


def test_a_new_client_id_without_a_secret_fails_and_writes_nothing(portal, run):
    settings = portal.add_settings("acme", "Exchange Online OAuth", client_id=HAND_APP, secret=HAND_SECRET)
    refused = run("ce_oauth_settings", args(client_secret=None))
    assert refused["failed"] is True and refused["changed"] is False and portal.writes() == []
    assert HAND_APP in refused["msg"] and "client_secret was not given" in refused["msg"]
    assert stored(portal)["client_id"] == HAND_APP and portal.secrets[settings["id"]] == HAND_SECRET
