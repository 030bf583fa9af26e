# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online cmdlets over WinRM: PowerShell 7 with ExchangeOnlineManagement on a Windows management host, through
pywinrm; the host connects app-only with a certificate from its own store."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import range_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_powershell import build_script, encode_command, parse_script_output
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import is_guid

WINRM_AUTH = ("ntlm", "kerberos", "credssp", "basic")


class WinRMRunner:
    """One PowerShell 7 process per cmdlet on a Windows management host.

    Each thread keeps its own pywinrm Protocol (its HTTP session and NTLM context are not meant
    to be shared); each cmdlet opens a shell, runs ``pwsh -EncodedCommand`` and closes it.
    """

    name = "winrm"
    # Each busy thread holds a shell open; WinRM allows 30 per user by default (MaxShellsPerUser).
    max_parallelism = 25

    def __init__(self, options, tenant, app_id, cloud="public", timeout=30, protocol_factory=None):
        self.options = options
        self.organization = options.get("organization") or tenant
        self.app_id = app_id
        self.cloud = cloud
        self.timeout = timeout
        scheme = options.get("scheme") or "https"
        port = options.get("port") or (5986 if scheme == "https" else 5985)
        path = "/" + (options.get("path") or "/wsman").lstrip("/")
        self.endpoint = "%s://%s:%s%s" % (scheme, options["host"], port, path)
        self.where = "WinRM %s" % self.endpoint
        self._factory = protocol_factory or self._protocol
        self._local = threading.local()

    def problems(self):
        """Configuration mistakes found before anything is sent."""
        problems = []
        if not is_guid(self.app_id):
            problems.append("client_id %r is not a GUID: over WinRM it is the AppId that Connect-ExchangeOnline uses" % (self.app_id,))
        thumbprint = self.options.get("certificate_thumbprint") or ""
        if not re.fullmatch(r"[0-9A-Fa-f]{40}", thumbprint):
            problems.append("winrm.certificate_thumbprint %r is not a SHA-1 thumbprint (40 hex digits) of the automation identity's "
                            "certificate in the WinRM user's certificate store" % (thumbprint,))
        port_problem = range_problem("winrm.port", self.options.get("port"), 1, 65535)
        if port_problem:
            problems.append(port_problem)
        if not self.options.get("username") and self.options.get("transport") != "kerberos":
            problems.append("winrm.username is required for winrm.transport %s" % self.options.get("transport"))
        return problems

    def _protocol(self):
        try:
            from winrm.protocol import Protocol
        except ImportError as exc:
            raise ExchangeError("the Python library 'pywinrm' is required for transport winrm: %s" % exc, fatal=True,
                                hint="install the collection's requirements.txt into the Python that runs the modules")
        options = self.options
        validate = options.get("validate_certs", True)
        # An explicit CA path (or none) keeps REQUESTS_CA_BUNDLE from silently replacing the CA we were given.
        ca_path = options.get("ca_path") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        read_timeout = max(30, int(self.timeout) + 10)
        protocol = Protocol(self.endpoint, transport=options.get("transport") or "ntlm", username=options.get("username"),
                            password=options.get("password"), server_cert_validation="validate" if validate else "ignore",
                            ca_trust_path=ca_path if validate else None, read_timeout_sec=read_timeout,
                            operation_timeout_sec=read_timeout - 10, proxy=None)
        return protocol

    def _thread_protocol(self):
        protocol = getattr(self._local, "protocol", None)
        if protocol is None:
            protocol = self._local.protocol = self._factory()
        return protocol

    def invoke(self, cmdlet, parameters):
        request = {"organization": self.organization, "app_id": self.app_id,
                   "certificate_thumbprint": self.options.get("certificate_thumbprint"), "cmdlet": cmdlet, "parameters": parameters}
        encoded = encode_command(build_script(request, self.cloud))
        protocol = self._thread_protocol()
        try:
            shell_id = protocol.open_shell()
            try:
                command_id = protocol.run_command(shell_id, "pwsh", ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded])
                stdout, stderr, exit_code = protocol.get_command_output(shell_id, command_id)
                protocol.cleanup_command(shell_id, command_id)
            finally:
                protocol.close_shell(shell_id)
        except ExchangeError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            # pywinrm raises its own errors and requests' errors; all mean "the host did not run it".
            self._local.protocol = None
            raise self._transport_error(cmdlet, exc)
        return parse_script_output(stdout, stderr, exit_code, cmdlet, self.where)

    def _transport_error(self, cmdlet, exc):
        kind = exc.__class__.__name__
        text = str(exc).splitlines()[0] if str(exc) else kind
        # urllib3 wraps the one useful phrase ("[Errno 111] Connection refused") in two layers of repr.
        match = re.search(r"(\[Errno -?\d+\][^'\"()]*)", text)
        if match:
            text = match.group(1).strip()
        if kind in ("InvalidCredentialsError", "AuthenticationError", "BasicAuthDisabledError"):
            return ExchangeError("the WinRM host refused the credentials of %r (%s): %s" % (self.options.get("username"), kind, text),
                                 cmdlet=cmdlet, fatal=True, status=401, where=self.where,
                                 hint="check winrm.username (DOMAIN\\user or user@domain), winrm.password and winrm.transport "
                                      "(the host must allow that authentication)")
        if "SSLError" in kind or "CERTIFICATE_VERIFY_FAILED" in text:
            return ExchangeError("TLS verification of the WinRM host failed: %s" % text, cmdlet=cmdlet, fatal=True, where=self.where,
                                 hint="set winrm.ca_path to the CA that signed the host's certificate")
        if kind in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "WinRMOperationTimeoutError", "NewConnectionError"):
            return ExchangeError("the WinRM host did not answer: %s" % text, cmdlet=cmdlet, fatal=True, where=self.where,
                                 hint="check winrm.host, winrm.port and winrm.scheme, and that the host is reachable and runs WinRM")
        return ExchangeError("WinRM failed (%s): %s" % (kind, text), cmdlet=cmdlet, fatal=True, where=self.where,
                             hint="check the WinRM configuration of the management host")
