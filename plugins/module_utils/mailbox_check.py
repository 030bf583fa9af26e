# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Logic of mailbox_oauth_check: CE's OAuth settings -> a token -> an IMAP (and SMTP) login per
mailbox, and for each refusal the most likely cause and its fix.

Exchange Online says little when it refuses ("AUTHENTICATE failed.", "535 5.7.3"), so the cause is
inferred from the token's own claims (decoded, not verified: we are its holder, not its audience):
no role means no admin consent; a role that Exchange still refuses means Exchange does not know
the service principal, or it has no FullAccess on that mailbox.

Exchange Online also answers a login it cannot serve right now (IMAP "NO [UNAVAILABLE]", SMTP 4xx such as
"454 4.7.0", a refused or dropped connection). Those say nothing about CE's registration, so the login is
made again a bounded number of times with backoff, and one that stays temporary is explained as temporary.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import mail_login
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, backoff_delay
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import auth_from_params, cloud_endpoints, is_guid

IMAP_ROLE = "IMAP.AccessAsApp"
SMTP_ROLE = "SMTP.SendAsApp"
MANAGE_ROLE = "Exchange.ManageAsApp"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"

# Client endpoints per cloud. usgov_dod and china SMTP hosts are not confirmed on a live tenant;
# imap_host / smtp_host override them.
MAIL_HOSTS = {
    "public": {"imap_host": "outlook.office365.com", "smtp_host": "smtp.office365.com"},
    "usgov": {"imap_host": "outlook.office365.us", "smtp_host": "smtp.office365.us"},
    "usgov_dod": {"imap_host": "outlook-dod.office365.us", "smtp_host": "outlook-dod.office365.us"},
    "china": {"imap_host": "partner.outlook.cn", "smtp_host": "smtp.partner.outlook.cn"},
}

# Fixes for token errors when the credential is CE's: the new value belongs in CE's OAuth settings.
CE_SECRET_FIXES = {
    "AADSTS7000215": "put the secret's Value (not its ID) into CE's OAuth settings (ce_oauth_settings with update_secret: always)",
    "AADSTS7000222": "create a new secret (azuread_app app_secret.rotate), put it into CE's OAuth settings (ce_oauth_settings "
                     "update_secret: always), then retire the old one",
    "AADSTS700016": "CE's client id must be the Application (client) ID of CE's app in this directory (azuread_app's app_id)",
}


# New logins after a temporary answer, and the first wait in seconds (doubling, with jitter, capped): a busy
# front end is usually back within seconds, and a proof that waits minutes helps nobody.
LOGIN_RETRIES = 3
LOGIN_RETRY_DELAY = 1.0
LOGIN_RETRY_DELAY_CAP = 10.0
# mail_login's own texts for a broken connection; "no answer ... in time" is not among them on purpose: a port
# that a firewall drops would cost the whole timeout once per attempt.
_DROPPED = ("connection closed during AUTHENTICATE", "connection failed during the login")


class SettingsError(ValueError):
    """The settings cannot be right, found before any request."""


# -- pure helpers ---------------------------------------------------------------------------------
def decode_claims(token):
    """A JWT's claims without verifying its signature; {} when it is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode((payload + "=" * (-len(payload) % 4)).encode("ascii")))
    except (AttributeError, IndexError, TypeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_summary(claims, cached):
    """What a person needs to judge a token, never the token itself."""
    exp = claims.get("exp")
    expires_on = None
    if isinstance(exp, (int, float)):
        expires_on = datetime.datetime.fromtimestamp(exp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"aud": claims.get("aud"), "tid": claims.get("tid"), "appid": claims.get("appid") or claims.get("azp"),
            "oid": claims.get("oid"), "roles": sorted(claims.get("roles") or []), "iss": claims.get("iss"),
            "expires_on": expires_on, "from_cache": cached}


def parse_token_endpoint_url(url):
    """(authority host, directory) of a v2.0 token endpoint URL such as CE's OAuth settings hold."""
    parts = urlsplit(url or "")
    if parts.scheme != "https" or not parts.netloc:
        raise SettingsError("token_endpoint_url %r is not an https URL" % (url,))
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 4 or segments[1:] != ["oauth2", "v2.0", "token"]:
        raise SettingsError("token_endpoint_url %r is not a v2.0 token endpoint https://<login host>/<tenant>/oauth2/v2.0/token; "
                            "CE sends client-credentials requests with a scope, which only the v2.0 endpoint takes" % (url,))
    return "https://%s" % parts.netloc, segments[0]


def scope_resource(scopes):
    """The resource of CE's scope setting; client credentials take exactly one ``<resource>/.default``."""
    if len(scopes) != 1:
        raise SettingsError("scopes %s: a client-credentials token request takes exactly one scope, <resource>/.default "
                            "(Entra refuses several resources with AADSTS70011)" % (scopes,))
    scope = scopes[0].strip()
    if not scope.endswith("/.default"):
        raise SettingsError("scope %r does not end with /.default: client credentials only take the resource's .default scope "
                            "(Entra refuses others with AADSTS1002012); use https://outlook.office365.com/.default" % (scope,))
    return scope[:-len("/.default")]


def same_directory(a, b):
    """False only when both name a directory the same way (both GUIDs or both domains) and differ."""
    if not a or not b or is_guid(a) != is_guid(b):
        return True
    return a.lower() == b.lower()


def resolve_settings(params):
    """Where CE's token comes from and where the mail servers are; (settings, warnings)."""
    endpoints = cloud_endpoints(params["cloud"])
    configured_host = (params.get("authority_host") or endpoints["authority_host"]).rstrip("/")
    if "://" not in configured_host:
        configured_host = "https://" + configured_host
    warnings = []
    if params.get("token_endpoint_url"):
        authority_host, tenant = parse_token_endpoint_url(params["token_endpoint_url"])
        if authority_host.lower() != configured_host.lower():
            warnings.append("token_endpoint_url uses %s, but cloud %s / authority_host expects %s: CE asks the host in its settings"
                            % (authority_host, params["cloud"], configured_host))
        if not same_directory(tenant, params["tenant_id"]):
            warnings.append("token_endpoint_url names directory %s but tenant_id is %s: CE gets its token from %s"
                            % (tenant, params["tenant_id"], tenant))
        token_url = params["token_endpoint_url"]
    else:
        authority_host, tenant = configured_host, params["tenant_id"]
        token_url = "%s/%s/oauth2/v2.0/token" % (authority_host, tenant)
    scopes = params.get("scopes") or [endpoints["exchange_resource"] + "/.default"]
    resource = scope_resource(scopes)
    if resource.rstrip("/") != endpoints["exchange_resource"]:
        warnings.append("scope %s is not Exchange Online's (%s/.default): IMAP and SMTP accept only tokens for %s"
                        % (scopes[0], endpoints["exchange_resource"], endpoints["exchange_resource"]))
    hosts = MAIL_HOSTS[params["cloud"]]
    settings = {
        "tenant_id": params["tenant_id"], "client_id": params["client_id"], "token_endpoint_url": token_url, "scope": scopes[0],
        "authority_host": authority_host, "token_tenant": tenant, "resource": resource,
        "exchange_resource": endpoints["exchange_resource"],
        "imap_host": params.get("imap_host") or hosts["imap_host"], "imap_port": params.get("imap_port") or mail_login.IMAP_PORT,
        "smtp_host": params.get("smtp_host") or hosts["smtp_host"], "smtp_port": params.get("smtp_port") or mail_login.SMTP_PORT,
    }
    return settings, warnings


def unique_mailboxes(mailboxes):
    seen, result = set(), []
    for mailbox in mailboxes or []:
        mailbox = mailbox.strip()
        if mailbox and mailbox.lower() not in seen:
            seen.add(mailbox.lower())
            result.append(mailbox)
    return result


def is_temporary(login):
    """Whether a failed login is worth making again: the server could not serve it now, or the connection broke.

    Retried: IMAP's RFC 5530 ``[UNAVAILABLE]``, any SMTP 4xx reply to AUTH (``454 4.7.0``, ``421 4.3.2``), a refused
    or reset connection, one dropped during the login. Not retried: refusals (``NO AUTHENTICATE failed.``, ``535``),
    names that do not resolve, TLS failures, timeouts, and anything after a successful login (EXAMINE, the test message).
    """
    if login.get("ok"):
        return False
    stage, text = login.get("stage"), (login.get("response") or "")
    if stage == "connect":
        return not text.startswith("cannot resolve") and "in time" not in text
    if stage != "authenticate":
        return False
    if isinstance(login.get("code"), int):
        return 400 <= login["code"] < 500
    if "[UNAVAILABLE]" in text.upper():
        return True
    return text.startswith(_DROPPED) and "in time" not in text


def retry_delays(retries, first_delay, cap=LOGIN_RETRY_DELAY_CAP, rand=None):
    """Seconds to wait before each of ``retries`` new logins: exponential from ``first_delay`` with jitter, capped."""
    extra = {} if rand is None else {"rand": rand}
    return [backoff_delay(attempt, base=first_delay, cap=cap, **extra) for attempt in range(1, retries + 1)]


def _temporary_cause(protocol, login, settings):
    attempts = login.get("attempts") or 1
    tries = "on all %d attempts" % attempts if attempts > 1 else "(no new attempt: login_retries is 0)"
    if login["stage"] == "connect":
        cause, fix = _network_cause(protocol, login, settings)
        return ("%s %s" % (cause, tries), fix + "; if it worked before, the server may be down: run the check again later")
    if (login.get("response") or "").startswith(_DROPPED):
        what = "the %s server closed the connection during the login %s" % (protocol.upper(), tries)
    else:
        what = "the %s server answered that it cannot log anyone in right now (a temporary failure) %s" % (protocol.upper(), tries)
    return (what + "; this says nothing about CE's app registration or mailbox rights",
            "run the check again later (playbooks/verify.yml); if it persists, look at Exchange Online in the Microsoft 365 admin "
            "center's Service health, and check fewer mailboxes at once (parallelism) in case the service throttles")


# -- diagnosis ------------------------------------------------------------------------------------
def _network_cause(protocol, login, settings):
    host_key = "%s_host" % protocol
    where = "%s:%s" % (settings[host_key], settings["%s_port" % protocol])
    if login["stage"] in ("tls", "starttls") and "not trusted" in login["response"]:
        return ("the %s server's TLS certificate is not trusted" % protocol.upper(),
                "give mail_ca_path (or ca_path) the CA that signed %s's certificate, or check %s" % (where, host_key))
    if login["stage"] in ("tls", "starttls"):
        return ("TLS with %s failed" % where, "check %s and %s_port (IMAP: implicit TLS on 993; SMTP: STARTTLS on 587)"
                % (host_key, protocol))
    return ("%s is not reachable from this host" % where, "check %s / %s_port and firewalls between this host and the server"
            % (host_key, protocol))


def diagnose_oauth(protocol, login, claims, mailbox, settings):
    """(cause, fix) for a failed XOAUTH2 login of ``protocol`` (imap / smtp) to ``mailbox``."""
    stage, text = login["stage"], login["response"] or ""
    role = IMAP_ROLE if protocol == "imap" else SMTP_ROLE
    if login.get("temporary"):
        return _temporary_cause(protocol, login, settings)
    if stage in ("connect", "tls", "starttls"):
        return _network_cause(protocol, login, settings)
    if stage == "token":
        return login.get("cause"), login.get("fix")
    if stage == "examine":
        return ("the login works but %s cannot be opened read-only" % login.get("folder", "INBOX"),
                "check the mailbox in Exchange (it may be a mailbox type without an INBOX)")
    if stage == "send":
        if "5.7.60" in text or "SendAs" in text:
            return ("the login works but the app may not send as %s" % mailbox,
                    "Add-RecipientPermission -Identity %s -Trustee %s -AccessRights SendAs" % (mailbox, claims.get("oid") or "<service principal id>"))
        return ("the login works but the test message was refused", "read the server's response; check smtp_send_test_to")
    if login.get("xoauth2_offered") is False or (login.get("mechanisms") and "XOAUTH2" not in login["mechanisms"]):
        return ("the %s server does not offer XOAUTH2" % protocol.upper(),
                "check %s_host: Exchange Online is %s" % (protocol, MAIL_HOSTS["public"]["%s_host" % protocol]))
    audience = (claims.get("aud") or "").rstrip("/")
    if audience and audience not in (settings["exchange_resource"], EXCHANGE_APP_ID):
        return ("the token is for %s, not Exchange Online (%s)" % (audience, settings["exchange_resource"]),
                "set the scope in CE's OAuth settings to %s/.default" % settings["exchange_resource"])
    if claims.get("tid") and not same_directory(claims["tid"], settings["tenant_id"]):
        return ("the token comes from directory %s, but the mailboxes are in %s" % (claims["tid"], settings["tenant_id"]),
                "CE's token endpoint URL must be %s/%s/oauth2/v2.0/token" % (settings["authority_host"], settings["tenant_id"]))
    roles = claims.get("roles") or []
    if role not in roles:
        return ("no admin consent for %s: the token carries no %s role (roles: %s)" % (role, role, ", ".join(roles) or "none"),
                "run the Azure AD part (azuread_app / role azuread_app_registration with %s in exchange_permissions and admin "
                "consent)" % role)
    oid = claims.get("oid") or "<service principal object id>"
    appid = claims.get("appid") or settings["client_id"]
    cause = ("the token is valid and carries %s, yet Exchange refused %s: the service principal is not registered in Exchange "
             "(New-ServicePrincipal), or it has no FullAccess on %s, or %s is not a mailbox of this directory" % (role, mailbox, mailbox, mailbox))
    fix = ("New-ServicePrincipal -AppId %s -ObjectId %s (exo_service_principal); Add-MailboxPermission -Identity %s -User %s "
           "-AccessRights FullAccess (exo_mailbox_permission)" % (appid, oid, mailbox, oid))
    if protocol == "smtp":
        if "5.7.139" in text or "SmtpClientAuthentication" in text:
            return ("SMTP AUTH is disabled for %s or the whole organisation" % mailbox,
                    "Set-CASMailbox -Identity %s -SmtpClientAuthenticationDisabled $false (or Set-TransportConfig for the organisation)" % mailbox)
        cause += ", or SMTP AUTH is disabled for that mailbox"
        fix += "; Set-CASMailbox -Identity %s -SmtpClientAuthenticationDisabled $false" % mailbox
    return cause, fix


def diagnose_basic(login, username, settings):
    """(cause, fix) for a failed basic-auth SMTP login or test message (the runbook's Send-MailMessage test)."""
    stage, text = login["stage"], login["response"] or ""
    if login.get("temporary"):
        return _temporary_cause("smtp", login, settings)
    if stage in ("connect", "tls", "starttls"):
        return _network_cause("smtp", login, settings)
    if stage == "send":
        return ("the login works but the test message was refused", "read the server's response; check smtp_send_test_to")
    lowered = text.lower()
    if "basic authentication is disabled" in lowered:
        return ("basic authentication for SMTP AUTH is switched off for this organisation (Microsoft is retiring it)",
                "send with OAuth: SMTP.SendAsApp in exchange_permissions, 'Use OAuth to send emails' in CE, smtp: true here")
    if "smtpclientauthentication is disabled" in lowered or "5.7.139" in text:
        return ("SMTP AUTH is disabled for %s or the organisation, or security defaults / conditional access block basic auth" % username,
                "Set-CASMailbox -Identity %s -SmtpClientAuthenticationDisabled $false, or better send with OAuth (smtp: true)" % username)
    if "offers no password login" in text:
        return ("the SMTP server offers no password login", "check smtp_host: Exchange Online offers AUTH LOGIN after STARTTLS")
    return ("the user name or password is wrong, or the account may not log in", "check the mailbox's credentials stored in CE")


# -- the check ------------------------------------------------------------------------------------
class MailboxOAuthCheck:
    """One run: token once, then each mailbox with bounded concurrency; read-only."""

    def __init__(self, params, check_mode=False, warn=None, mask=None, auth=None, logins=mail_login, sleep=time.sleep):
        self.params = params
        self.sleep = sleep
        self.check_mode = check_mode
        self.warn = warn or (lambda message: None)
        self.mask = mask or (lambda value: None)
        self.logins = logins
        self.settings, warnings = resolve_settings(params)
        for warning in warnings:
            self.warn(warning)
        # CE logs in with the client secret of its settings: never a certificate or a managed identity.
        self.auth = auth or auth_from_params(params, tenant_id=self.settings["token_tenant"], authority_host=self.settings["authority_host"],
                                             client_certificate_path=None, client_certificate_password=None, managed_identity=False,
                                             token_cache_dir=params.get("token_cache_dir"))
        self.context = logins.tls_context(params.get("mail_ca_path") or params.get("ca_path"), params.get("validate_certs", True))
        self.token = None
        self.token_cached = False
        self.claims = {}

    def validate(self):
        if not unique_mailboxes(self.params.get("mailboxes")) and not self.params.get("smtp_basic_auth"):
            raise SettingsError("no mailboxes to check: give mailboxes (or smtp_basic_auth)")
        if self.params.get("parallelism") is not None and self.params["parallelism"] < 1:
            raise SettingsError("parallelism must be at least 1")
        if self.params.get("login_retries") is not None and self.params["login_retries"] < 0:
            raise SettingsError("login_retries must be 0 or more")
        if self.params.get("login_retry_delay") is not None and self.params["login_retry_delay"] < 0:
            raise SettingsError("login_retry_delay must be 0 or more seconds")
        if not self.params.get("client_secret"):
            raise SettingsError("client_secret is required: the client secret stored in CE's OAuth settings "
                                "(certificates and managed identities are not something CE can use)")
        problems = self.auth.validate()
        if problems:
            raise SettingsError("; ".join(problems))

    # -- token
    def fetch_token(self, fresh=False):
        """(token, None) or (None, failure dict); the token is masked in every output before it is used."""
        resource = self.settings["resource"]
        if fresh:
            self.auth.forget_token(resource)
        before = self.auth.token_requests
        try:
            token = self.auth.token(resource)
        except ServiceError as error:
            code = next((c for c in CE_SECRET_FIXES if c in (error.message or "")), None)
            fix = CE_SECRET_FIXES.get(code) or error.hint or "check client_id, client_secret and token_endpoint_url against CE's OAuth settings"
            return None, {"ok": False, "stage": "token", "response": error.message, "cause": error.hint or "Entra refused the token request",
                          "fix": fix}
        self.mask(token)
        self.token, self.claims = token, decode_claims(token)
        self.token_cached = self.auth.token_requests == before
        return token, None

    # -- per mailbox
    def _clean(self, login):
        # Servers do not echo credentials; this keeps it so even for a broken one.
        if self.token and login.get("response") and self.token in login["response"]:
            login["response"] = login["response"].replace(self.token, "********")
        return login

    def _send_plan(self, from_address):
        to_address = self.params.get("smtp_send_test_to")
        if not to_address or self.check_mode:
            return None
        return {"from_address": from_address, "to_address": to_address}

    def _with_retries(self, log_in):
        """``log_in()`` again after each temporary failure, up to login_retries times; the result says how many attempts it took."""
        retries = self.params.get("login_retries")
        retries = LOGIN_RETRIES if retries is None else retries
        first_delay = self.params.get("login_retry_delay")
        delays = retry_delays(retries, LOGIN_RETRY_DELAY if first_delay is None else first_delay)
        attempt = 1
        while True:
            login = log_in()
            temporary = is_temporary(login)
            if not temporary or attempt > len(delays):
                break
            self.sleep(delays[attempt - 1])
            attempt += 1
        login["attempts"] = attempt
        if temporary:
            login["temporary"] = True
        return login

    def check_mailbox(self, mailbox, token_failure=None):
        s, timeout = self.settings, self.params.get("timeout", 30)
        entry = {"mailbox": mailbox}
        protocols = ["imap"] + (["smtp"] if self.params.get("smtp") else [])
        for protocol in protocols:
            if token_failure:
                login = dict(token_failure)
            elif protocol == "imap":
                login = self._with_retries(lambda: self.logins.imap_xoauth2(s["imap_host"], s["imap_port"], mailbox, self.token,
                                                                            self.context, timeout))
            else:
                login = self._with_retries(lambda: self.logins.smtp_xoauth2(s["smtp_host"], s["smtp_port"], mailbox, self.token,
                                                                            self.context, timeout, send=self._send_plan(mailbox)))
                self._note_skipped_send(login)
            login = self._clean(login)
            login["cause"], login["fix"] = (None, None) if login["ok"] else diagnose_oauth(protocol, login, self.claims, mailbox, s)
            entry[protocol] = login
        entry["ok"] = all(entry[p]["ok"] for p in protocols)
        return entry

    def check_basic(self, account):
        s = self.settings
        username = account["username"]
        login = self._with_retries(lambda: self.logins.smtp_basic(
            s["smtp_host"], s["smtp_port"], username, account["password"], self.context, self.params.get("timeout", 30),
            send=self._send_plan(account.get("from_address") or username)))
        self._note_skipped_send(login)
        login["cause"], login["fix"] = (None, None) if login["ok"] else diagnose_basic(login, username, s)
        return {"username": username, "ok": login["ok"], "smtp": login}

    def _note_skipped_send(self, login):
        if self.params.get("smtp_send_test_to") and self.check_mode and login.get("ok"):
            login["test_message"] = {"sent": False, "to": self.params["smtp_send_test_to"], "response": "not sent in check mode"}

    def _map(self, function, items):
        if not items:
            return []
        workers = max(1, min(self.params.get("parallelism") or 1, len(items)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, items))

    # -- the run
    def run(self):
        self.validate()
        mailboxes = unique_mailboxes(self.params.get("mailboxes"))
        token_failure = None
        if mailboxes:
            dummy, token_failure = self.fetch_token(fresh=self.params.get("fresh_token"))
        entries = self._map(lambda m: self.check_mailbox(m, token_failure), mailboxes)
        refreshed = False
        if not token_failure and self.token_cached and any(self._auth_refused(e) for e in entries):
            # Roles are fixed when a token is issued: a cached one may predate a consent given since.
            refreshed = True
            dummy, token_failure = self.fetch_token(fresh=True)
            retry = [e["mailbox"] for e in entries if self._auth_refused(e)]
            again = dict((e["mailbox"], e) for e in self._map(lambda m: self.check_mailbox(m, token_failure), retry))
            entries = [again.get(e["mailbox"], e) for e in entries]
        basic = self._map(self.check_basic, self.params.get("smtp_basic_auth") or [])
        if self.claims and MANAGE_ROLE in (self.claims.get("roles") or []):
            self.warn("the token carries %s: client_id %s looks like the automation identity, not CE's app; this module must be "
                      "given CE's own OAuth settings" % (MANAGE_ROLE, self.params["client_id"]))
        result = self.result(entries, basic, refreshed)
        result["msg"] = failure_message(result) or success_message(result)
        return result

    @staticmethod
    def _auth_refused(entry):
        # A temporary answer is no refusal: a new token would not change it.
        return any(entry.get(p, {}).get("stage") == "authenticate" and not entry[p].get("temporary") for p in ("imap", "smtp"))

    def result(self, entries, basic, refreshed):
        s = self.settings
        failed = [e["mailbox"] for e in entries if not e["ok"]]
        failed_basic = [b["username"] for b in basic if not b["ok"]]
        token = None
        if self.claims:
            token = token_summary(self.claims, self.token_cached)
            token["refreshed"] = refreshed
        return {
            "changed": False,
            "settings": {"client_id": s["client_id"], "tenant_id": s["tenant_id"], "token_endpoint_url": s["token_endpoint_url"],
                         "scope": s["scope"], "imap": "%s:%s" % (s["imap_host"], s["imap_port"]),
                         "smtp": "%s:%s" % (s["smtp_host"], s["smtp_port"]) if self.params.get("smtp") or basic else None},
            "token": token,
            "mailboxes": entries,
            "smtp_basic_auth": basic,
            "failed_mailboxes": failed,
            "failed_smtp_basic_auth": failed_basic,
            "summary": {"mailboxes": len(entries), "ok": len(entries) - len(failed), "failed": len(failed),
                        "imap_failed": sum(1 for e in entries if not e["imap"]["ok"]),
                        "smtp_failed": sum(1 for e in entries if "smtp" in e and not e["smtp"]["ok"]),
                        "smtp_basic_auth": len(basic), "smtp_basic_auth_failed": len(failed_basic),
                        "test_messages_sent": sum(1 for x in [e.get("smtp", {}) for e in entries] + [b["smtp"] for b in basic]
                                                  if x.get("test_message", {}).get("sent"))},
        }


def failure_message(result):
    """One message naming every failed mailbox with the server's words, the cause and the fix; '' when all passed."""
    s = result["settings"]
    lines = []
    for entry in result["mailboxes"]:
        for protocol in ("imap", "smtp"):
            login = entry.get(protocol)
            if login and not login["ok"]:
                lines.append("%s %s: %s%s; cause: %s; fix: %s" % (
                    entry["mailbox"], "token" if login["stage"] == "token" else protocol.upper(), _quote(login["response"]),
                    "" if login["stage"] in ("authenticate", "token") else " (at %s)" % login["stage"], login["cause"], login["fix"]))
                if login["stage"] == "token":
                    break
    for account in result["smtp_basic_auth"]:
        login = account["smtp"]
        if not login["ok"]:
            lines.append("%s SMTP basic auth: %s; cause: %s; fix: %s" % (account["username"], _quote(login["response"]), login["cause"], login["fix"]))
    if not lines:
        return ""
    total = result["summary"]["mailboxes"] + result["summary"]["smtp_basic_auth"]
    head = "CE's logins failed for %d of %d (client %s, directory %s, token endpoint %s)" % (
        len(result["failed_mailboxes"]) + len(result["failed_smtp_basic_auth"]), total, s["client_id"], s["tenant_id"], s["token_endpoint_url"])
    return head + ": " + " | ".join(lines)


def success_message(result):
    parts = []
    if result["mailboxes"]:
        protocols = "IMAP and SMTP" if any("smtp" in e for e in result["mailboxes"]) else "IMAP"
        parts.append("CE's OAuth settings (client %s) log in to all %d mailboxes over %s"
                     % (result["settings"]["client_id"], len(result["mailboxes"]), protocols))
    if result["smtp_basic_auth"]:
        parts.append("SMTP basic auth works for all %d accounts" % len(result["smtp_basic_auth"]))
    if result["summary"]["test_messages_sent"]:
        parts.append("%d test messages accepted" % result["summary"]["test_messages_sent"])
    return "; ".join(parts)


def _quote(text):
    return '"%s"' % (text or "").strip()
