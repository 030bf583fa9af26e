# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""IMAP and SMTP logins as CE makes them: XOAUTH2 with an app-only token, and the runbook's
basic-auth SMTP test.

Every function returns a result dict ``{"ok", "stage", "response", ...}`` and never raises for
what a server or the network does: the caller wants the server's own words for each mailbox,
not an exception at the first one. ``stage`` names the step that failed (connect, tls,
starttls, authenticate, examine, send), ``response`` is the server's text.

Neither tokens nor passwords end up in a result: only server responses and local error texts,
and servers do not echo credentials.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import email.message
import email.utils
import imaplib
import smtplib
import socket
import ssl

IMAP_PORT = 993
SMTP_PORT = 587
TEST_SUBJECT = "Test"
TEST_BODY = "Test message"


def xoauth2_initial_response(user, token):
    """The SASL XOAUTH2 initial client response, before base64."""
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


def xoauth2_base64(user, token):
    return base64.b64encode(xoauth2_initial_response(user, token).encode("utf-8")).decode("ascii")


def tls_context(ca_path=None, validate_certs=True):
    """Client TLS context: the given CA file (or the system store), TLS 1.2 or later as Exchange Online requires."""
    if validate_certs:
        context = ssl.create_default_context(cafile=ca_path or None)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def outcome(ok, stage, response, **extra):
    result = {"ok": ok, "stage": stage, "response": response}
    result.update(extra)
    return result


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v is not None)
    return "%s" % (value,)


def _network_failure(exc, host, port, tls_stage="tls"):
    """(stage, text) for an exception raised while connecting or talking TLS."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return tls_stage, "TLS certificate of %s:%s not trusted: %s" % (host, port, exc.verify_message or exc)
    if isinstance(exc, ssl.SSLError):
        return tls_stage, "TLS handshake with %s:%s failed: %s" % (host, port, exc.reason or exc)
    if isinstance(exc, socket.gaierror):
        return "connect", "cannot resolve %s: %s" % (host, exc.strerror or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connect", "no answer from %s:%s in time" % (host, port)
    if isinstance(exc, ConnectionRefusedError):
        return "connect", "%s:%s refused the connection" % (host, port)
    return "connect", "%s:%s: %s" % (host, port, _text(exc) or exc.__class__.__name__)


# -- IMAP ------------------------------------------------------------------------------------------
class _XOAuth2Responder:
    """imaplib calls this for each continuation. The first answers with the initial response
    (imaplib does not use SASL-IR, so Exchange and Dovecot both send an empty "+" first). A
    second continuation carries the server's error details (base64 JSON, as Dovecot and Gmail
    send them); an empty answer then makes the server send its final NO."""

    def __init__(self, user, token):
        self.initial = xoauth2_initial_response(user, token)
        self.calls = 0
        self.details = []

    def __call__(self, challenge):
        self.calls += 1
        if self.calls == 1:
            return self.initial
        if challenge:
            self.details.append(_text(challenge))
        return ""


def imap_xoauth2(host, port, user, token, context, timeout=30, folder="INBOX"):
    """Log in to ``user``'s mailbox with XOAUTH2 over implicit TLS, open ``folder`` read-only, log out."""
    try:
        conn = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        stage, text = _network_failure(exc, host, port)
        return outcome(False, stage, text)
    responder = _XOAuth2Responder(user, token)
    try:
        offered = "AUTH=XOAUTH2" in (conn.capabilities or ())
        try:
            dummy, data = conn.authenticate("XOAUTH2", responder)
        except imaplib.IMAP4.abort as exc:
            return outcome(False, "authenticate", "connection closed during AUTHENTICATE: %s" % _text(exc), xoauth2_offered=offered)
        except imaplib.IMAP4.error as exc:
            return outcome(False, "authenticate", _text(exc.args[0] if exc.args else exc), xoauth2_offered=offered,
                           details=" ".join(responder.details) or None)
        response = _text(data[-1] if data else "")
        typ, data = conn.select(folder, readonly=True)
        if typ != "OK":
            return outcome(False, "examine", "EXAMINE %s: %s" % (folder, _text(data)), xoauth2_offered=offered)
        return outcome(True, "done", response, xoauth2_offered=offered, folder=folder, messages=_message_count(data))
    except (OSError, imaplib.IMAP4.error) as exc:
        stage, text = _network_failure(exc, host, port)
        return outcome(False, "authenticate" if stage == "connect" else stage, "connection failed during the login: %s" % text)
    finally:
        _imap_close(conn)


def _message_count(data):
    try:
        return int(_text(data[0]))
    except (TypeError, ValueError, IndexError):
        return None


def _imap_close(conn):
    try:
        conn.logout()
    except (OSError, imaplib.IMAP4.error):
        try:
            conn.shutdown()
        except OSError:
            pass


# -- SMTP ------------------------------------------------------------------------------------------
class _SmtpFailure(Exception):
    def __init__(self, stage, response, code=None):
        super(_SmtpFailure, self).__init__(response)
        self.stage = stage
        self.response = response
        self.code = code


def _smtp_open(host, port, context, timeout):
    """An SMTP session after STARTTLS and the second EHLO, as Exchange Online requires before AUTH."""
    try:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        stage, text = _network_failure(exc, host, port)
        raise _SmtpFailure(stage, text)
    try:
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise _SmtpFailure("starttls", "%s:%s offers no STARTTLS (EHLO: %s)" % (host, port, _text(smtp.ehlo_resp)))
        smtp.starttls(context=context)
        smtp.ehlo()
    except _SmtpFailure:
        _smtp_close(smtp)
        raise
    except smtplib.SMTPResponseException as exc:
        _smtp_close(smtp)
        raise _SmtpFailure("starttls", "%s %s" % (exc.smtp_code, _text(exc.smtp_error)), exc.smtp_code)
    except (OSError, smtplib.SMTPException) as exc:
        _smtp_close(smtp)
        stage, text = _network_failure(exc, host, port, tls_stage="starttls")
        raise _SmtpFailure(stage, text)
    return smtp


def _smtp_close(smtp):
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _auth_mechanisms(smtp):
    return (smtp.esmtp_features.get("auth") or "").upper().split()


def _smtp_conversation(host, port, context, timeout, login, send=None):
    """Open, ``login(smtp)`` -> (code, text), optionally send a test message, close."""
    try:
        smtp = _smtp_open(host, port, context, timeout)
    except _SmtpFailure as failure:
        return outcome(False, failure.stage, failure.response, code=failure.code)
    try:
        mechanisms = _auth_mechanisms(smtp)
        code, text = login(smtp, mechanisms)
        if code != 235:
            return outcome(False, "authenticate", "%s %s" % (code, text), code=code, mechanisms=mechanisms)
        result = outcome(True, "done", "%s %s" % (code, text), code=code, mechanisms=mechanisms)
        if send:
            result["test_message"] = _send_test(smtp, **send)
            if not result["test_message"]["sent"]:
                result.update(ok=False, stage="send", response=result["test_message"]["response"])
        return result
    except _SmtpFailure as failure:
        return outcome(False, failure.stage, failure.response, code=failure.code)
    except smtplib.SMTPResponseException as exc:
        return outcome(False, "authenticate", "%s %s" % (exc.smtp_code, _text(exc.smtp_error)), code=exc.smtp_code)
    except (OSError, smtplib.SMTPException) as exc:
        return outcome(False, "authenticate", "connection failed during the login: %s" % _network_failure(exc, host, port)[1])
    finally:
        _smtp_close(smtp)


def smtp_xoauth2(host, port, user, token, context, timeout=30, send=None):
    """STARTTLS, then ``AUTH XOAUTH2 <initial response>`` (235 = in); optionally send a test message as ``user``."""
    def login(smtp, mechanisms):
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + xoauth2_base64(user, token))
        if code == 334:
            # An error challenge (base64 JSON); the empty answer ends the exchange with the real status.
            code, text = smtp.docmd("")
        return code, _text(text)
    return _smtp_conversation(host, port, context, timeout, login, send)


def smtp_basic(host, port, username, password, context, timeout=30, send=None):
    """The runbook's outbound test (Send-MailMessage -UseSsl -Port 587 -Credential): STARTTLS, AUTH LOGIN, optional message."""
    def login(smtp, mechanisms):
        # .NET's SmtpClient, which Send-MailMessage uses, prefers LOGIN; PLAIN only where LOGIN is not offered.
        if "LOGIN" in mechanisms:
            mechanism, authobject = "LOGIN", smtp.auth_login
        elif "PLAIN" in mechanisms:
            mechanism, authobject = "PLAIN", smtp.auth_plain
        else:
            raise _SmtpFailure("authenticate", "%s:%s offers no password login after STARTTLS (AUTH %s)"
                               % (host, port, " ".join(mechanisms) or "not offered"))
        smtp.user, smtp.password = username, password
        try:
            code, text = smtp.auth(mechanism, authobject, initial_response_ok=False)
        except smtplib.SMTPAuthenticationError as exc:
            code, text = exc.smtp_code, exc.smtp_error
        except UnicodeEncodeError:
            raise _SmtpFailure("authenticate", "the user name or password has characters outside ASCII, which AUTH %s cannot carry "
                               "here" % mechanism)
        finally:
            smtp.password = None
        return code, _text(text)
    return _smtp_conversation(host, port, context, timeout, login, send)


def build_test_message(from_address, to_address):
    """What Send-MailMessage -Subject "Test" -Body "Test message" -BodyAsHtml sends."""
    message = email.message.EmailMessage()
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = TEST_SUBJECT
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=from_address.rpartition("@")[2] or None)
    message["X-Mailer"] = "ceops.exchange_oauth mailbox_oauth_check"
    message.set_content(TEST_BODY, subtype="html")
    return message


def _send_test(smtp, from_address, to_address):
    message = build_test_message(from_address, to_address)
    try:
        smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return {"sent": False, "to": to_address, "from": from_address, "response": "%s %s" % (code, _text(text))}
    except smtplib.SMTPResponseException as exc:
        return {"sent": False, "to": to_address, "from": from_address, "response": "%s %s" % (exc.smtp_code, _text(exc.smtp_error))}
    except (OSError, smtplib.SMTPException) as exc:
        return {"sent": False, "to": to_address, "from": from_address, "response": "sending failed: %s" % (_text(exc) or exc.__class__.__name__)}
    return {"sent": True, "to": to_address, "from": from_address, "message_id": message["Message-ID"], "response": "250 queued"}
