# -*- coding: utf-8 -*-
"""Module options for the security tests (bad input, TLS, least privilege): the lab's contoso directory reached by its
automation identity, its WinRM management host and CE's mail login check; and the secret search: every credential the lab
hands out and every form in which a leaked one may appear."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import json
import re
import urllib.parse

DIRECTORY = "contoso"
DOMAIN = "contoso.onmicrosoft.com"


def ms(lab, **overrides):
    d = lab.vars["lab_directories"][DIRECTORY]
    args = dict(tenant_id=d["tenant_id"], client_id=d["automation_client_id"], client_secret=d["automation_client_secret"],
                authority_host=lab.vars["lab_authority_host"], graph_endpoint=lab.vars["lab_graph_endpoint"],
                exchange_endpoint=lab.vars["lab_exchange_endpoint"], ca_path=lab.vars["lab_ca_path"])
    args.update(overrides)
    return args


def automation(lab):
    return lab.directory(DIRECTORY)


def winrm(lab, **overrides):
    w = lab.vars["lab_winrm"]
    options = dict(host=w["host"], port=w["port"], scheme=w["scheme"], path=w["path"], transport=w["transport"], username=w["username"],
                   password=w["password"], ca_path=lab.vars["lab_ca_path"], certificate_thumbprint=w["certificate_thumbprints"][DIRECTORY])
    options.update(overrides)
    return options


def permission(lab, mailboxes, **overrides):
    args = ms(lab, user=automation(lab)["automation_service_principal_id"], mailboxes=mailboxes)
    args.update(overrides)
    return args


def check_args(lab, **overrides):
    imap, smtp = lab.vars["lab_imap"], lab.vars["lab_smtp"]
    d = lab.vars["lab_directories"][DIRECTORY]
    args = dict(tenant_id=d["tenant_id"], client_id=d["automation_client_id"], client_secret=d["automation_client_secret"],
                authority_host=lab.vars["lab_authority_host"], ca_path=lab.vars["lab_ca_path"], imap_host=imap["host"],
                imap_port=imap["port"], smtp_host=smtp["host"], smtp_port=smtp["port"], mailboxes=["ce-support@" + DOMAIN])
    args.update(overrides)
    return args


def exchange_knows_the_automation(lab, run_module=None):
    """Exchange has the automation identity's service principal, as if exo_service_principal had run for it."""
    d = automation(lab)
    lab.exchange_register_service_principal(DIRECTORY, d["automation_client_id"], d["automation_service_principal_id"], "ceops automation")


def lab_secrets(lab):
    """Every credential the lab hands out: automation secrets, the certificate key, CE tokens and passwords, WinRM and mailbox passwords."""
    v = lab.vars
    found = {}
    for name, d in v["lab_directories"].items():
        found["automation secret " + name] = d.get("automation_client_secret")
        path = d.get("automation_certificate_path")
        if path:
            with open(path) as handle:
                pem = handle.read()
            body = pem.split("PRIVATE KEY-----", 1)[1].split("-----END", 1)[0]
            for number, line in enumerate(l for l in body.splitlines() if len(l.strip()) >= 40):
                found["certificate key %s line %d" % (name, number)] = line.strip()
    for name, deployment in v["lab_ce_deployments"].items():
        for who, creds in [("admin", deployment)] + sorted(deployment["tenants"].items()):
            found["CE %s %s token" % (name, who)] = creds["admin_token"]
            found["CE %s %s password" % (name, who)] = creds["admin_password"]
    found["WinRM password"] = v["lab_winrm"]["password"]
    for address, password in v["lab_mailbox_passwords"].items():
        found["mailbox password " + address] = password
    return dict((k, s) for k, s in found.items() if s)


def _lower_hex(text):
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def variants(secret):
    """How a value may appear when it leaks: as is, percent- and form-encoded (either case of hex digits), JSON-escaped
    (with and without ensure_ascii, \\u in either case, an escaped solidus), HTML-escaped, and a form or JSON body that
    carries it quoted in a JSON message (what a client shows of a service that echoes the request)."""
    as_json = json.dumps(secret)[1:-1]
    encoded = set((secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), urllib.parse.quote_plus(secret),
                   as_json, json.dumps(secret, ensure_ascii=False)[1:-1], as_json.replace("/", "\\/"), html.escape(secret),
                   re.sub(r"\\u[0-9a-f]{4}", lambda m: m.group(0).upper().replace("\\U", "\\u"), as_json)))
    encoded |= set(_lower_hex(form) for form in encoded)
    encoded |= set(json.dumps(form)[1:-1] for form in list(encoded))
    return encoded
