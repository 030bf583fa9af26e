#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: exo_service_principal
short_description: Register CE's app as a service principal in Exchange Online
version_added: 0.2.0
description:
  - Does the runbook's C(New-ServicePrincipal) step idempotently. Exchange Online only lets an app act on mailboxes
    (C(Add-MailboxPermission -User)) after its Entra service principal is registered in Exchange.
  - Finds Exchange's service principal by O(app_id), and takes as the app's only the one whose C(AppId) is O(app_id); whatever
    else a lookup answers belongs to other apps and is never changed or removed. Creates it when missing, renames it when
    O(display_name) differs (C(Set-ServicePrincipal)), and repairs it (remove, then create) when it carries another object id,
    for example the application's object id (the runbook's classic mistake), because Exchange cannot change the ids of a service
    principal. Repairing drops its mailbox permissions; run M(ceops.exchange_oauth.exo_mailbox_permission) after it (the
    C(exchange_online_access) role does) and RV(replaced_object_id) says it happened.
  - O(object_id) must be the object id of the app's SERVICE PRINCIPAL (Enterprise applications), not of the application object
    (App registrations). With O(verify_object_id) the module checks that against Microsoft Graph first and refuses the
    application's object id with an explanation. When Graph cannot be asked (no credential for it, 401/403, unreachable) the check
    is skipped with a warning and only Exchange's own refusal protects you.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.microsoft_auth
  - ceops.exchange_oauth.microsoft_auth.ATTRIBUTES
  - ceops.exchange_oauth.in_process
  - ceops.exchange_oauth.exchange_transport
attributes:
  check_mode:
    description: Reads only and reports what would change; no write cmdlet is sent.
    support: full
  diff_mode:
    description: Shows the service principal's app id, object id and display name before and after.
    support: full
options:
  app_id:
    description:
      - Application (client) ID of CE's app (azuread_app's RV(ceops.exchange_oauth.azuread_app#module:app_id)).
      - Required, except in check mode before the app exists (a plan); then the module only checks that the automation identity
        may read Exchange's service principals, as the converge will, and reports the registration it would make.
    type: str
  object_id:
    description:
      - Object ID of the app's service principal (azuread_app's RV(ceops.exchange_oauth.azuread_app#module:service_principal_id)).
      - Required with O(state=present).
    type: str
  display_name:
    description:
      - Display name of the service principal in Exchange. When omitted, a new one takes the directory's display name (if Graph
        can be read) and an existing one keeps its name.
    type: str
  state:
    description:
      - V(present) registers it; V(absent) removes it (and with it every mailbox permission it holds). Only a service principal whose
        C(AppId) is O(app_id) is ever removed.
    type: str
    choices: [present, absent]
    default: present
  verify_object_id:
    description:
      - Check O(object_id) against Microsoft Graph before anything is written (needs Graph read access to applications and
        service principals, which the automation identity of M(ceops.exchange_oauth.azuread_app) has).
      - Set V(false) when the identity may not read Graph at all, to avoid the warning.
    type: bool
    default: true
seealso:
  - module: ceops.exchange_oauth.azuread_app
  - module: ceops.exchange_oauth.exo_mailbox_permission
'''

EXAMPLES = r'''
- name: Register CE's app in Exchange Online
  ceops.exchange_oauth.exo_service_principal:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: "{{ automation_client_id }}"
    client_secret: "{{ automation_client_secret }}"
    app_id: "{{ ce_app.app_id }}"
    object_id: "{{ ce_app.service_principal_id }}"
    display_name: CE Email

- name: The same through a Windows management host
  ceops.exchange_oauth.exo_service_principal:
    app_id: "{{ ce_app.app_id }}"
    object_id: "{{ ce_app.service_principal_id }}"
    transport: winrm
    winrm:
      host: mgmt01.corp.example.com
      username: CORP\svc-exo
      password: "{{ winrm_password }}"
      certificate_thumbprint: 0123456789ABCDEF0123456789ABCDEF01234567
      organization: contoso.onmicrosoft.com

- name: Remove it
  ceops.exchange_oauth.exo_service_principal:
    app_id: "{{ ce_app.app_id }}"
    state: absent
'''

RETURN = r'''
app_id:
  description: Application (client) ID of the service principal.
  returned: always
  type: str
object_id:
  description: Object id Exchange holds for it (the Entra service principal's object id).
  returned: when O(state=present)
  type: str
display_name:
  description: Its display name in Exchange.
  returned: when O(state=present)
  type: str
identity:
  description: Exchange's identity of the service principal. Null in check mode before creation.
  returned: when O(state=present)
  type: str
replaced_object_id:
  description: The object id the app's Exchange service principal had before this run repaired it (or would, in check mode).
  returned: when it was registered with another object id
  type: str
actions:
  description: What was done, or would be done in check mode, in order.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import exchange_argument_spec, has_graph_credentials
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_permissions import ServicePrincipalReconciler, service_principal_problems
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import MicrosoftModule


def argument_spec():
    spec = dict(
        app_id=dict(type="str"),
        object_id=dict(type="str"),
        display_name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        verify_object_id=dict(type="bool", default=True),
    )
    spec.update(exchange_argument_spec())
    return spec


def main():
    module = MicrosoftModule(argument_spec(), supports_check_mode=True, required_if=[("transport", "winrm", ("winrm",))])
    problems = service_principal_problems(module.params, module.check_mode)
    if problems:
        module.fail_json(msg="Exchange service principal in directory %s: %s" % (module.params["tenant_id"], "; ".join(problems)))
    graph = module.graph if has_graph_credentials(module.params) and module.params["verify_object_id"] else None
    exchange = module.exchange()
    reconciler = ServicePrincipalReconciler(exchange, graph, module.params, check_mode=module.check_mode)
    module.run(reconciler.run, warnings=lambda: reconciler.warnings + exchange.warnings)


if __name__ == "__main__":
    main()
