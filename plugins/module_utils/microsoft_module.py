# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Microsoft family of modules: the shared auth options, the clients (Graph, Exchange Online), the credential factory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import AnsibleFallbackNotFound, env_fallback

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ceops_module import CeopsModule
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import CLOUDS, auth_from_params
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.graph import GraphClient
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import client_from_params


# The Azure SDK's cloud names, as AWX's "Microsoft Azure Resource Manager" credential and azure.azcollection put them in
# AZURE_CLOUD_ENVIRONMENT. DoD has no name of its own there (it is AzureUSGovernment to Azure): set cloud=usgov_dod.
AZURE_CLOUD_ENVIRONMENTS = {"azurecloud": "public", "azureusgovernment": "usgov", "azurechinacloud": "china"}


def cloud_environment_fallback():
    """``cloud`` from AZURE_CLOUD_ENVIRONMENT; a name we do not know is passed on for the choices check to refuse."""
    value = os.environ.get("AZURE_CLOUD_ENVIRONMENT", "").strip()
    if not value:
        raise AnsibleFallbackNotFound
    return AZURE_CLOUD_ENVIRONMENTS.get(value.lower(), value)


def microsoft_argument_spec():
    # Environment variables are read only when the option is not set, so task options and module_defaults win over the
    # controller's environment. Each takes the Azure SDK's name first, then the one AWX's built-in "Microsoft Azure
    # Resource Manager" credential injects (AZURE_TENANT, AZURE_SECRET; AZURE_CLIENT_ID is the same in both).
    return dict(
        tenant_id=dict(type="str", required=False, fallback=(env_fallback, ["AZURE_TENANT_ID", "AZURE_TENANT"])),
        client_id=dict(type="str", fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
        client_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_SECRET", "AZURE_SECRET"])),
        client_certificate_path=dict(type="path", fallback=(env_fallback, ["AZURE_CLIENT_CERTIFICATE_PATH"])),
        client_certificate_password=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_CERTIFICATE_PASSWORD"])),
        managed_identity=dict(type="bool", default=False),
        cloud=dict(type="str", default="public", choices=sorted(CLOUDS), fallback=(cloud_environment_fallback,)),
        authority_host=dict(type="str", fallback=(env_fallback, ["AZURE_AUTHORITY_HOST"])),
        graph_endpoint=dict(type="str"),
        exchange_endpoint=dict(type="str"),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=30),
        token_cache_dir=dict(type="path", fallback=(env_fallback, ["CEOPS_TOKEN_CACHE_DIR"])),
    )


class MicrosoftModule(CeopsModule):
    def __init__(self, argument_spec, **kwargs):
        spec = microsoft_argument_spec()
        spec.update(argument_spec)
        super(MicrosoftModule, self).__init__(spec, **kwargs)
        if not self.params["validate_certs"]:
            self.warn("validate_certs is false: TLS certificates of Microsoft endpoints are not verified, "
                      "so a man in the middle could read the credentials and tokens")
        self._warn_weak_winrm(self.params.get("winrm"))
        if not self.params["tenant_id"]:
            self.fail_json(msg="tenant_id is required (or set AZURE_TENANT_ID or AZURE_TENANT): the Directory (tenant) ID to work in")
        self.where = "directory %s" % self.params["tenant_id"]
        self._auth = None
        self._graph = None
        self._exchange = None

    def _warn_weak_winrm(self, winrm):
        # The WinRM options carry the management host's password; say so when the channel does not protect it.
        if self.params.get("transport") != "winrm" or not winrm:
            return
        if winrm.get("validate_certs") is False:
            self.warn("winrm.validate_certs is false: the TLS certificate of WinRM host %s is not verified, so a man in the "
                      "middle could read the WinRM credentials; give winrm.ca_path instead" % winrm.get("host"))
        if winrm.get("scheme") == "http":
            self.warn("winrm.scheme is http: WinRM host %s is reached without TLS, so only the WinRM message encryption of "
                      "winrm.transport %s protects the credentials (basic has none); use https (port 5986)"
                      % (winrm.get("host"), winrm.get("transport")))

    @property
    def auth(self):
        if self._auth is None:
            self._auth = auth_from_params(self.params)
            problems = self._auth.validate()
            if problems:
                self.fail_json(msg="Microsoft credentials for %s: %s" % (self.where, "; ".join(problems)))
        return self._auth

    @property
    def graph(self):
        if self._graph is None:
            self._graph = GraphClient(self.auth)
        return self._graph

    def exchange(self, pool_size=10):
        """The Exchange Online client for the module's ``transport`` / ``winrm`` options (exchange_argument_spec)."""
        if self._exchange is None:
            # Over WinRM the management host authenticates with its own certificate: no token, so no secret needed.
            auth = self.auth if self.params.get("transport", "rest") == "rest" else None
            try:
                self._exchange = client_from_params(self.params, auth=auth, pool_size=pool_size)
            except ValueError as exc:
                self.fail_json(msg="Exchange Online options for directory %s: %s" % (self.params["tenant_id"], exc))
        return self._exchange

    def close(self):
        # Before the module exits: over WinRM this ends the PowerShell session (and its Exchange connection).
        if self._exchange is not None:
            self._exchange.close()
