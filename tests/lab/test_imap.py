"""The lab's IMAP endpoint (a private Dovecot asking the lab): XOAUTH2 logins decided as Exchange
Online decides them, with real imaplib clients over implicit TLS with the lab CA."""

import json
import socket
import types

import pytest
import requests
from ceops_lab.imap_testing import grant_mailbox_access, imap_connect, imap_xoauth2
from ceops_lab.testing import claims_of

EXO = "00000002-0000-0ff1-ce00-000000000000"
EXO_RESOURCE = "https://outlook.office365.com"
IMAP_ROLE_ID = "5e5addcd-3e8d-4e90-baf5-964efab2b20a"
MAILBOX = "ce-support@contoso.onmicrosoft.com"
REFUSED = "[CONTACTADMIN] AUTHENTICATE failed."  # Exchange: "NO AUTHENTICATE failed."; Dovecot adds a response code


def exchange_token(lab, roles=("IMAP.AccessAsApp",), **kwargs):
    return lab.mint_token("contoso", resource=kwargs.pop("resource", EXO_RESOURCE), roles=list(roles), **kwargs)


def last_login(lab):
    return lab.mail_logins("imap")[-1]


@pytest.fixture
def automation(fresh_lab, contoso):
    """contoso's automation identity registered in Exchange with FullAccess on MAILBOX."""
    grant_mailbox_access(fresh_lab, "contoso", contoso["automation_client_id"], contoso["automation_service_principal_id"], MAILBOX)
    return contoso


def invoke(lab, contoso, cmdlet, parameters):
    """One cmdlet through the lab's Exchange InvokeCommand with the automation identity's token."""
    token = lab.token("contoso", resource=EXO_RESOURCE)
    response = requests.post("%s/adminapi/beta/%s/InvokeCommand" % (lab.url("exchange"), contoso["tenant_id"]),
                             json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}},
                             headers={"Authorization": "Bearer " + token}, verify=lab.ca_file, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["value"]


def test_the_runbook_end_to_end_with_a_real_token(fresh_lab, contoso, graph, token_request):
    """App + secret + service principal in Graph, IMAP.AccessAsApp consent, New-ServicePrincipal and
    Add-MailboxPermission in Exchange: each missing step is a refusal, the last one lets CE in."""
    app = graph.create_app("CE Email")
    secret = graph.post("/applications/%s/addPassword" % app["id"], {}).json()["secretText"]
    sp = graph.create_sp(app["appId"])
    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret, "scope": EXO_RESOURCE + "/.default"}

    def login():
        status, _, body = token_request(contoso["tenant_id"], form)
        assert status == 200, body
        return imap_xoauth2(fresh_lab, MAILBOX, body["access_token"])

    steps = []
    steps.append(("no consent", login()))
    exchange = graph.resource_sp(EXO)
    assert graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"],
                      {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": IMAP_ROLE_ID}).status_code == 201
    steps.append(("consent only", login()))
    invoke(fresh_lab, contoso, "New-ServicePrincipal", {"AppId": app["appId"], "ObjectId": sp["id"], "DisplayName": "CE Email"})
    steps.append(("registered", login()))
    invoke(fresh_lab, contoso, "Add-MailboxPermission", {"Identity": MAILBOX, "User": sp["id"], "AccessRights": ["FullAccess"]})
    steps.append(("full access", login()))

    assert [(name, result.ok, result.text) for name, result in steps[:3]] == [(name, False, REFUSED) for name, _ in steps[:3]]
    assert steps[3][1].ok and steps[3][1].text == "Logged in"
    reasons = [entry["reason"] for entry in fresh_lab.mail_logins("imap")]
    assert reasons == ["missing_role", "service_principal_not_registered", "no_full_access", "full_access"]
    ok = fresh_lab.mail_logins("imap", outcome="ok")[0]
    assert (ok["mailbox"], ok["app_id"], ok["service_principal_id"], ok["tenant_id"]) == (MAILBOX, app["appId"], sp["id"], contoso["tenant_id"])
    assert all(result.seconds < 1.0 for _, result in steps), [(n, r.seconds) for n, r in steps]


def test_inbox_opens_after_the_login(fresh_lab, automation):
    result = imap_xoauth2(fresh_lab, MAILBOX, exchange_token(fresh_lab), keep_open=True)
    try:
        assert result.ok, result.text
        typ, data = result.conn.select("INBOX", readonly=True)
        assert (typ, data) == ("OK", [b"0"])
        assert result.conn.noop()[0] == "OK"
    finally:
        result.conn.logout()


def test_capabilities_greeting_and_sasl_ir(fresh_lab, automation):
    conn = imap_connect(fresh_lab)
    try:
        assert conn.welcome.startswith(b"* OK") and b"The Microsoft Exchange IMAP4 service is ready." in conn.welcome
        assert {"AUTH=XOAUTH2", "SASL-IR", "IMAP4REV1"} <= set(conn.capabilities)
        assert conn.sock.getpeername()[0] == "127.0.0.1" and conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.logout()
    token = exchange_token(fresh_lab)
    with_ir = imap_xoauth2(fresh_lab, MAILBOX, token, initial_response=True)
    assert with_ir.ok, with_ir.text
    refused_ir = imap_xoauth2(fresh_lab, "ce-sales@contoso.onmicrosoft.com", token, initial_response=True)
    assert (refused_ir.ok, refused_ir.text) == (False, REFUSED)


@pytest.mark.parametrize("case", ["no_role", "pop_role_only", "not_registered", "application_object_id", "no_full_access", "deny",
                                  "other_directory_mailbox", "unknown_mailbox", "expired", "bad_signature", "graph_audience",
                                  "other_tenant_issuer"])
def test_refused_logins_look_alike_and_the_lab_log_says_why(fresh_lab, automation, case):
    token = exchange_token(fresh_lab)
    mailbox = MAILBOX
    expected = {"no_role": "missing_role", "pop_role_only": "missing_role", "not_registered": "service_principal_not_registered",
                "application_object_id": "service_principal_not_registered", "no_full_access": "no_full_access",
                "deny": "full_access_denied", "other_directory_mailbox": "mailbox_not_found", "unknown_mailbox": "mailbox_not_found",
                "expired": "token_invalid", "bad_signature": "token_invalid", "graph_audience": "token_invalid",
                "other_tenant_issuer": "token_invalid"}[case]
    if case == "no_role":
        token = exchange_token(fresh_lab, roles=())
    elif case == "pop_role_only":
        token = exchange_token(fresh_lab, roles=("POP.AccessAsApp", "SMTP.SendAsApp"))
    elif case == "not_registered":
        fabrikam = fresh_lab.directory("fabrikam")
        token = fresh_lab.mint_token("fabrikam", resource=EXO_RESOURCE, roles=["IMAP.AccessAsApp"])
        mailbox = fabrikam["mailboxes"][0]
    elif case == "application_object_id":
        # The classic runbook mistake: Exchange knows the app under its *application* object id.
        fresh_lab.exchange_settings("fabrikam", validate_service_principals=False)
        fabrikam = fresh_lab.directory("fabrikam")
        fresh_lab.exchange_register_service_principal("fabrikam", fabrikam["automation_client_id"], fabrikam["automation_application_id"])
        fresh_lab.exchange_add_permission("fabrikam", fabrikam["mailboxes"][0], fabrikam["automation_application_id"])
        token = fresh_lab.mint_token("fabrikam", resource=EXO_RESOURCE, roles=["IMAP.AccessAsApp"])
        mailbox = fabrikam["mailboxes"][0]
    elif case == "no_full_access":
        mailbox = "ce-sales@contoso.onmicrosoft.com"
    elif case == "deny":
        fresh_lab.exchange_add_permission("contoso", MAILBOX, automation["automation_service_principal_id"], deny=True)
    elif case == "other_directory_mailbox":
        mailbox = "ce-support@fabrikam.onmicrosoft.com"
    elif case == "unknown_mailbox":
        mailbox = "nobody@contoso.onmicrosoft.com"
    elif case == "expired":
        token = exchange_token(fresh_lab, lifetime=-3600)
    elif case == "bad_signature":
        head, body, signature = token.split(".")
        token = "%s.%s.%s" % (head, body, signature[:-8] + ("AAAAAAAA" if not signature.endswith("AAAAAAAA") else "BBBBBBBB"))
    elif case == "graph_audience":
        token = exchange_token(fresh_lab, resource="https://graph.microsoft.com")
    elif case == "other_tenant_issuer":
        token = exchange_token(fresh_lab, claims={"iss": "https://sts.windows.net/%s/" % fresh_lab.directory("fabrikam")["tenant_id"]})

    result = imap_xoauth2(fresh_lab, mailbox, token)
    assert (result.ok, result.text) == (False, REFUSED)
    assert result.seconds < 1.0
    entry = last_login(fresh_lab)
    assert (entry["outcome"], entry["reason"], entry["mechanism"]) == ("refused", expected, "XOAUTH2"), entry
    if case == "expired":
        assert "expired" in entry["detail"]
    if case == "application_object_id":
        assert "is registered with ObjectId %s" % fresh_lab.directory("fabrikam")["automation_application_id"] in entry["detail"]
    if case == "other_directory_mailbox":
        assert "mailbox of fabrikam" in entry["detail"]


def test_inherited_full_access_lets_in_and_deny_wins(fresh_lab, contoso):
    sp_id = contoso["automation_service_principal_id"]
    grant_mailbox_access(fresh_lab, "contoso", contoso["automation_client_id"], sp_id, MAILBOX, inherited=True)
    token = exchange_token(fresh_lab)
    assert imap_xoauth2(fresh_lab, MAILBOX, token).ok
    assert last_login(fresh_lab)["reason"] == "inherited_full_access"
    fresh_lab.exchange_add_permission("contoso", MAILBOX, sp_id, deny=True, inherited=True)
    assert not imap_xoauth2(fresh_lab, MAILBOX, token).ok
    assert last_login(fresh_lab)["reason"] == "full_access_denied"


@pytest.mark.parametrize("audience", ["https://outlook.office365.com/", EXO])
def test_every_form_of_exchange_audience_is_accepted(fresh_lab, automation, audience):
    token = exchange_token(fresh_lab, resource=audience)
    assert claims_of(token)["aud"] == audience
    assert imap_xoauth2(fresh_lab, MAILBOX, token).ok


def test_mailbox_by_any_address_and_case(fresh_lab, automation):
    token = exchange_token(fresh_lab)
    assert imap_xoauth2(fresh_lab, MAILBOX.upper(), token).ok
    assert imap_xoauth2(fresh_lab, "ce-support@contoso.mail.onmicrosoft.com", token).ok  # a secondary smtp: address


def test_logins_are_counted_per_outcome_directory_and_mailbox(fresh_lab, automation):
    token = exchange_token(fresh_lab)
    imap_xoauth2(fresh_lab, MAILBOX, token)
    imap_xoauth2(fresh_lab, MAILBOX, token)
    imap_xoauth2(fresh_lab, "ce-sales@contoso.onmicrosoft.com", token)
    stats = fresh_lab.mail_login_stats("imap")
    assert (stats["ok"], stats["refused"]) == (2, 1)
    assert stats["reasons"] == {"full_access": 2, "no_full_access": 1}
    assert stats["directories"][automation["tenant_id"]] == {"ok": 2, "refused": 1}
    assert stats["mailboxes"] == {MAILBOX: {"ok": 2, "refused": 0}, "ce-sales@contoso.onmicrosoft.com": {"ok": 0, "refused": 1}}
    # Lab counters: logins are reads (a check-mode run makes no writes), per directory too.
    counters = fresh_lab.counters()
    assert counters["services"]["imap"]["reads"] == {"AUTHENTICATE XOAUTH2": 3}
    assert counters["services"]["imap"]["statuses"] == {"OK": 2, "NO": 1}
    assert fresh_lab.writes("imap") == 0 and fresh_lab.count("imap", "AUTHENTICATE") == 3
    assert counters["directories"][automation["tenant_id"]]["imap"]["reads"] == 3
    fresh_lab.reset()
    assert fresh_lab.mail_logins("imap") == [] and fresh_lab.mail_login_stats("imap")["ok"] == 0


def test_latency_and_injected_failures(fresh_lab, automation):
    token = exchange_token(fresh_lab)
    fresh_lab.set_faults("imap", latency_ms=300)
    slow = imap_xoauth2(fresh_lab, MAILBOX, token)
    assert slow.ok and 0.3 <= slow.seconds < 1.5
    fresh_lab.clear_faults("imap")
    fresh_lab.fail_next("imap", 503)
    failed = imap_xoauth2(fresh_lab, MAILBOX, token)
    assert not failed.ok and failed.text.startswith("[UNAVAILABLE] Temporary authentication failure.")
    assert imap_xoauth2(fresh_lab, MAILBOX, token).ok
    assert fresh_lab.counters()["services"]["imap"]["faults"] == {"AUTHENTICATE XOAUTH2": 1}


def test_vars_state_and_loopback_only(fresh_lab):
    variables = fresh_lab.vars
    host, port = variables["lab_imap"]["host"], variables["lab_imap"]["port"]
    assert host == "127.0.0.1" and isinstance(port, int)
    assert fresh_lab.info["listeners"]["imap"]["url"] == "imaps://127.0.0.1:%d" % port
    state = fresh_lab.state("imap")
    assert state["enabled"] and state["port"] == port
    with open(state["dovecot_log"], encoding="utf-8") as handle:
        assert "starting up for imap" in handle.read()
    with open(fresh_lab.state_dir + "/dovecot/dovecot.conf", encoding="utf-8") as handle:
        conf = handle.read()
    assert "listen = 127.0.0.1\n" in conf and "auth_failure_delay = 0" in conf
    # The same port on another local address is not served (Dovecot binds 127.0.0.1 only).
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("127.0.0.2", port)) != 0
    json.dumps(state)  # JSON all the way


def test_without_dovecot_the_start_fails_clearly_unless_imap_is_switched_off(monkeypatch, tmp_path):
    from ceops_lab import dovecot, imap
    monkeypatch.setattr(dovecot, "find_binary", lambda: None)
    stub = types.SimpleNamespace(seed={"directories": []}, state_dir=str(tmp_path), server_cert="-", server_key="-")
    with pytest.raises(SystemExit, match="dovecot not installed: run scripts/ensure-system-packages.sh dovecot-imapd"):
        imap.ImapService(stub).start()
    monkeypatch.setenv("CEOPS_LAB_NO_IMAP", "1")
    switched_off = imap.ImapService(stub)
    switched_off.start()
    assert (switched_off.url, switched_off.ansible_vars()) == ("", {})
