"""Exchange Online's SMTP submission endpoint ("smtp", smtp.office365.com:587 in the real world):
aiosmtpd on a free 127.0.0.1 port, STARTTLS (lab certificate) before anything else, AUTH before
MAIL, logins decided as Exchange decides them (imap_smtp_state.py).

On the wire:
  220 <host> Microsoft ESMTP MAIL Service ready
  EHLO -> 250-<host> Hello [127.0.0.1], SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, STARTTLS
          (before TLS) / AUTH LOGIN XOAUTH2 (after TLS: what Exchange Online offers; no PLAIN)
  AUTH XOAUTH2 <base64 user=<mailbox>^Aauth=Bearer <token>^A^A>   (or "AUTH XOAUTH2", "334 ", the response)
      235 2.7.0 Authentication successful
      535 5.7.3 Authentication unsuccessful [<host>]                         refused, for any reason
  AUTH LOGIN (334 VXNlcm5hbWU6 / 334 UGFzc3dvcmQ6: "Username:" / "Password:")
      235 2.7.0 Authentication successful
      535 5.7.3 Authentication unsuccessful [<host>]                         wrong user or password
      535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [<host>]
                                                    smtp_basic_auth_enabled false for the directory
  454 4.7.0 Temporary authentication failure [<host>]                      injected fault
  MAIL FROM before AUTH: 530 5.7.57 Client not authenticated to send mail. [<host>]
  MAIL FROM other than the authenticated mailbox (or one of its addresses):
      550 5.7.60 SMTP; Client does not have permissions to send as this sender [<host>]
  MAIL 250 2.1.0 Sender OK, RCPT 250 2.1.5 Recipient OK, DATA 354 ..., then
      250 2.0.0 OK <message id> [Hostname=<host>]   and the lab records the message (mailbox,
      envelope from/to, Subject, From, To, Message-ID, size) and delivers it to recipients that are
      lab mailboxes (their IMAP INBOX).
Command lines up to 16 KiB (an XOAUTH2 initial response with an Entra token is ~2-3 KiB).

Lab side: the login log (/services/smtp/logins), counts (/services/smtp/stats; lab counters
"AUTH XOAUTH2" / "AUTH LOGIN" as reads, "DATA" as a write), delivered messages
(/services/smtp/messages), per-directory settings (/services/smtp/directories/<d>/settings
{"smtp_basic_auth_enabled": false}); faults: latency_ms / jitter_ms delay AUTH, fail_next /
rate_503 / rate_429 make it fail temporarily. lab-vars: lab_smtp {host, port} and
lab_mailbox_passwords {address: password} (lab-only basic-auth passwords).
"""

import asyncio
import base64
import binascii
import collections
import logging
import re
import socket
import ssl
import uuid

from . import exchange_state as exo
from .imap_smtp_state import Decision, find_mailbox, mail_state, parse_xoauth2
from .service import Service

LOG = logging.getLogger("ceops_lab")
HOST_NAME = "CEOPSLAB01.lab.prod.outlook.invalid"  # shaped like Exchange's server names; never resolvable
LINE_LIMIT = 16 * 1024
SIZE_LIMIT = 157286400  # Exchange Online's advertised SIZE
OAUTH_REFUSED = "535 5.7.3 Authentication unsuccessful [%s]" % HOST_NAME
BASIC_REFUSED = OAUTH_REFUSED
BASIC_DISABLED = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [%s]" % HOST_NAME
TEMPORARY = "454 4.7.0 Temporary authentication failure [%s]" % HOST_NAME
NOT_AUTHENTICATED = "530 5.7.57 Client not authenticated to send mail. [%s]" % HOST_NAME
SEND_AS_DENIED = "550 5.7.60 SMTP; Client does not have permissions to send as this sender [%s]" % HOST_NAME
SUCCESS = "235 2.7.0 Authentication successful"


def _require_aiosmtpd():
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult
    except ImportError:
        raise SystemExit("smtp: aiosmtpd not installed: pip install aiosmtpd") from None
    return Controller, SMTP, AuthResult


class SmtpService(Service):
    name = "smtp"
    http = False

    def __init__(self, lab):
        super().__init__(lab)
        self.controller = None
        self.port = None
        self.url = ""

    # ----- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        Controller, SMTP, AuthResult = _require_aiosmtpd()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(self.lab.server_cert, self.lab.server_key)
        handler = _Handler(self, AuthResult)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(100)
        server_class = _server_class(SMTP)

        class _Controller(Controller):
            def factory(self):
                return server_class(self.handler, **self.SMTP_kwargs)

            def _create_server(self):
                return self.loop.create_server(self._factory_invoker, sock=listener)

        self.port = listener.getsockname()[1]
        self.controller = _Controller(handler, hostname="127.0.0.1", port=self.port, server_hostname=HOST_NAME,
                                      ident="Microsoft ESMTP MAIL Service ready", tls_context=tls, require_starttls=True,
                                      auth_required=True, auth_require_tls=True, auth_exclude_mechanism=["PLAIN"],
                                      data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True, decode_data=False, ready_timeout=10)
        self.controller.start()
        self.url = "smtp://127.0.0.1:%d" % self.port
        LOG.info("smtp: aiosmtpd on 127.0.0.1:%d (STARTTLS)", self.port)

    def stop(self):
        controller, self.controller = self.controller, None
        if controller is not None:
            try:
                controller.stop()
            except (AssertionError, RuntimeError):
                LOG.debug("smtp: stop", exc_info=True)

    def reset(self):
        mail_state(self.lab).reset()

    # ----- what clients and tests read -----------------------------------------------------------------
    def ansible_vars(self):
        state = mail_state(self.lab)
        return {"lab_smtp": {"host": "127.0.0.1", "port": self.port}, "lab_mailbox_passwords": dict(state.passwords)}

    def snapshot(self):
        state = mail_state(self.lab)
        return {"url": self.url, "host": "127.0.0.1", "port": self.port, "settings": state.settings_view(),
                "logins": state.login_stats(self.name), "recent_logins": state.login_log(self.name)[-20:], "messages": state.delivered()}

    def admin(self, method, path, body):
        """Lab-only routes under the admin API's /services/smtp; returns (status, JSON).

        GET  /state                           this service's snapshot (as /state/smtp)
        GET  /logins                          the SMTP login log (same shape as /services/imap/logins)
        GET  /stats                           login counts: ok, refused, reasons, mechanisms, directories, mailboxes
        GET  /messages                        accepted messages: [{time, mailbox, mechanism, tenant_id, app_id, mail_from,
                                              rcpt_to, subject, from, to, message_id, size}], oldest first
        GET  /directories/<d>/settings        {"smtp_basic_auth_enabled": true}
        POST /directories/<d>/settings        {"smtp_basic_auth_enabled": false} switches AUTH LOGIN off for the directory
        """
        path = path.rstrip("/") or "/"
        state = mail_state(self.lab)
        if method == "GET" and path == "/state":
            return 200, self.snapshot()
        if method == "GET" and path == "/logins":
            return 200, {"value": state.login_log(self.name)}
        if method == "GET" and path == "/stats":
            return 200, state.login_stats(self.name)
        if method == "GET" and path == "/messages":
            return 200, {"value": state.delivered()}
        match = re.match(r"^/directories/([^/]+)/settings$", path)
        if match:
            with self.lab.world.lock:
                directory = self.lab.world.directory(match.group(1))
            if directory is None:
                return 404, {"error": "no directory %r" % match.group(1)}
            if method == "POST":
                body = body or {}
                unknown = set(body) - {"smtp_basic_auth_enabled"}
                if unknown:
                    return 400, {"error": "unknown setting(s): %s" % ", ".join(sorted(unknown))}
                if "smtp_basic_auth_enabled" in body:
                    if not isinstance(body["smtp_basic_auth_enabled"], bool):
                        return 400, {"error": "smtp_basic_auth_enabled must be true or false"}
                    state.set_smtp_basic_auth_enabled(directory.tenant_id, body["smtp_basic_auth_enabled"])
            elif method != "GET":
                return 405, {"error": "GET or POST /services/smtp/directories/<d>/settings"}
            return 200, {"directory": directory.name, "tenant_id": directory.tenant_id,
                         "smtp_basic_auth_enabled": state.smtp_basic_auth_enabled(directory.tenant_id)}
        return 404, {"error": "no smtp admin endpoint %s %s (state, logins, stats, messages, directories/<d>/settings)" % (method, path)}


def _server_class(SMTP):
    class ExchangeSMTP(SMTP):
        """aiosmtpd with Exchange's limits and texts where they differ from aiosmtpd's."""

        line_length_limit = LINE_LIMIT
        command_size_limit = LINE_LIMIT

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # aiosmtpd keeps this dict on the class (shared, defaulting to SMTP's 512); one per session here.
            self.command_size_limits = collections.defaultdict(lambda: LINE_LIMIT)

        async def check_auth_needed(self, caller_method):
            if self._auth_required and not self.session.authenticated:
                await self.push(NOT_AUTHENTICATED)
                return True
            return False

    return ExchangeSMTP


class _Handler:
    """aiosmtpd handler: Exchange's EHLO, the AUTH mechanisms and the MAIL / RCPT / DATA hooks."""

    def __init__(self, service, auth_result):
        self.service = service
        self.lab = service.lab
        self.AuthResult = auth_result

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        peer = session.peer[0] if session.peer else "127.0.0.1"
        lines = ["%s Hello [%s]" % (server.hostname, peer), "SIZE %d" % SIZE_LIMIT, "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"]
        if server.tls_context and not server._tls_protocol:
            lines.append("STARTTLS")
        else:
            lines.append("AUTH " + " ".join(sorted(server._auth_methods)))
        return ["250-" + line for line in lines[:-1]] + ["250 " + lines[-1]]

    # ----- AUTH ------------------------------------------------------------------------------------------
    async def _delay_or_fault(self, server, mechanism):
        """Latency and injected failures; True when a fault answered the AUTH."""
        delay = self.lab.faults.latency_seconds(self.service.name)
        if delay:
            await asyncio.sleep(delay)
        fault = self.lab.faults.pick(self.service.name, "AUTH", "/" + mechanism)
        if fault is not None:
            mail_state(self.lab).record_fault(self.service.name, mechanism, 454)
            await server.push(TEMPORARY)
            return True
        return False

    async def _client_response(self, server, args):
        """The decoded SASL response: the initial response, or one "334 " round trip; None if aborted."""
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return base64.b64decode(args[1].encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                await server.push("501 5.5.2 Cannot Decode base64 data")
                return None
        answer = await server.challenge_auth("", encode_to_b64=False)
        return None if not isinstance(answer, bytes) else answer

    async def auth_XOAUTH2(self, server, args):
        raw = await self._client_response(server, args)
        if raw is None:
            return self.AuthResult(success=False, handled=True)
        if await self._delay_or_fault(server, "XOAUTH2"):
            return self.AuthResult(success=False, handled=True)
        state = mail_state(self.lab)
        user, token = parse_xoauth2(raw)
        if user is None:
            decision = Decision(False, "malformed", "the XOAUTH2 response is malformed")
        else:
            decision = state.decide_oauth(self.service.name, user, token)
        state.record_login(self.service.name, "XOAUTH2", decision, client=_peer(server))
        LOG.info("smtp login %s XOAUTH2 %s: %s (%s)", decision.mailbox, "ok" if decision.ok else "refused", decision.reason,
                 decision.detail)
        if not decision.ok:
            await server.push(OAUTH_REFUSED)
            return self.AuthResult(success=False, handled=True)
        return self.AuthResult(success=True, message=SUCCESS, auth_data=_identity(decision, "XOAUTH2"))

    async def auth_LOGIN(self, server, args):
        if len(args) > 1:
            try:
                username = base64.b64decode(args[1].encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                await server.push("501 5.5.2 Cannot Decode base64 data")
                return self.AuthResult(success=False, handled=True)
        else:
            username = await server.challenge_auth("Username:")
            if not isinstance(username, bytes):
                return self.AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return self.AuthResult(success=False, handled=True)
        if await self._delay_or_fault(server, "LOGIN"):
            return self.AuthResult(success=False, handled=True)
        state = mail_state(self.lab)
        decision = state.decide_basic(username.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
        state.record_login(self.service.name, "LOGIN", decision, client=_peer(server))
        LOG.info("smtp login %s LOGIN %s: %s (%s)", decision.mailbox, "ok" if decision.ok else "refused", decision.reason, decision.detail)
        if not decision.ok:
            await server.push(BASIC_DISABLED if decision.reason == "basic_auth_disabled" else BASIC_REFUSED)
            return self.AuthResult(success=False, handled=True)
        return self.AuthResult(success=True, message=SUCCESS, auth_data=_identity(decision, "LOGIN"))

    # ----- the message -----------------------------------------------------------------------------------
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        identity = session.auth_data or {}
        if not self._may_send_as(identity, address):
            LOG.info("smtp MAIL FROM %s refused: authenticated as %s", address, identity.get("mailbox"))
            return SEND_AS_DENIED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server, session, envelope):
        identity = session.auth_data or {}
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        entry = mail_state(self.lab).record_message(identity, envelope.mail_from, envelope.rcpt_tos, content)
        imap = self.lab.services.get("imap")
        for recipient in envelope.rcpt_tos:
            if imap is not None and self._is_lab_mailbox(recipient):
                try:
                    imap.deliver(recipient, content)
                except OSError:
                    LOG.exception("smtp: delivery to %s failed", recipient)
        LOG.info("smtp message from %s to %s accepted (%d bytes)", envelope.mail_from, ", ".join(envelope.rcpt_tos), entry["size"])
        return "250 2.0.0 OK <%s@%s> [Hostname=%s]" % (uuid.uuid4(), HOST_NAME.split(".", 1)[1], HOST_NAME)

    def _may_send_as(self, identity, address):
        mailbox = identity.get("mailbox")
        if not mailbox or not address:
            return False
        if address.lower() == mailbox.lower():
            return True
        with self.lab.world.lock:
            directory = self.lab.world.directories.get(identity.get("tenant_id"))
            if directory is None:
                return False
            found = find_mailbox(exo.organization(directory), address)
            return found is not None and found is find_mailbox(exo.organization(directory), mailbox)

    def _is_lab_mailbox(self, address):
        with self.lab.world.lock:
            return any(find_mailbox(exo.organization(d), address) is not None for d in self.lab.world.directories.values())


def _identity(decision, mechanism):
    return {"mailbox": decision.mailbox, "tenant_id": decision.tenant_id, "app_id": decision.app_id, "mechanism": mechanism}


def _peer(server):
    peer = server.session.peer if server.session else None
    return "%s:%s" % peer[:2] if peer else None
