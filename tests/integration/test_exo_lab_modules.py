# -*- coding: utf-8 -*-
"""exo_service_principal and exo_mailbox_permission against the lab's Exchange Online, over REST and
over WinRM (pywinrm really speaking WS-Management to the lab): the behaviour an operator relies on."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import ExchangeClient
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_rest import RestRunner
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import MicrosoftAuth

DOMAIN = "contoso.onmicrosoft.com"
MAILBOXES = ["ce-%s@%s" % (name, DOMAIN) for name in ("support", "sales", "billing", "returns", "info", "escalations")]
UNKNOWN = "ce-nope@" + DOMAIN
WRITE_CMDLETS = ("New-ServicePrincipal", "Set-ServicePrincipal", "Remove-ServicePrincipal", "Add-MailboxPermission", "Remove-MailboxPermission")


# -- helpers ----------------------------------------------------------------------------------------
def winrm_options(lab, name="contoso", **overrides):
    w = lab.vars["lab_winrm"]
    options = dict(host=w["host"], port=w["port"], scheme=w["scheme"], path=w["path"], transport=w["transport"], username=w["username"],
                   password=w["password"], ca_path=lab.vars["lab_ca_path"], certificate_thumbprint=w["certificate_thumbprints"][name])
    options.update(overrides)
    return options


def cmdlets(lab, transport):
    """Cmdlets the lab's Exchange ran, by name, for one transport's counters."""
    service = "exchange" if transport == "rest" else "winrm"
    bucket = lab.counters()["services"].get(service, {})
    counted = {}
    for kind in ("reads", "writes"):
        for endpoint, number in bucket.get(kind, {}).items():
            for prefix in ("POST InvokeCommand ", "CMDLET "):
                if endpoint.startswith(prefix):
                    counted[endpoint[len(prefix):]] = counted.get(endpoint[len(prefix):], 0) + number
    return counted


def writes(lab, transport):
    return sum(n for cmdlet, n in cmdlets(lab, transport).items() if cmdlet in WRITE_CMDLETS)


def exchange_client(lab, name="contoso"):
    """An Exchange client of the automation identity, for changes 'by hand'."""
    d = lab.vars["lab_directories"][name]
    auth = MicrosoftAuth(d["tenant_id"], d["automation_client_id"], d["automation_client_secret"], authority_host=lab.vars["lab_authority_host"],
                         exchange_endpoint=lab.vars["lab_exchange_endpoint"], ca_path=lab.vars["lab_ca_path"])
    return ExchangeClient(RestRunner(auth, d["tenant_id"]), d["tenant_id"])


def comparable(result):
    """A module result without what legitimately differs between transports and runs."""
    keep = dict((k, v) for k, v in result.items() if k not in ("_raw", "invocation", "warnings", "request_id", "status"))
    if "mailboxes" in keep:
        keep["mailboxes"] = [dict((k, v) for k, v in r.items() if k != "request_id") for r in keep["mailboxes"]]
    return keep


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ce_app(fresh_lab, run_module, directory_auth):
    """CE's app in contoso, made by azuread_app as the Azure AD admin would."""
    result = run_module("azuread_app", directory_auth(fresh_lab, display_name="CE Email", unique_name="ce-email"))
    assert result["changed"] is True, result.get("msg")
    fresh_lab.reset_counters()
    return result


@pytest.fixture(params=["rest", "winrm"])
def transport(request):
    return request.param


@pytest.fixture
def exo_args(fresh_lab, directory_auth, transport):
    """``exo_args(**options)`` -> module options for contoso over the test's transport."""
    def build(name="contoso", **options):
        args = directory_auth(fresh_lab, name, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"])
        if transport == "winrm":
            args.update(transport="winrm", winrm=winrm_options(fresh_lab, name))
        args.update(options)
        return args
    return build


@pytest.fixture
def registered(ce_app, run_module, exo_args, fresh_lab):
    """The Exchange service principal of CE's app exists."""
    result = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]))
    assert result["changed"] is True, result.get("msg")
    fresh_lab.reset_counters()
    return result


# -- exo_service_principal --------------------------------------------------------------------------
def test_service_principal_is_created_then_left_alone(fresh_lab, ce_app, run_module, exo_args, transport):
    args = exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"])
    created = run_module("exo_service_principal", args)
    assert created["changed"] is True, created.get("msg"); assert created["object_id"] == ce_app["service_principal_id"]
    assert created["display_name"] == "CE Email"  # from the directory, as none was given
    assert created["diff"]["before"] == {"state": "absent"}
    stored = fresh_lab.exchange_state("contoso")["service_principals"]
    assert [(s["AppId"], s["ObjectId"]) for s in stored] == [(ce_app["app_id"], ce_app["service_principal_id"])]

    fresh_lab.reset_counters()
    again = run_module("exo_service_principal", args)
    assert again["changed"] is False and again["actions"] == [] and writes(fresh_lab, transport) == 0


def test_service_principal_check_mode_writes_nothing(fresh_lab, ce_app, run_module, exo_args, transport):
    planned = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]), check_mode=True)
    assert planned["changed"] is True and planned["actions"][0].startswith("create the Exchange service principal")
    assert writes(fresh_lab, transport) == 0 and fresh_lab.exchange_state("contoso")["service_principals"] == []


def test_the_application_object_id_is_refused_before_exchange_stores_it(fresh_lab, ce_app, run_module, exo_args, transport):
    result = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["object_id"]))
    assert result["failed"] is True
    assert "object id of the APPLICATION" in result["msg"] and ce_app["service_principal_id"] in result["msg"]
    assert fresh_lab.vars["lab_directories"]["contoso"]["tenant_id"] in result["msg"]
    assert writes(fresh_lab, transport) == 0


def test_without_graph_exchange_itself_refuses_the_application_object_id(fresh_lab, ce_app, run_module, exo_args, transport):
    result = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["object_id"],
                                                          graph_endpoint="https://127.0.0.1:%d" % closed_port(), timeout=5))
    assert result["failed"] is True
    assert "couldn't be found in Microsoft Entra ID" in result["msg"] and "not the application's object id" in result["msg"]
    assert "could not check object_id against Microsoft Graph" in str(result.get("warnings"))
    assert fresh_lab.exchange_state("contoso")["service_principals"] == []


def test_a_service_principal_with_the_wrong_object_id_is_replaced(fresh_lab, ce_app, run_module, exo_args, transport):
    fresh_lab.exchange_register_service_principal("contoso", ce_app["app_id"], ce_app["object_id"], "CE Email")
    result = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]))
    assert result["changed"] is True and "registered with the APPLICATION's object id" in result["actions"][0]
    assert result["diff"]["before"]["object_id"] == ce_app["object_id"] and result["diff"]["after"]["object_id"] == ce_app["service_principal_id"]
    assert cmdlets(fresh_lab, transport).get("Remove-ServicePrincipal") == 1 and cmdlets(fresh_lab, transport).get("New-ServicePrincipal") == 1
    stored = fresh_lab.exchange_state("contoso")["service_principals"]
    assert [s["ObjectId"] for s in stored] == [ce_app["service_principal_id"]]


def test_display_name_drift_is_renamed_and_absent_removes(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    renamed = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"],
                                                           display_name="CE Email (prod)"))
    assert renamed["changed"] is True and cmdlets(fresh_lab, transport) == {"Get-ServicePrincipal": 1, "Set-ServicePrincipal": 1}
    assert fresh_lab.exchange_state("contoso")["service_principals"][0]["DisplayName"] == "CE Email (prod)"
    removed = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], state="absent"))
    assert removed["changed"] is True and fresh_lab.exchange_state("contoso")["service_principals"] == []
    assert run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], state="absent"))["changed"] is False


def test_a_just_created_service_principal_is_waited_for(fresh_lab, ce_app, run_module, exo_args, transport):
    # Exchange and its mailbox servers learn of new principals a few seconds late.
    fresh_lab.set_faults("exchange", consistency_window=3)
    sp = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]))
    assert sp["changed"] is True, sp.get("msg")
    access = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES[:2]))
    assert access["summary"]["added"] == MAILBOXES[:2], access.get("msg")


# -- exo_mailbox_permission -------------------------------------------------------------------------
def test_full_access_is_granted_then_nothing_changes(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    args = exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES)
    granted = run_module("exo_mailbox_permission", args)
    assert granted["changed"] is True and granted["summary"]["added"] == MAILBOXES and granted["summary"]["failed"] == []
    # One lookup of the principal, one read per mailbox, one write per missing grant.
    assert cmdlets(fresh_lab, transport) == {"Get-ServicePrincipal": 1, "Get-MailboxPermission": 6, "Add-MailboxPermission": 6}
    for mailbox in fresh_lab.exchange_state("contoso")["mailboxes"]:
        mine = [p for p in mailbox["permissions"] if p["User"] == ce_app["service_principal_id"]]
        assert [(p["AccessRights"], p["IsInherited"], p["Deny"]) for p in mine] == [(["FullAccess"], False, False)]

    fresh_lab.reset_counters()
    again = run_module("exo_mailbox_permission", args)
    assert again["changed"] is False and again["summary"]["unchanged"] == MAILBOXES
    assert cmdlets(fresh_lab, transport) == {"Get-ServicePrincipal": 1, "Get-MailboxPermission": 6}


def test_check_mode_sends_no_write_cmdlet(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    planned = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES), check_mode=True)
    assert planned["changed"] is True and planned["summary"]["added"] == MAILBOXES
    assert planned["diff"]["after"]["access_rights"][MAILBOXES[0]] == ["FullAccess"]
    assert writes(fresh_lab, transport) == 0
    assert fresh_lab.writes("exchange") == 0 and fresh_lab.writes("winrm") == 0


def test_check_mode_before_anything_exists_plans_both_steps(fresh_lab, ce_app, run_module, exo_args, transport):
    sp = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]), check_mode=True)
    access = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES), check_mode=True)
    assert sp["changed"] is True and access["changed"] is True and access["summary"]["added"] == MAILBOXES
    assert "has no service principal with object id" in str(access["warnings"])
    assert writes(fresh_lab, transport) == 0


def test_drift_is_shown_then_repaired(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    args = exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES)
    run_module("exo_mailbox_permission", args)
    # Someone removed one grant by hand.
    exchange_client(fresh_lab).remove_mailbox_permission(MAILBOXES[2], ce_app["service_principal_id"], ["FullAccess"])
    fresh_lab.reset_counters()

    drift = run_module("exo_mailbox_permission", args, check_mode=True)
    assert drift["changed"] is True and drift["summary"]["added"] == [MAILBOXES[2]] and writes(fresh_lab, transport) == 0
    assert drift["diff"]["before"]["access_rights"][MAILBOXES[2]] == [] and drift["diff"]["after"]["access_rights"][MAILBOXES[2]] == ["FullAccess"]
    repaired = run_module("exo_mailbox_permission", args)
    assert repaired["summary"]["added"] == [MAILBOXES[2]] and cmdlets(fresh_lab, transport)["Add-MailboxPermission"] == 1
    assert run_module("exo_mailbox_permission", args)["changed"] is False


def test_removal_takes_only_the_explicit_grant(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES))
    fresh_lab.reset_counters()
    removed = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES[:2], state="absent"))
    assert removed["summary"]["removed"] == MAILBOXES[:2] and cmdlets(fresh_lab, transport)["Remove-MailboxPermission"] == 2
    state = dict((m["PrimarySmtpAddress"], m) for m in fresh_lab.exchange_state("contoso")["mailboxes"])
    assert not [p for p in state[MAILBOXES[0]]["permissions"] if p["User"] == ce_app["service_principal_id"]]
    assert [p for p in state[MAILBOXES[3]]["permissions"] if p["User"] == ce_app["service_principal_id"]]
    again = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES[:2], state="absent"))
    assert again["changed"] is False


def test_inherited_and_deny_entries_are_reported_not_counted(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    user = ce_app["service_principal_id"]
    fresh_lab.exchange_add_permission("contoso", MAILBOXES[0], user, inherited=True)
    fresh_lab.exchange_add_permission("contoso", MAILBOXES[1], user, deny=True)
    result = run_module("exo_mailbox_permission", exo_args(user=user, mailboxes=MAILBOXES[:3], fail_on_mailbox_error=False))
    inherited, denied, plain = result["mailboxes"]
    assert inherited["result"] == "added" and inherited["inherited_rights"] == ["FullAccess"]
    assert denied["result"] == "failed" and denied["denied_rights"] == ["FullAccess"] and "Deny" in denied["message"]
    assert plain["result"] == "added" and result["summary"]["failed"] == [MAILBOXES[1]]
    assert cmdlets(fresh_lab, transport)["Add-MailboxPermission"] == 2


def test_an_unknown_mailbox_fails_after_the_others_were_processed(fresh_lab, ce_app, registered, run_module, exo_args, transport):
    result = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES[:2] + [UNKNOWN]))
    assert result["failed"] is True and result["changed"] is True
    assert result["summary"]["added"] == MAILBOXES[:2] and result["summary"]["failed"] == [UNKNOWN]
    assert "mailbox %s does not exist in Exchange Online of directory" % UNKNOWN in result["msg"]
    assert "couldn't be found" in result["msg"] and ce_app["service_principal_id"] in result["msg"]
    if transport == "rest":
        assert "request id" in result["msg"]


def test_results_are_the_same_whichever_transport_ran(fresh_lab, ce_app, run_module, directory_auth):
    rest = directory_auth(fresh_lab, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"])
    winrm = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab))
    sp = dict(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"])
    assert comparable(run_module("exo_service_principal", dict(rest, **sp), check_mode=True)) == \
        comparable(run_module("exo_service_principal", dict(winrm, **sp), check_mode=True))
    run_module("exo_service_principal", dict(rest, **sp))
    access = dict(user=ce_app["service_principal_id"], mailboxes=MAILBOXES + [UNKNOWN], fail_on_mailbox_error=False)
    planned_rest = run_module("exo_mailbox_permission", dict(rest, **access), check_mode=True)
    planned_winrm = run_module("exo_mailbox_permission", dict(winrm, **access), check_mode=True)
    assert comparable(planned_rest) == comparable(planned_winrm)
    assert planned_rest["mailboxes"][-1]["message"] == planned_winrm["mailboxes"][-1]["message"]
    done_winrm = run_module("exo_mailbox_permission", dict(winrm, **access))
    again_rest = run_module("exo_mailbox_permission", dict(rest, **access))
    assert done_winrm["summary"]["added"] == MAILBOXES and again_rest["summary"]["unchanged"] == MAILBOXES


def test_throttling_is_retried_and_duplicates_nothing(fresh_lab, ce_app, registered, run_module, directory_auth):
    fresh_lab.set_faults("exchange", rate_429=0.3, retry_after=0, seed=11)
    args = directory_auth(fresh_lab, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"], user=ce_app["service_principal_id"],
                          mailboxes=MAILBOXES)
    result = run_module("exo_mailbox_permission", args)
    assert result["summary"]["added"] == MAILBOXES, result.get("msg")
    assert fresh_lab.counters()["services"]["exchange"]["totals"]["faults"] > 0
    fresh_lab.clear_faults()
    for mailbox in fresh_lab.exchange_state("contoso")["mailboxes"]:
        assert len([p for p in mailbox["permissions"] if p["User"] == ce_app["service_principal_id"]]) == 1
    assert run_module("exo_mailbox_permission", args)["changed"] is False


# -- bad input and missing rights -------------------------------------------------------------------
def test_a_principal_not_registered_in_exchange_fails_before_any_mailbox(fresh_lab, ce_app, run_module, exo_args, transport):
    result = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES))
    assert result["failed"] is True and "has no service principal with object id %s" % ce_app["service_principal_id"] in result["msg"]
    assert "exo_service_principal" in result["msg"]
    assert cmdlets(fresh_lab, transport) == {"Get-ServicePrincipal": 1}


@pytest.mark.parametrize("mailboxes,words", [
    ([], "mailboxes is empty"),
    (["ce-support"], "not an email address"),
    (["x'; Remove-Mailbox -Identity y; '"], "not an email address"),
])
def test_bad_mailbox_lists_fail_with_nothing_sent(fresh_lab, ce_app, run_module, exo_args, transport, mailboxes, words):
    result = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=mailboxes))
    assert result["failed"] is True and words in result["msg"] and "nothing was sent" in result["msg"]
    assert cmdlets(fresh_lab, transport) == {}


@pytest.mark.parametrize("missing", ["Exchange Administrator", "Exchange.ManageAsApp"])
def test_missing_exchange_rights_explain_both_needs(fresh_lab, ce_app, run_module, exo_args, transport, missing):
    if missing == "Exchange.ManageAsApp":
        fresh_lab.revoke_app_roles("contoso", missing, resource="exchange")
    else:
        fresh_lab.revoke_directory_roles("contoso", missing)
    result = run_module("exo_service_principal", exo_args(app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]))
    assert result["failed"] is True
    assert "Exchange.ManageAsApp" in result["msg"] and "Exchange Administrator" in result["msg"]
    access = run_module("exo_mailbox_permission", exo_args(user=ce_app["service_principal_id"], mailboxes=MAILBOXES))
    assert access["failed"] is True and "Exchange.ManageAsApp" in access["msg"]
    assert writes(fresh_lab, transport) == 0


def test_winrm_credentials_refused(fresh_lab, ce_app, run_module, directory_auth):
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab, password="wrong"), user=ce_app["service_principal_id"],
                          mailboxes=MAILBOXES)
    result = run_module("exo_mailbox_permission", args)
    assert result["failed"] is True and "refused the credentials" in result["msg"] and "winrm.password" in result["msg"]
    assert "wrong" not in result["_raw"]


def test_winrm_over_ntlm_works_too(fresh_lab, ce_app, run_module, directory_auth):
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab, transport="ntlm", organization=DOMAIN),
                          app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"])
    assert run_module("exo_service_principal", args)["changed"] is True


def test_winrm_host_unreachable(fresh_lab, ce_app, run_module, directory_auth):
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab, port=closed_port()), app_id=ce_app["app_id"],
                          object_id=ce_app["service_principal_id"], timeout=5)
    result = run_module("exo_service_principal", args)
    assert result["failed"] is True and "did not answer" in result["msg"] and "winrm.host" in result["msg"]


def test_winrm_without_a_secret_uses_the_hosts_certificate(fresh_lab, ce_app, run_module, directory_auth):
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab), app_id=ce_app["app_id"],
                          object_id=ce_app["service_principal_id"])
    del args["client_secret"]
    result = run_module("exo_service_principal", args)
    assert result["changed"] is True and "was not checked against Microsoft Graph" in str(result["warnings"])


def test_a_wrong_certificate_thumbprint_is_explained(fresh_lab, ce_app, run_module, directory_auth):
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab, certificate_thumbprint="AB" * 20),
                          app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"])
    result = run_module("exo_service_principal", args)
    assert result["failed"] is True and "certificate_thumbprint" in result["msg"]


def wsman_messages(lab):
    reads = lab.counters()["services"].get("winrm", {}).get("reads", {})
    return dict((k[len("POST /wsman "):], n) for k, n in reads.items() if k.startswith("POST /wsman ")), \
        reads.get("CONNECT Connect-ExchangeOnline", 0)


def test_over_winrm_a_module_run_is_one_powershell_session(fresh_lab, ce_app, run_module, directory_auth):
    """Issue 18.4: one pwsh process and one Connect-ExchangeOnline per module invocation however many cmdlets it runs, and
    the session is ended (process, shell) when the module ends, also when it fails."""
    args = directory_auth(fresh_lab, transport="winrm", winrm=winrm_options(fresh_lab))
    assert run_module("exo_service_principal", dict(args, app_id=ce_app["app_id"], object_id=ce_app["service_principal_id"]))["changed"]
    fresh_lab.reset_counters()
    granted = run_module("exo_mailbox_permission", dict(args, user=ce_app["service_principal_id"], mailboxes=MAILBOXES, parallelism=4))
    assert granted["summary"]["added"] == MAILBOXES and cmdlets(fresh_lab, "winrm") == {
        "Get-ServicePrincipal": 1, "Get-MailboxPermission": 6, "Add-MailboxPermission": 6}
    messages, connects = wsman_messages(fresh_lab)
    assert (messages["Create"], messages["Command"], messages["Delete"], connects) == (1, 1, 1, 1)
    assert fresh_lab.state("winrm")["open_shells"] == []

    fresh_lab.reset_counters()
    failed = run_module("exo_mailbox_permission", dict(args, user=ce_app["service_principal_id"], mailboxes=MAILBOXES[:2] + [UNKNOWN]))
    assert failed["failed"] is True and UNKNOWN in failed["msg"]
    messages, connects = wsman_messages(fresh_lab)
    assert (messages["Command"], messages["Delete"], connects) == (1, 1, 1) and fresh_lab.state("winrm")["open_shells"] == []
    assert [s["exit_code"] for s in fresh_lab.state("winrm")["scripts"]][-1] == 0  # it ended by itself: stdin closed, disconnected
