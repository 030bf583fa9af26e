#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: mailbox_oauth_check
short_description: Prove that CE can log in to its Exchange Online mailboxes with OAuth (IMAP, and SMTP)
version_added: 0.2.0
description:
  - Does what CE does after its batch update, with exactly CE's OAuth settings (client id, client secret, token endpoint URL,
    scope). Gets a client-credentials token, then logs in to each mailbox in O(mailboxes) over IMAP with C(AUTHENTICATE XOAUTH2)
    and opens its INBOX read-only; with O(smtp=true) also over SMTP with STARTTLS and C(AUTH XOAUTH2).
  - Reports per mailbox whether the login worked, the server's own refusal text, the most likely cause and the fix. The cause
    comes from the token's claims (decoded, not verified) and the server's answer, for example no admin consent for
    C(IMAP.AccessAsApp) (no role in the token), or a valid token that Exchange still refuses (service principal not registered
    with C(New-ServicePrincipal), or no C(FullAccess) on that mailbox).
  - Can also run the runbook's outbound test ("How to test outbound email sending with SMTP") with O(smtp_basic_auth), and send
    a test message with O(smtp_send_test_to).
  - Reads only, so it runs in check mode too and never reports a change. The token, the client secret and passwords are never
    returned or logged.
author:
  - CE Ops automation team (@ceops)
extends_documentation_fragment:
  - ceops.exchange_oauth.microsoft_auth
  - ceops.exchange_oauth.microsoft_auth.ATTRIBUTES_NO_GROUP
  - ceops.exchange_oauth.in_process
attributes:
  check_mode:
    description: Runs every login in check mode too (they change nothing); only O(smtp_send_test_to) is skipped.
    support: full
  diff_mode:
    description: Nothing to show; the module never changes anything.
    support: none
options:
  tenant_id:
    description:
      - The Microsoft directory that holds CE's app registration and the mailboxes, as its Directory (tenant) ID or a verified domain.
      - Without O(token_endpoint_url), the token is requested from this directory, as in the token endpoint URL the runbook puts
        into CE.
      - If not set, the environment variable E(AZURE_TENANT_ID) is used, else E(AZURE_TENANT).
  client_id:
    description:
      - The client id in CE's OAuth settings, the Application (client) ID of CE's app (RV(ceops.exchange_oauth.azuread_app#module:app_id)).
      - Not the automation identity. Unlike the other Microsoft modules, no environment variable is read, because E(AZURE_CLIENT_ID)
        names the automation identity; pass it in the task, which wins over C(module_defaults).
    required: true
  client_secret:
    description:
      - The client secret in CE's OAuth settings.
      - Required. No environment variable is read, for the same reason as O(client_id).
  client_certificate_path:
    description:
      - Ignored. CE's OAuth settings hold a client secret, so this module always logs in with O(client_secret).
  client_certificate_password:
    description:
      - Ignored, see O(client_certificate_path).
  managed_identity:
    description:
      - Ignored, see O(client_certificate_path).
  graph_endpoint:
    description:
      - Not used by this module.
  exchange_endpoint:
    description:
      - Not used by this module; IMAP and SMTP hosts are O(imap_host) and O(smtp_host).
  ca_path:
    description:
      - PEM file of the CA certificates to trust for the token endpoint, and for the IMAP and SMTP servers unless O(mail_ca_path) is set.
  validate_certs:
    description:
      - Whether to verify TLS certificates of the token endpoint and of the IMAP and SMTP servers. Turning this off is for labs only.
  timeout:
    description:
      - Seconds to wait for each HTTP answer, and for each network operation of an IMAP or SMTP conversation.
  token_endpoint_url:
    description:
      - The token endpoint URL stored in CE's OAuth settings, for example C(https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token).
      - An https URL without a user name, password, query or fragment; anything else is refused before any request.
      - The token is requested from exactly this URL. A host or directory in it that does not match O(cloud) / O(authority_host)
        or O(tenant_id) is warned about, and the logins then show what CE will meet.
      - When not set, the URL is derived from O(authority_host) (or O(cloud)) and O(tenant_id), as the runbook does.
    type: str
    aliases: [token_url]
  scopes:
    description:
      - The scope stored in CE's OAuth settings. Client credentials take exactly one, ending in C(/.default).
      - Default is the Exchange Online resource of O(cloud) with C(/.default), for example C(https://outlook.office365.com/.default).
    type: list
    elements: str
    aliases: [scope]
  mailboxes:
    description:
      - Addresses of the mailboxes CE reads. Each is logged in to as the XOAUTH2 user. Duplicates are checked once.
      - Each must be an email address; otherwise the task fails before any request.
      - One of O(mailboxes) and O(smtp_basic_auth) is required.
    type: list
    elements: str
  imap_host:
    description:
      - IMAP server CE reads from (the email gateway's inbound host).
      - Default by O(cloud) C(outlook.office365.com), C(outlook.office365.us) (usgov), C(outlook-dod.office365.us) (usgov_dod),
        C(partner.outlook.cn) (china).
    type: str
  imap_port:
    description: IMAP port, with implicit TLS; 1 to 65535.
    type: int
    default: 993
  smtp:
    description:
      - Also log in over SMTP with XOAUTH2, as CE does with "Use OAuth to send emails". Needs C(SMTP.SendAsApp) with admin consent.
    type: bool
    default: false
  smtp_host:
    description:
      - SMTP server CE sends through (the email gateway's outbound host).
      - Default by O(cloud) C(smtp.office365.com), C(smtp.office365.us) (usgov), C(outlook-dod.office365.us) (usgov_dod, not confirmed
        on a live tenant), C(smtp.partner.outlook.cn) (china).
    type: str
  smtp_port:
    description: SMTP submission port, with STARTTLS; 1 to 65535.
    type: int
    default: 587
  smtp_basic_auth:
    description:
      - Mail accounts to test as the runbook's outbound test does (C(Send-MailMessage -UseSsl -Port 587 -Credential)), for CE versions
        that send with the user name and password stored on the mailbox. Logs in with C(AUTH LOGIN) after STARTTLS.
      - Microsoft is switching basic authentication for SMTP AUTH off; a refusal says so when the server does.
    type: list
    elements: dict
    suboptions:
      username:
        description: User name of the mailbox, usually its address.
        type: str
        required: true
        aliases: [mailbox]
      password:
        description: Its password.
        type: str
        required: true
      from_address:
        description: Sender of the test message; default O(smtp_basic_auth[].username).
        type: str
  smtp_send_test_to:
    description:
      - When set, every successful SMTP login (O(smtp) and O(smtp_basic_auth)) also sends a test message (subject C(Test), HTML body
        C(Test message)) from that mailbox to this address, and the result says whether the server accepted it.
      - Sending is the only thing this module does that leaves a trace; it is skipped in check mode. It does not count as a change.
    type: str
  parallelism:
    description: How many mailboxes are checked at the same time.
    type: int
    default: 4
  login_retries:
    description:
      - How many times a login is made again after a temporary answer before it counts as failed. Temporary are the answers
        Exchange Online gives when it cannot serve a login right now (IMAP C(NO [UNAVAILABLE]), SMTP C(4xx) such as C(454 4.7.0)),
        and a refused or dropped connection.
      - Refusals (IMAP C(NO AUTHENTICATE failed.), SMTP C(535)), names that do not resolve, TLS failures and timeouts are never
        retried. A login that stays temporary is reported as temporary, not as a missing registration or right.
      - V(0) makes every login once.
    type: int
    default: 3
  login_retry_delay:
    description:
      - Seconds to wait before the first new login; each further one waits twice as long (with random jitter, at most 10 seconds).
      - With the defaults a login that stays temporary costs about 3.5 to 7 seconds more.
    type: float
    default: 1.0
  fail_on_error:
    description:
      - Fail the task, after checking every mailbox, when any login failed. The message names each failed mailbox with the server's
        text, the cause and the fix.
      - With V(false) the task succeeds and the results say what failed (RV(failed_mailboxes)).
    type: bool
    default: true
  fresh_token:
    description:
      - Request a new token instead of using one from the token cache.
      - Without it a cached token is used first; when a login is then refused, a new token is requested once and the refused
        mailboxes are checked again, because roles are fixed when a token is issued and consent may have been granted since.
    type: bool
    default: false
  mail_ca_path:
    description:
      - PEM file of the CA certificates to trust for the IMAP and SMTP servers, when they differ from O(ca_path).
    type: path
notes:
  - This module signs in as CE's app, never as the automation identity. CE's app needs C(IMAP.AccessAsApp) (and C(SMTP.SendAsApp)
    for O(smtp)) with admin consent, its service principal registered in Exchange Online, and C(FullAccess) on every mailbox.
  - Exchange Online refuses every failed XOAUTH2 login with the same text (C(AUTHENTICATE failed.) over IMAP, C(535 5.7.3) over SMTP),
    so the cause given for a valid token with the right role lists the candidates rather than one.
seealso:
  - module: ceops.exchange_oauth.azuread_app
  - module: ceops.exchange_oauth.exo_service_principal
  - module: ceops.exchange_oauth.exo_mailbox_permission
  - module: ceops.exchange_oauth.ce_oauth_settings
'''

EXAMPLES = r'''
- name: Prove that CE gets into its mailboxes with its OAuth settings
  ceops.exchange_oauth.mailbox_oauth_check:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: "{{ ce_app.app_id }}"
    client_secret: "{{ vault_ce_email_client_secret }}"
    mailboxes:
      - ce-support@contoso.onmicrosoft.com
      - ce-sales@contoso.onmicrosoft.com

- name: Exactly the Portal's settings, SMTP too, report without failing
  ceops.exchange_oauth.mailbox_oauth_check:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: 0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c
    client_secret: "{{ vault_ce_email_client_secret }}"
    token_endpoint_url: https://login.microsoftonline.com/6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51/oauth2/v2.0/token
    scope: https://outlook.office365.com/.default
    mailboxes: "{{ ce_mailboxes }}"
    smtp: true
    fail_on_error: false
  register: ce_login

- name: Show the mailboxes CE cannot read
  ansible.builtin.debug:
    msg: "{{ ce_login.failed_mailboxes }}"

- name: The runbook's outbound test with a mailbox's password, sending one message
  ceops.exchange_oauth.mailbox_oauth_check:
    tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
    client_id: 0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c
    client_secret: "{{ vault_ce_email_client_secret }}"
    smtp_basic_auth:
      - username: ce-support@contoso.onmicrosoft.com
        password: "{{ vault_ce_support_password }}"
    smtp_send_test_to: ops@example.com
'''

RETURN = r'''
msg:
  description:
    - One line for a person. When something failed, it names each failed mailbox with the server's text, the cause and the fix
      (also when O(fail_on_error=false)); otherwise it says that every login worked.
  returned: always
  type: str
settings:
  description: The settings the check used (client id, tenant id, token endpoint URL, scope, IMAP and SMTP C(host:port)).
  returned: always
  type: dict
token:
  description:
    - Claims of the token CE's settings got (C(aud), C(tid), C(appid), C(oid) (the service principal object id Exchange needs),
      C(roles), C(iss), C(expires_on)), whether it came from the cache (C(from_cache)) and whether it was renewed after a refusal
      (C(refreshed)). Never the token.
  returned: when a token was obtained
  type: dict
mailboxes:
  description:
    - One entry per mailbox, in the given order, with C(mailbox), C(ok), and C(imap) (and C(smtp) with O(smtp=true)), each holding
      C(ok), C(stage) (C(token), C(connect), C(tls), C(starttls), C(authenticate), C(examine), C(send) or C(done)), C(response) (the
      server's own text), C(cause) and C(fix) (null when it worked), and for SMTP C(test_message) when one was sent or skipped.
    - Each login also holds C(attempts), how many logins it took (more than one after temporary answers, see O(login_retries)),
      and C(temporary=true) when it failed with a temporary answer on every attempt.
  returned: always
  type: list
  elements: dict
smtp_basic_auth:
  description: One entry per O(smtp_basic_auth) account with C(username), C(ok) and C(smtp) as in RV(mailboxes). Never a password.
  returned: always
  type: list
  elements: dict
failed_mailboxes:
  description: Addresses of the mailboxes where any login failed.
  returned: always
  type: list
  elements: str
failed_smtp_basic_auth:
  description: User names of the O(smtp_basic_auth) accounts whose login or test message failed.
  returned: always
  type: list
  elements: str
summary:
  description: Counts of C(mailboxes), C(ok), C(failed), C(imap_failed), C(smtp_failed), C(smtp_basic_auth), C(smtp_basic_auth_failed), C(test_messages_sent).
  returned: always
  type: dict
'''

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import range_problem, url_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_permissions import is_address
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.mailbox_check import MailboxOAuthCheck
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import MicrosoftModule
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import default_cache_dir


def argument_spec():
    return dict(
        # CE's app, not the automation identity: no AZURE_* environment fallback (see the docs).
        client_id=dict(type="str", required=True),
        client_secret=dict(type="str", no_log=True),
        token_endpoint_url=dict(type="str", aliases=["token_url"], no_log=False),
        scopes=dict(type="list", elements="str", aliases=["scope"]),
        mailboxes=dict(type="list", elements="str"),
        imap_host=dict(type="str"),
        imap_port=dict(type="int", default=993),
        smtp=dict(type="bool", default=False),
        smtp_host=dict(type="str"),
        smtp_port=dict(type="int", default=587),
        smtp_basic_auth=dict(type="list", elements="dict", options=dict(
            username=dict(type="str", required=True, aliases=["mailbox"]),
            password=dict(type="str", required=True, no_log=True),
            from_address=dict(type="str"),
        )),
        smtp_send_test_to=dict(type="str"),
        parallelism=dict(type="int", default=4),
        login_retries=dict(type="int", default=3),
        login_retry_delay=dict(type="float", default=1.0),
        fail_on_error=dict(type="bool", default=True),
        fresh_token=dict(type="bool", default=False),
        mail_ca_path=dict(type="path"),
    )


def input_problem(params):
    """What cannot be right in the options, before any request; None when nothing is."""
    bad = [m for m in params["mailboxes"] or [] if not is_address((m or "").strip())]
    if bad:
        return "mailboxes must be email addresses; %s %s not (nothing was checked)" % (
            ", ".join(ascii(m) for m in bad[:10]), "is" if len(bad) == 1 else "are")
    if params["smtp_send_test_to"] is not None and not is_address(params["smtp_send_test_to"].strip()):
        return "smtp_send_test_to %s is not an email address" % ascii(params["smtp_send_test_to"])
    return (range_problem("imap_port", params["imap_port"], 1, 65535) or range_problem("smtp_port", params["smtp_port"], 1, 65535)
            # Plain http is refused with the other token endpoint checks (mailbox_check.parse_token_endpoint_url).
            or url_problem("token_endpoint_url", params["token_endpoint_url"], allow_http=True))


def main():
    module = MicrosoftModule(argument_spec(), supports_check_mode=True, required_one_of=[("mailboxes", "smtp_basic_auth")])
    params = dict(module.params, token_cache_dir=module.params["token_cache_dir"] or default_cache_dir())
    problem = input_problem(params)
    if problem:
        module.fail_json(msg="CE's OAuth settings for directory %s: %s" % (params["tenant_id"], problem), changed=False)
    try:
        check = MailboxOAuthCheck(params, check_mode=module.check_mode, warn=module.warn, mask=module.no_log_values.add)
        check.validate()
    except ValueError as exc:
        module.fail_json(msg="CE's OAuth settings for directory %s: %s" % (params["tenant_id"], exc), changed=False)

    def work():
        result = check.run()
        if (result["failed_mailboxes"] or result["failed_smtp_basic_auth"]) and params["fail_on_error"]:
            module.fail_json(**result)
        return result

    module.run(work)


if __name__ == "__main__":
    main()
