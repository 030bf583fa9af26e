# -*- coding: utf-8 -*-
"""The mail endpoints of the mailbox_oauth_check lab tests (the module's and verify.yml's): the lab's own IMAP and SMTP
when it serves them, else the fakes of tests/unit/plugins/module_utils/mail_login_fakes.py deciding from the lab's
Exchange state (fixtures lab_tls and mail), and the tokens a run left in its token cache."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "plugins", "module_utils"))
from mail_login_fakes import (  # noqa: E402  pylint: disable=wrong-import-position
    ExchangeRules, ExchangeWorld, FakeImapServer, FakeSmtpServer, claims_of, issue_server_cert)

CONTOSO = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"


# -- the lab as Exchange Online's mail endpoints ----------------------------------------------------
def lab_verifier(lab):
    """verify(token): raises unless the lab's Entra signed it (checked against its published keys)."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    from ceops_lab import jwt

    status, dummy, body = lab.request("GET", "%s/%s/discovery/v2.0/keys" % (lab.vars["lab_authority_host"], CONTOSO))
    assert status == 200, body
    keys = dict((k["kid"], RSAPublicNumbers(int.from_bytes(jwt.b64url_decode(k["e"]), "big"),
                                            int.from_bytes(jwt.b64url_decode(k["n"]), "big")).public_key()) for k in body["keys"])

    def verify(token):
        header, dummy_claims, signing_input, signature = jwt.decode_unverified(token)
        if header.get("kid") not in keys:
            raise jwt.JwtError("unknown signing key")
        jwt.verify_signature(header, signing_input, signature, keys[header["kid"]])
    return verify


class LabExchange(ExchangeWorld):
    """Exchange's decision from the lab's Exchange Online state at the moment of each login. Logins arrive
    from many threads at once, so every decision gets rules of its own."""

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.verify = lab_verifier(lab)
        self.names = dict((d["tenant_id"], name) for name, d in lab.vars["lab_directories"].items())

    def decide(self, protocol, user, token):
        try:
            tenant = claims_of(token).get("tid")
        except ValueError:
            tenant = None
        if tenant not in self.names:
            self.record(protocol, user, False)
            return "unknown directory"
        reason = self.rules(tenant).decide(protocol, user, token)
        self.record(protocol, user, reason is None)
        return reason

    def rules(self, tenant):
        state = self.lab.exchange_state(self.names[tenant])
        by_sid = dict((s["Sid"], s["ObjectId"]) for s in state["service_principals"])
        addresses_of = dict((m["PrimarySmtpAddress"], [m["PrimarySmtpAddress"]] + [a.split(":", 1)[1] for a in m["EmailAddresses"]])
                            for m in state["mailboxes"])
        rules = ExchangeRules(tenant, [a for addresses in addresses_of.values() for a in addresses], verify=self.verify)
        for sp in state["service_principals"]:
            rules.register(sp["AppId"], sp["ObjectId"])
        for mailbox in state["mailboxes"]:
            entries = [e for e in mailbox["permissions"] if "FullAccess" in e["AccessRights"] and e["UserSid"] in by_sid]
            allowed = set(by_sid[e["UserSid"]] for e in entries if not e["Deny"]) - set(by_sid[e["UserSid"]] for e in entries if e["Deny"])
            for oid in allowed:
                rules.grant(oid, *addresses_of[mailbox["PrimarySmtpAddress"]])
        return rules


@pytest.fixture(scope="session")
def lab_tls(lab, tmp_path_factory):
    """(ca_file, cert_file, key_file): a server certificate from the lab's own CA, so ca_path serves both."""
    from ceops_lab.ca import CertificateAuthority

    ca = CertificateAuthority.load_or_create(lab.state_dir)
    directory = tmp_path_factory.mktemp("lab-mail-tls")
    dummy, cert_file, key_file = issue_server_cert(str(directory), ca.key, ca.cert)
    return lab.vars["lab_ca_path"], cert_file, key_file


def lab_serves_mail(lab):
    return "lab_imap" in lab.vars and "lab_smtp" in lab.vars


class LabMail:
    """The lab's own IMAP and SMTP endpoints."""

    source = "lab"

    def __init__(self, lab):
        self.lab = lab
        self.imap_host, self.imap_port = lab.mail_endpoint("imap")
        self.smtp_host, self.smtp_port = lab.mail_endpoint("smtp")

    def logins(self):
        """[(protocol, mailbox, ok)]: imap, smtp (XOAUTH2) or smtp-basic (AUTH LOGIN), oldest first."""
        return [("smtp-basic" if e["service"] == "smtp" and e["mechanism"].upper() != "XOAUTH2" else e["service"], e["mailbox"],
                 e["outcome"] == "ok") for e in self.lab.mail_logins()]

    def messages(self):
        return [{"from": m["mail_from"], "to": m["rcpt_to"], "subject": m["subject"]} for m in self.lab.smtp_messages()]

    def password(self, mailbox):
        return self.lab.mailbox_password(mailbox)

    def disable_basic_auth(self, directory):
        self.lab.smtp_settings(directory, smtp_basic_auth_enabled=False)


class FakeMail:
    """The in-process fakes, deciding from the lab's state."""

    source = "fakes"

    def __init__(self, exchange, imap, smtp):
        self.exchange, self.smtp = exchange, smtp
        self.imap_host, self.imap_port, self.smtp_host, self.smtp_port = imap.host, imap.port, smtp.host, smtp.port

    def logins(self):
        return list(self.exchange.logins)

    def messages(self):
        return [{"from": m["from"], "to": m["to"], "subject": "Test"} for m in self.smtp.messages]

    def password(self, mailbox):
        self.exchange.passwords[mailbox.lower()] = "Fake-" + mailbox
        return self.exchange.passwords[mailbox.lower()]

    def disable_basic_auth(self, directory):
        self.exchange.basic_auth_disabled = True


@pytest.fixture
def mail(fresh_lab, lab_tls):
    """The mail endpoints: the lab's own when it serves them, else the fakes."""
    if lab_serves_mail(fresh_lab):
        yield LabMail(fresh_lab)
        return
    exchange = LabExchange(fresh_lab)
    with FakeImapServer(exchange, lab_tls[1], lab_tls[2]) as imap, FakeSmtpServer(exchange, lab_tls[1], lab_tls[2]) as smtp:
        yield FakeMail(exchange, imap, smtp)


def cached_tokens(directory):
    tokens = []
    for path in glob.glob(os.path.join(directory, "*.json")):
        with open(path) as handle:
            tokens.append(json.load(handle)["access_token"])
    return tokens
