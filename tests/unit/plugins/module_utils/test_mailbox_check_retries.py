# -*- coding: utf-8 -*-
"""mailbox_oauth_check's new logins after a temporary answer: which answers are retried, how often, how long it
waits, that refusals are not, and how a login that stays temporary is explained."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import mailbox_check
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.mailbox_check import MailboxOAuthCheck, is_temporary, retry_delays

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mail_login_fakes import unsigned_token  # noqa: E402  pylint: disable=wrong-import-position

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
APP, SP = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c", "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
SUPPORT = "ce-support@contoso.onmicrosoft.com"

# What mail_login returns for the answers Exchange Online gives (IMAP texts as imaplib reports them).
UNAVAILABLE = {"ok": False, "stage": "authenticate", "response": "[UNAVAILABLE] Temporary authentication failure. [host:2026-11-28]"}
IMAP_REFUSED = {"ok": False, "stage": "authenticate", "response": "AUTHENTICATE failed."}
DOVECOT_REFUSED = {"ok": False, "stage": "authenticate", "response": "[CONTACTADMIN] AUTHENTICATE failed."}
SMTP_TEMPORARY = {"ok": False, "stage": "authenticate", "response": "454 4.7.0 Temporary authentication failure [X]", "code": 454}
SMTP_BUSY = {"ok": False, "stage": "authenticate", "response": "421 4.3.2 Service not available", "code": 421}
SMTP_REFUSED = {"ok": False, "stage": "authenticate", "response": "535 5.7.3 Authentication unsuccessful [X]", "code": 535}
SMTP_BASIC_OFF = {"ok": False, "stage": "authenticate", "code": 535,
                  "response": "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [X]"}
REFUSED_CONNECTION = {"ok": False, "stage": "connect", "response": "127.0.0.1:993 refused the connection"}
RESET = {"ok": False, "stage": "connect", "response": "127.0.0.1:993: [Errno 104] Connection reset by peer"}
DROPPED_IMAP = {"ok": False, "stage": "authenticate", "response": "connection closed during AUTHENTICATE: socket error: EOF"}
DROPPED_SMTP = {"ok": False, "stage": "authenticate",
                "response": "connection failed during the login: 127.0.0.1:587: Connection unexpectedly closed"}
NO_DNS = {"ok": False, "stage": "connect", "response": "cannot resolve outlook.office365.example: Name or service not known"}
TIMEOUT = {"ok": False, "stage": "connect", "response": "no answer from 127.0.0.1:993 in time"}
UNTRUSTED = {"ok": False, "stage": "tls", "response": "TLS certificate of 127.0.0.1:993 not trusted: self-signed certificate"}
NO_INBOX = {"ok": False, "stage": "examine", "response": "EXAMINE INBOX: [UNAVAILABLE] try later"}
SEND_REFUSED = {"ok": False, "stage": "send", "response": "451 4.7.500 Server busy", "code": 235}
OK = {"ok": True, "stage": "done", "response": "AUTHENTICATE completed."}


@pytest.mark.parametrize("login,temporary", [
    (UNAVAILABLE, True), (SMTP_TEMPORARY, True), (SMTP_BUSY, True), (REFUSED_CONNECTION, True), (RESET, True),
    (DROPPED_IMAP, True), (DROPPED_SMTP, True),
    (IMAP_REFUSED, False), (DOVECOT_REFUSED, False), (SMTP_REFUSED, False), (SMTP_BASIC_OFF, False), (NO_DNS, False),
    (TIMEOUT, False), (UNTRUSTED, False), (NO_INBOX, False), (SEND_REFUSED, False), (OK, False),
], ids=lambda value: value.get("response", "")[:40] if isinstance(value, dict) else str(value))
def test_only_answers_that_say_not_now_are_retried(login, temporary):
    assert is_temporary(login) is temporary


def test_the_waits_double_from_the_first_and_stay_capped():
    assert retry_delays(4, 1.0, cap=5.0, rand=lambda: 1.0) == [1.0, 2.0, 4.0, 5.0]
    # Jitter only shortens a wait, to half at most, so parallel logins do not come back in lockstep.
    assert retry_delays(3, 1.0, rand=lambda: 0.0) == [0.5, 1.0, 2.0]
    assert retry_delays(0, 1.0) == []


class FakeAuth:
    """A token with IMAP.AccessAsApp and SMTP.SendAsApp, counted."""
    token_requests = 0

    def validate(self):
        return []

    def token(self, resource):
        self.token_requests += 1
        return unsigned_token(tid=TENANT, appid=APP, oid=SP, roles=["IMAP.AccessAsApp", "SMTP.SendAsApp"])

    def forget_token(self, resource):
        pass


class ScriptedLogins:
    """mail_login with scripted answers per protocol; the last answer repeats."""

    def __init__(self, imap=(), smtp=()):
        self.script = {"imap": list(imap), "smtp": list(smtp)}
        self.calls = {"imap": 0, "smtp": 0}

    def _next(self, protocol):
        self.calls[protocol] += 1
        script = self.script[protocol]
        return dict(script.pop(0) if len(script) > 1 else script[0])

    @staticmethod
    def tls_context(ca_path, validate_certs):
        return None

    def imap_xoauth2(self, host, port, user, token, context, timeout=30, folder="INBOX"):
        return self._next("imap")

    def smtp_xoauth2(self, host, port, user, token, context, timeout=30, send=None):
        return self._next("smtp")

    def smtp_basic(self, host, port, username, password, context, timeout=30, send=None):
        return self._next("smtp")


def check(logins, sleeps, **params):
    base = dict(tenant_id=TENANT, client_id=APP, client_secret="ce-secret", cloud="public", mailboxes=[SUPPORT], parallelism=1,
                fresh_token=True)
    base.update(params)
    return MailboxOAuthCheck(base, auth=FakeAuth(), logins=logins, sleep=sleeps.append).run()


def test_a_temporary_imap_answer_is_followed_by_a_new_login_that_passes():
    logins, sleeps = ScriptedLogins(imap=[UNAVAILABLE, OK]), []
    result = check(logins, sleeps, login_retry_delay=0.25)
    imap = result["mailboxes"][0]["imap"]
    assert result["failed_mailboxes"] == [] and imap["ok"] and imap["attempts"] == 2 and "temporary" not in imap
    assert logins.calls["imap"] == 2 and len(sleeps) == 1 and 0.125 <= sleeps[0] <= 0.25


@pytest.mark.parametrize("answer", [UNAVAILABLE, REFUSED_CONNECTION, DROPPED_IMAP])
def test_a_login_that_stays_temporary_is_tried_login_retries_plus_one_times_and_explained_as_temporary(answer):
    logins, sleeps = ScriptedLogins(imap=[answer]), []
    result = check(logins, sleeps, login_retries=2, login_retry_delay=1.0)
    imap = result["mailboxes"][0]["imap"]
    assert logins.calls["imap"] == 3 and len(sleeps) == 2 and sleeps[1] >= 1.0
    assert imap["attempts"] == 3 and imap["temporary"] is True and result["failed_mailboxes"] == [SUPPORT]
    assert "on all 3 attempts" in imap["cause"] and "run the check again later" in imap["fix"]
    # Not the diagnosis of a refusal: nothing about registering the service principal or FullAccess.
    assert "New-ServicePrincipal" not in imap["fix"] and "FullAccess" not in imap["fix"] + imap["cause"]
    assert "on all 3 attempts" in result["msg"]


@pytest.mark.parametrize("answer", [IMAP_REFUSED, DOVECOT_REFUSED, NO_DNS, UNTRUSTED])
def test_a_permanent_imap_failure_is_not_retried(answer):
    logins, sleeps = ScriptedLogins(imap=[answer, OK]), []
    result = check(logins, sleeps)
    imap = result["mailboxes"][0]["imap"]
    assert logins.calls["imap"] == 1 and sleeps == [] and imap["attempts"] == 1 and not imap.get("temporary")
    assert result["failed_mailboxes"] == [SUPPORT]


def test_a_refusal_after_temporary_answers_is_diagnosed_as_a_refusal():
    logins, sleeps = ScriptedLogins(imap=[UNAVAILABLE, IMAP_REFUSED]), []
    imap = check(logins, sleeps)["mailboxes"][0]["imap"]
    assert logins.calls["imap"] == 2 and imap["attempts"] == 2 and not imap.get("temporary")
    assert "New-ServicePrincipal" in imap["fix"]


def test_smtp_454_is_retried_and_535_is_not():
    logins, sleeps = ScriptedLogins(imap=[OK], smtp=[SMTP_TEMPORARY, SMTP_BUSY, OK]), []
    result = check(logins, sleeps, smtp=True, login_retry_delay=0)
    assert result["failed_mailboxes"] == [] and result["mailboxes"][0]["smtp"]["attempts"] == 3 and sleeps == [0, 0]
    logins, sleeps = ScriptedLogins(imap=[OK], smtp=[SMTP_REFUSED, OK]), []
    result = check(logins, sleeps, smtp=True)
    assert logins.calls["smtp"] == 1 and sleeps == [] and result["failed_mailboxes"] == [SUPPORT]


def test_a_persistent_454_is_temporary_for_xoauth2_and_basic_auth():
    logins, sleeps = ScriptedLogins(imap=[OK], smtp=[SMTP_TEMPORARY]), []
    result = check(logins, sleeps, smtp=True, login_retries=1, login_retry_delay=0,
                   smtp_basic_auth=[{"username": SUPPORT, "password": "p", "from_address": None}])
    smtp, basic = result["mailboxes"][0]["smtp"], result["smtp_basic_auth"][0]["smtp"]
    assert logins.calls["smtp"] == 4 and smtp["temporary"] and basic["temporary"]
    for login in (smtp, basic):
        assert "temporary failure" in login["cause"] and "SmtpClientAuthenticationDisabled" not in login["fix"]


def test_basic_auth_refusal_is_not_retried():
    logins, sleeps = ScriptedLogins(smtp=[SMTP_BASIC_OFF, OK]), []
    result = check(logins, sleeps, mailboxes=[], smtp_basic_auth=[{"username": SUPPORT, "password": "p", "from_address": None}])
    assert logins.calls["smtp"] == 1 and sleeps == [] and "switched off" in result["smtp_basic_auth"][0]["smtp"]["cause"]


def test_login_retries_zero_logs_in_once():
    logins, sleeps = ScriptedLogins(imap=[UNAVAILABLE, OK]), []
    imap = check(logins, sleeps, login_retries=0)["mailboxes"][0]["imap"]
    assert logins.calls["imap"] == 1 and sleeps == [] and imap["temporary"] and "login_retries is 0" in imap["cause"]


def test_a_temporary_failure_does_not_renew_a_cached_token():
    logins, sleeps = ScriptedLogins(imap=[UNAVAILABLE]), []
    auth = FakeAuth()
    run = MailboxOAuthCheck(dict(tenant_id=TENANT, client_id=APP, client_secret="s", cloud="public", mailboxes=[SUPPORT],
                                 login_retries=1, login_retry_delay=0), auth=auth, logins=logins, sleep=sleeps.append)
    run.token_cached = True
    # The cache is what decides: a token that came from it would be renewed after a refusal, never after "not now".
    assert run._auth_refused({"imap": dict(UNAVAILABLE, temporary=True)}) is False
    assert run._auth_refused({"imap": dict(IMAP_REFUSED)}) is True


@pytest.mark.parametrize("options,message", [({"login_retries": -1}, "login_retries"), ({"login_retry_delay": -0.5}, "login_retry_delay")])
def test_negative_retry_settings_are_refused(options, message):
    params = dict(tenant_id=TENANT, client_id=APP, client_secret="s", cloud="public", mailboxes=[SUPPORT], **options)
    with pytest.raises(mailbox_check.SettingsError, match=message):
        MailboxOAuthCheck(params, auth=FakeAuth(), logins=ScriptedLogins(imap=[OK])).validate()
