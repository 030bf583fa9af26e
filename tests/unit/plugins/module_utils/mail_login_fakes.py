# -*- coding: utf-8 -*-
"""Fake Exchange Online mail endpoints for tests: a threaded TLS IMAP server and an aiosmtpd SMTP
server with STARTTLS, both deciding logins as Exchange does (token audience, issuer, role, service
principal registered in Exchange, FullAccess on the mailbox) and refusing with Exchange's words.

Also a small CA for their certificates and unsigned tokens for unit tests. Imported by the
mail_login / mailbox_oauth_check tests (unit and integration); test_mail_login_fakes.py checks the fakes.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import collections
import datetime
import ipaddress
import json
import os
import socket
import socketserver
import ssl
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

EXCHANGE = "https://outlook.office365.com"
IMAP_REFUSAL = "AUTHENTICATE failed."
SMTP_REFUSAL = "535 5.7.3 Authentication unsuccessful [FAKE.PROD.OUTLOOK.COM]"
SMTP_AUTH_DISABLED = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox."
BASIC_AUTH_DISABLED = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [FAKE.PROD.OUTLOOK.COM]"
IMAP_CAPABILITIES = ("IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT", "CHILDREN",
                     "IDLE", "NAMESPACE", "LITERAL+")


# -- certificates ---------------------------------------------------------------------------------
def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_ca(directory):
    """A CA and a server certificate for 127.0.0.1 / localhost; (ca_file, cert_file, key_file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake mail CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    return issue_server_cert(directory, ca_key, ca_cert, write_ca=True)


def issue_server_cert(directory, ca_key, ca_cert, write_ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    key = _key()
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(str(directory), name) for name in ("fake-ca.pem", "fake-server.pem", "fake-server-key.pem")]
    if write_ca:
        with open(paths[0], "wb") as handle:
            handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tuple(paths)


def server_context(cert_file, key_file):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


# -- tokens and Exchange's decision ---------------------------------------------------------------
def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(**claims):
    """A JWT-shaped token with the given claims (and an invalid signature): enough for unit tests."""
    now = int(time.time())
    body = {"aud": EXCHANGE, "iss": "https://sts.windows.net/%s/" % claims.get("tid", ""), "exp": now + 3599, "nbf": now}
    body.update(claims)
    return "%s.%s.%s" % (_b64(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()), _b64(json.dumps(body).encode()), _b64(b"unsigned"))


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class _Decider:
    """Basic-auth accounts and the log of what the fakes saw (protocol, user, ok), never a token."""

    def __init__(self):
        self.passwords = {}  # basic auth: username -> password
        self.basic_auth_disabled = False
        self.logins = []
        self.lock = threading.Lock()

    def record(self, protocol, user, ok):
        with self.lock:
            self.logins.append((protocol, user, ok))

    def basic_login(self, user, password):
        """None when the password login is accepted, else the SMTP reply."""
        ok = not self.basic_auth_disabled and self.passwords.get(user.lower()) == password
        self.record("smtp-basic", user, ok)
        if ok:
            return None
        return BASIC_AUTH_DISABLED if self.basic_auth_disabled else SMTP_REFUSAL


class ExchangeRules(_Decider):
    """What Exchange Online knows when it decides a XOAUTH2 login: which service principals are
    registered (New-ServicePrincipal) and who has FullAccess on which mailbox (Add-MailboxPermission).
    ``verify(token)`` raises for a token whose signature is bad (None: not checked)."""

    def __init__(self, tenant_id, mailboxes, verify=None, audience=EXCHANGE):
        super().__init__()
        self.tenant_id = tenant_id
        self.mailboxes = set(m.lower() for m in mailboxes)
        self.verify = verify
        self.audience = audience
        self.service_principals = set()  # (appid, oid)
        self.full_access = {}  # mailbox -> set of oid
        self.smtp_auth_disabled = set()

    def register(self, appid, oid):
        self.service_principals.add((appid, oid))

    def grant(self, oid, *mailboxes):
        for mailbox in mailboxes:
            self.full_access.setdefault(mailbox.lower(), set()).add(oid)

    def decide(self, protocol, user, token):
        """None when Exchange would let ``user`` in with ``token``, else a reason (for the test's eyes only)."""
        reason = self._reason(protocol, user, token)
        self.record(protocol, user, reason is None)
        return reason

    def _reason(self, protocol, user, token):
        try:
            if self.verify:
                self.verify(token)
            claims = claims_of(token)
        except Exception as exc:  # pylint: disable=broad-except
            return "bad token: %s" % exc
        if claims.get("aud", "").rstrip("/") != self.audience:
            return "audience"
        if claims.get("iss") != "https://sts.windows.net/%s/" % self.tenant_id or claims.get("tid") != self.tenant_id:
            return "issuer"
        if claims.get("exp", 0) < time.time():
            return "expired"
        role = "IMAP.AccessAsApp" if protocol == "imap" else "SMTP.SendAsApp"
        if role not in (claims.get("roles") or []):
            return "no role"
        if (claims.get("appid"), claims.get("oid")) not in self.service_principals:
            return "service principal not registered"
        if user.lower() not in self.mailboxes:
            return "no such mailbox"
        if claims.get("oid") not in self.full_access.get(user.lower(), set()):
            return "no FullAccess"
        if protocol == "smtp" and user.lower() in self.smtp_auth_disabled:
            return "smtp auth disabled"
        return None


class ExchangeWorld(_Decider):
    """Several directories behind one pair of mail endpoints, as Exchange Online is: the token's tid picks the rules."""

    def __init__(self, *rules):
        super().__init__()
        self.directories = dict((r.tenant_id, r) for r in rules)

    def decide(self, protocol, user, token):
        try:
            rules = self.directories.get(claims_of(token).get("tid"))
        except ValueError:
            rules = None
        reason = rules.decide(protocol, user, token) if rules else "unknown directory"
        self.record(protocol, user, reason is None)
        return reason


def parse_xoauth2(blob):
    """(user, token) from a decoded XOAUTH2 initial response; ValueError when malformed."""
    text = blob.decode("utf-8")
    if not text.startswith("user=") or not text.endswith("\x01\x01"):
        raise ValueError("malformed XOAUTH2 response")
    user_part, auth_part = text[:-2].split("\x01", 1)
    if not auth_part.startswith("auth=Bearer "):
        raise ValueError("malformed XOAUTH2 response")
    return user_part[len("user="):], auth_part[len("auth=Bearer "):]


# -- IMAP -----------------------------------------------------------------------------------------
class _ImapHandler(socketserver.StreamRequestHandler):
    timeout = 10

    def send(self, line):
        self.wfile.write(line.encode("utf-8") + b"\r\n")
        self.wfile.flush()

    def handle(self):
        server = self.server
        server.connections += 1
        self.send("* OK [CAPABILITY %s] The Microsoft Exchange IMAP4 service is ready." % " ".join(server.capabilities))
        authenticated = False
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            parts = raw.decode("utf-8", "replace").rstrip("\r\n").split(" ")
            tag, command, args = parts[0], (parts[1].upper() if len(parts) > 1 else ""), parts[2:]
            if command == "CAPABILITY":
                self.send("* CAPABILITY %s" % " ".join(server.capabilities))
                self.send("%s OK CAPABILITY completed." % tag)
            elif command == "AUTHENTICATE":
                authenticated = self.authenticate(tag, args) or authenticated
            elif command in ("EXAMINE", "SELECT") and authenticated:
                self.send("* 3 EXISTS")
                self.send("* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)")
                self.send("%s OK [READ-ONLY] %s completed." % (tag, command))
            elif command == "LOGOUT":
                self.send("* BYE Microsoft Exchange Server IMAP4 server signing off.")
                self.send("%s OK LOGOUT completed." % tag)
                return
            elif command == "NOOP":
                self.send("%s OK NOOP completed." % tag)
            else:
                self.send("%s BAD Command Error. 12" % tag)

    def authenticate(self, tag, args):
        server = self.server
        if not args or args[0].upper() != "XOAUTH2" or "AUTH=XOAUTH2" not in server.capabilities:
            self.send("%s NO The AUTH protocol exchange was canceled by the client." % tag)
            return False
        if len(args) > 1:
            blob = args[1]
        else:
            self.send("+ ")
            blob = self.rfile.readline(65536).decode("ascii", "replace").strip()
        try:
            user, token = parse_xoauth2(base64.b64decode(blob, validate=True))
        except ValueError:
            self.send("%s BAD Command Argument Error. 11" % tag)
            return False
        reason = server.rules.decide("imap", user, token)
        if reason is None:
            self.send("%s OK AUTHENTICATE completed." % tag)
            return True
        if server.error_challenge:
            # Dovecot / Gmail style: the error as a base64 JSON challenge first, the NO after the client's empty answer.
            self.send("+ " + base64.b64encode(json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"}).encode()).decode())
            self.rfile.readline(65536)
        self.send("%s NO %s" % (tag, server.refusal))
        return False


class _TlsThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        sock, address = super().get_request()
        sock.settimeout(10)
        try:
            return self.tls.wrap_socket(sock, server_side=True), address
        except (ssl.SSLError, OSError):
            sock.close()
            raise


class FakeImapServer:
    """IMAP over implicit TLS on 127.0.0.1 that decides XOAUTH2 logins with ``rules``."""

    def __init__(self, rules, cert_file, key_file, capabilities=IMAP_CAPABILITIES, refusal=IMAP_REFUSAL, error_challenge=False):
        self.server = _TlsThreadingServer(("127.0.0.1", 0), _ImapHandler)
        self.server.tls = server_context(cert_file, key_file)
        self.server.rules = rules
        self.server.capabilities = list(capabilities)
        self.server.refusal = refusal
        self.server.error_challenge = error_challenge
        self.server.connections = 0
        self.host, self.port = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def connections(self):
        return self.server.connections

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# -- SMTP (aiosmtpd) ------------------------------------------------------------------------------
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeSmtpServer:
    """SMTP submission with STARTTLS required before AUTH (XOAUTH2 and LOGIN/PLAIN), as Exchange Online's port 587."""

    def __init__(self, rules, cert_file, key_file):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult

        class BigLineSMTP(SMTP):
            # AUTH XOAUTH2 <base64 JWT> is far longer than RFC 5321's 512 octets; Exchange takes it. The per-command
            # limits default to SMTP.command_size_limit (not the subclass's), so they get their own dict.
            command_size_limit = 16384
            line_length_limit = 16384
            command_size_limits = collections.defaultdict(lambda: 16384)

        class ExchangeController(Controller):
            def factory(self):
                return BigLineSMTP(self.handler, **self.SMTP_kwargs)

        fake = self
        self.rules = rules
        self.messages = []

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if "@" not in address:
                    return "501 5.1.3 Invalid address"
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 Recipient OK"

            async def handle_DATA(self, server, session, envelope):
                fake.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "content": envelope.content})
                return "250 2.0.0 OK <fake> Queued mail for delivery"

            async def auth_XOAUTH2(self, server, args):
                if len(args) > 1:
                    blob = base64.b64decode(args[1])
                else:
                    blob = await server.challenge_auth("")
                try:
                    user, token = parse_xoauth2(blob)
                except (ValueError, TypeError, AttributeError):
                    return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode response")
                reason = rules.decide("smtp", user, token)
                if reason is None:
                    return AuthResult(success=True, auth_data=user)
                message = SMTP_AUTH_DISABLED if reason == "smtp auth disabled" else SMTP_REFUSAL
                return AuthResult(success=False, handled=False, message=message)

        def authenticator(server, session, envelope, mechanism, auth_data):
            user = auth_data.login.decode("utf-8")
            refusal = rules.basic_login(user, auth_data.password.decode("utf-8"))
            if refusal is None:
                return AuthResult(success=True, auth_data=user)
            return AuthResult(success=False, handled=False, message=refusal)

        self.host, self.port = "127.0.0.1", free_port()
        self.controller = ExchangeController(Handler(), hostname=self.host, port=self.port, tls_context=server_context(cert_file, key_file),
                                             require_starttls=True, auth_required=True, auth_require_tls=True, authenticator=authenticator,
                                             ident="Microsoft ESMTP MAIL Service ready")

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
