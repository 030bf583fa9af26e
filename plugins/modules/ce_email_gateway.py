#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ce_email_gateway
short_description: Manage a CE deployment's Exchange Online email gateway
version_added: 0.2.0
description:
  - Does the CE deployment administrator's step of the runbook "Accessing Microsoft Exchange Online Mailboxes Using OAuth",
    idempotently (Email Infrastructure > Email Gateways in the Portal).
  - Finds the gateway by O(name) and creates or updates it so that it downloads mail with IMAP from C(outlook.office365.com:993)
    over SSL and sends through C(smtp.office365.com:587) with STARTTLS, unless O(inbound) or O(outbound) say otherwise.
  - Gateways belong to the whole deployment and are shared by its CE tenants, so only a deployment administrator can write them.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.ce_portal
  - ceops.exchange_oauth.ce_portal.ATTRIBUTES
  - ceops.exchange_oauth.in_process
attributes:
  check_mode:
    description: Reads only and reports what would change.
    support: full
  diff_mode:
    description: Shows the gateway's name, description, inbound and outbound endpoints.
    support: full
options:
  name:
    description:
      - Name of the gateway, unique within the deployment, for example C(Exchange Online).
      - 1 to 128 characters, not only spaces, without spaces around it or control characters.
      - When no gateway has that name but exactly one reads mail from O(inbound.host) (the runbook's Exchange Online gateway, made
        by hand under a name of its own), that one is adopted; it keeps its name and gets the endpoints given here. Several stop
        the task with each one's name (set this option to the one to use). Only a gateway of this name is ever deleted.
    type: str
    required: true
  require_oauth:
    description:
      - Fail when the Portal's CE release cannot use OAuth at all (before CE 7.4 CU4), so that nothing is prepared for OAuth on a
        deployment that must be upgraded first.
    type: bool
    default: false
  description:
    description:
      - Description shown in the Portal. When not set, the gateway's current description is kept.
    type: str
  inbound:
    description:
      - Where CE downloads incoming mail. Suboptions that are not set get the Exchange Online values of the runbook.
      - CE does not support OAuth for POP3; a gateway with O(inbound.protocol=pop3) is warned about, and email connections on it
        cannot use OAuth to receive.
    type: dict
    default: {}
    suboptions:
      protocol:
        description: Download protocol. Must be V(imap) for OAuth.
        type: str
        choices: [imap, pop3]
        default: imap
      host:
        description: Host name of the mail server.
        type: str
        default: outlook.office365.com
      port:
        description: TCP port, 1 to 65535.
        type: int
        default: 993
      security:
        description: Transport security.
        type: str
        choices: [ssl, starttls, none]
        default: ssl
  outbound:
    description:
      - Where CE sends mail. Suboptions that are not set get the Exchange Online values of the runbook.
    type: dict
    default: {}
    suboptions:
      host:
        description: Host name of the SMTP server.
        type: str
        default: smtp.office365.com
      port:
        description: TCP port, 1 to 65535.
        type: int
        default: 587
      security:
        description: Transport security.
        type: str
        choices: [ssl, starttls, none]
        default: starttls
  state:
    description:
      - V(present) makes sure the gateway exists as described; V(absent) deletes it.
      - The Portal refuses to delete a gateway while an email connection uses it; the task then fails and says so.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Run it once per deployment (not once per CE tenant), with a deployment administrator's credential.
seealso:
  - module: ceops.exchange_oauth.ce_email_connection
  - module: ceops.exchange_oauth.ce_batch_update
'''

EXAMPLES = r'''
- name: The deployment's Exchange Online gateway, with the runbook's endpoints
  ceops.exchange_oauth.ce_email_gateway:
    ce_url: https://ce-portal.example.com
    ce_token: "{{ ce_deployment_admin_token }}"
    name: Exchange Online

- name: The same through a proxy on another port, credentials from module_defaults
  ceops.exchange_oauth.ce_email_gateway:
    name: Exchange Online
    inbound:
      host: imap-proxy.example.com
      port: 1993

- name: Remove an old POP3 gateway
  ceops.exchange_oauth.ce_email_gateway:
    name: Legacy POP
    state: absent
'''

RETURN = r'''
email_gateway:
  description: The gateway as the Portal holds it (as it would be, in check mode; then C(id) is null for a new one).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: The Portal's id of the gateway.
      type: str
    revision:
      description: Revision, bumped by every change.
      type: int
    name:
      description: Name.
      type: str
    description:
      description: Description.
      type: str
    inbound:
      description: C(protocol), C(host), C(port), C(security) of the download endpoint.
      type: dict
    outbound:
      description: C(host), C(port), C(security) of the sending endpoint.
      type: dict
ce_version:
  description: CE version the Portal reports.
  returned: always
  type: str
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_module import CeModule
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_portal import ENDPOINT_SECURITY, INBOUND_PROTOCOLS, gateway_problems
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_reconcile import (
    EXCHANGE_ONLINE_INBOUND, EXCHANGE_ONLINE_OUTBOUND, GatewayReconciler)


def argument_spec():
    inbound, outbound = EXCHANGE_ONLINE_INBOUND, EXCHANGE_ONLINE_OUTBOUND
    return dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        inbound=dict(type="dict", default={}, apply_defaults=True, options=dict(
            protocol=dict(type="str", choices=list(INBOUND_PROTOCOLS), default=inbound["protocol"]),
            host=dict(type="str", default=inbound["host"]),
            port=dict(type="int", default=inbound["port"]),
            security=dict(type="str", choices=list(ENDPOINT_SECURITY), default=inbound["security"]),
        )),
        outbound=dict(type="dict", default={}, apply_defaults=True, options=dict(
            host=dict(type="str", default=outbound["host"]),
            port=dict(type="int", default=outbound["port"]),
            security=dict(type="str", choices=list(ENDPOINT_SECURITY), default=outbound["security"]),
        )),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        require_oauth=dict(type="bool", default=False),
    )


def main():
    module = CeModule(argument_spec(), supports_check_mode=True)
    reconciler = GatewayReconciler(module.portal, module.params, check_mode=module.check_mode, warn=module.warn)
    p = module.params
    # Before the first request: a blank name, a port out of range or a missing host would make a wrong gateway.
    problems = gateway_problems({"name": p["name"], "inbound": p["inbound"], "outbound": p["outbound"]})
    if problems:
        module.fail_json(msg="%s: %s" % (reconciler.label, "; ".join(problems)))
    module.run(reconciler.run)


if __name__ == "__main__":
    main()
