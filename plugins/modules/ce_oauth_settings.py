#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: ce_oauth_settings
short_description: Manage a CE tenant's OAuth settings for Exchange Online
version_added: 0.2.0
description:
  - Does the CE tenant administrator's first step of the runbook "Accessing Microsoft Exchange Online Mailboxes Using OAuth",
    idempotently (Email Infrastructure > OAuth Settings in the Portal).
  - Finds the settings by O(name) in CE tenant O(ce_tenant) and creates or updates them with the client id and secret of CE's app
    registration, the scope and the token endpoint of the Microsoft directory.
  - The token endpoint is O(token_endpoint_url), or is derived from O(tenant_id) and O(cloud)
    (C(https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token) in the public cloud).
  - Needs CE 7.4 CU4 (7.4.4) or later; on an older Portal the task fails and names the version found.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.ce_portal
  - ceops.exchange_oauth.ce_portal.ATTRIBUTES
  - ceops.exchange_oauth.in_process
  - ceops.exchange_oauth.ce_portal.GATEWAY_LOOKUP
attributes:
  check_mode:
    description: Reads only and reports what would change, including whether the secret would be sent.
    support: full
  diff_mode:
    description: Shows name, client id, scopes, token endpoint and whether a secret is set or would be replaced. Never the secret.
    support: full
options:
  ce_tenant:
    description:
      - The CE tenant (its short code in the Portal) that owns the settings.
    type: str
    required: true
  name:
    description:
      - Name of the OAuth settings, unique within the CE tenant, for example C(Exchange Online OAuth).
      - 1 to 128 characters, not only spaces, without spaces around it or control characters.
    type: str
    required: true
  gateway:
    description:
      - Name of the deployment's Exchange Online email gateway (see M(ceops.exchange_oauth.ce_email_gateway)). When given and the
        tenant has no settings named O(name), the settings that the tenant's one email connection on that gateway uses are adopted,
        as the runbook's CE tenant administrator made them by hand under a name of their own. They keep their name, and are switched
        to O(client_id) only in one write that carries a secret of it (see O(update_secret)). Settings no such connection uses are
        never changed.
      - When no gateway has that name, the one gateway whose inbound host is O(gateway_inbound_host) is taken (as
        M(ceops.exchange_oauth.ce_email_connection) does).
    type: str
  client_id:
    description:
      - Application (client) ID of CE's app registration (RV(ceops.exchange_oauth.azuread_app#module:app_id)).
      - Required when O(state=present), except in check mode before the app exists (a plan); the Portal's version and the
        settings are then read as the converge reads them, and the plan shows the settings it would write.
      - With O(state=absent), when given, the app the settings must name to be removed (proof that they are CE's); settings that
        name another app are not removed and the task fails naming both. An empty value (CE's app not known) removes no settings
        that name an app. Not given, the settings are removed whatever app they name.
    type: str
  client_secret:
    description:
      - Value of the app's client secret. Write-only in the Portal, so it is compared with nothing; when it is sent is set by
        O(update_secret).
      - Required to create the settings.
    type: str
  update_secret:
    description:
      - V(on_create) sends O(client_secret) only when the settings are created, or when the Portal reports that they hold no secret.
        A re-run with the same secret then changes nothing.
      - V(always) sends it on every run, which then always reports a change. Use it for one run after rotating the secret.
      - V(when_not_held) sends it unless the settings provably hold the app's current secret - they name O(client_id), hold a
        secret, and got it at or after O(client_secret_start). Settings made by hand, by another tool or for another app get
        the secret (with the new client id, in one write); settings that got it once are not written again. When the secret is
        needed and O(client_secret) is not given, nothing is written (never a client id without its secret) and
        RV(client_secret_needed) says why; in check mode the plan shows the write.
    type: str
    choices: [on_create, always, when_not_held]
    default: on_create
  client_secret_start:
    description:
      - For O(update_secret=when_not_held), when the app's current secret for this CE tenant was made (RFC 3339; Graph's
        C(startDateTime) of the newest secret of its name, RV(ceops.exchange_oauth.azuread_app#module:app_secrets.start_date_time)).
        Unknown (omitted), the settings are taken not to hold it.
    type: str
  scopes:
    description:
      - Scopes CE requests tokens for.
      - Default is the Exchange Online resource of O(cloud) with C(/.default), for example C(https://outlook.office365.com/.default).
      - Exactly one resource scope, ending in C(/.default) (OpenID Connect scopes such as C(offline_access) may come with it), because CE
        gets its token with client credentials, which Entra refuses for several resources or other scopes, so anything else fails
        the task before the Portal is changed.
    type: list
    elements: str
  token_endpoint_url:
    description:
      - The token endpoint CE uses. Must be C(https).
      - When not set, it is derived from O(tenant_id), O(cloud) and O(authority_host).
    type: str
  tenant_id:
    description:
      - Directory (tenant) ID of the Microsoft directory that holds CE's app and the mailboxes, to derive O(token_endpoint_url).
      - One of O(tenant_id) and O(token_endpoint_url) is required when O(state=present).
    type: str
  cloud:
    description:
      - The Microsoft cloud, which sets the login host of the token endpoint and the default scope.
      - V(public) uses C(login.microsoftonline.com) and C(outlook.office365.com); V(usgov) (GCC High) C(login.microsoftonline.us) and
        C(outlook.office365.us); V(usgov_dod) C(login.microsoftonline.us) and C(outlook-dod.office365.us); V(china) (21Vianet)
        C(login.chinacloudapi.cn) and C(partner.outlook.cn).
    type: str
    choices: [public, usgov, usgov_dod, china]
    default: public
  authority_host:
    description:
      - Override of the login host used to derive O(token_endpoint_url), for a private or emulated authority.
    type: str
  state:
    description:
      - V(present) makes sure the settings exist as described; V(absent) deletes them.
      - The Portal refuses to delete settings while an email connection uses them; the task then fails and says so.
    type: str
    choices: [present, absent]
    default: present
notes:
  - O(client_id), O(client_secret) and O(tenant_id) here describe CE's app, not the automation identity of the Microsoft modules.
    Pass them in the task, not in C(module_defaults) of C(group/ceops.exchange_oauth.all), where the automation identity's values
    would be taken.
seealso:
  - module: ceops.exchange_oauth.azuread_app
  - module: ceops.exchange_oauth.ce_email_connection
'''

EXAMPLES = r'''
- name: OAuth settings of CE tenant acme, secret from the run that created it
  ceops.exchange_oauth.ce_oauth_settings:
    ce_url: https://ce-portal.example.com
    ce_token: "{{ ce_token }}"
    ce_tenant: acme
    name: Exchange Online OAuth
    client_id: "{{ ce_app.app_id }}"
    client_secret: "{{ ce_app.client_secret | default(omit) }}"
    tenant_id: "{{ ce_app.tenant_id }}"

- name: After rotating the secret in Entra ID, send the new one once
  ceops.exchange_oauth.ce_oauth_settings:
    ce_tenant: acme
    name: Exchange Online OAuth
    client_id: 0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c
    client_secret: "{{ vault_ce_email_client_secret }}"
    update_secret: always
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51

- name: GCC High
  ceops.exchange_oauth.ce_oauth_settings:
    ce_tenant: agency
    name: Exchange Online OAuth
    client_id: 0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c
    client_secret: "{{ vault_ce_email_client_secret }}"
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    cloud: usgov
'''

RETURN = r'''
adopted:
  description: True when no settings had O(name) and the settings of the tenant's email connection on O(gateway), made by hand, were taken.
  returned: when O(gateway) is given and they were looked for
  type: bool
oauth_settings:
  description: The settings as the Portal holds them (as they would be, in check mode; then C(id) is null for new ones). No secret.
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: The Portal's id of the settings.
      type: str
    revision:
      description: Revision, bumped by every change.
      type: int
    name:
      description: Name.
      type: str
    client_id:
      description: Application (client) ID.
      type: str
    scopes:
      description: Scopes.
      type: list
      elements: str
    token_endpoint_url:
      description: Token endpoint.
      type: str
    client_secret_set:
      description: Whether the Portal holds a client secret.
      type: bool
    client_secret_updated_at:
      description: When the secret was last set (RFC 3339).
      type: str
client_secret_updated:
  description: Whether this run sent the client secret (or would, in check mode).
  returned: when O(state=present)
  type: bool
client_secret_held:
  description:
    - With O(update_secret=when_not_held), whether the settings hold the app's current secret after this task (or would, in
      check mode) - this task sent it, or they got it at or after O(client_secret_start).
  returned: with O(update_secret=when_not_held)
  type: bool
client_secret_needed:
  description: With O(update_secret=when_not_held), true when the settings need a secret and O(client_secret) was not given.
  returned: in that case
  type: bool
client_secret_needed_reason:
  description: Why the settings need a secret (they do not exist, hold none, name another app, or got theirs before the current one was made).
  returned: when RV(client_secret_needed) is returned
  type: str
client_secret_superseded:
  description:
    - True when O(client_secret) was given but the settings got a secret after it was made, from someone else (another run);
      the given secret is not the one CE holds; it was not sent.
  returned: in that case
  type: bool
client_secret_required:
  description:
    - True when the task failed only because the OAuth settings must be created and no O(client_secret) was given
      (the Portal never returns a stored secret). A playbook can then make a new secret and run the task again.
  returned: on that failure
  type: bool
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
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_reconcile import OAuthSettingsReconciler
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.mailbox_check import SettingsError, scope_resource
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import CLOUDS

# OpenID Connect scopes Entra accepts next to <resource>/.default; they do not name a resource.
OIDC_SCOPES = frozenset(("openid", "profile", "email", "offline_access"))


def argument_spec():
    return dict(
        ce_tenant=dict(type="str", required=True),
        name=dict(type="str", required=True),
        gateway=dict(type="str"),
        gateway_inbound_host=dict(type="str", default="outlook.office365.com"),
        client_id=dict(type="str"),
        client_secret=dict(type="str", no_log=True),
        update_secret=dict(type="str", choices=["on_create", "always", "when_not_held"], default="on_create", no_log=False),
        client_secret_start=dict(type="str", no_log=False),
        scopes=dict(type="list", elements="str"),
        token_endpoint_url=dict(type="str", no_log=False),
        tenant_id=dict(type="str"),
        cloud=dict(type="str", choices=sorted(CLOUDS), default="public"),
        authority_host=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    module = CeModule(argument_spec(), supports_check_mode=True,
                      required_if=[("state", "present", ("tenant_id", "token_endpoint_url"), True),
                                   ("update_secret", "always", ("client_secret",))],
                      mutually_exclusive=[("tenant_id", "token_endpoint_url")])
    if module.params["state"] == "present" and not module.params["client_id"] and not module.check_mode:
        module.fail_json(msg="client_id is required with state=present: the Application (client) ID of CE's app registration")
    reconciler = OAuthSettingsReconciler(module.portal, module.params, check_mode=module.check_mode, warn=module.warn)
    problem = name_problem(module.params["name"], "OAuth settings")
    if problem:
        module.fail_json(msg="%s: %s" % (reconciler.label, problem))
    if module.params["scopes"] and module.params["state"] == "present":
        # CE sends its scopes in one client-credentials request, which Entra refuses unless it is one <resource>/.default:
        # the Portal stores anything, so this is the last point where the mistake is visible before mail stops.
        try:
            scope_resource([scope for scope in module.params["scopes"] if scope.strip().lower() not in OIDC_SCOPES])
        except SettingsError as error:
            module.fail_json(msg="%s: %s" % (reconciler.label, error))
    module.run(reconciler.run)


if __name__ == "__main__":
    main()
