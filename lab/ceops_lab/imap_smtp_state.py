"""What the IMAP and SMTP emulators share: Exchange Online's login decision, the lab's mailbox
passwords, the login log and login counts, SMTP settings per directory and delivered messages.

Exchange Online lets an app-only XOAUTH2 login for mailbox M with token T in only when
  * T is a valid token of the lab's Entra (signature, lifetime, issuer https://sts.windows.net/<tid>/)
    for Exchange (aud https://outlook.office365.com, with or without the trailing slash, or
    Exchange's appId 00000002-0000-0ff1-ce00-000000000000),
  * T's roles contain IMAP.AccessAsApp (IMAP) or SMTP.SendAsApp (SMTP),
  * M is a mailbox of directory <tid> (by one of its addresses),
  * an Exchange service principal with T's appid AND oid is registered in that organization
    (New-ServicePrincipal) and has replicated (the consistency window, as for the cmdlets),
  * that principal holds FullAccess on M: an explicit or inherited Allow entry, and no Deny entry.
Exchange says none of this on the wire ("AUTHENTICATE failed.", "535 5.7.3"); the lab records the
reason in its login log (admin API), so tests and people can see why.

Basic authentication (SMTP AUTH LOGIN) checks the mailbox's lab password (exported as
lab_mailbox_passwords) and the directory's smtp_basic_auth_enabled switch (default true): Microsoft
is switching SMTP basic auth off, so a test can too.

Everything here hangs off the Lab object (mail_state(lab)), is guarded by its own lock (the
directories by World.lock) and goes back to the seed on lab reset, except the mailbox passwords,
which stay as exported in lab-vars.yml for the life of the lab process.
"""

import collections
import copy
import datetime
import email.parser
import email.policy
import hmac
import secrets
import threading

from . import exchange_state as exo
from . import tokens

IMAP_ROLE = "IMAP.AccessAsApp"
SMTP_ROLE = "SMTP.SendAsApp"
ROLES = {"imap": IMAP_ROLE, "smtp": SMTP_ROLE}
LOG_LIMIT = 2000  # login log entries kept (oldest dropped first)
MESSAGE_LIMIT = 1000


class Decision:
    """Outcome of one login: ok, a reason code (see REASONS) and a human detail for the lab log."""

    def __init__(self, ok, reason, detail, mailbox=None, tenant_id=None, app_id=None, service_principal_id=None):
        self.ok = ok
        self.reason = reason
        self.detail = detail
        self.mailbox = mailbox
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.service_principal_id = service_principal_id


# Reason codes of the login log; the protocol reply never carries them.
REASONS = {
    "full_access": "ok: an explicit FullAccess Allow entry",
    "inherited_full_access": "ok: an inherited FullAccess Allow entry",
    "password": "ok: basic authentication with the mailbox password",
    "malformed": "the XOAUTH2 response is not user=...^Aauth=Bearer ...^A^A",
    "token_invalid": "token refused (signature, lifetime, audience or issuer); detail has the reason",
    "unknown_directory": "the token's tid is no directory of the lab",
    "missing_role": "the token's roles lack IMAP.AccessAsApp / SMTP.SendAsApp (no admin consent)",
    "mailbox_not_found": "the login user is no mailbox of the token's directory",
    "service_principal_not_registered": "no Exchange service principal with the token's appid and oid (New-ServicePrincipal)",
    "service_principal_not_replicated": "the Exchange service principal is inside the consistency window",
    "no_full_access": "the service principal has no FullAccess entry on the mailbox",
    "full_access_denied": "a Deny FullAccess entry for the service principal on the mailbox",
    "unknown_user": "basic auth: no such mailbox in any directory",
    "bad_password": "basic auth: wrong password",
    "basic_auth_disabled": "basic auth: smtp_basic_auth_enabled is false for the mailbox's directory",
}


def mail_state(lab):
    """The lab's MailState, created on first use (both services and the admin routes share it)."""
    state = lab.__dict__.get("mail_state")
    if state is None:
        with _CREATE_LOCK:
            state = lab.__dict__.get("mail_state")
            if state is None:
                state = MailState(lab)
                lab.mail_state = state
    return state


_CREATE_LOCK = threading.Lock()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stats_bucket():
    return {"ok": 0, "refused": 0}


class MailState:
    def __init__(self, lab):
        self.lab = lab
        self.lock = threading.Lock()
        # Basic-auth passwords of every seeded mailbox, made once per lab process (kept on reset,
        # like the automation certificates: lab-vars.yml hands them out at start).
        self.passwords = {}
        for entry in lab.seed["directories"]:
            for address in entry.get("mailboxes") or []:
                self.passwords[address.lower()] = "Lab-" + secrets.token_urlsafe(15)
        self.reset()

    def reset(self):
        with self.lock:
            self.logins = collections.deque(maxlen=LOG_LIMIT)
            self.messages = collections.deque(maxlen=MESSAGE_LIMIT)
            self.stats = {}
            self.smtp_basic_auth = {}  # tenant id -> bool; missing = enabled

    # ----- settings --------------------------------------------------------------------------------
    def smtp_basic_auth_enabled(self, tenant_id):
        with self.lock:
            return self.smtp_basic_auth.get(tenant_id, True)

    def set_smtp_basic_auth_enabled(self, tenant_id, enabled):
        with self.lock:
            self.smtp_basic_auth[tenant_id] = bool(enabled)

    # ----- decisions ---------------------------------------------------------------------------------
    def decide_oauth(self, service, user, token):
        """Exchange's decision for an XOAUTH2 login to mailbox `user` with bearer `token`."""
        role = ROLES[service]
        user = (user or "").strip()
        try:
            claims = tokens.validate(self.lab, token, tokens.EXCHANGE_AUDIENCES)
        except tokens.TokenInvalid as exc:
            return Decision(False, "token_invalid", str(exc).splitlines()[0], mailbox=user)
        tenant_id, app_id, oid = str(claims.get("tid") or ""), str(claims.get("appid") or ""), str(claims.get("oid") or "")
        ids = {"mailbox": user, "tenant_id": tenant_id, "app_id": app_id, "service_principal_id": oid}
        world = self.lab.world
        with world.lock:
            directory = world.directories.get(tenant_id) or next(
                (d for d in world.directories.values() if d.tenant_id.lower() == tenant_id.lower()), None)
            if directory is None:
                return Decision(False, "unknown_directory", "no directory %s in the lab" % tenant_id, **ids)
            ids["tenant_id"] = directory.tenant_id
            roles = claims.get("roles") or []
            if role not in roles:
                return Decision(False, "missing_role", "token roles %s lack %s" % (roles, role), **ids)
            org = exo.organization(directory)
            mailbox = find_mailbox(org, user)
            if mailbox is None:
                other = self._directory_of_address(user)
                where = " (it is a mailbox of %s)" % other.name if other is not None else ""
                return Decision(False, "mailbox_not_found", "%s is no mailbox of %s%s" % (user, directory.name, where), **ids)
            ids["mailbox"] = mailbox["PrimarySmtpAddress"]
            principal = next((sp for sp in org.service_principals
                              if sp["AppId"].lower() == app_id.lower() and sp["ObjectId"].lower() == oid.lower()), None)
            if principal is None:
                same_app = next((sp for sp in org.service_principals if sp["AppId"].lower() == app_id.lower()), None)
                detail = "no Exchange service principal with AppId %s and ObjectId %s" % (app_id, oid)
                if same_app is not None:
                    detail += " (AppId %s is registered with ObjectId %s)" % (app_id, same_app["ObjectId"])
                return Decision(False, "service_principal_not_registered", detail, **ids)
            if self.lab.is_fresh(principal, directory, "exchange"):
                return Decision(False, "service_principal_not_replicated",
                                "service principal %s is not replicated yet (consistency window)" % principal["Identity"], **ids)
            entries = [e for e in mailbox["_acl"] if e["sid"] == principal["_sid"] and "FullAccess" in e["rights"]]
            if any(e["deny"] for e in entries):
                return Decision(False, "full_access_denied", "a Deny FullAccess entry for %s on %s" % (principal["Identity"], ids["mailbox"]),
                                **ids)
            allowed = [e for e in entries if not e["deny"]]
            if not allowed:
                return Decision(False, "no_full_access", "%s has no FullAccess on %s" % (principal["Identity"], ids["mailbox"]), **ids)
        if all(e["inherited"] for e in allowed):
            return Decision(True, "inherited_full_access", "inherited FullAccess", **ids)
        return Decision(True, "full_access", "explicit FullAccess", **ids)

    def decide_basic(self, user, password):
        """Basic authentication (SMTP AUTH LOGIN) with a mailbox's lab password."""
        user = (user or "").strip()
        directory = self._directory_of_address(user)
        if directory is None:
            return Decision(False, "unknown_user", "%s is no mailbox of any lab directory" % user, mailbox=user)
        ids = {"mailbox": user, "tenant_id": directory.tenant_id}
        if not self.smtp_basic_auth_enabled(directory.tenant_id):
            return Decision(False, "basic_auth_disabled", "SMTP basic authentication is disabled for %s" % directory.name, **ids)
        expected = self.passwords.get(user.lower())
        if expected is None or not hmac.compare_digest(expected.encode("utf-8"), (password or "").encode("utf-8")):
            return Decision(False, "bad_password", "wrong password for %s" % user, **ids)
        return Decision(True, "password", "basic authentication", **ids)

    def _directory_of_address(self, address):
        world = self.lab.world
        with world.lock:
            for directory in world.directories.values():
                if find_mailbox(exo.organization(directory), address) is not None:
                    return directory
        return None

    # ----- the log -----------------------------------------------------------------------------------
    def record_login(self, service, mechanism, decision, client=None, faulted=False):
        """Append to the login log and count (per service, outcome, reason, directory, mailbox)."""
        outcome = "ok" if decision.ok else "refused"
        entry = {"time": _now(), "service": service, "mechanism": mechanism, "mailbox": decision.mailbox, "outcome": outcome,
                 "reason": decision.reason, "detail": decision.detail, "tenant_id": decision.tenant_id, "app_id": decision.app_id,
                 "service_principal_id": decision.service_principal_id, "client": client}
        with self.lock:
            self.logins.append(entry)
            stats = self.stats.setdefault(service, {"ok": 0, "refused": 0, "reasons": {}, "mechanisms": {}, "directories": {},
                                                    "mailboxes": {}})
            stats[outcome] += 1
            stats["reasons"][decision.reason] = stats["reasons"].get(decision.reason, 0) + 1
            stats["mechanisms"][mechanism] = stats["mechanisms"].get(mechanism, 0) + 1
            if decision.tenant_id:
                stats["directories"].setdefault(decision.tenant_id, _stats_bucket())[outcome] += 1
            if decision.mailbox:
                stats["mailboxes"].setdefault(decision.mailbox.lower(), _stats_bucket())[outcome] += 1
        # The lab's request counters too: a login only reads (so "no writes in check mode" holds).
        endpoint = ("AUTHENTICATE " if service == "imap" else "AUTH ") + mechanism
        status = ("OK" if decision.ok else "NO") if service == "imap" else (235 if decision.ok else 535)
        self.lab.counters.record(service, "GET", endpoint, status, directory=decision.tenant_id, faulted=faulted)
        return entry

    def record_fault(self, service, mechanism, status):
        endpoint = ("AUTHENTICATE " if service == "imap" else "AUTH ") + mechanism
        self.lab.counters.record(service, "GET", endpoint, status, faulted=True)

    def record_message(self, identity, mail_from, rcpt_tos, content):
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(content or b"")
        entry = {"time": _now(), "mailbox": identity.get("mailbox"), "mechanism": identity.get("mechanism"),
                 "tenant_id": identity.get("tenant_id"), "app_id": identity.get("app_id"), "mail_from": mail_from,
                 "rcpt_to": list(rcpt_tos), "subject": str(headers.get("Subject", "")), "from": str(headers.get("From", "")),
                 "to": str(headers.get("To", "")), "message_id": str(headers.get("Message-ID", "")), "size": len(content or b"")}
        with self.lock:
            self.messages.append(entry)
        self.lab.counters.record("smtp", "POST", "DATA", 250, directory=identity.get("tenant_id"))
        return entry

    # ----- views -------------------------------------------------------------------------------------
    def login_log(self, service=None, mailbox=None, outcome=None):
        with self.lock:
            return [dict(e) for e in self.logins
                    if (service is None or e["service"] == service)
                    and (mailbox is None or (e["mailbox"] or "").lower() == mailbox.lower())
                    and (outcome is None or e["outcome"] == outcome)]

    def login_stats(self, service=None):
        with self.lock:
            stats = copy.deepcopy(self.stats)
        if service is None:
            return stats
        return stats.get(service, {"ok": 0, "refused": 0, "reasons": {}, "mechanisms": {}, "directories": {}, "mailboxes": {}})

    def delivered(self, mailbox=None):
        with self.lock:
            return [dict(m) for m in self.messages
                    if mailbox is None or mailbox.lower() in [r.lower() for r in m["rcpt_to"]] + [(m["mailbox"] or "").lower()]]

    def settings_view(self):
        world = self.lab.world
        with world.lock:
            names = {d.tenant_id: d.name for d in world.directories.values()}
        return {names[tid]: {"tenant_id": tid, "smtp_basic_auth_enabled": self.smtp_basic_auth_enabled(tid)} for tid in names}


def find_mailbox(org, address):
    """A mailbox of `org` by one of its SMTP addresses or its UPN (case-insensitive); None if none."""
    wanted = str(address or "").strip().lower()
    if "@" not in wanted:
        return None
    for mailbox in org.mailboxes:
        addresses = {mailbox["PrimarySmtpAddress"].lower(), mailbox["UserPrincipalName"].lower()}
        addresses.update(a.split(":", 1)[1].lower() for a in mailbox["EmailAddresses"] if a.lower().startswith("smtp:"))
        if wanted in addresses:
            return mailbox
    return None


def parse_xoauth2(raw):
    """(user, token) of a decoded XOAUTH2 initial response, or (None, None) when malformed."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        return None, None
    user = token = None
    for part in text.split("\x01"):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        if key == "user":
            user = value
        elif key == "auth" and value[:7].lower() == "bearer ":
            token = value[7:].strip()
    if not user or not token:
        return None, None
    return user, token
