"""Exchange Online's IMAP endpoint ("imap", outlook.office365.com:993 in the real world): a private
Dovecot 2.3 with implicit TLS on a free 127.0.0.1 port (see dovecot.py for how it is run and why),
whose every XOAUTH2 login is decided by the lab on its live state, as Exchange decides it
(imap_smtp_state.py: token, IMAP.AccessAsApp, service principal registered in Exchange, FullAccess).

On the wire (Dovecot's IMAP, Exchange's words where Dovecot lets us):
  * OK [CAPABILITY IMAP4rev1 SASL-IR ... AUTH=XOAUTH2] The Microsoft Exchange IMAP4 service is ready.
  a1 AUTHENTICATE XOAUTH2 <base64 user=<mailbox>^Aauth=Bearer <token>^A^A>     (SASL-IR, or "+ " first)
  a1 OK [CAPABILITY ...] Logged in                                               allowed
  a1 NO [CONTACTADMIN] AUTHENTICATE failed.                                       refused, for any reason
  a1 NO [UNAVAILABLE] Temporary authentication failure. [...]                     injected fault
After the login INBOX can be selected / examined (a real, empty Maildir; messages the lab's SMTP
accepted for a lab mailbox are delivered into it).

Lab side: the login log with the reason (admin API /services/imap/logins), counts per outcome,
reason, directory and mailbox (/services/imap/stats, and the lab counters as
"AUTHENTICATE XOAUTH2" reads), faults: latency_ms / jitter_ms delay the answer, fail_next /
rate_503 / rate_429 make the login fail temporarily.

Dovecot is required: without it `start` fails with a hint to scripts/ensure-system-packages.sh
dovecot-imapd. CEOPS_LAB_NO_IMAP=1 in the environment of `python -m ceops_lab start` runs the lab
without IMAP (no lab_imap variable then).
"""

import atexit
import logging
import os
import re
import time

from .dovecot import DictFailure, Dovecot, DovecotError
from .imap_smtp_state import mail_state
from .service import Service

LOG = logging.getLogger("ceops_lab")
REFUSED = "AUTHENTICATE failed."  # Exchange's text; Dovecot sends it as "NO [CONTACTADMIN] AUTHENTICATE failed."
# login/imap/<user>/<session>/<token>: a session id may contain "/", a JWT never does.
_KEY = re.compile(r"^(?:shared/)?login/imap/([^/]*)/(.*)/([^/]*)$", re.DOTALL)


def imap_disabled():
    return os.environ.get("CEOPS_LAB_NO_IMAP", "").strip().lower() in ("1", "true", "yes", "on")


class ImapService(Service):
    name = "imap"
    http = False

    def __init__(self, lab):
        super().__init__(lab)
        self.enabled = not imap_disabled()
        self.dovecot = None
        self.port = None
        self.url = ""

    # ----- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        if not self.enabled:
            LOG.info("imap: disabled (CEOPS_LAB_NO_IMAP)")
            return
        mailboxes = [address for entry in self.lab.seed["directories"] for address in entry.get("mailboxes") or []]
        self.dovecot = Dovecot(self.lab.state_dir, self.lab.server_cert, self.lab.server_key, self._answer)
        try:
            self.port = self.dovecot.start(mailboxes)
        except (DovecotError, OSError) as exc:
            LOG.error("imap: %s", exc)
            raise SystemExit("imap: %s" % exc) from None
        atexit.register(self.stop)
        self.url = "imaps://127.0.0.1:%d" % self.port
        LOG.info("imap: dovecot (pid %d) on 127.0.0.1:%d, log %s", self.dovecot.process.pid, self.port, self.dovecot.log_file)

    def stop(self):
        if self.dovecot is not None:
            self.dovecot.stop()

    def reset(self):
        mail_state(self.lab).reset()
        if self.dovecot is not None:
            self.dovecot.clear_mail()

    # ----- the login decision (Dovecot's dict lookup) --------------------------------------------------
    def _answer(self, key):
        match = _KEY.match(key)
        if not match:
            raise DictFailure("unexpected lookup key")
        user, session, token = match.groups()
        state = mail_state(self.lab)
        delay = self.lab.faults.latency_seconds(self.name)
        if delay:
            time.sleep(delay)
        fault = self.lab.faults.pick(self.name, "AUTHENTICATE", "/XOAUTH2")
        if fault is not None:
            state.record_fault(self.name, "XOAUTH2", fault["status"])
            LOG.info("imap login %s: injected fault %s (session %s)", user, fault["status"], session)
            raise DictFailure("injected fault %s" % fault["status"])
        decision = state.decide_oauth(self.name, user, token)
        state.record_login(self.name, "XOAUTH2", decision, client=session or None)
        LOG.info("imap login %s %s: %s (%s) session %s", decision.mailbox, "ok" if decision.ok else "refused", decision.reason,
                 decision.detail, session)
        if decision.ok:
            return {"nopassword": "y"}
        return {"nopassword": "y", "nologin": "y", "reason": REFUSED}

    def deliver(self, address, content):
        """Put a message accepted by the SMTP emulator into a lab mailbox's INBOX (no-op without IMAP)."""
        if self.dovecot is not None:
            return self.dovecot.deliver(address, content)
        return None

    # ----- what clients and tests read -----------------------------------------------------------------
    def ansible_vars(self):
        if not self.enabled:
            return {}
        return {"lab_imap": {"host": "127.0.0.1", "port": self.port}}

    def snapshot(self):
        state = mail_state(self.lab)
        return {"enabled": self.enabled, "url": self.url, "host": "127.0.0.1" if self.enabled else None, "port": self.port,
                "dovecot_log": self.dovecot.log_file if self.dovecot else None, "logins": state.login_stats(self.name),
                "recent_logins": state.login_log(self.name)[-20:]}

    def admin(self, method, path, body):
        """Lab-only routes under the admin API's /services/imap; returns (status, JSON).

        GET /state              this service's snapshot (as /state/imap)
        GET /logins             the IMAP login log: [{time, service, mechanism, mailbox, outcome, reason, detail,
                                tenant_id, app_id, service_principal_id, client}], oldest first
        GET /stats              login counts: ok, refused, reasons, mechanisms, directories, mailboxes
        """
        path = path.rstrip("/") or "/"
        state = mail_state(self.lab)
        if method == "GET" and path == "/state":
            return 200, self.snapshot()
        if method == "GET" and path == "/logins":
            return 200, {"value": state.login_log(self.name)}
        if method == "GET" and path == "/stats":
            return 200, state.login_stats(self.name)
        return 404, {"error": "no imap admin endpoint %s %s (state, logins, stats)" % (method, path)}
