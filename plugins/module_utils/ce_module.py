# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The CE family of modules: the shared Portal options and the Portal client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_portal import CePortal, ce_url_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ceops_module import CeopsModule


def ce_argument_spec():
    # Environment variables are read only when the option is not set, so module_defaults and
    # task options win over the controller's environment.
    return dict(
        ce_url=dict(type="str", fallback=(env_fallback, ["CE_PORTAL_URL"])),
        ce_allow_plain_http=dict(type="bool", default=False),
        ce_token=dict(type="str", no_log=True, fallback=(env_fallback, ["CE_PORTAL_TOKEN"])),
        ce_username=dict(type="str", fallback=(env_fallback, ["CE_PORTAL_USERNAME"])),
        ce_password=dict(type="str", no_log=True, fallback=(env_fallback, ["CE_PORTAL_PASSWORD"])),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=30),
    )


class CeModule(CeopsModule):
    def __init__(self, argument_spec, **kwargs):
        spec = ce_argument_spec()
        spec.update(argument_spec)
        super(CeModule, self).__init__(spec, **kwargs)
        p = self.params
        if not p["validate_certs"]:
            self.warn("validate_certs is false: the CE Portal's TLS certificate is not verified, so a man in the middle "
                      "could read the Portal credentials and the OAuth client secret")
        if not p["ce_url"]:
            self.fail_json(msg="ce_url is required (or set CE_PORTAL_URL): the CE Portal's base URL, for example https://ce-portal.example.com")
        problem = ce_url_problem(p["ce_url"], p["ce_allow_plain_http"])
        if problem:
            self.fail_json(msg=problem)
        if p["ce_url"].lower().startswith("http://"):
            self.warn("ce_url %s is plain http (ce_allow_plain_http): the Portal token or password, and the OAuth client secret "
                      "sent to the Portal, cross the network unencrypted; use the Portal's https URL" % p["ce_url"])
        if p["ce_token"] and (p["ce_username"] or p["ce_password"]):
            self.fail_json(msg="CE deployment %s: set either ce_token or ce_username/ce_password, not both (check module_defaults "
                               "and the CE_PORTAL_* environment variables)" % p["ce_url"])
        if not p["ce_token"] and not (p["ce_username"] and p["ce_password"]):
            self.fail_json(msg="CE deployment %s: credentials are required: ce_token (an API token), or ce_username and ce_password "
                               "of a Portal administrator (or CE_PORTAL_TOKEN, CE_PORTAL_USERNAME, CE_PORTAL_PASSWORD)" % p["ce_url"])
        self.where = "CE deployment %s" % p["ce_url"]
        self._portal = None

    @property
    def portal(self):
        if self._portal is None:
            p = self.params
            try:
                self._portal = CePortal(p["ce_url"], token=p["ce_token"], username=p["ce_username"], password=p["ce_password"],
                                        ca_path=p["ca_path"], validate_certs=p["validate_certs"], timeout=p["timeout"])
            except ValueError as error:
                self.fail_json(msg="%s: %s" % (self.where, error))
            except ServiceError as error:
                self.fail_service(error, self.where)
        return self._portal
