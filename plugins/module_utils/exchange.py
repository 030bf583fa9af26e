# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online cmdlets by name, behind one interface, over one of two transports.

``rest``  the adminapi InvokeCommand endpoint (exo_rest.py), with an app-only token from msauth.
``winrm`` PowerShell 7 on a Windows management host through pywinrm (exo_winrm.py, exo_powershell.py).

Both return the cmdlet's output as a list of dicts, or raise ExchangeError carrying Exchange's own
text, unwrapped the same way for both (exo_errors.py), so a module gets the same answer whichever ran."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time
from collections import Counter

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import retry_while
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import (
    ExchangeError, is_absent_permission, is_entra_sp_not_found, is_existing_permission, is_not_found, is_user_not_replicated)
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_powershell import ALLOWED_CMDLETS
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_rest import RestRunner
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_winrm import WINRM_AUTH, WinRMRunner

# Exchange learns of a new service principal (its own, or Entra's) some seconds after it was
# created: waits between tries, about half a minute in all.
CONSISTENCY_DELAYS = (1, 2, 3, 5, 8, 13)


def exchange_argument_spec():
    return dict(
        transport=dict(type="str", choices=["rest", "winrm"], default="rest"),
        winrm=dict(type="dict", options=dict(
            host=dict(type="str", required=True),
            port=dict(type="int"),
            scheme=dict(type="str", choices=["https", "http"], default="https"),
            path=dict(type="str", default="/wsman"),
            transport=dict(type="str", choices=list(WINRM_AUTH), default="ntlm"),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            certificate_thumbprint=dict(type="str", required=True),
            organization=dict(type="str"),
        )),
    )


# -- the client the modules use -------------------------------------------------------------------
class ExchangeClient:
    """Cmdlets as methods; the transport is an implementation detail. Thread-safe."""

    def __init__(self, runner, directory, sleep=time.sleep, consistency_delays=CONSISTENCY_DELAYS):
        self.runner = runner
        self.directory = directory
        self.warnings = []
        self.invocations = Counter()
        self.sleep = sleep
        self.consistency_delays = consistency_delays
        self.max_parallelism = getattr(runner, "max_parallelism", 64)
        self._lock = threading.Lock()

    def invoke(self, cmdlet, parameters=None, keep_warnings=None):
        """Run one cmdlet; its output objects as a list. Raises ExchangeError.

        Exchange's warnings are collected for the task; ``keep_warnings`` (a list) also gets them
        for a caller that decides by them.
        """
        if cmdlet not in ALLOWED_CMDLETS:
            raise ValueError("cmdlet %r is not allowed" % cmdlet)
        with self._lock:
            self.invocations[cmdlet] += 1
        values, warnings = self.runner.invoke(cmdlet, dict(parameters or {}))
        if keep_warnings is not None:
            keep_warnings.extend(warnings)
        elif warnings:
            with self._lock:
                self.warnings.extend("%s: %s" % (cmdlet, w) for w in warnings if "%s: %s" % (cmdlet, w) not in self.warnings)
        return values

    def close(self):
        """End what the transport holds open for this client (WinRM: its PowerShell session); a module calls it once its
        work is done, whether it succeeded or not."""
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def retry_while(self, transient, call):
        """Repeat ``call`` while Exchange has not caught up with a principal created moments ago."""
        return retry_while(transient, call, self.consistency_delays, self.sleep)

    # -- service principals ---------------------------------------------------------------------
    def service_principals(self, identity):
        """What Get-ServicePrincipal -Identity answers, as a list ([] when Exchange has none). The caller checks which of
        them, if any, is the one it asked for: the lookup is by any of several identities, and what the endpoint answers
        for an identity that matches nothing is not documented."""
        try:
            return self.invoke("Get-ServicePrincipal", {"Identity": identity})
        except ExchangeError as error:
            if is_not_found(error):
                return []
            raise

    def new_service_principal(self, app_id, object_id, display_name=None, verified=False):
        """Create it; with ``verified`` (the pair was checked in Entra) Exchange's "couldn't be found
        in Microsoft Entra ID" means it does not see a new service principal yet, so wait for it."""
        parameters = {"AppId": app_id, "ObjectId": object_id}
        if display_name:
            parameters["DisplayName"] = display_name
        transient = is_entra_sp_not_found if verified else (lambda error: False)
        found = self.retry_while(transient, lambda: self.invoke("New-ServicePrincipal", parameters))
        return found[0] if found else None

    def set_service_principal(self, identity, display_name):
        self.invoke("Set-ServicePrincipal", {"Identity": identity, "DisplayName": display_name})

    def remove_service_principal(self, identity):
        self.invoke("Remove-ServicePrincipal", {"Identity": identity, "Confirm": False})

    # -- mailbox permissions --------------------------------------------------------------------
    def get_mailbox_permissions(self, mailbox):
        return self.invoke("Get-MailboxPermission", {"Identity": mailbox})

    def add_mailbox_permission(self, mailbox, user, access_rights, inheritance_type="All", automapping=False):
        """True when added; False when Exchange says the entry already exists (someone was faster)."""
        parameters = {"Identity": mailbox, "User": user, "AccessRights": list(access_rights), "InheritanceType": inheritance_type,
                      "AutoMapping": bool(automapping)}
        try:
            self.retry_while(is_user_not_replicated, lambda: self.invoke("Add-MailboxPermission", parameters))
            return True
        except ExchangeError as error:
            if is_existing_permission(error):
                return False
            raise

    def remove_mailbox_permission(self, mailbox, user, access_rights, inheritance_type="All"):
        """True when removed; False when Exchange says there was nothing to remove."""
        parameters = {"Identity": mailbox, "User": user, "AccessRights": list(access_rights), "InheritanceType": inheritance_type,
                      "Confirm": False}
        warnings = []
        try:
            self.retry_while(is_user_not_replicated, lambda: self.invoke("Remove-MailboxPermission", parameters, keep_warnings=warnings))
        except ExchangeError as error:
            if is_absent_permission(error.message):
                return False
            raise
        return not any(is_absent_permission(w) for w in warnings)


def has_graph_credentials(params):
    """Whether the task carries a credential msauth can use (a WinRM-only task may not)."""
    return bool(params.get("client_secret") or params.get("client_certificate_path") or params.get("managed_identity"))


def client_from_params(params, auth=None, pool_size=10):
    """The client for a module's options: ``transport`` rest (needs ``auth``) or winrm (needs ``winrm``)."""
    if params.get("transport") == "winrm":
        options = params.get("winrm") or {}
        runner = WinRMRunner(options, params["tenant_id"], params.get("client_id"), cloud=params.get("cloud") or "public",
                             timeout=params.get("timeout") or 30)
        problems = runner.problems()
        if problems:
            raise ValueError("; ".join(problems))
    else:
        runner = RestRunner(auth, params["tenant_id"], pool_size=pool_size)
    return ExchangeClient(runner, params["tenant_id"])
