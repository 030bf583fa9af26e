"""The Windows management host behind the lab's WS-Management endpoint (winrm.py): each WS-Man Command that starts
`pwsh` / `powershell` is a HostProcess, which runs the script it was given with the PowerShell-subset interpreter
(powershell.py) in a thread of its own, with stdin fed by WS-Man Send and stdout / stderr drained by Receive, as a
real process would be.

Besides the interpreter's built-ins the host has the ExchangeOnlineManagement module (the one module installed):
  Import-Module ExchangeOnlineManagement   (any other module: "was not loaded because no valid module file was found")
  Connect-ExchangeOnline -AppId -CertificateThumbprint -Organization [-CommandName] [-ExchangeEnvironmentName]
                         [-ShowBanner] [-ShowProgress] [-SkipLoadingFormatData]
      app-only with a certificate from the host's store: the directory must know the organization (tenant id or
      domain), the app must exist there with a service principal, the certificate (any lab directory's automation
      certificate is in the host's store) must be registered on the app and not expired, the service principal
      enabled, holding Exchange.ManageAsApp (as a token issued now would) and a directory role Exchange maps
      (Exchange Administrator / Global Administrator; Global Reader = the Get-* cmdlets only). Failures are
      terminating errors with Entra's / Exchange's texts (category OperationStopped). On success the Exchange cmdlets
      of -CommandName (all when it is omitted) that the role allows become commands of this process; a cmdlet the
      role does not allow is simply not imported, so calling it is "The term '...' is not recognized".
      Other parameter sets (interactive, -Certificate, -CertificateFilePath, -ManagedIdentity, -AccessToken, ...) are
      not emulated and say so. Counted as "CONNECT Connect-ExchangeOnline" (a read) in the winrm counters.
  Disconnect-ExchangeOnline [-Confirm]     forgets the connection (no error without one)
  the Exchange cmdlets of exchange_state.py, run against the same Exchange organization as the REST service, with
      parameter binding as PowerShell does it (names, unique prefixes, switches, splatting); the app's roles are
      checked again on every call. A cmdlet's own error is non-terminating (ErrorAction decides), its message
      "<code>|<type>|<text>" as the module throws it; a binding error is terminating (ParameterBindingException).
      Each call is counted as "CMDLET <name>" (a read for Get-*, a write otherwise) and logged with its parameters.
"""

import datetime
import hashlib
import logging
import re
import threading

from . import exchange_state as exo
from . import journal
from . import powershell as ps

LOG = logging.getLogger("ceops_lab")
HOST_NAME = "CEOPS-EXO01"
MODULES = ("ExchangeOnlineManagement",)
# Connect-ExchangeOnline -ExchangeEnvironmentName (Microsoft Learn); the lab has one Exchange for all of them.
EXCHANGE_ENVIRONMENTS = ("O365China", "O365Default", "O365GermanyCloud", "O365USGovDoD", "O365USGovGCCHigh")
CONNECT_NOT_EMULATED = ("Certificate", "CertificateFilePath", "CertificatePassword", "UserPrincipalName", "DelegatedOrganization",
                        "ManagedIdentity", "ManagedIdentityAccountId", "AccessToken", "Credential", "Device", "InlineCredential",
                        "ConnectionUri", "AzureADAuthorizationEndpointUri", "Prefix", "UseRPSSession", "SigningCertificate",
                        "PageSize", "TrackPerformance", "UseMultithreading", "LoadCmdletHelp", "EnableErrorReporting",
                        "LogDirectoryPath", "LogLevel", "DisableWAM", "FormatTypeName", "SkipLoadingCmdletHelp")
MSAL_ERROR = "Microsoft.Identity.Client.MsalServiceException"
KILLED_EXIT_CODE = -1073741510  # 0xC000013A, STATUS_CONTROL_C_EXIT: what a terminated console process reports


class ConnectFailed(Exception):
    def __init__(self, message, type_name, category="OperationStopped"):
        super().__init__(message)
        self.message, self.type_name, self.category = message, type_name, category

    def error(self):
        return ps.PSError(ps.ErrorRecord(self.message, self.type_name, self.category, "ConnectExchangeOnline"))


class HostProcess:
    """One pwsh process of a WinRM shell. The interpreter's host interface on one side (write_stdout, read_line, ...),
    WS-Man's on the other (feed, take, kill)."""

    def __init__(self, service, script, program):
        self.service = service
        self.lab = service.lab
        self.script = script
        self.program = program
        self.cond = threading.Condition()
        self.stdin = bytearray()
        self.stdin_closed = False
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.sent_out = self.sent_err = 0
        self.exit_code = None
        self.killed = False
        self.output_encoding = ps.OEM_ENCODING
        self.input_encoding = ps.OEM_ENCODING
        self.console = None
        self.connection = None
        self.commands = {c.name.lower(): c for c in (
            ps.Command("Import-Module", {"Name": "value", "Force": "switch", "Global": "switch", "DisableNameChecking": "switch",
                                         "RequiredVersion": "value", "MinimumVersion": "value"},
                       self._import_module, positional=("Name",), pipeline="Name"),
            ps.Command("Connect-ExchangeOnline", dict({"AppId": "value", "CertificateThumbprint": "value", "Organization": "value",
                                                       "CommandName": "value", "ExchangeEnvironmentName": "value", "ShowBanner": "switch",
                                                       "ShowProgress": "value", "SkipLoadingFormatData": "switch"},
                                                      **{name: "value" for name in CONNECT_NOT_EMULATED}),
                       self._connect, type_name="Connect-ExchangeOnline"),
            ps.Command("Disconnect-ExchangeOnline", {"Confirm": "switch", "WhatIf": "switch", "ConnectionId": "value", "ModulePrefix": "value"},
                       self._disconnect, type_name="Disconnect-ExchangeOnline"),
        )}

    @classmethod
    def finished(cls, service, stdout, stderr, exit_code):
        """A process that ended at once (not PowerShell, or a command line PowerShell refuses)."""
        process = cls(service, None, None)
        process.stdout.extend(stdout)
        process.stderr.extend(stderr)
        process.exit_code = exit_code
        return process

    # -- running
    def start(self):
        thread = threading.Thread(target=self._main, name="winrm-process", daemon=True)
        thread.start()

    def _main(self):
        interpreter = ps.Interpreter(self)
        try:
            code = interpreter.run(self.script)
        except ps.HostKilled:
            code = KILLED_EXIT_CODE
        except Exception:  # noqa: BLE001 - a lab bug must end the process visibly, not hang the client
            LOG.exception("winrm: the interpreter failed")
            self.write_stderr(ps.clixml_error(ps.ErrorRecord("ceops lab: internal error of the PowerShell interpreter (see lab.log)")))
            code = 1
        with self.cond:
            self.exit_code = code
            self.cond.notify_all()
        errors = interpreter.errors_reported
        if interpreter.parse_error is not None:
            self.service.log_script("refused", program=self.program, exit_code=code, error=interpreter.parse_error.message)
        else:
            self.service.log_script("ran", program=self.program, exit_code=code,
                                    error=errors[0].exception.message.split("\r\n")[0] if errors else None)

    # -- the interpreter's host interface
    def write_stdout(self, text):
        self._write(self.stdout, text)

    def write_stderr(self, text):
        self._write(self.stderr, text)

    def _write(self, buffer, text):
        data = text.encode(self.output_encoding.codec, "replace")
        with self.cond:
            if self.killed:
                raise ps.HostKilled()
            buffer.extend(data)
            self.cond.notify_all()

    def read_line(self):
        """The next line of stdin (without its line break), None at its end; blocks as Console.In.ReadLine does."""
        with self.cond:
            while True:
                if self.killed:
                    raise ps.HostKilled()
                end = self.stdin.find(b"\n")
                if end >= 0:
                    raw = bytes(self.stdin[:end])
                    del self.stdin[:end + 1]
                    break
                if self.stdin_closed:
                    if not self.stdin:
                        return None
                    raw = bytes(self.stdin)
                    self.stdin.clear()
                    break
                self.cond.wait()
        return raw.decode(self.input_encoding.codec, "replace").rstrip("\r")

    def check_alive(self):
        if self.killed:
            raise ps.HostKilled()

    def command(self, name):
        lowered = name.lower()
        found = self.commands.get(lowered)
        if found is not None:
            return found
        connection = self.connection
        if connection is not None and lowered in connection["imported"]:
            return self._exchange_command(exo.lookup_cmdlet(name))
        return None

    # -- WS-Man's side
    def feed(self, data, end):
        with self.cond:
            self.stdin.extend(data)
            if end:
                self.stdin_closed = True
            self.cond.notify_all()

    def take(self, limit, timeout):
        """(stdout, stderr, done, exit code): at most `limit` bytes of output in all, as soon as there is output or the
        process ended; None after `timeout`
        seconds without either (WS-Man answers that Receive with an OperationTimeout fault)."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.stdout) > self.sent_out or len(self.stderr) > self.sent_err
                                      or self.exit_code is not None, timeout=timeout):
                return None
            out = bytes(self.stdout[self.sent_out:self.sent_out + limit])
            self.sent_out += len(out)
            err = bytes(self.stderr[self.sent_err:self.sent_err + limit - len(out)])
            self.sent_err += len(err)
            done = self.exit_code is not None and self.sent_out == len(self.stdout) and self.sent_err == len(self.stderr)
            return out, err, done, self.exit_code

    def kill(self):
        with self.cond:
            self.killed = True
            self.stdin_closed = True
            self.cond.notify_all()

    # -- ExchangeOnlineManagement
    def _import_module(self, context, bound, pipeline_input):
        names = pipeline_input if pipeline_input is not None else ps.enumerate_value(bound.get("Name"))
        for name in names:
            text = ps.to_string(name)
            if text.lower() not in (m.lower() for m in MODULES):
                context.write_error(ps.ErrorRecord(
                    "The specified module '%s' was not loaded because no valid module file was found in any module directory." % text,
                    "System.IO.FileNotFoundException", "ResourceUnavailable",
                    "Modules_ModuleNotFound,Microsoft.PowerShell.Commands.ImportModuleCommand"))
        return []

    def _disconnect(self, context, bound, pipeline_input):
        self.connection = None
        return []

    def _connect(self, context, bound, pipeline_input):
        for name in CONNECT_NOT_EMULATED:
            if name in bound:
                raise ps.runtime_error("ceops lab: Connect-ExchangeOnline -%s is not emulated; the lab's management host connects "
                                       "app-only with -AppId -CertificateThumbprint -Organization." % name, "ceopsLab.NotEmulated",
                                       "NotImplemented")
        environment = bound.get("ExchangeEnvironmentName")
        if environment is not None and ps.to_string(environment) not in EXCHANGE_ENVIRONMENTS:
            raise ps.binding_error("Cannot validate argument on parameter 'ExchangeEnvironmentName'. The argument \"%s\" does not belong to "
                                   "the set \"%s\" specified by the ValidateSet attribute. Supply an argument that is in the set and then "
                                   "try the command again." % (ps.to_string(environment), ",".join(EXCHANGE_ENVIRONMENTS)),
                                   "ParameterArgumentValidationError,Connect-ExchangeOnline", "InvalidData")
        missing = [name for name in ("AppId", "CertificateThumbprint", "Organization") if ps.is_null(bound.get(name))]
        if missing:
            raise ps.runtime_error("ceops lab: Connect-ExchangeOnline without %s would sign in interactively, which a WinRM session "
                                   "cannot; the lab's management host connects app-only with -AppId -CertificateThumbprint "
                                   "-Organization." % " and ".join("-" + m for m in missing), "ceopsLab.NotEmulated", "InvalidArgument")
        requested = bound.get("CommandName")
        wanted = None if ps.is_null(requested) else {ps.to_string(n).lower() for n in ps.enumerate_value(requested)}
        lab = self.lab
        status, directory, failure = 200, None, None
        with lab.world.lock:
            try:
                directory, sp, roles = self._authorize(ps.to_string(bound["Organization"]).strip(), ps.to_string(bound["AppId"]).strip(),
                                                       ps.to_string(bound["CertificateThumbprint"]))
                imported = set()
                for name, cmdlet in exo.CMDLETS.items():
                    if wanted is not None and name.lower() not in wanted:
                        continue
                    try:
                        exo.check_app_access(lab, directory, sp, roles, cmdlet=name)
                    except exo.CmdletError:
                        continue  # -CommandName imports only what the role allows
                    imported.add(name.lower())
                self.connection = {"directory": directory, "sp": sp, "roles": roles, "imported": imported}
            except ConnectFailed as exc:
                status, failure = 401, exc
        lab.counters.record(self.service.name, "GET", "CONNECT Connect-ExchangeOnline", status,
                            directory=directory.tenant_id if directory is not None else None)
        if failure is not None:
            raise failure.error()
        return []

    def _authorize(self, organization, app_id, thumbprint_text):
        """(directory, service principal, app roles) of an app-only connection (World.lock held); raises ConnectFailed."""
        lab = self.lab
        directory = lab.world.directory(organization)
        if directory is None or organization.lower() == directory.name.lower() and organization.lower() not in (
                directory.tenant_id.lower(), directory.domain.lower()):
            raise ConnectFailed("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing "
                                "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
                                "active subscriptions for the tenant." % organization, MSAL_ERROR)
        app = directory.app_by_app_id(app_id)
        if app is None:
            raise ConnectFailed("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the "
                                "application has not been installed by the administrator of the tenant or consented to by any user in the "
                                "tenant. You may have sent your authentication request to the wrong tenant." % (app_id, directory.display_name),
                                MSAL_ERROR)
        sp = directory.sp_by_app_id(app_id)
        if sp is None or lab.is_fresh(sp, directory, "login"):
            raise ConnectFailed("AADSTS7000229: The client application %s is missing service principal in the tenant %s."
                                % (app_id, directory.tenant_id), MSAL_ERROR)
        thumbprint = re.sub(r"[\s:]", "", thumbprint_text).upper()
        on_host = {identity.thumbprints["sha1_hex"] for identity in lab.automation_certificates.values()}
        if thumbprint not in on_host:
            raise ConnectFailed("No certificate with thumbprint %s was found in the certificate stores Cert:\\CurrentUser\\My and "
                                "Cert:\\LocalMachine\\My of %s." % (thumbprint, HOST_NAME), "System.Exception")
        registered = {hashlib.sha1(c["der"]).hexdigest().upper(): c for c in app["_certs"].values()}  # noqa: S324 - thumbprints are SHA-1
        if thumbprint not in registered:
            raise ConnectFailed("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on "
                                "application. [Reason - The key was not found., Thumbprint of key used by client: '%s']" % thumbprint,
                                MSAL_ERROR)
        if registered[thumbprint]["not_after"] <= datetime.datetime.now(datetime.timezone.utc):
            raise ConnectFailed("AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., "
                                "Thumbprint of key used by client: '%s']" % thumbprint, MSAL_ERROR)
        if not sp.get("accountEnabled", True):
            raise ConnectFailed("AADSTS7000112: Application '%s'(%s) is disabled." % (app_id, app.get("displayName")), MSAL_ERROR)
        resource = directory.resource_sp(exo.EXCHANGE_RESOURCE)
        roles = directory.role_values(sp["id"], resource, visible=lambda a: not lab.is_fresh(a, directory, "login"))
        try:
            exo.check_app_access(lab, directory, sp, roles, cmdlet=None)
        except exo.CmdletError as exc:
            raise ConnectFailed(exc.message, "System.Exception" if exc.message == "UnAuthorized" else "System.SystemException") from None
        return directory, sp, roles

    def _exchange_command(self, cmdlet):
        parameters = {name: ("switch" if kind == "switch" else "value") for name, kind in cmdlet.parameters.items()
                      if name not in exo.COMMON_PARAMETERS}

        def run(context, bound, pipeline_input):
            return self._run_exchange(context, cmdlet, bound, pipeline_input)
        return ps.Command(cmdlet.name, parameters, run, type_name=cmdlet.name)

    def _run_exchange(self, context, cmdlet, bound, pipeline_input):
        if pipeline_input:
            raise ps.binding_error("The input object cannot be bound to any parameters for the command either because the command does not "
                                   "take pipeline input or the input and its properties do not match any of the parameters that take "
                                   "pipeline input.", "InputObjectNotBound,%s" % cmdlet.name)
        parameters = {name: ps.plain(value) for name, value in bound.items()}
        lab = self.lab
        status, outcome, failure = 200, None, None
        with lab.world.lock:
            connection = self.connection
            if connection is None:
                raise ps.not_recognized(cmdlet.name)
            directory = connection["directory"]
            # The host runs the cmdlet in its own thread: the journal collects what it addressed or changed here.
            journal.begin()
            try:
                exo.check_app_access(lab, directory, connection["sp"], connection["roles"], cmdlet=cmdlet.name)
                outcome = exo.run_cmdlet(lab, directory, cmdlet, parameters)
            except exo.CmdletError as exc:
                status, failure = exc.status, exc
            finally:
                notes = journal.end()
        lab.counters.record(self.service.name, "GET" if cmdlet.is_read else "POST", "CMDLET %s" % cmdlet.name, status,
                            directory=directory.tenant_id)
        if not cmdlet.is_read:
            lab.journal.record(self.service.name, "POST", "CMDLET %s" % cmdlet.name, status, notes, directory=directory.tenant_id)
        self.service.log_cmdlet(cmdlet.name, parameters, failure)
        if failure is not None:
            error_id = "%s,%s" % (failure.code or failure.type_name.rsplit(".", 1)[-1], cmdlet.name)
            if failure.kind == "binding":
                raise ps.PSError(ps.ErrorRecord(failure.message, failure.type_name, failure.category, error_id))
            if failure.kind == "auth":
                raise ps.PSError(ps.ErrorRecord(failure.message, failure.type_name, "AuthenticationError", error_id))
            context.write_error(ps.ErrorRecord(failure.prefixed, failure.type_name, failure.category, error_id))
            return []
        for warning in outcome.warnings:
            context.write_warning(warning)
        return [ps.from_plain(value) for value in outcome.value]
