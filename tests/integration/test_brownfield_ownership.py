# -*- coding: utf-8 -*-
"""The modules alone on the brownfield world's directories: what they take for CE's own, and what they say and report
when a service answers something they did not ask for, or refuses their only write. Each test starts from the world's seed;
the lab's write journal says what was touched."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from brownfield import DIRECTORIES, World, status

GET_SERVICE_PRINCIPAL = r'"CmdletName":\s*"Get-ServicePrincipal"'


def exchange_args(lab, directory_auth, name, **options):
    args = directory_auth(lab, name, exchange_endpoint=lab.vars["lab_exchange_endpoint"])
    args.update(options)
    return args


def ce_app(lab, name):
    """The "CE Email" an administrator made by hand in a directory: (application, its service principal id)."""
    state = lab.directory_state(name)
    apps = state["applications"].values() if isinstance(state["applications"], dict) else state["applications"]
    app = next(a for a in apps if a["displayName"] == "CE Email")
    sps = state["servicePrincipals"].values() if isinstance(state["servicePrincipals"], dict) else state["servicePrincipals"]
    return app, next(s["id"] for s in sps if s["appId"] == app["appId"])


def test_a_lookup_that_answers_another_apps_service_principal_never_touches_it(fresh_brownfield_lab, run_module, directory_auth):
    lab = fresh_brownfield_lab
    app, sp_id = ce_app(lab, "dunmore")  # the runbook walked half-way: no Exchange service principal yet
    records_sync = next(s for s in lab.exchange_state("dunmore")["service_principals"] if s["DisplayName"] == "Dunmore Records Sync")
    # Exchange answers the lookup of CE's app with another app's service principal (a lookup that matched loosely).
    lab.fail_next("exchange", 200, method="POST", path_regex="InvokeCommand", body_regex=GET_SERVICE_PRINCIPAL, count=5,
                  body={"@odata.context": "%s/adminapi/beta/$metadata#ServicePrincipal" % lab.vars["lab_exchange_endpoint"],
                        "value": [records_sync]})
    result = run_module("exo_service_principal", exchange_args(lab, directory_auth, "dunmore", app_id=app["appId"], object_id=sp_id))
    assert not result.get("failed"), result.get("msg")
    assert lab.foreign_writes() == []
    registered = [(s["AppId"], s["ObjectId"]) for s in lab.exchange_state("dunmore")["service_principals"]]
    assert (records_sync["AppId"], records_sync["ObjectId"]) in registered and (app["appId"], sp_id) in registered
    assert [e["endpoint"] for e in lab.journal()] == ["POST InvokeCommand New-ServicePrincipal"]
    assert not any("Remove-ServicePrincipal" in action for action in result["actions"])


def test_an_exchange_registration_by_the_apps_object_id_is_repaired_and_said(fresh_brownfield_lab, run_module, directory_auth):
    lab = fresh_brownfield_lab
    app, sp_id = ce_app(lab, "bellows")
    result = run_module("exo_service_principal", exchange_args(lab, directory_auth, "bellows", app_id=app["appId"], object_id=sp_id))
    assert result["changed"] is True and result["replaced_object_id"] == app["id"]
    assert [s["ObjectId"] for s in lab.exchange_state("bellows")["service_principals"] if s["AppId"] == app["appId"]] == [sp_id]
    assert lab.foreign_writes() == []  # the Archiver's registration and its FullAccess were not addressed


def test_a_binary_error_body_never_reaches_the_message_as_bytes(fresh_brownfield_lab, run_module, directory_auth):
    lab = fresh_brownfield_lab
    nul_bytes = base64.b64encode(b"\x00" * 48).decode("ascii")
    # Twice: a 403 is tried once more with a fresh token (a permission granted meanwhile).
    lab.fail_next("graph", 403, method="GET", path_regex=r"^/v1\.0/applications", count=2, body_base64=nul_bytes,
                  content_type="application/json")
    result = run_module("azuread_app", dict(directory_auth(lab, "adatum"), display_name="CE Email", unique_name="ce-email"))
    assert result["failed"] is True
    assert "binary body of 48 bytes" in result["msg"] and "\\u0000" not in result["_raw"] and "\x00" not in result["_raw"]
    assert "adatum" in result["msg"] or DIRECTORIES["adatum"] in result["msg"]


def test_a_task_whose_only_write_was_refused_changed_nothing(fresh_brownfield_lab, run_module, directory_auth):
    lab = fresh_brownfield_lab
    args = dict(directory_auth(lab, "eastwind"), display_name="CE Email", unique_name="ce-email")
    assert run_module("azuread_app", args)["changed"] is True  # the app, made where there was none
    # eastwind's policy caps secret lifetimes at 180 days and Graph's refusal does not say so: the one write is refused.
    refused = run_module("azuread_app", dict(args, app_secrets=[{"name": "CE mailbox access (harbor)"}]))
    assert refused["failed"] is True and refused["changed"] is False
    assert "azuread_app_registration_secret_lifetime_days" in refused["msg"] and "CredentialInvalidLifetimeAsPerAppPolicy" in refused["msg"]
    assert [(e["endpoint"], e["status"]) for e in lab.journal()][-1] == ("POST /v1.0/applications/{id}/addPassword", 400)


def test_ce_never_gets_a_client_id_without_its_secret(fresh_brownfield_lab, run_module):
    """fjord's CE tenant administrator made OAuth settings by hand under the collection's name, for Records Sync (another app
    of dunmore), with its secret. CE's app (dunmore's "CE Email") goes into them only together with a secret of it."""
    lab = fresh_brownfield_lab
    beacon = lab.vars["lab_ce_deployments"]["beacon"]
    portal = dict(ce_url=beacon["url"], ce_token=beacon["admin_token"], ca_path=lab.vars["lab_ca_path"])
    app, _ = ce_app(lab, "dunmore")
    other_app_id = "0d7c5e2a-9f41-4c3b-8a6e-2b1d0c9f8e7a"
    made_by_hand = dict(portal, ce_tenant="fjord", name="Exchange Online OAuth", client_id=other_app_id, client_secret="typed-by-hand",
                        tenant_id=DIRECTORIES["dunmore"], authority_host="login.microsoftonline.com")
    assert run_module("ce_oauth_settings", made_by_hand)["changed"] is True
    mark = len(lab.journal())

    ours = dict(made_by_hand, client_id=app["appId"], client_secret=None)
    refused = run_module("ce_oauth_settings", ours)  # no secret of CE's app at hand: nothing is written
    assert refused.get("failed") is True and lab.journal(mark) == []
    switched = run_module("ce_oauth_settings", dict(ours, client_secret="a-secret-of-ces-app"))
    (entry,) = lab.journal(mark)
    (change,) = [o for o in entry["objects"] if o["kind"] == "ce_oauth_settings"]
    assert switched["changed"] is True and {"client_id", "client_secret"} <= set(change["fields"]), change


def test_ok_is_said_only_where_ce_logs_in_with_what_it_holds(fresh_brownfield_lab, run_module, tmp_path):
    """fjord's administrator made OAuth settings by hand under the collection's name, for another app, with a secret typed
    by hand. site.yml must leave CE logging in with what CE holds before it says ok: the proof logs in only with a secret
    CE got from this run, never with one the run merely holds."""
    lab = fresh_brownfield_lab
    beacon = lab.vars["lab_ce_deployments"]["beacon"]
    run_module("ce_oauth_settings", dict(ce_url=beacon["url"], ce_token=beacon["admin_token"], ca_path=lab.vars["lab_ca_path"],
                                         ce_tenant="fjord", name="Exchange Online OAuth", client_id="0d7c5e2a-9f41-4c3b-8a6e-2b1d0c9f8e7a",
                                         client_secret="typed-by-hand", tenant_id=DIRECTORIES["dunmore"],
                                         authority_host="login.microsoftonline.com"))
    result = World(lab, tmp_path).run("site.yml", "--limit", "fjord")
    oracle = lab.ce_login_oracle("beacon", "fjord")
    assert oracle["ok"], oracle["causes"]  # CE itself logs in (earlier releases gave CE a client id without its secret)
    assert status(result)["fjord"] == "ok" and "logins 2/2 ok" in result.summary["fjord"][0], result.output[-3000:]


def test_a_grant_for_an_unknown_principal_goes_to_nobody_else(fresh_brownfield_lab, run_module, directory_auth):
    """Exchange answers the lookup of a principal it does not know with another app's service principal: no FullAccess is
    given to that app, and the task fails naming the principal it was given."""
    lab = fresh_brownfield_lab
    records_sync = next(s for s in lab.exchange_state("dunmore")["service_principals"] if s["DisplayName"] == "Dunmore Records Sync")
    lab.fail_next("exchange", 200, method="POST", path_regex="InvokeCommand", body_regex=GET_SERVICE_PRINCIPAL, count=5,
                  body={"@odata.context": "%s/adminapi/beta/$metadata#ServicePrincipal" % lab.vars["lab_exchange_endpoint"],
                        "value": [records_sync]})
    unknown = "3f0c9b1e-7d2a-4e5f-9a8b-1c2d3e4f5a6b"
    result = run_module("exo_mailbox_permission", exchange_args(lab, directory_auth, "dunmore", user=unknown,
                                                               mailboxes=["ce-appointments@dunmore.onmicrosoft.com"]))
    assert result["failed"] is True and unknown in result["msg"] and "no right was given to anyone else" in result["msg"]
    assert lab.journal() == [] and lab.foreign_writes() == []


def test_removing_an_unknown_apps_exchange_principal_removes_nothing_else(fresh_brownfield_lab, run_module, directory_auth):
    lab = fresh_brownfield_lab
    records_sync = next(s for s in lab.exchange_state("dunmore")["service_principals"] if s["DisplayName"] == "Dunmore Records Sync")
    lab.fail_next("exchange", 200, method="POST", path_regex="InvokeCommand", body_regex=GET_SERVICE_PRINCIPAL, count=5,
                  body={"@odata.context": "%s/adminapi/beta/$metadata#ServicePrincipal" % lab.vars["lab_exchange_endpoint"],
                        "value": [records_sync]})
    result = run_module("exo_service_principal", exchange_args(lab, directory_auth, "dunmore", app_id="5e1d2c3b-4a59-4687-9a0b-c1d2e3f4a5b6",
                                                               state="absent"))
    assert not result.get("failed") and result["changed"] is False, result
    assert lab.journal() == [] and records_sync["ObjectId"] in [s["ObjectId"] for s in lab.exchange_state("dunmore")["service_principals"]]
