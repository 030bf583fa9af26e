#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: azuread_app
short_description: Register the app CE uses to read Exchange Online mailboxes, with its permissions, consent and secret
version_added: 0.1.0
description:
  - Does the Azure AD part of the CE "Exchange Online mailboxes with OAuth" runbook, idempotently.
  - Finds or creates the app registration, makes sure it has a service principal (the "Managed application in local directory"),
    requests the Office 365 Exchange Online application permissions in O(exchange_permissions), grants admin consent for exactly
    those, and keeps named client secrets valid.
  - Which app is CE's - the one with O(app_id) when given; else the one with O(unique_name); else, when exactly one app of
    O(display_name) without a unique name exists (the runbook's "CE Email", made by hand), that one is adopted and marked with
    O(unique_name) so later runs find it exactly; several such apps stop the task with each one's app id and creation date
    (pick one with O(app_id)). An app is created only when none matches.
  - Of an existing (or adopted) app, only what this collection manages is changed - the Exchange Online permissions
    IMAP.AccessAsApp, POP.AccessAsApp and SMTP.SendAsApp and their consent, and the client secrets named in the options.
    Permissions of other APIs, other Exchange Online permissions and their consent, and secrets of other names are left as
    they are.
  - Returns what the Exchange Online and CE administrators need next, among them RV(service_principal_id), the object id
    that C(New-ServicePrincipal) and C(Add-MailboxPermission) need (not the application's own object id).
  - Talks to Microsoft Graph v1.0 with an automation identity of that directory.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.microsoft_auth
  - ceops.exchange_oauth.microsoft_auth.ATTRIBUTES
  - ceops.exchange_oauth.in_process
attributes:
  check_mode:
    description: Reads only and reports what would change; the new app's ids and the secret are then unknown.
    support: full
  diff_mode:
    description: Shows the app's name, requested and consented permissions, service principal and secret metadata. Never a secret.
    support: full
options:
  display_name:
    description:
      - Display name of the app registration, for example C(CE Email). Not blank, without spaces around it or control characters.
      - Without O(unique_name) or O(app_id) the app is found by this name, and the task fails if several apps share it
        (display names are not unique in Entra).
      - Required when O(state=present) and the app must be created.
    type: str
  unique_name:
    description:
      - An immutable alternate key for the app, set when the module creates it. Finding the app by it is exact, and a
        create that is retried after an interruption cannot make a second app.
      - Not blank, without spaces around it or control characters; any other character is sent percent-encoded, so a value
        such as C(../x) names only the app with that key.
      - Recommended for fleets. The module sets it on an app it adopts (made by hand without one); it cannot be changed once set.
    type: str
  app_id:
    description:
      - Application (client) ID of an existing app to manage, instead of finding it by name - the operator's pick when several apps
        share the display name. A GUID; anything else is refused before any request. With O(state=present) the app must exist
        (a missing one is not created under another id). With O(unique_name) set and the picked app having none, the app is
        marked with it.
    type: str
  state:
    description:
      - V(present) makes sure the app and everything below exist; V(absent) deletes the app registration (which deletes its
        service principal, consent and secrets too), only when it is found by O(app_id) or O(unique_name) and holds no
        permission or certificate this module does not manage (for example the delegated C(User.Read) the Entra admin center
        adds to an app made by hand); such an app is not deleted, and the error names what it holds.
    type: str
    choices: [present, absent]
    default: present
  exchange_permissions:
    description:
      - The Office 365 Exchange Online application permissions the app must have, exactly, among the three this module manages.
        Of those three, the ones not listed (nor retained) are removed from the request and from the consent. Other permissions
        of Exchange Online (for example one an adopted app was given for another purpose) and of other APIs are left alone.
      - V(SMTP.SendAsApp) is needed for sending with OAuth (CE 7.6 and later).
    type: list
    elements: str
    choices: [IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp]
    default: [IMAP.AccessAsApp, POP.AccessAsApp]
  retain_exchange_permissions:
    description:
      - Exchange Online application permissions that are kept when the app already requests them and are not added when it
        does not; a permission also in O(exchange_permissions) is added as usual.
      - For a permission the run cannot decide alone, for example V(SMTP.SendAsApp) of an app shared by several CE tenants when
        the run sees only some of them (an AWX job slice, C(--limit)), which must not revoke what another CE tenant relies on.
    type: list
    elements: str
    choices: [IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp]
    default: []
    version_added: 0.2.0
  admin_consent:
    description:
      - Whether to grant admin consent (app role assignments) for O(exchange_permissions) and revoke it for other
        Exchange Online application permissions. With V(false), consent is left as it is.
    type: bool
    default: true
  app_secret:
    description:
      - The client secret CE logs in with, managed by its name. Omit to leave the app's secrets alone.
      - A new secret is created when none with this name exists, when the newest one expires within O(app_secret.renew_before_days),
        or when O(app_secret.rotate=true). Older secrets of that name keep working until O(app_secret.retire_previous=true)
        removes them, so CE can switch to the new one without downtime. Expired secrets of that name are always removed.
      - Secrets with other names are never touched.
      - Mutually exclusive with O(app_secrets).
    type: dict
    suboptions:
      name:
        description: Display name that marks the secrets this module manages.
        type: str
        default: CE mailbox access
      lifetime_days:
        description:
          - Lifetime of a new secret, 1 to 730 days. Two years is the longest the Entra admin center offers and what Graph gives a
            secret without an end date; Microsoft advises shorter ones.
          - A tenant app management policy may allow less. When the automation identity may read it
            (Policy.Read.All, or Policy.Read.ApplicationConfiguration) the new secret is capped at its limit, with a warning; when Graph refuses the
            lifetime and names the limit, the secret is made once more with that limit; otherwise the task fails saying so.
        type: int
        default: 365
      renew_before_days:
        description:
          - Create a new secret when the newest one expires within this many days; 0 to O(app_secret.lifetime_days) - 1, since a
            window as long as the lifetime would create a new secret on every run.
        type: int
        default: 30
      rotate:
        description: Create a new secret now, whatever the expiry of the current one.
        type: bool
        default: false
      retire_previous:
        description: Remove every secret of this name except the newest. Use once CE works with the newest.
        type: bool
        default: false
      remove_key_ids:
        description:
          - Remove the secrets of this name with these key IDs, and nothing else; given, no secret is created. Key IDs no
            longer there are skipped; key IDs of secrets with another name are ignored.
        type: list
        elements: str
        default: []
        version_added: 0.2.0
      report_only:
        description:
          - Only read this name's secrets and say in RV(app_secrets.due) whether a new one is due; create and remove nothing.
        type: bool
        default: false
        version_added: 0.2.0
  app_secrets:
    description:
      - Several client secrets of the app, each managed by its name as O(app_secret) manages one, in one invocation; for
        example one secret per CE tenant that shares the app, so that each CE tenant holds a secret of its own.
      - Names must be unique. Secrets with names not listed are never touched, so a run for some CE tenants never rotates
        or removes the secrets of the others.
      - Results per name are in RV(app_secrets). Mutually exclusive with O(app_secret).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      name:
        description: Display name that marks the secrets of this entry; give each entry its own.
        type: str
        default: CE mailbox access
      lifetime_days:
        description: Lifetime of a new secret, 1 to 730 days, as O(app_secret.lifetime_days).
        type: int
        default: 365
      renew_before_days:
        description:
          - Create a new secret when the newest one of this name expires within this many days; 0 to O(app_secrets[].lifetime_days) - 1.
        type: int
        default: 30
      rotate:
        description: Create a new secret of this name now, whatever the expiry of the current one.
        type: bool
        default: false
      retire_previous:
        description: Remove every secret of this name except the newest.
        type: bool
        default: false
      remove_key_ids:
        description:
          - Remove the secrets of this name with these key IDs, and nothing else; an entry that lists any never creates a
            secret. Key IDs no longer there (another run removed them) are skipped; key IDs of secrets with another name are
            ignored.
          - For a secret a run made but could not give to CE (another run gave CE its own first), or the secrets a lost one
            left behind, once CE holds a new one. Key IDs are not secret.
        type: list
        elements: str
        default: []
        version_added: 0.2.0
      report_only:
        description:
          - Only read this name's secrets and say in RV(app_secrets.due) whether a new one is due; create and remove nothing. For a
            run that decides later which CE tenants get a new secret (the azuread_app_registration role does).
        type: bool
        default: false
        version_added: 0.2.0
notes:
  - The automation identity needs the Graph application permissions C(Application.ReadWrite.All) (or C(Application.ReadWrite.OwnedBy))
    and C(AppRoleAssignment.ReadWrite.All), with admin consent.
  - The new secret's value is returned only by the run that created it, in RV(client_secret) (or RV(app_secrets.client_secret)).
    Register the result on a task with C(no_log=true) and hand the value on in memory, as the C(azuread_app_registration) role does.
  - Runs for the same directory may overlap (AWX job slices, two jobs). With O(unique_name) they cannot make two apps (the app is
    created with an upsert by that key); a service principal or admin consent another run has just made is taken as it is
    and reported as C(already done by another run), not as a change.
seealso:
  - name: Runbook
    description: The manual procedure this module automates (docs/azuread.md).
    link: https://github.com/ceops/exchange_oauth/blob/main/docs/azuread.md
'''

EXAMPLES = r'''
- name: Register CE's app with IMAP and POP permissions, consent and a secret
  ceops.exchange_oauth.azuread_app:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: "{{ automation_client_id }}"
    client_secret: "{{ automation_client_secret }}"
    display_name: CE Email
    unique_name: ce-email
    app_secret:
      name: CE mailbox access
      lifetime_days: 180
  register: ce_app
  no_log: true  # the result carries the new secret on the run that creates it

- name: Show what the Exchange administrator needs
  ansible.builtin.debug:
    msg: "App {{ ce_app.app_id }}, service principal {{ ce_app.service_principal_id }}"

- name: Also allow sending with OAuth, credentials from AZURE_* environment variables
  ceops.exchange_oauth.azuread_app:
    display_name: CE Email
    unique_name: ce-email
    exchange_permissions: [IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp]

- name: One secret per CE tenant sharing the app, managed in one call
  ceops.exchange_oauth.azuread_app:
    display_name: CE Email
    unique_name: ce-email
    app_secrets:
      - name: CE mailbox access (acme)
      - name: CE mailbox access (globex)
        rotate: true
  register: ce_app
  no_log: true

- name: The key id of globex's newest secret
  ansible.builtin.debug:
    msg: "{{ ce_app.app_secrets['CE mailbox access (globex)'].key_id }}"

- name: After CE uses the newest secret, remove the older ones
  ceops.exchange_oauth.azuread_app:
    display_name: CE Email
    unique_name: ce-email
    app_secret:
      name: CE mailbox access
      retire_previous: true

- name: Remove the app registration
  ceops.exchange_oauth.azuread_app:
    unique_name: ce-email
    state: absent
'''

RETURN = r'''
app_id:
  description: Application (client) ID; CE's OAuth settings use it as client id. Null in check mode before creation.
  returned: when the app exists or was created
  type: str
object_id:
  description: Object ID of the application object. Exchange does not want this one.
  returned: when the app exists or was created
  type: str
service_principal_id:
  description: Object ID of the app's service principal, the one C(New-ServicePrincipal -ObjectId) and C(Add-MailboxPermission -User) need.
  returned: when the service principal exists or was created
  type: str
tenant_id:
  description: Directory (tenant) ID as a GUID, even when O(tenant_id) was given as a domain.
  returned: always
  type: str
display_name:
  description: Display name of the app.
  returned: when the app exists
  type: str
other_parts:
  description:
    - What the app holds that this module does not manage (permissions of other APIs, delegated permissions, Exchange
      permissions other than the runbook's, certificates, client secrets of names not in O(app_secrets)), in words. An app that
      holds any is not deleted by offboarding.
  returned: when the app was read
  type: list
  elements: str
  sample: ["delegated permission e1fe6dd8-ba31-4d61-89e7-88639da4683d of Microsoft Graph"]
  version_added: 0.2.0
found_by:
  description:
    - How the app was found - V(app_id), V(unique_name), V(adopted) (the one hand-made app of O(display_name), now marked with
      O(unique_name)), V(display_name) (found by name alone, without O(unique_name)) - or null when it was created.
  returned: when O(state=present)
  type: str
  version_added: 0.2.0
adopted:
  description: Whether this run adopted an app made by hand (set its unique name).
  returned: when O(state=present) and the app existed
  type: bool
  version_added: 0.2.0
candidates:
  description: When several apps share O(display_name) and none is CE's, each one's C(display_name), C(app_id) and C(created) date.
  returned: on that failure
  type: list
  elements: dict
  version_added: 0.2.0
exchange_permissions:
  description: Exchange Online application permissions requested by the app (O(exchange_permissions) and those retained).
  returned: when O(state=present)
  type: list
  elements: str
consented_permissions:
  description: Exchange Online application permissions with admin consent.
  returned: when O(state=present)
  type: list
  elements: str
client_secret:
  description: The value of the secret created by this run. Shown only here, once; Graph never returns it again.
  returned: when a secret was created
  type: str
client_secret_created:
  description: Whether this run created a new secret.
  returned: when O(app_secret) is set
  type: bool
client_secret_key_id:
  description: Key ID of the newest secret of that name.
  returned: when O(app_secret) is set
  type: str
client_secret_end:
  description: Expiry (RFC 3339) of the newest secret of that name.
  returned: when O(app_secret) is set
  type: str
client_secrets:
  description:
    - Metadata of every valid secret of that name (C(key_id), C(start_date_time), C(end_date_time)), newest first, as they are after
      this run (or would be, in check mode); a secret only planned in check mode has C(key_id) null.
  returned: when O(app_secret) is set
  type: list
  elements: dict
app_secrets:
  description:
    - Per secret name asked for (O(app_secrets), or the one of O(app_secret)), what the secrets of that name are after this run (or
      would be, in check mode).
  returned: when O(app_secrets) or O(app_secret) is set
  type: dict
  version_added: 0.2.0
  contains:
    name:
      description: The secret name.
      type: str
    created:
      description: Whether this run created a new secret of that name (or would, in check mode).
      type: bool
    due:
      description: Why a new secret of that name is due (none exists, the newest expires soon, a rotation was asked for), or null.
      type: str
      version_added: 0.2.0
    client_secret:
      description: The value of the secret this run created. Shown only here, once.
      type: str
      returned: when a secret of that name was created
    key_id:
      description: Key ID of the newest secret of that name; null when only planned in check mode or when none is left.
      type: str
    start_date_time:
      description: Start (RFC 3339) of the newest secret of that name.
      type: str
    end_date_time:
      description: Expiry (RFC 3339) of the newest secret of that name.
      type: str
    secrets:
      description: Metadata of every secret of that name that is left (C(key_id), C(start_date_time), C(end_date_time)), newest first.
      type: list
      elements: dict
    removed_key_ids:
      description: Key IDs of the secrets of that name this run removed (or would remove, in check mode).
      type: list
      elements: str
    expired_key_ids:
      description: Key IDs of the secrets of that name that had expired when the run began (they are always removed).
      type: list
      elements: str
  sample:
    CE mailbox access (acme):
      name: CE mailbox access (acme)
      created: false
      key_id: 0b7c4c6e-2f4e-4a9b-9d8e-3d3f2b1a0c9e
      start_date_time: "2026-11-01T10:00:00Z"
      end_date_time: "2027-11-01T10:00:00Z"
      secrets:
        - key_id: 0b7c4c6e-2f4e-4a9b-9d8e-3d3f2b1a0c9e
          start_date_time: "2026-11-01T10:00:00Z"
          end_date_time: "2027-11-01T10:00:00Z"
      removed_key_ids: []
      expired_key_ids: []
actions:
  description: What was done, or would be done in check mode, in order.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import name_value_problem, range_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import MicrosoftModule
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.azuread import AppReconciler, EXCHANGE_ROLE_NAMES, duplicate_names
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import is_guid


def secret_suboptions():
    return dict(
        name=dict(type="str", default="CE mailbox access"),
        lifetime_days=dict(type="int", default=365),
        renew_before_days=dict(type="int", default=30),
        rotate=dict(type="bool", default=False),
        retire_previous=dict(type="bool", default=False),
        remove_key_ids=dict(type="list", elements="str", default=[], no_log=False),
        report_only=dict(type="bool", default=False),
    )


def argument_spec():
    return dict(
        display_name=dict(type="str"),
        unique_name=dict(type="str"),
        app_id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        exchange_permissions=dict(type="list", elements="str", choices=list(EXCHANGE_ROLE_NAMES),
                                  default=["IMAP.AccessAsApp", "POP.AccessAsApp"]),
        retain_exchange_permissions=dict(type="list", elements="str", choices=list(EXCHANGE_ROLE_NAMES), default=[]),
        admin_consent=dict(type="bool", default=True),
        app_secret=dict(type="dict", no_log=False, options=secret_suboptions()),
        app_secrets=dict(type="list", elements="dict", no_log=False, options=secret_suboptions()),
    )


# A new secret lives 1 to 730 days: two years is the longest the Entra admin center offers and what Graph gives a secret
# without an end date; Microsoft advises less, and a directory's app management policy may cap it lower still (Graph then
# refuses with CredentialInvalidLifetimeAsPerAppPolicy). A longer secret is a credential nobody rotates.
SECRET_LIFETIME_DAYS = (1, 730)


def secret_problem(option, where):
    """Why one secret entry's lifetime or renewal cannot work, or None; ``where`` names the entry in the message."""
    lifetime = option["lifetime_days"]
    problem = range_problem("%s.lifetime_days" % where, lifetime, SECRET_LIFETIME_DAYS[0], SECRET_LIFETIME_DAYS[1],
                            "days (two years at most: the longest Entra offers, and Graph's default)")
    if problem:
        return problem
    # A renewal window as long as the lifetime would make a new secret on every run.
    return range_problem("%s.renew_before_days" % where, option["renew_before_days"], 0, lifetime - 1,
                         "days (less than lifetime_days %d, or every run would make a new secret)" % lifetime)


def input_problem(params):
    """What is wrong with the options, before any request; None when nothing is."""
    for option in ("display_name", "unique_name"):
        problem = params.get(option) is not None and name_value_problem(option, params[option])
        if problem:
            return problem
    entries = [("app_secret", params["app_secret"])] if params.get("app_secret") else []
    entries += [("app_secrets[%r]" % entry["name"], entry) for entry in params.get("app_secrets") or []]
    for where, entry in entries:
        problem = secret_problem(entry, where)
        if problem:
            return problem
    if params.get("app_id") is not None and not is_guid(params["app_id"]):
        # Graph would take it as a lookup, find nothing and have us create an app: say what app_id is instead.
        return ("app_id %r is not a GUID: use the Application (client) ID of CE's app registration (Entra admin center > App "
                "registrations > the app > Overview), or find the app by unique_name or display_name" % (params["app_id"],))
    repeated = duplicate_names(params.get("app_secrets") or [])
    if repeated:
        return "app_secrets names must be unique; repeated: %s" % ", ".join(repeated)
    return None


def main():
    module = MicrosoftModule(argument_spec(), supports_check_mode=True,
                             required_one_of=[("display_name", "unique_name", "app_id")],
                             mutually_exclusive=[("app_secret", "app_secrets")])
    problem = input_problem(module.params)
    if problem:
        module.fail_json(msg=problem)
    reconciler = AppReconciler(module.graph, module.auth, module.params, check_mode=module.check_mode)
    module.run(reconciler.run, warnings=lambda: reconciler.warnings)


if __name__ == "__main__":
    main()
