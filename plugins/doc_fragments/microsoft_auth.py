# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  tenant_id:
    description:
      - The Microsoft Entra directory to work in, as its Directory (tenant) ID or a verified domain such as C(contoso.onmicrosoft.com).
      - The automation identity must be registered in this directory.
      - If not set, the environment variable E(AZURE_TENANT_ID) is used, else E(AZURE_TENANT) (the name AWX's built-in
        C(Microsoft Azure Resource Manager) credential injects).
    type: str
  client_id:
    description:
      - Application (client) ID of the automation identity that makes the changes (not the app this collection registers for CE).
      - With O(managed_identity=true), the client ID of a user-assigned managed identity; omit it for the system-assigned one.
      - If not set, the environment variable E(AZURE_CLIENT_ID) is used.
    type: str
  client_secret:
    description:
      - A client secret of the automation identity.
      - If not set, the environment variable E(AZURE_CLIENT_SECRET) is used, else E(AZURE_SECRET) (the name AWX's built-in
        C(Microsoft Azure Resource Manager) credential injects).
      - Ignored when O(client_certificate_path) is set.
    type: str
  client_certificate_path:
    description:
      - Path to a PEM file holding the private key and certificate of the automation identity; used instead of a secret.
      - If not set, the environment variable E(AZURE_CLIENT_CERTIFICATE_PATH) is used.
    type: path
  client_certificate_password:
    description:
      - Password of the private key in O(client_certificate_path), when it is encrypted.
      - If not set, the environment variable E(AZURE_CLIENT_CERTIFICATE_PASSWORD) is used.
    type: str
  managed_identity:
    description:
      - Authenticate as the Azure managed identity of the host that runs the module instead of with a secret or certificate.
    type: bool
    default: false
  cloud:
    description:
      - The Microsoft cloud, which sets the token, Graph and Exchange endpoints and resource identifiers.
      - V(usgov) is GCC High, V(usgov_dod) is DoD (its endpoints are not confirmed on a live tenant), V(china) is 21Vianet.
      - If not set, the environment variable E(AZURE_CLOUD_ENVIRONMENT) is used (AWX's built-in C(Microsoft Azure Resource Manager)
        credential injects it when its Azure Cloud Environment field is filled) with the Azure SDK's names C(AzureCloud) for V(public),
        C(AzureUSGovernment) for V(usgov) and C(AzureChinaCloud) for V(china). DoD has no name of its own there, so set V(usgov_dod)
        here. Any other value (C(AzureGermanCloud), an Azure Stack metadata URL) is refused.
    type: str
    default: public
    choices: [public, usgov, usgov_dod, china]
  authority_host:
    description:
      - Override of the token endpoint host, for example a private or emulated authority. Must be C(https).
      - Like O(graph_endpoint) and O(exchange_endpoint), refused before any request when it holds a user name or password
        (C(user:password@host), never shown), a query string or a fragment.
      - If not set, the environment variable E(AZURE_AUTHORITY_HOST) is used, then the O(cloud) default.
    type: str
  graph_endpoint:
    description:
      - Override of the Microsoft Graph base URL (without C(/v1.0)). Tokens are still requested for the O(cloud)'s Graph resource.
    type: str
  exchange_endpoint:
    description:
      - Override of the Exchange Online base URL. Tokens are still requested for the O(cloud)'s Exchange resource.
    type: str
  ca_path:
    description:
      - PEM file of the CA certificates to trust for every Microsoft endpoint, instead of the system store.
    type: path
  validate_certs:
    description:
      - Whether to verify TLS certificates. Turning this off is for labs only and is warned about.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP answer, 1 to 600. Throttled requests are retried on top of this, honouring C(Retry-After).
    type: int
    default: 30
  token_cache_dir:
    description:
      - Directory of the token cache that every module invocation of a run shares, so that a run requests one token per
        directory, client and resource.
      - Holds access tokens (never secrets) in files only the owner can read.
      - Created with mode 0700 when absent. An existing directory is used only when it is a directory (not a symbolic link) owned
        by the user who runs the task that group and others can neither read nor write; otherwise the task fails, naming the
        owner or mode found and the command that fixes it.
      - If not set, the environment variable E(CEOPS_TOKEN_CACHE_DIR) is used, then C(~/.cache/ceops.exchange_oauth/tokens).
    type: path
requirements:
  - msal >= 1.31.0
  - requests >= 2.31.0
  - cryptography
'''

    ATTRIBUTES = r'''
attributes:
  action_group:
    description: Use C(group/ceops.exchange_oauth.microsoft) or C(group/ceops.exchange_oauth.all) in C(module_defaults) to set
      the Microsoft options once per play.
    support: full
    membership:
      - ceops.exchange_oauth.microsoft
      - ceops.exchange_oauth.all
'''

    # mailbox_oauth_check: in no action group (it logs in with CE's app, and the groups' module_defaults hold the automation
    # identity's credentials).
    ATTRIBUTES_NO_GROUP = r'''
attributes:
  action_group:
    description: In no action group - C(module_defaults) of C(group/ceops.exchange_oauth.microsoft) hold the automation identity,
      and this module logs in with CE's app; pass its options in the task.
    support: none
    membership: []
'''
