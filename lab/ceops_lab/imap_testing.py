"""Helpers for tests that log in to the lab's IMAP and SMTP endpoints with real clients (imaplib,
smtplib), trusting only the lab CA."""

import base64
import imaplib
import smtplib
import ssl
import time


def xoauth2(user, token):
    """The SASL XOAUTH2 initial response, before base64."""
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


def xoauth2_base64(user, token):
    return base64.b64encode(xoauth2(user, token).encode("utf-8")).decode("ascii")


def client_context(lab):
    context = ssl.create_default_context(cafile=lab.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ImapLogin:
    """Outcome of one IMAP XOAUTH2 login: ok, the server's text, seconds taken, the open connection."""

    def __init__(self, ok, text, seconds, conn):
        self.ok = ok
        self.text = text
        self.seconds = seconds
        self.conn = conn


def imap_connect(lab, timeout=10):
    host, port = lab.mail_endpoint("imap")
    return imaplib.IMAP4_SSL(host, port, ssl_context=client_context(lab), timeout=timeout)


def imap_xoauth2(lab, user, token, initial_response=False, keep_open=False):
    """AUTHENTICATE XOAUTH2 as imaplib does it ("+ " continuation), or with SASL-IR
    (initial_response=True, as most mail clients do). Logs out unless keep_open."""
    conn = imap_connect(lab)
    started = time.monotonic()
    try:
        if initial_response:
            typ, data = conn._simple_command("AUTHENTICATE", "XOAUTH2", xoauth2_base64(user, token))
            if typ == "OK":
                conn.state = "AUTH"
            ok, text = typ == "OK", _text(data)
        else:
            typ, data = conn.authenticate("XOAUTH2", lambda _challenge: xoauth2(user, token))
            ok, text = typ == "OK", _text(data)
    except imaplib.IMAP4.error as exc:
        ok, text = False, _text(exc.args[0] if exc.args else exc)
    seconds = time.monotonic() - started
    if not keep_open:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
        conn = None
    return ImapLogin(ok, text, seconds, conn)


def smtp_session(lab, starttls=True, timeout=10):
    """An smtplib session after EHLO, STARTTLS (lab CA) and the second EHLO."""
    host, port = lab.mail_endpoint("smtp")
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    smtp.ehlo()
    if starttls:
        smtp.starttls(context=client_context(lab))
        smtp.ehlo()
    return smtp


def smtp_xoauth2(smtp, user, token, initial_response=True):
    """(code, text) of AUTH XOAUTH2, with the initial response or after a "334 " round trip."""
    if initial_response:
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + xoauth2_base64(user, token))
    else:
        code, text = smtp.docmd("AUTH", "XOAUTH2")
        if code == 334:
            code, text = smtp.docmd(xoauth2_base64(user, token))
    return code, _text(text)


def smtp_login(smtp, user, password):
    """(code, text) of AUTH LOGIN, as Send-MailMessage does it."""
    smtp.user, smtp.password = user, password
    try:
        code, text = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
    except smtplib.SMTPAuthenticationError as exc:
        code, text = exc.smtp_code, exc.smtp_error
    return code, _text(text)


def grant_mailbox_access(lab, directory, app_id, service_principal_id, *mailboxes, inherited=False, deny=False):
    """Register the app's service principal in Exchange (if not yet) and put FullAccess entries on mailboxes."""
    registered = [sp for sp in lab.exchange_state(directory)["service_principals"] if sp["AppId"] == app_id.lower()]
    if not registered:
        lab.exchange_register_service_principal(directory, app_id, service_principal_id)
    for mailbox in mailboxes:
        lab.exchange_add_permission(directory, mailbox, service_principal_id, inherited=inherited, deny=deny)


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v is not None)
    return str(value)
