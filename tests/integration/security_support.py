# -*- coding: utf-8 -*-
"""Module options for the security tests (bad input, TLS, least privilege): the lab's contoso directory reached by its
automation identity, its WinRM management host and CE's mail login check."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
