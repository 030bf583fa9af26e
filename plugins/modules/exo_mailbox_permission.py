#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: exo_mailbox_permission
short_description: Give CE's service principal FullAccess on a list of Exchange Online mailboxes
version_added: 0.2.0
description:
  - Does the runbook's C(Add-MailboxPermission -AccessRights FullAccess) step for a whole list of mailboxes in one task,
    idempotently, and reports per mailbox what was added, removed, unchanged or failed.
  - Reads each mailbox once (C(Get-MailboxPermission)) and writes only what is missing, O(parallelism) mailboxes at a time, so
    hundreds of mailboxes do not cost hundreds of sequential round trips.
  - Only explicit, allowing entries count as granted. Inherited entries are reported and an explicit entry is still added;
    a Deny entry for a wanted right fails that mailbox (CE would be refused) and is never removed by the module.
  - A mailbox that cannot be processed (for example one that does not exist) fails only itself; the others are processed and
    then the task fails (see O(fail_on_mailbox_error)). Failures that would hit every mailbox alike (credentials, missing
    Exchange role, unreachable WinRM host, persistent throttling) stop the task at once.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.microsoft_auth
  - ceops.exchange_oauth.microsoft_auth.ATTRIBUTES
  - ceops.exchange_oauth.in_process
  - ceops.exchange_oauth.exchange_transport
attributes:
  check_mode:
    description: Reads every mailbox's permissions and reports what would change; no write cmdlet is sent.
    support: full
  diff_mode:
    description: Shows the principal's explicit access rights per mailbox before and after.
    support: full
options:
  user:
    description:
      - The principal that gets the rights, as registered in Exchange by M(ceops.exchange_oauth.exo_service_principal) - the
        object id of CE's service principal (azuread_app's RV(ceops.exchange_oauth.azuread_app#module:service_principal_id)), or
        its Application (client) ID. Only the Exchange service principal whose C(ObjectId) or C(AppId) is exactly this value gets or
        loses rights; when Exchange has none, the task fails and nothing is granted to anyone.
      - It must already be registered in Exchange, except in check mode, where a missing registration is only warned about.
      - Required, except in check mode before CE's app exists (a plan); the mailboxes are then read as the converge will read
        them, so a mailbox that does not exist or an automation identity Exchange refuses shows in the plan.
    type: str
  mailboxes:
    description:
      - Email addresses of the mailboxes CE reads. Duplicates (in any letter case) count once.
      - An empty list or a value that is not an email address fails the task before anything is sent (an empty list is
        almost always a variable that did not resolve; to take rights away, list the mailboxes with O(state=absent)).
    type: list
    elements: str
    required: true
  access_rights:
    description: The rights to grant (or remove). CE needs V(FullAccess).
    type: list
    elements: str
    choices: [FullAccess, ReadPermission, ChangePermission, ChangeOwner, DeleteItem, ExternalAccount]
    default: [FullAccess]
  state:
    description:
      - V(present) adds the rights that are missing; V(absent) removes the principal's explicit entries for these rights.
      - Rights not listed in O(access_rights) are never touched.
    type: str
    choices: [present, absent]
    default: present
  inheritance_type:
    description: C(-InheritanceType) of new entries.
    type: str
    choices: [All, None, Children, Descendents, SelfAndChildren]
    default: All
  automapping:
    description: C(-AutoMapping) of new entries. Outlook auto-mapping is meaningless for an app, so it is off by default.
    type: bool
    default: false
  parallelism:
    description:
      - How many mailboxes are worked on at the same time (1 to 32). All share one connection pool and one token.
      - With O(transport=winrm) they share one PowerShell session, which runs their cmdlets one after another; more mailboxes
        at a time keep its queue full.
    type: int
    default: 8
  fail_on_mailbox_error:
    description:
      - Whether the task fails when some mailboxes failed (after all others were processed). With V(false) they are only
        reported in RV(summary), RV(mailboxes) and as warnings.
    type: bool
    default: true
seealso:
  - module: ceops.exchange_oauth.exo_service_principal
'''

EXAMPLES = r'''
- name: FullAccess for CE on its mailboxes
  ceops.exchange_oauth.exo_mailbox_permission:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: "{{ automation_client_id }}"
    client_secret: "{{ automation_client_secret }}"
    user: "{{ ce_app.service_principal_id }}"
    mailboxes:
      - ce-support@contoso.onmicrosoft.com
      - ce-sales@contoso.onmicrosoft.com
  register: access

- name: Show the mailboxes that still need attention
  ansible.builtin.debug:
    msg: "{{ access.mailboxes | selectattr('result', 'eq', 'failed') | map(attribute='message') }}"
  when: access.summary.failed | length > 0

- name: Take the access away again
  ceops.exchange_oauth.exo_mailbox_permission:
    user: "{{ ce_app.service_principal_id }}"
    mailboxes: "{{ retired_mailboxes }}"
    state: absent
'''

RETURN = r'''
principal:
  description: The principal as Exchange knows it (user, object_id, app_id, display_name, identity).
  returned: always
  type: dict
mailboxes:
  description:
    - One entry per mailbox, in the order given. C(result) is C(added), C(removed), C(unchanged) or C(failed).
    - C(access_rights) are the principal's explicit rights afterwards; C(added_rights) / C(removed_rights) what changed;
      C(inherited_rights) and C(denied_rights) what inherited and Deny entries hold; C(message) why it failed or what to
      know; C(request_id) the request id of a failed REST call.
  returned: always
  type: list
  elements: dict
summary:
  description:
    - The mailboxes by outcome, in lists named C(added), C(removed), C(unchanged) and C(failed) (C(added) and C(removed) also in
      check mode, for what would change). Reasons of failures are in RV(mailboxes).
  returned: always
  type: dict
invocations:
  description: "How many times each cmdlet was run, for example C({\"Get-MailboxPermission\": 200, \"Add-MailboxPermission\": 3})."
  returned: always
  type: dict
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import exchange_argument_spec
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_permissions import (
    ACCESS_RIGHTS, MailboxPermissionReconciler, mailbox_permission_problems)
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import MicrosoftModule


def argument_spec():
    spec = dict(
        user=dict(type="str"),
        mailboxes=dict(type="list", elements="str", required=True),
        access_rights=dict(type="list", elements="str", choices=list(ACCESS_RIGHTS), default=["FullAccess"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        inheritance_type=dict(type="str", choices=["All", "None", "Children", "Descendents", "SelfAndChildren"], default="All"),
        automapping=dict(type="bool", default=False),
        parallelism=dict(type="int", default=8),
        fail_on_mailbox_error=dict(type="bool", default=True),
    )
    spec.update(exchange_argument_spec())
    return spec


def main():
    module = MicrosoftModule(argument_spec(), supports_check_mode=True, required_if=[("transport", "winrm", ("winrm",))])
    mailboxes, problems = mailbox_permission_problems(module.params, module.check_mode)
    if problems:
        p = module.params
        module.fail_json(msg="mailbox permissions of %s in directory %s: %s" % (p["user"], p["tenant_id"], "; ".join(problems)))
    exchange = module.exchange(pool_size=module.params["parallelism"])
    reconciler = MailboxPermissionReconciler(exchange, module.params, mailboxes, check_mode=module.check_mode)
    module.run(reconciler.run, warnings=lambda: reconciler.warnings + exchange.warnings)


if __name__ == "__main__":
    main()
