"""The lab's SMTP submission endpoint (aiosmtpd): STARTTLS, XOAUTH2 decided as Exchange Online
decides it (SMTP.SendAsApp), basic auth with lab mailbox passwords and a per-directory switch,
and the messages it accepts, with real smtplib clients."""

import email.message
import smtplib
import time

import pytest
from ceops_lab.imap_testing import grant_mailbox_access, imap_xoauth2, smtp_login, smtp_session, smtp_xoauth2

EXO_RESOURCE = "https://outlook.office365.com"
MAILBOX = "ce-support@contoso.onmicrosoft.com"
OTHER = "ce-sales@contoso.onmicrosoft.com"
OAUTH_REFUSED = "5.7.3 Authentication unsuccessful ["
BASIC_DISABLED = "5.7.139 Authentication unsuccessful, basic authentication is disabled. ["


@pytest.fixture
def automation(fresh_lab, contoso):
    grant_mailbox_access(fresh_lab, "contoso", contoso["automation_client_id"], contoso["automation_service_principal_id"], MAILBOX)
    return contoso


@pytest.fixture
def smtp(fresh_lab):
    session = smtp_session(fresh_lab)
    yield session
    try:
        session.quit()
    except (OSError, smtplib.SMTPException):
        session.close()


def send_token(lab, roles=("SMTP.SendAsApp",)):
    return lab.mint_token("contoso", resource=EXO_RESOURCE, roles=list(roles))


def test_xoauth2_with_a_real_token_then_a_test_message_is_recorded_and_delivered(fresh_lab, automation, smtp):
    # Admin consent for SMTP.SendAsApp, then a token from the lab's token endpoint (not minted).
    fresh_lab.grant_app_roles("contoso", "SMTP.SendAsApp", "IMAP.AccessAsApp", resource="exchange")
    token = fresh_lab.token("contoso", resource=EXO_RESOURCE)
    assert smtp.esmtp_features["auth"].split() == ["LOGIN", "XOAUTH2"]
    assert smtp_xoauth2(smtp, MAILBOX, token) == (235, "2.7.0 Authentication successful")
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = MAILBOX, OTHER, "Test"
    message["Message-ID"] = "<lab-test-1@contoso.onmicrosoft.com>"
    message.set_content("Test message", subtype="html")
    assert smtp.send_message(message) == {}

    recorded = fresh_lab.smtp_messages()
    assert len(recorded) == 1
    entry = recorded[0]
    assert (entry["mailbox"], entry["mechanism"], entry["mail_from"], entry["rcpt_to"], entry["subject"], entry["message_id"]) == (
        MAILBOX, "XOAUTH2", MAILBOX, [OTHER], "Test", "<lab-test-1@contoso.onmicrosoft.com>")
    assert entry["tenant_id"] == automation["tenant_id"] and entry["app_id"] == automation["automation_client_id"]
    assert fresh_lab.writes("smtp") == 1 and fresh_lab.count("smtp", "AUTH", "XOAUTH2") == 1

    # The recipient is a lab mailbox: its INBOX has the message.
    grant_mailbox_access(fresh_lab, "contoso", automation["automation_client_id"], automation["automation_service_principal_id"], OTHER)
    result = imap_xoauth2(fresh_lab, OTHER, token, keep_open=True)
    try:
        assert result.ok, result.text
        assert result.conn.select("INBOX", readonly=True) == ("OK", [b"1"])
        typ, data = result.conn.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: Test" in data[0][1]
    finally:
        result.conn.logout()


def test_xoauth2_after_a_334_continuation(fresh_lab, automation, smtp):
    assert smtp_xoauth2(smtp, MAILBOX, send_token(fresh_lab), initial_response=False)[0] == 235


@pytest.mark.parametrize("case, reason", [("imap_role_only", "missing_role"), ("no_full_access", "no_full_access"),
                                          ("expired", "token_invalid"), ("malformed", "malformed")])
def test_xoauth2_refusals_are_535_5_7_3(fresh_lab, automation, smtp, case, reason):
    token, mailbox = send_token(fresh_lab), MAILBOX
    if case == "imap_role_only":
        token = send_token(fresh_lab, roles=("IMAP.AccessAsApp",))
    elif case == "no_full_access":
        mailbox = OTHER
    elif case == "expired":
        token = fresh_lab.mint_token("contoso", resource=EXO_RESOURCE, roles=["SMTP.SendAsApp"], lifetime=-3600)
    if case == "malformed":
        code, raw = smtp.docmd("AUTH", "XOAUTH2 dXNlcj1ub2JvZHk=")  # "user=nobody", no auth=Bearer
        text = raw.decode()
    else:
        code, text = smtp_xoauth2(smtp, mailbox, token)
    assert code == 535 and text.startswith(OAUTH_REFUSED)
    entry = fresh_lab.mail_logins("smtp")[-1]
    assert (entry["outcome"], entry["reason"], entry["mechanism"]) == ("refused", reason, "XOAUTH2")
    # A refused session may try again (Exchange keeps the connection).
    assert smtp_xoauth2(smtp, MAILBOX, send_token(fresh_lab))[0] == 235


def test_basic_auth_with_the_mailbox_password_and_the_switch(fresh_lab):
    password = fresh_lab.mailbox_password(MAILBOX)
    assert fresh_lab.vars["lab_mailbox_passwords"][MAILBOX] == password

    def login(user, secret):
        session = smtp_session(fresh_lab)
        try:
            return smtp_login(session, user, secret)
        finally:
            session.quit()

    assert login(MAILBOX, password) == (235, "2.7.0 Authentication successful")
    code, text = login(MAILBOX, password + "x")
    assert code == 535 and text.startswith(OAUTH_REFUSED)
    assert login("nobody@contoso.onmicrosoft.com", password)[0] == 535

    assert fresh_lab.smtp_settings("contoso") == {"directory": "contoso", "tenant_id": fresh_lab.directory("contoso")["tenant_id"],
                                                  "smtp_basic_auth_enabled": True}
    fresh_lab.smtp_settings("contoso", smtp_basic_auth_enabled=False)
    code, text = login(MAILBOX, password)
    assert code == 535 and text.startswith(BASIC_DISABLED)
    assert login("ce-support@fabrikam.onmicrosoft.com", fresh_lab.mailbox_password("ce-support@fabrikam.onmicrosoft.com"))[0] == 235
    assert [e["reason"] for e in fresh_lab.mail_logins("smtp")] == ["password", "bad_password", "unknown_user", "basic_auth_disabled",
                                                                    "password"]
    fresh_lab.reset()
    assert fresh_lab.smtp_settings("contoso")["smtp_basic_auth_enabled"] is True
    assert fresh_lab.mail_logins("smtp") == []


def test_tls_and_auth_come_first(fresh_lab, automation):
    plain = smtp_session(fresh_lab, starttls=False)
    try:
        assert "starttls" in plain.esmtp_features and "auth" not in plain.esmtp_features
        assert plain.docmd("AUTH", "LOGIN")[0] == 530
        assert plain.docmd("MAIL", "FROM:<%s>" % MAILBOX)[0] == 530
    finally:
        plain.quit()
    session = smtp_session(fresh_lab)
    try:
        code, text = session.docmd("MAIL", "FROM:<%s>" % MAILBOX)
        assert (code, text) == (530, b"5.7.57 Client not authenticated to send mail. [CEOPSLAB01.lab.prod.outlook.invalid]")
        assert session.docmd("AUTH", "PLAIN")[0] == 504  # Exchange Online offers LOGIN and XOAUTH2 only
    finally:
        session.quit()


def test_sending_as_another_mailbox_is_refused(fresh_lab, automation, smtp):
    assert smtp_xoauth2(smtp, MAILBOX, send_token(fresh_lab))[0] == 235
    code, text = smtp.docmd("MAIL", "FROM:<%s>" % OTHER)
    assert code == 550 and text.startswith(b"5.7.60 SMTP; Client does not have permissions to send as this sender")
    assert smtp.docmd("MAIL", "FROM:<%s>" % MAILBOX.upper())[0] == 250
    assert fresh_lab.smtp_messages() == []


def test_latency_and_injected_failures(fresh_lab, automation, smtp):
    token = send_token(fresh_lab)
    fresh_lab.fail_next("smtp", 503)
    code, text = smtp_xoauth2(smtp, MAILBOX, token)
    assert code == 454 and text.startswith("4.7.0 Temporary authentication failure")
    fresh_lab.set_faults("smtp", latency_ms=300)
    started = time.monotonic()
    assert smtp_xoauth2(smtp, MAILBOX, token)[0] == 235
    assert 0.3 <= time.monotonic() - started < 1.5
    counters = fresh_lab.counters()["services"]["smtp"]
    assert counters["faults"] == {"AUTH XOAUTH2": 1} and counters["statuses"] == {"454": 1, "235": 1}


def test_vars_and_state(fresh_lab):
    variables = fresh_lab.vars
    assert variables["lab_smtp"]["host"] == "127.0.0.1"
    assert fresh_lab.info["listeners"]["smtp"]["url"] == "smtp://127.0.0.1:%d" % variables["lab_smtp"]["port"]
    passwords = variables["lab_mailbox_passwords"]
    assert len(passwords) == 18 and all(address == address.lower() for address in passwords)
    state = fresh_lab.state("smtp")
    assert state["settings"]["contoso"]["smtp_basic_auth_enabled"] is True and state["messages"] == []
