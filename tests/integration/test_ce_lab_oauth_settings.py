# -*- coding: utf-8 -*-
"""ce_oauth_settings against the lab's CE Portals."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ce_support import (CLIENT_ID, TENANT_ID, HandEdits, ce_args, deployment,  # noqa: F401 pylint: disable=unused-import
                        settings_named, writes)

SECRET = "lab-secret~first-value-0123456789"


def settings_args(lab, deployment_name="emea", **kwargs):
    args = dict(ce_tenant="acme", name="Exchange Online OAuth", client_id=CLIENT_ID, client_secret=SECRET, tenant_id=TENANT_ID)
    args.update(kwargs)
    return ce_args(lab, deployment_name, **args)


def fingerprint(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def test_create_with_the_runbooks_values_then_rerun_changes_nothing(fresh_lab, run_module):
    first = run_module("ce_oauth_settings", settings_args(fresh_lab))
    assert first["changed"] is True and first["client_secret_updated"] is True
    stored = settings_named(fresh_lab, "acme", "Exchange Online OAuth")
    assert stored["client_id"] == CLIENT_ID and stored["scopes"] == ["https://outlook.office365.com/.default"]
    assert stored["token_endpoint_url"] == "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT_ID
    assert stored["client_secret_sha256_8"] == fingerprint(SECRET)
    assert SECRET not in first["_raw"]

    before = writes(fresh_lab)
    second = run_module("ce_oauth_settings", settings_args(fresh_lab))
    assert second["changed"] is False and second["client_secret_updated"] is False and writes(fresh_lab) == before


def test_check_mode_makes_no_write(fresh_lab, run_module):
    result = run_module("ce_oauth_settings", settings_args(fresh_lab), check_mode=True)
    assert result["changed"] is True and writes(fresh_lab) == 0 and settings_named(fresh_lab, "acme", "Exchange Online OAuth") is None
    assert SECRET not in result["_raw"]


def test_secret_update_policy(fresh_lab, run_module):
    run_module("ce_oauth_settings", settings_args(fresh_lab))
    updated_at = settings_named(fresh_lab, "acme", "Exchange Online OAuth")["client_secret_updated_at"]

    kept = run_module("ce_oauth_settings", settings_args(fresh_lab, client_secret="a-newer-secret-value"))
    assert kept["changed"] is False
    assert settings_named(fresh_lab, "acme", "Exchange Online OAuth")["client_secret_sha256_8"] == fingerprint(SECRET)

    checked = run_module("ce_oauth_settings", settings_args(fresh_lab, client_secret="a-newer-secret-value", update_secret="always"),
                         check_mode=True)
    assert checked["changed"] is True and checked["diff"]["after"]["client_secret_replaced"] is True
    assert "a-newer-secret-value" not in checked["_raw"]

    rotated = run_module("ce_oauth_settings", settings_args(fresh_lab, client_secret="a-newer-secret-value", update_secret="always"))
    assert rotated["changed"] is True and rotated["actions"] == ["update OAuth settings 'Exchange Online OAuth': client secret replaced"]
    stored = settings_named(fresh_lab, "acme", "Exchange Online OAuth")
    assert stored["client_secret_sha256_8"] == fingerprint("a-newer-secret-value") and stored["client_secret_updated_at"] > updated_at
    assert "a-newer-secret-value" not in rotated["_raw"]


def test_existing_settings_need_no_secret_but_new_ones_do(fresh_lab, run_module):
    missing = run_module("ce_oauth_settings", settings_args(fresh_lab, client_secret=None))
    assert missing["failed"] is True and "client_secret is required to create them" in missing["msg"]
    assert missing["msg"].startswith("CE deployment %s, tenant acme, OAuth settings 'Exchange Online OAuth'" % deployment(fresh_lab)["url"])
    assert writes(fresh_lab) == 0
    run_module("ce_oauth_settings", settings_args(fresh_lab))
    assert run_module("ce_oauth_settings", settings_args(fresh_lab, client_secret=None))["changed"] is False


def test_drift_is_repaired_and_the_secret_left_alone(fresh_lab, run_module):
    created = run_module("ce_oauth_settings", settings_args(fresh_lab))
    HandEdits(fresh_lab).edit("/tenants/acme/oauth-settings/" + created["oauth_settings"]["id"],
                              scopes=["https://graph.microsoft.com/.default"], token_endpoint_url="https://login.example.test/x/token")
    drift = run_module("ce_oauth_settings", settings_args(fresh_lab), check_mode=True)
    assert drift["changed"] is True and drift["diff"]["before"]["scopes"] == ["https://graph.microsoft.com/.default"]
    repaired = run_module("ce_oauth_settings", settings_args(fresh_lab))
    assert repaired["changed"] is True and repaired["client_secret_updated"] is False
    stored = settings_named(fresh_lab, "acme", "Exchange Online OAuth")
    assert stored["scopes"] == ["https://outlook.office365.com/.default"] and stored["client_secret_sha256_8"] == fingerprint(SECRET)


def test_token_endpoint_of_the_lab_authority(fresh_lab, run_module):
    run_module("ce_oauth_settings", settings_args(fresh_lab, authority_host=fresh_lab.vars["lab_authority_host"]))
    assert settings_named(fresh_lab, "acme", "Exchange Online OAuth")["token_endpoint_url"] == \
        "%s/%s/oauth2/v2.0/token" % (fresh_lab.vars["lab_authority_host"], TENANT_ID)


def test_removal(fresh_lab, run_module):
    run_module("ce_oauth_settings", settings_args(fresh_lab))
    gone = run_module("ce_oauth_settings", ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online OAuth", state="absent"))
    assert gone["changed"] is True and settings_named(fresh_lab, "acme", "Exchange Online OAuth") is None
    again = run_module("ce_oauth_settings", ce_args(fresh_lab, ce_tenant="acme", name="Exchange Online OAuth", state="absent"))
    assert again["changed"] is False


def test_too_old_ce_fails_with_the_version_found(fresh_lab, run_module):
    result = run_module("ce_oauth_settings", settings_args(fresh_lab, "legacy", ce_tenant="oldco"))
    assert result["failed"] is True and "requires CE 7.4 CU4 or later" in result["msg"] and "runs CE 7.4.3" in result["msg"]
    assert writes(fresh_lab) == 0


def test_a_tenant_administrator_works_on_its_own_tenant_only(fresh_lab, run_module):
    own = run_module("ce_oauth_settings", settings_args(fresh_lab, tenant_admin="acme"))
    assert own["changed"] is True
    other = run_module("ce_oauth_settings", settings_args(fresh_lab, tenant_admin="acme", ce_tenant="globex"))
    assert other["failed"] is True and "tenant globex" in other["msg"] and "HTTP 403 forbidden" in other["msg"]
    assert "may act only on its own tenant" in other["msg"] and other["request_id"] in other["msg"]
    assert settings_named(fresh_lab, "globex", "Exchange Online OAuth") is None


def test_unknown_tenant(fresh_lab, run_module):
    result = run_module("ce_oauth_settings", settings_args(fresh_lab, ce_tenant="umbrella"))
    assert result["failed"] is True and "404 tenant_not_found" in result["msg"] and "check ce_tenant" in result["msg"]


def test_the_portal_refuses_a_duplicate_name_with_its_own_words(fresh_lab, run_module):
    fresh_lab.fail_next("ce", 409, method="POST", path_regex="/oauth-settings$", count=2, retry_after=None,
                        body={"error": {"code": "name_conflict", "message": "OAuth settings named 'Exchange Online OAuth' already exist.",
                                        "details": [{"field": "name", "message": "already used"}]}})
    result = run_module("ce_oauth_settings", settings_args(fresh_lab))
    assert result["failed"] is True and "409 name_conflict" in result["msg"] and "(name: already used)" in result["msg"]
    assert SECRET not in result["_raw"]
