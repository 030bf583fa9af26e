# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Base for the modules that talk to Microsoft: the shared auth options, clients, one failure path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import AnsibleFallbackNotFound, AnsibleModule, env_fallback

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import CLOUDS, MicrosoftAuth, default_cache_dir
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


def normalise_authority_host(value):
    # The Azure SDK's AZURE_AUTHORITY_HOST is often a bare host name.
    if value and "://" not in value:
        return "https://" + value
    return value


class MicrosoftModule(AnsibleModule):
    def __init__(self, argument_spec, **kwargs):
        spec = microsoft_argument_spec()
        spec.update(argument_spec)
        super(MicrosoftModule, self).__init__(argument_spec=spec, **kwargs)
        if not self.params["validate_certs"]:
            self.warn("validate_certs is false: TLS certificates of Microsoft endpoints are not verified, "
                      "so a man in the middle could read the credentials and tokens")
        self._warn_weak_winrm(self.params.get("winrm"))
        if not self.params["tenant_id"]:
            self.fail_json(msg="tenant_id is required (or set AZURE_TENANT_ID or AZURE_TENANT): the Directory (tenant) ID to work in")
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
            p = self.params
            self._auth = MicrosoftAuth(
                tenant_id=p["tenant_id"], client_id=p["client_id"], client_secret=p["client_secret"],
                client_certificate_path=p["client_certificate_path"], client_certificate_password=p["client_certificate_password"],
                managed_identity=p["managed_identity"], cloud=p["cloud"], authority_host=normalise_authority_host(p["authority_host"]),
                graph_endpoint=p["graph_endpoint"], exchange_endpoint=p["exchange_endpoint"], ca_path=p["ca_path"],
                validate_certs=p["validate_certs"], timeout=p["timeout"],
                token_cache_dir=p["token_cache_dir"] or default_cache_dir())
            problems = self._auth.validate()
            if problems:
                self.fail_json(msg="Microsoft credentials for directory %s: %s" % (p["tenant_id"], "; ".join(problems)))
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

    def fail_service(self, error, doing, **result):
        """Fail with what we were doing, the service's own words, its request id and the fix."""
        self.fail_json(msg="%s: %s" % (doing, error.describe()), status=error.status, error_code=error.code,
                       request_id=error.request_id, **result)

    def run(self, work):
        """Call ``work()`` -> result dict and exit; any ServiceError becomes one clear failure."""
        try:
            result = work()
        except StepError as error:
            self.fail_service(error.cause, error.doing, **error.partial)
        except ServiceError as error:
            self.fail_service(error, "directory %s" % self.params["tenant_id"])
        except Exception as error:  # pylint: disable=broad-except
            # A bug must still end as one task failure with the trace in -vvv, not a module crash.
            self.fail_json(msg="unexpected error: %s" % error, exception=traceback.format_exc())
        self.exit_json(**result)


class AlreadyDone:
    """What a write returns when the service says another run has just done it (an AWX slice, a second job): not a
    change of ours."""

    def __init__(self, value=None):
        self.value = value


class RecordsWrites:
    """For the Microsoft reconcilers (mixin): ``act()`` records a write always and sends it only outside check mode; a
    write another run did first (``AlreadyDone``) is recorded as such and is no change of ours. The reconciler has
    ``actions``, ``changed``, ``check_mode`` and ``step(description, call)``."""

    def act(self, description, call):
        self.actions.append(description)
        changed_before, self.changed = self.changed, True
        if self.check_mode:
            return None
        outcome = self.step(description, call)
        if isinstance(outcome, AlreadyDone):
            # Another run (an AWX slice, a second job) did it between our read and our write.
            self.actions[-1] = "%s: already done by another run" % description
            self.changed = changed_before
            return outcome.value
        return outcome


class StepError(Exception):
    """A ServiceError with the step that failed and what was done before it."""

    def __init__(self, doing, cause, partial=None):
        super(StepError, self).__init__(doing)
        self.doing = doing
        self.cause = cause
        self.partial = partial or {}
