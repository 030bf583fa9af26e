# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  ce_url:
    description:
      - Base URL of the CE deployment's Portal, for example C(https://ce-portal.example.com). The modules add C(/api/v1).
      - One Portal serves one CE deployment, which hosts many CE tenants.
      - Must be C(https) (see O(ce_allow_plain_http)), without a user name or password (C(user:password@host), refused and never
        shown; give O(ce_token), or O(ce_username) and O(ce_password)), and without a query string or fragment.
      - If not set, the environment variable E(CE_PORTAL_URL) is used.
    type: str
  ce_allow_plain_http:
    description:
      - Accept a plain C(http) O(ce_url), for a lab only. The Portal token or password and the OAuth client secrets sent to the
        Portal then cross the network unencrypted; every task warns about it.
      - Without it, an C(http) O(ce_url) fails the task before any request.
    type: bool
    default: false
    version_added: 0.2.0
  ce_token:
    description:
      - "An API token of a Portal administrator, sent as C(Authorization: Bearer <token>)."
      - Email gateways need a deployment administrator; OAuth settings and email connections need a deployment administrator
        or the administrator of that CE tenant.
      - If not set, the environment variable E(CE_PORTAL_TOKEN) is used. Give either O(ce_token) or O(ce_username) and O(ce_password).
    type: str
  ce_username:
    description:
      - User name of a Portal administrator, for HTTP Basic authentication instead of O(ce_token).
      - If not set, the environment variable E(CE_PORTAL_USERNAME) is used.
    type: str
  ce_password:
    description:
      - Password of O(ce_username).
      - If not set, the environment variable E(CE_PORTAL_PASSWORD) is used.
    type: str
  ca_path:
    description:
      - PEM file of the CA certificates to trust for the Portal, instead of the system store.
    type: path
  validate_certs:
    description:
      - Whether to verify the Portal's TLS certificate. Turning this off is for labs only and is warned about.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP answer of the Portal, 1 to 600. Throttled requests (HTTP 429 and 503) are retried on top of
        this, honouring C(Retry-After).
    type: int
    default: 30
notes:
  - Every module reads the Portal's version once per invocation. OAuth needs CE 7.4 CU4 (7.4.4) or later.
  - All changes are pending configuration until a batch update applies them (M(ceops.exchange_oauth.ce_batch_update)).
  - A write that the Portal refuses because the object changed meanwhile (HTTP 412) is not repeated blindly; the object is read
    again, compared again and written at most once more.
requirements:
  - requests >= 2.31.0
'''

    ATTRIBUTES = r'''
attributes:
  action_group:
    description: Use C(group/ceops.exchange_oauth.ce) or C(group/ceops.exchange_oauth.all) in C(module_defaults) to set
      the Portal options once per play.
    support: full
    membership:
      - ceops.exchange_oauth.ce
      - ceops.exchange_oauth.all
'''

    # The modules that find the deployment's Exchange Online gateway by name, or else the one made by hand for it.
    GATEWAY_LOOKUP = r'''
options:
  gateway_inbound_host:
    description:
      - The inbound (IMAP) host by which a gateway made by hand under another name than O(gateway) is recognised.
    type: str
    default: outlook.office365.com
'''
