#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ce_email_connection
short_description: Manage a CE tenant's email connection and whether it uses OAuth
version_added: 0.2.0
description:
  - Does the CE tenant administrator's second step of the runbook "Accessing Microsoft Exchange Online Mailboxes Using OAuth",
    idempotently (Email Infrastructure > Email Connections in the Portal, its OAuth Setting tab and "Use OAuth to receive emails").
  - Finds the connection by O(name) in CE tenant O(ce_tenant) and creates or updates it so that it uses the email gateway
    O(gateway) and the OAuth settings O(oauth_settings), both given by name.
  - Refuses, before changing anything, what CE cannot do, with the reason and the fix - OAuth on a gateway that downloads with
    POP3, OAuth on CE before 7.4 CU4, and O(use_oauth_send=true) on a release without the capability C(oauth_send_smtp) (CE 7.6).
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.ce_portal
  - ceops.exchange_oauth.ce_portal.ATTRIBUTES
  - ceops.exchange_oauth.in_process
  - ceops.exchange_oauth.ce_portal.GATEWAY_LOOKUP
attributes:
  check_mode:
    description:
      - Reads only and reports what would change.
      - A gateway or OAuth settings that do not exist yet only give a warning in check mode, because an earlier task of the same
        run would create them.
    support: full
  diff_mode:
    description: Shows the connection's name, gateway and OAuth settings (by name) and both OAuth flags.
    support: full
options:
  ce_tenant:
    description:
      - The CE tenant (its short code in the Portal) that owns the connection.
    type: str
    required: true
  name:
    description:
      - Name of the email connection, unique within the CE tenant, for example C(Exchange Online).
      - 1 to 128 characters, not only spaces, without spaces around it or control characters.
      - When the tenant has no connection of that name but exactly one on the gateway (the runbook's "email connection associated
        with the Exchange Online email gateway", made by hand under a name of its own), that one is adopted and keeps its name;
        several stop the task with each one's name (set this option to the one to use).
    type: str
    required: true
  gateway:
    description:
      - Name of the deployment's email gateway the connection uses (see M(ceops.exchange_oauth.ce_email_gateway)). When no gateway
        has that name, the one gateway whose inbound host is O(gateway_inbound_host) is used (made by hand under another name).
      - Required when O(state=present).
    type: str
  oauth_settings:
    description:
      - Name of the tenant's OAuth settings the connection uses (see M(ceops.exchange_oauth.ce_oauth_settings)).
      - Required when O(use_oauth_receive) or O(use_oauth_send) is true. When not set otherwise, the connection's current OAuth
        settings are kept; an empty string detaches them.
    type: str
  use_oauth_receive:
    description:
      - The Portal's "Use OAuth to receive emails". Needs an IMAP gateway and CE 7.4 CU4 or later.
    type: bool
    default: true
  use_oauth_send:
    description:
      - The Portal's "Use OAuth to send emails". Needs a CE release with the capability C(oauth_send_smtp) (CE 7.6 or later),
        and the app needs the Exchange Online permission C(SMTP.SendAsApp).
      - With V(false), CE keeps sending with basic authentication, with the user name and password of each mailbox.
    type: bool
    default: false
  state:
    description:
      - V(present) makes sure the connection exists as described; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: ceops.exchange_oauth.ce_email_gateway
  - module: ceops.exchange_oauth.ce_oauth_settings
  - module: ceops.exchange_oauth.ce_batch_update
'''

EXAMPLES = r'''
- name: Receive acme's mail with OAuth through the Exchange Online gateway
  ceops.exchange_oauth.ce_email_connection:
    ce_url: https://ce-portal.example.com
    ce_token: "{{ ce_token }}"
    ce_tenant: acme
    name: Exchange Online
    gateway: Exchange Online
    oauth_settings: Exchange Online OAuth

- name: Also send with OAuth (CE 7.6 and later; the app needs SMTP.SendAsApp)
  ceops.exchange_oauth.ce_email_connection:
    ce_tenant: acme
    name: Exchange Online
    gateway: Exchange Online
    oauth_settings: Exchange Online OAuth
    use_oauth_send: true
'''

RETURN = r'''
email_connection:
  description: The connection as the Portal holds it (as it would be, in check mode; then C(id) is null for a new one).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: The Portal's id of the connection.
      type: str
    revision:
      description: Revision, bumped by every change.
      type: int
    name:
      description: Name.
      type: str
    gateway_id:
      description: Id of the gateway.
      type: str
    oauth_settings_id:
      description: Id of the OAuth settings, or null.
      type: str
    use_oauth_receive:
      description: Whether CE receives with OAuth.
      type: bool
    use_oauth_send:
      description: Whether CE sends with OAuth.
      type: bool
mailboxes:
  description: Addresses of the mailboxes CE reads through this connection.
  returned: when the connection exists
  type: list
  elements: str
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
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_portal import name_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_reconcile import ConnectionReconciler


def argument_spec():
    return dict(
        ce_tenant=dict(type="str", required=True),
        name=dict(type="str", required=True),
        gateway=dict(type="str"),
        gateway_inbound_host=dict(type="str", default="outlook.office365.com"),
        oauth_settings=dict(type="str"),
        use_oauth_receive=dict(type="bool", default=True),
        use_oauth_send=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    module = CeModule(argument_spec(), supports_check_mode=True, required_if=[("state", "present", ("gateway",))])
    reconciler = ConnectionReconciler(module.portal, module.params, check_mode=module.check_mode, warn=module.warn)
    p = module.params
    # Before the first request; an empty oauth_settings is meaningful (it detaches them), a blank one is not.
    problem = (name_problem(p["name"], "email connection") or (p["gateway"] is not None and name_problem(p["gateway"], "email gateway"))
               or (p["oauth_settings"] and name_problem(p["oauth_settings"], "OAuth settings")))
    if problem:
        module.fail_json(msg="%s: %s" % (reconciler.label, problem))
    module.run(reconciler.run)


if __name__ == "__main__":
    main()
