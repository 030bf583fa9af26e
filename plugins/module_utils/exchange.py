# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online cmdlets by name, behind one interface, over one of two transports.

``rest``  POSTs to the adminapi InvokeCommand endpoint that the ExchangeOnlineManagement v3 module
          itself uses (reference/microsoft-facts.md), with an app-only token from msauth.
``winrm`` runs PowerShell 7 with ExchangeOnlineManagement on a Windows management host through
          pywinrm; the host connects app-only with a certificate from its own store.

Both return the cmdlet's output as a list of dicts, or raise ExchangeError carrying Exchange's own
text (unwrapped the same way for both), so a module gets the same answer whichever ran. The
InvokeCommand endpoint is not officially documented: everything that knows its shape is in this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import threading
import time
from collections import Counter

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, Transport
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import is_guid

SERVICE = "Exchange Online"
ANCHOR_MAILBOX = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@%s"
PAGE_SIZE = 1000

# What the modules may run. The WinRM script carries the same list, so a tampered request cannot
# make the management host run anything else.
ALLOWED_CMDLETS = (
    "Get-Mailbox", "Get-ServicePrincipal", "New-ServicePrincipal", "Set-ServicePrincipal", "Remove-ServicePrincipal",
    "Get-MailboxPermission", "Add-MailboxPermission", "Remove-MailboxPermission",
)

WINRM_AUTH = ("ntlm", "kerberos", "credssp", "basic")

# Connect-ExchangeOnline -ExchangeEnvironmentName per cloud; public needs none.
EXCHANGE_ENVIRONMENTS = {"usgov": "O365USGovGCCHigh", "usgov_dod": "O365USGovDoD", "china": "O365China"}

# Exchange learns of a new service principal (its own, or Entra's) some seconds after it was
# created: waits between tries, about half a minute in all.
CONSISTENCY_DELAYS = (1, 2, 3, 5, 8, 13)

ROLE_HINT_SHORT = ("the automation identity needs both the Office 365 Exchange Online application permission Exchange.ManageAsApp "
                   "with admin consent AND the Entra role Exchange Administrator; role changes can take up to an hour to reach Exchange")
ROLE_HINT = ("the automation identity (client_id %s) needs both the Office 365 Exchange Online application permission "
             "Exchange.ManageAsApp with admin consent AND the Entra role Exchange Administrator in directory %s; "
             "role changes can take up to an hour to reach Exchange")

_TYPED_MESSAGE = re.compile(r"^\s*[A-Za-z0-9]*\|([\w.`+]+)\|(.*)$", re.S)
# Outer messages that say nothing about the cause.
_GENERIC_MESSAGE = re.compile(r"^(Invalid Operation|Error executing cmdlet|Exception of type '[^']*' was thrown\.)$")


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


# -- errors ---------------------------------------------------------------------------------------
class ExchangeError(ServiceError):
    """Exchange refused a cmdlet, or the transport could not run it.

    ``code`` is the short exception type Exchange reported (e.g. ManagementObjectNotFoundException),
    ``fatal`` marks failures that would hit every further cmdlet alike (credentials, roles, an
    unreachable host), so a caller working through a list can stop instead of repeating them.
    """

    def __init__(self, message, cmdlet=None, error_type=None, category=None, fatal=False, where=None, **kwargs):
        kwargs.setdefault("code", short_type(error_type))
        super(ExchangeError, self).__init__(SERVICE, message, **kwargs)
        self.cmdlet = cmdlet
        self.error_type = error_type
        self.category = category
        self.fatal = fatal
        self.where = where

    def describe(self):
        parts = []
        head = "%s %s" % (SERVICE, self.cmdlet) if self.cmdlet else SERVICE
        if self.where:
            head += " (%s)" % self.where
        if self.status is not None:
            head += " answered HTTP %s" % self.status
        else:
            head += " failed"
        parts.append("%s: %s" % (head, self.message))
        if self.request_id:
            parts.append("request id %s" % self.request_id)
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)


def short_type(error_type):
    return error_type.rsplit(".", 1)[-1] if error_type else None


def split_exchange_message(text):
    """(exception type, message) from Exchange's "Ex6F9304|Some.Exception|The text" style messages."""
    text = (text or "").strip()
    match = _TYPED_MESSAGE.match(text)
    if match:
        return match.group(1), match.group(2).strip()
    return None, text


def exchange_error_parser(response):
    """Exchange's outer message is usually just "Invalid Operation"; the real one is nested.

    Cmdlet errors carry "<code>|<type>|<text>" in error.details[0].message (the internal exception
    then only says "Exception of type ... was thrown."); binding errors carry the text in
    error.innererror.internalexception.message; authorization errors in error.message.
    """
    try:
        body = response.json()
    except ValueError:
        return None, (response.text or response.reason or "").strip()[:500], None, []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, json.dumps(body)[:500], None, []
    inner = error.get("innererror") or error.get("innerError") or {}
    internal = inner.get("internalexception") or inner.get("internalException") or {}
    details = error.get("details") or []
    detail = details[0].get("message") if details and isinstance(details[0], dict) else None
    candidates = [(detail, None), (internal.get("message"), internal.get("type")), (inner.get("message"), None), (error.get("message"), None)]
    for text, text_type in candidates:
        error_type, message = split_exchange_message(text)
        if error_type:
            return error_type, message, inner.get("request-id"), details
    for text, text_type in candidates:
        if text and not _GENERIC_MESSAGE.match(text.strip()):
            return text_type, text.strip(), inner.get("request-id"), details
    return None, (error.get("message") or "").strip(), inner.get("request-id"), details


def is_not_found(error):
    return (error.code == "ManagementObjectNotFoundException" or "couldn't be found" in (error.message or "")
            or "could not be found" in (error.message or ""))


def is_existing_permission(error):
    return "existing permission entry was found" in (error.message or "")


def is_absent_permission(text):
    """Exchange warns (it does not fail) when Remove-MailboxPermission finds no entry to remove."""
    return any(words in (text or "") for words in ("already absent", "isn't present", "doesn't exist on the object", "and was ignored"))


def is_user_not_replicated(error):
    """-User names a principal the mailbox's servers do not know yet (replication after New-ServicePrincipal)."""
    return "wasn't found" in (error.message or "") and error.cmdlet in ("Add-MailboxPermission", "Remove-MailboxPermission")


def is_existing_service_principal(error):
    """New-ServicePrincipal for an app or object id Exchange already has: ADObjectAlreadyExistsException ("The object
    '...' already exists.") for the object id, or "A service principal with AppId '...' already exists" for the app."""
    return error.cmdlet == "New-ServicePrincipal" and (error.code == "ADObjectAlreadyExistsException" or "already exists" in (error.message or ""))


def is_entra_sp_not_found(error):
    """New-ServicePrincipal could not find the pair in Entra: a wrong id, or one Exchange does not see yet."""
    return error.cmdlet == "New-ServicePrincipal" and "couldn't be found in Microsoft Entra ID" in (error.message or "")


# -- the transports -------------------------------------------------------------------------------
class RestRunner:
    """InvokeCommand over HTTPS with the shared Transport (retries, Retry-After, TLS)."""

    name = "rest"
    max_parallelism = 64

    def __init__(self, auth, tenant, transport=None, pool_size=10, token_ttl=240, clock=time.monotonic):
        self.auth = auth
        self.tenant = tenant
        self.endpoint = auth.endpoints["exchange_endpoint"]
        self.transport = transport or Transport(SERVICE, base_url=self.endpoint, ca_path=auth.ca_path,
                                                validate_certs=auth.validate_certs, timeout=auth.timeout,
                                                error_parser=exchange_error_parser)
        if transport is None and pool_size > 10:
            # Parallel mailboxes share this session: a pool smaller than the thread count would
            # drop and reopen TLS connections all the time.
            from requests.adapters import HTTPAdapter
            self.transport.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size))
        self.token_ttl = token_ttl
        self.clock = clock
        self._token = None
        self._token_at = 0
        self._lock = threading.Lock()
        self.where = self.endpoint

    def _bearer(self):
        # msauth's file cache serves tokens with more than 5 minutes left; asking it again only after
        # a few minutes keeps threads from reading the cache file for every mailbox.
        with self._lock:
            if self._token is None or self.clock() - self._token_at > self.token_ttl:
                self._token = self.auth.exchange_token()
                self._token_at = self.clock()
            return self._token

    def headers(self):
        return {
            "Authorization": "Bearer " + self._bearer(),
            "X-AnchorMailbox": ANCHOR_MAILBOX % self.tenant,
            "Prefer": "odata.maxpagesize=%d" % PAGE_SIZE,
            "X-ResponseFormat": "json",
            "X-ClientApplication": "ceops.exchange_oauth",
        }

    def invoke(self, cmdlet, parameters):
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}
        url = "adminapi/beta/%s/InvokeCommand" % self.tenant
        values, warnings = [], []
        while url:
            try:
                response = self.transport.request("POST", url, expected=(200,), json=body, headers=self.headers())
            except ServiceError as error:
                raise self._error(cmdlet, error)
            try:
                page = response.json()
            except ValueError:
                raise ExchangeError("the answer was not JSON: %s" % (response.text or "")[:200], cmdlet=cmdlet, status=response.status_code,
                                    where=self.where)
            values.extend(page.get("value") or [])
            warnings.extend(page.get("@adminapi.warnings") or [])
            # The next page is the same command at another URL (it carries the skip token).
            url = page.get("@odata.nextLink")
        return values, warnings

    def _error(self, cmdlet, error):
        fatal = error.status in (401, 403) or error.status is None or error.status == 429
        hint = error.hint
        if error.status in (401, 403):
            hint = (ROLE_HINT % (self.auth.client_id, self.tenant) if connect_hint(error.message) == ROLE_HINT_SHORT or error.status == 403
                    else "the token was refused: check that tenant_id, cloud and exchange_endpoint belong together")
        return ExchangeError(error.message, cmdlet=cmdlet, error_type=error.code, status=error.status, request_id=error.request_id,
                             details=error.details, hint=hint, fatal=fatal, where=None if error.status else self.where)


# The script agreed with the lab's WS-Management emulator (lab/ceops_lab/winrm.py), which checks it
# line by line: only comments, indentation and blank lines may differ from its template. Two of its
# lines are longer than a source line may be; they are assembled below.
POWERSHELL_SCRIPT = r"""# ceops.exchange_oauth: one Exchange Online cmdlet, app-only, its request passed as data.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
# The request is a JSON string literal (single quotes doubled), never script text.
$request = '__REQUEST_JSON__' | ConvertFrom-Json
__ALLOWED__
$result = [ordered]@{ ok = $true; value = @(); warnings = @() }
try {
    if ($allowed -notcontains $request.cmdlet) {
        throw "Cmdlet '$($request.cmdlet)' is not allowed by this script."
    }
    Import-Module ExchangeOnlineManagement
    # -CommandName loads only the one cmdlet, which keeps the connection quick.
    __CONNECT__
    $parameters = @{}
    if ($null -ne $request.parameters) {
        foreach ($property in $request.parameters.PSObject.Properties) {
            $parameters[$property.Name] = $property.Value
        }
    }
    $warnings = @()
    $output = & $request.cmdlet @parameters -WarningVariable warnings -WarningAction SilentlyContinue
    $result.value = @($output)
    $result.warnings = @($warnings | ForEach-Object { [string]$_ })
}
catch {
    $result.ok = $false
    $result.error = [ordered]@{
        message = $_.Exception.Message
        category = [string]$_.CategoryInfo.Category
        type = $_.Exception.GetType().FullName
    }
}
finally {
    Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue
}
# One JSON document on stdout, exit code 0 whatever the cmdlet did; 1 only when the script itself fails.
ConvertTo-Json -InputObject $result -Depth 6 -Compress
"""
ALLOWED_LINE = "$allowed = @(%s)" % ", ".join("'%s'" % name for name in ALLOWED_CMDLETS)
CONNECT_LINE = ("Connect-ExchangeOnline -AppId $request.app_id -CertificateThumbprint $request.certificate_thumbprint "
                "-Organization $request.organization -CommandName $request.cmdlet -ShowBanner:$false")


def powershell_literal(text):
    """A PowerShell single-quoted string body: only the quote is special, and it is doubled.

    ``text`` must be ASCII (json.dumps' default), so PowerShell's typographic quotes, which it also
    treats as single quotes, cannot occur in it.
    """
    if any(ord(ch) > 127 for ch in text):
        raise ValueError("PowerShell literal must be ASCII")
    return text.replace("'", "''")


def build_script(request, cloud="public"):
    """The PowerShell for one cmdlet; ``request`` (organization, app_id, certificate_thumbprint, cmdlet,
    parameters) travels as JSON data. The cmdlet is checked here and again on the host."""
    if request.get("cmdlet") not in ALLOWED_CMDLETS:
        raise ValueError("cmdlet %r is not allowed" % request.get("cmdlet"))
    connect = CONNECT_LINE
    if cloud in EXCHANGE_ENVIRONMENTS:
        # Sovereign clouds only; the public cloud keeps the agreed script exactly.
        request = dict(request, exchange_environment=EXCHANGE_ENVIRONMENTS[cloud])
        connect += " -ExchangeEnvironmentName $request.exchange_environment"
    payload = json.dumps(request, separators=(",", ":"))  # ensure_ascii: \\uXXXX for all non-ASCII
    return (POWERSHELL_SCRIPT.replace("__ALLOWED__", ALLOWED_LINE).replace("__CONNECT__", connect)
            .replace("__REQUEST_JSON__", powershell_literal(payload)))


def encode_command(script):
    """What -EncodedCommand wants: base64 of UTF-16LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def parse_script_output(stdout, stderr, exit_code, cmdlet, where):
    """(values, warnings) from the script's one JSON document, or the ExchangeError it describes."""
    out = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else (stdout or "")
    err = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    document = None
    for line in reversed(out.splitlines()):
        line = line.strip().lstrip("\ufeff")
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict) and "ok" in document:
                break
            document = None
    if exit_code != 0 or document is None:
        detail = clean_clixml(err) or out.strip()[-500:] or "no output"
        raise ExchangeError("the PowerShell script failed (exit code %s): %s" % (exit_code, detail[:1000]), cmdlet=cmdlet, fatal=True,
                            where=where, hint="check that PowerShell 7 (pwsh) and the ExchangeOnlineManagement module are installed "
                                              "for the WinRM user on the management host")
    if document.get("ok"):
        return list(document.get("value") or []), list(document.get("warnings") or [])
    error = document.get("error") or {}
    error_type, message = split_exchange_message(error.get("message"))
    # Connect-ExchangeOnline failed (category OperationStopped), or the role does not let it load the
    # cmdlet: every further cmdlet would fail the same way.
    connect_failed = error.get("category") == "OperationStopped" or "is not recognized as" in (message or "")
    raise ExchangeError(message or "unknown error", cmdlet=cmdlet, error_type=error_type or error.get("type"), category=error.get("category"),
                        where=where, fatal=connect_failed, hint=connect_hint(message) if connect_failed else None)


def connect_hint(message):
    """What to do about a refused app-only connection (Connect-ExchangeOnline or a 401 over REST)."""
    message = message or ""
    if message == "UnAuthorized" or "role assigned to application" in message or "is not recognized as" in message \
            or "not allowed to call" in message:
        return ROLE_HINT_SHORT
    if "certificate" in message.lower() or "AADSTS700027" in message:
        return ("winrm.certificate_thumbprint must be the thumbprint of a certificate registered on the automation identity's app, "
                "installed with its private key in the WinRM user's store (Cert:\\CurrentUser\\My) on the management host")
    if message.startswith("AADSTS"):
        return "check tenant_id (or winrm.organization) and client_id: they must name the automation identity's directory and app"
    return None


def clean_clixml(text):
    """PowerShell writes errors to stderr as CLIXML when it is not on a console; keep the words."""
    if not text.startswith("#< CLIXML"):
        return text.strip()
    pieces = re.findall(r'<S S="Error">(.*?)</S>', text, re.S)
    joined = "".join(pieces).replace("_x000D_", "").replace("_x000A_", "\n")
    return re.sub(r"&(lt|gt|amp|quot|apos);", lambda m: {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}[m.group(1)],
                  joined).strip()


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
        if not re.match(r"^[0-9A-Fa-f]{40}$", thumbprint):
            problems.append("winrm.certificate_thumbprint %r is not a SHA-1 thumbprint (40 hex digits) of the automation identity's "
                            "certificate in the WinRM user's certificate store" % (thumbprint,))
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

    def retry_while(self, transient, call):
        """Repeat ``call`` while Exchange has not caught up with a principal created moments ago."""
        for delay in self.consistency_delays:
            try:
                return call()
            except ExchangeError as error:
                if not transient(error):
                    raise
            self.sleep(delay)
        return call()

    # -- service principals ---------------------------------------------------------------------
    def get_service_principal(self, identity):
        """Exchange's service principal by AppId, ObjectId or name; None when Exchange has none."""
        try:
            found = self.invoke("Get-ServicePrincipal", {"Identity": identity})
        except ExchangeError as error:
            if is_not_found(error):
                return None
            raise
        return found[0] if found else None

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
