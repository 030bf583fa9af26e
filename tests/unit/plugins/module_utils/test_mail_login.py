# -*- coding: utf-8 -*-
"""mail_login against the fake Exchange IMAP and SMTP servers on loopback."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import socket
import sys
import threading

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import mail_login

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mail_login_fakes import (  # noqa: E402  pylint: disable=wrong-import-position
    IMAP_REFUSAL, SMTP_REFUSAL, ExchangeRules, FakeImapServer, FakeSmtpServer, make_ca, unsigned_token)

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
APP, SP = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c", "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MAILBOX = "ce-support@contoso.onmicrosoft.com"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("fake-ca"))


@pytest.fixture
def rules():
    rules = ExchangeRules(TENANT, [MAILBOX, "ce-sales@contoso.onmicrosoft.com"])
    rules.register(APP, SP)
    rules.grant(SP, MAILBOX)
    return rules


@pytest.fixture
def context(tls):
    return mail_login.tls_context(tls[0])


def token(roles=("IMAP.AccessAsApp", "SMTP.SendAsApp"), **claims):
    base = dict(tid=TENANT, appid=APP, oid=SP, roles=list(roles))
    base.update(claims)
    return unsigned_token(**base)


def test_xoauth2_initial_response_is_the_documented_format():
    raw = base64.b64decode(mail_login.xoauth2_base64("a@b.c", "tok.en.x"))
    assert raw == b"user=a@b.c\x01auth=Bearer tok.en.x\x01\x01"


def test_imap_login_opens_inbox_read_only_and_logs_out(rules, tls, context):
    with FakeImapServer(rules, tls[1], tls[2]) as imap:
        result = mail_login.imap_xoauth2(imap.host, imap.port, MAILBOX, token(), context, timeout=5)
    assert result["ok"] is True and result["stage"] == "done", result
    assert result["response"] == "AUTHENTICATE completed." and result["messages"] == 3 and result["xoauth2_offered"] is True
    assert rules.logins == [("imap", MAILBOX, True)]


@pytest.mark.parametrize("error_challenge", [False, True], ids=["exchange", "dovecot-style-error-challenge"])
def test_imap_refusal_carries_the_servers_text(rules, tls, context, error_challenge):
    with FakeImapServer(rules, tls[1], tls[2], error_challenge=error_challenge) as imap:
        result = mail_login.imap_xoauth2(imap.host, imap.port, "ce-sales@contoso.onmicrosoft.com", token(), context, timeout=5)
    assert result["ok"] is False and result["stage"] == "authenticate"
    assert result["response"] == IMAP_REFUSAL
    if error_challenge:
        assert '"status": "401"' in result["details"]


def test_imap_server_without_xoauth2_is_noticed(rules, tls, context):
    with FakeImapServer(rules, tls[1], tls[2], capabilities=("IMAP4rev1", "AUTH=PLAIN")) as imap:
        result = mail_login.imap_xoauth2(imap.host, imap.port, MAILBOX, token(), context, timeout=5)
    assert result["ok"] is False and result["xoauth2_offered"] is False


def test_imap_untrusted_certificate_fails_at_tls(rules, tls, tmp_path):
    other_ca = make_ca(tmp_path)[0]
    with FakeImapServer(rules, tls[1], tls[2]) as imap:
        result = mail_login.imap_xoauth2(imap.host, imap.port, MAILBOX, token(), mail_login.tls_context(other_ca), timeout=5)
    assert result["ok"] is False and result["stage"] == "tls" and "not trusted" in result["response"]
    assert rules.logins == []  # the token never left this host


def test_imap_without_verification_connects_to_any_certificate(rules, tls):
    with FakeImapServer(rules, tls[1], tls[2]) as imap:
        result = mail_login.imap_xoauth2(imap.host, imap.port, MAILBOX, token(), mail_login.tls_context(validate_certs=False), timeout=5)
    assert result["ok"] is True


def test_refused_connection_and_silent_server(context):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = mail_login.imap_xoauth2("127.0.0.1", port, MAILBOX, token(), context, timeout=2)
    assert refused["stage"] == "connect" and "refused" in refused["response"]

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        silent = mail_login.imap_xoauth2("127.0.0.1", listener.getsockname()[1], MAILBOX, token(), context, timeout=1)
        smtp_silent = mail_login.smtp_xoauth2("127.0.0.1", listener.getsockname()[1], MAILBOX, token(), context, timeout=1)
    finally:
        listener.close()
    assert silent["ok"] is False and silent["stage"] in ("connect", "tls") and "in time" in silent["response"]
    assert smtp_silent["ok"] is False and smtp_silent["stage"] == "connect"


def test_smtp_xoauth2_after_starttls_with_a_long_token(rules, tls, context):
    long_token = token(padding="x" * 3000)
    with FakeSmtpServer(rules, tls[1], tls[2]) as smtp:
        result = mail_login.smtp_xoauth2(smtp.host, smtp.port, MAILBOX, long_token, context, timeout=5)
        refused = mail_login.smtp_xoauth2(smtp.host, smtp.port, MAILBOX, token(roles=["IMAP.AccessAsApp"]), context, timeout=5)
    assert result["ok"] is True and result["code"] == 235 and "XOAUTH2" in result["mechanisms"], result
    assert refused["ok"] is False and refused["stage"] == "authenticate" and refused["response"] == SMTP_REFUSAL


def test_smtp_xoauth2_sends_a_test_message_only_when_asked(rules, tls, context):
    with FakeSmtpServer(rules, tls[1], tls[2]) as smtp:
        quiet = mail_login.smtp_xoauth2(smtp.host, smtp.port, MAILBOX, token(), context, timeout=5)
        sent = mail_login.smtp_xoauth2(smtp.host, smtp.port, MAILBOX, token(), context, timeout=5,
                                       send={"from_address": MAILBOX, "to_address": "ops@example.com"})
    assert "test_message" not in quiet
    assert sent["ok"] is True and sent["test_message"]["sent"] is True
    assert len(smtp.messages) == 1 and smtp.messages[0]["to"] == ["ops@example.com"] and smtp.messages[0]["from"] == MAILBOX
    content = smtp.messages[0]["content"].decode()
    assert "Subject: Test" in content and "text/html" in content and "Test message" in content


def test_smtp_basic_auth_is_the_runbooks_test(rules, tls, context):
    rules.passwords[MAILBOX] = "Pa55word!"
    with FakeSmtpServer(rules, tls[1], tls[2]) as smtp:
        good = mail_login.smtp_basic(smtp.host, smtp.port, MAILBOX, "Pa55word!", context, timeout=5)
        wrong = mail_login.smtp_basic(smtp.host, smtp.port, MAILBOX, "nope", context, timeout=5)
        rules.basic_auth_disabled = True
        disabled = mail_login.smtp_basic(smtp.host, smtp.port, MAILBOX, "Pa55word!", context, timeout=5)
    assert good["ok"] is True and good["code"] == 235
    assert wrong["ok"] is False and wrong["response"] == SMTP_REFUSAL
    assert disabled["ok"] is False and "basic authentication is disabled" in disabled["response"]
    assert "Pa55word" not in repr([good, wrong, disabled])


def test_smtp_refused_recipient_is_reported_not_raised(rules, tls, context):
    rules.passwords[MAILBOX] = "pw"
    with FakeSmtpServer(rules, tls[1], tls[2]) as smtp:
        result = mail_login.smtp_basic(smtp.host, smtp.port, MAILBOX, "pw", context, timeout=5,
                                       send={"from_address": MAILBOX, "to_address": "not an address"})
    assert result["ok"] is False and result["stage"] == "send" and result["test_message"]["sent"] is False


def test_logins_run_in_parallel_threads(rules, tls, context):
    rules.grant(SP, "ce-sales@contoso.onmicrosoft.com")
    results = []
    with FakeImapServer(rules, tls[1], tls[2]) as imap:
        threads = [threading.Thread(target=lambda m=m: results.append(mail_login.imap_xoauth2(imap.host, imap.port, m, token(), context, 5)))
                   for m in [MAILBOX, "ce-sales@contoso.onmicrosoft.com"] * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 6 and all(r["ok"] for r in results)
