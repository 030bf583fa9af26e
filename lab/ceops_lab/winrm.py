r"""A WS-Management endpoint ("winrm") that pywinrm talks to for real, standing in for a Windows
host with the ExchangeOnlineManagement module. Without PowerShell, it INTERPRETS the one script
the collection sends: the cmdlet invocation travels as data (JSON) in that script, and the lab
runs it against the same emulated Exchange Online as the REST service (exchange_state.py).

Transport
  https://127.0.0.1:<port>/wsman (lab CA), SOAP 1.2 WS-Management as pywinrm speaks it: Create
  shell, Command, Receive (until CommandState Done with an ExitCode; long output arrives over
  several Receives), Signal, Delete; Signal and Delete answer RelatesTo = the request MessageID.
  Auth: HTTP Basic (transport="basic") and NTLM (transport="ntlm", NTLMv2 via requests_ntlm)
  with the lab's admin user; wrong credentials get 401 (pywinrm: InvalidCredentialsError).
  Unknown shell ids get the WS-Man fault 2150858843; more than 30 open shells per user get a fault.
  Command lines: `powershell|pwsh [-NoProfile] [-NonInteractive] [-NoLogo] [-ExecutionPolicy X]
  -EncodedCommand <base64 UTF-16LE>` (what Session.run_ps sends); anything else exits 1 with
  cmd.exe's "is not recognized" text on stderr.

The script (THE CONTRACT; the lab refuses anything else)
  The client sends exactly the template below (the text between the two marker lines), with
  __REQUEST_JSON__ replaced by the request JSON escaped for a PowerShell single-quoted string.
  Comparison ignores line endings (CRLF/LF), indentation, trailing spaces, blank lines and lines
  that start with '#'; everything else must match line by line.

  ----- BEGIN CEOPS EXO SCRIPT -----
  $ErrorActionPreference = 'Stop'
  $ProgressPreference = 'SilentlyContinue'
  [Console]::OutputEncoding = [System.Text.Encoding]::UTF8
  $request = '__REQUEST_JSON__' | ConvertFrom-Json
  $allowed = @('Get-Mailbox', 'Get-ServicePrincipal', 'New-ServicePrincipal', 'Set-ServicePrincipal', 'Remove-ServicePrincipal', 'Get-MailboxPermission', 'Add-MailboxPermission', 'Remove-MailboxPermission')
  $result = [ordered]@{ ok = $true; value = @(); warnings = @() }
  try {
      if ($allowed -notcontains $request.cmdlet) {
          throw "Cmdlet '$($request.cmdlet)' is not allowed by this script."
      }
      Import-Module ExchangeOnlineManagement
      Connect-ExchangeOnline -AppId $request.app_id -CertificateThumbprint $request.certificate_thumbprint -Organization $request.organization -CommandName $request.cmdlet -ShowBanner:$false
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
  ConvertTo-Json -InputObject $result -Depth 6 -Compress
  ----- END CEOPS EXO SCRIPT -----

  Escaping (the ONLY place data meets code): build the JSON with json.dumps(request,
  ensure_ascii=True) (so no non-ASCII character, in particular no U+2018..U+201B, which PowerShell
  also treats as single quotes, reaches the script) and replace every ' with ''. The result must
  stay on one line (JSON escapes newlines). The lab parses the literal with PowerShell's rules:
  a quote that is not doubled ends the string, and then the line is no longer
  `$request = '...' | ConvertFrom-Json` exactly, so the script is refused, never executed.

  Request JSON: {"organization": "<tenant id or domain>", "app_id": "<client id>",
                 "certificate_thumbprint": "<SHA-1 hex of the app's certificate>",
                 "cmdlet": "Get-Mailbox", "parameters": {"Identity": "x", ...}}
  Parameters are PowerShell parameters by name (case-insensitive, unique prefixes allowed), JSON
  true/false for switches and booleans ("Confirm": false), arrays for multi-valued ones
  ("AccessRights": ["FullAccess"]). Keys differing only in case are a ConvertFrom-Json error.

Result (stdout, UTF-8, one JSON document + CRLF; exit code 0 in both cases; the lab writes nothing
  else, but a real host may print module warnings or host text first, so read the LAST non-empty
  stdout line that starts with '{' as the document)
  {"ok":true,"value":[{...},...],"warnings":["..."]}
  {"ok":false,"value":[],"warnings":[],"error":{"message":"...","category":"...","type":"..."}}
  value: the cmdlet's objects, the same properties as the REST service returns.
  error.message is what the module throws: cmdlet errors carry Exchange's prefix, e.g.
    "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed
     because object 'x' couldn't be found on '<DC>'."   (one line)
    "|Microsoft.Exchange.Configuration.Tasks.TaskException|An existing permission entry was found for user: <user>."
    (strip everything up to the second '|', exactly as for REST details[0].message);
  connection failures (category "OperationStopped") are the module's texts: AADSTS... from Entra
  (unknown tenant / app, certificate not registered on the app), "UnAuthorized" (no
  Exchange.ManageAsApp), "The role assigned to application <appid> isn't supported in this
  scenario. ..." (no Exchange Administrator / Global Administrator / Global Reader role), or the
  certificate missing from the host's store; a write cmdlet under the read-only Global Reader role
  is not imported by Connect-ExchangeOnline -CommandName, so it fails with "The term '<cmdlet>' is
  not recognized ..." (CommandNotFoundException); parameter binding errors are PowerShell's
  (category "InvalidArgument", type System.Management.Automation.ParameterBindingException).
  category/type are informational; branch on the message.
  Like Windows PowerShell 5.1's ConvertTo-Json, the JSON escapes ' < > & as \u0027 \u003c \u003e \u0026.

  Exit code 1 (stderr in CLIXML, which pywinrm's run_ps turns into text) means the request never
  reached Exchange: not -EncodedCommand, undecodable base64/UTF-16, a script that is not the
  template, a request literal that breaks out of its quotes, invalid JSON, a request that is not
  an object, organization / app_id / certificate_thumbprint / cmdlet missing or not strings, or
  parameters that are not an object.

Authorization mirrors the REST service: the app (app_id) must exist in the organization's
directory with a service principal, the certificate must be registered on the app and present on
the host (every lab directory's automation certificate is), the service principal must hold
Exchange.ManageAsApp (live, as a token issued now would) and a directory role Exchange maps
(Exchange Administrator / Global Administrator; Global Reader = Get-* only).

Counters (service "winrm"): each SOAP message as "POST /wsman <Action>" (Create, Command, Receive,
Signal, Delete, Send), counted as READS (they change nothing in Exchange); each cmdlet that reached
Exchange as "CMDLET <Cmdlet-Name>", a read for Get-*, a write otherwise. So check mode over WinRM
means lab.writes("winrm") == 0, as lab.writes("exchange") == 0 over REST.

Script log (GET /state/winrm -> "scripts", the last 500, cleared by reset): each script received as
  {"outcome": "ran", "cmdlet", "parameters" (as the JSON carried them), "ok", "error"} or
  {"outcome": "refused", "reason", "error_id", "breaks_out"}; breaks_out is true when the request literal
  ended before " | ConvertFrom-Json" — on a real host the rest of that line would have run as code.
"""

import base64
import binascii
import collections
import datetime
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from . import exchange_state as exo
from . import journal
from . import winrm_ntlm
from .service import Response, Service

SCRIPT_BEGIN = "----- BEGIN CEOPS EXO SCRIPT -----"
SCRIPT_END = "----- END CEOPS EXO SCRIPT -----"
REQUEST_PLACEHOLDER = "__REQUEST_JSON__"
ALLOWED_CMDLETS = ("Get-Mailbox", "Get-ServicePrincipal", "New-ServicePrincipal", "Set-ServicePrincipal", "Remove-ServicePrincipal",
                   "Get-MailboxPermission", "Add-MailboxPermission", "Remove-MailboxPermission")
MAX_SHELLS_PER_USER = 30
SCRIPT_LOG_SIZE = 500  # the last scripts received, each "ran" (cmdlet + parameters as data) or "refused" (why)
RECEIVE_CHUNK = 4096  # bytes of stdout per Receive; longer output takes several Receives, as on Windows
ADMIN_USER = "ceops-admin"
HOST_NAME = "CEOPS-EXO01"

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CMD_RESOURCE = SHELL_URI + "/cmd"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
    SHELL_URI + "/Command": "Command",
    SHELL_URI + "/Receive": "Receive",
    SHELL_URI + "/Signal": "Signal",
    SHELL_URI + "/Send": "Send",
}
RESPONSE_ACTIONS = {
    "Create": "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
    "Delete": "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
    "Command": SHELL_URI + "/CommandResponse",
    "Receive": SHELL_URI + "/ReceiveResponse",
    "Signal": SHELL_URI + "/SignalResponse",
    "Send": SHELL_URI + "/SendResponse",
}
PS_QUOTES = "'\u2018\u2019\u201a\u201b"  # PowerShell treats all of these as single quotes
_REQUEST_LINE = re.compile(r"^\$request = '(.*)' \| ConvertFrom-Json$")


def _template():
    """The agreed script, taken from this module's docstring (one source of truth)."""
    doc = __doc__
    body = doc[doc.index(SCRIPT_BEGIN) + len(SCRIPT_BEGIN):doc.index(SCRIPT_END)]
    lines = body.strip("\n").split("\n")
    indent = min(len(line) - len(line.lstrip(" ")) for line in lines if line.strip())
    return "\n".join(line[indent:].rstrip() for line in lines) + "\n"


SCRIPT_TEMPLATE = _template()


class ScriptRefused(Exception):
    """The request never reached Exchange: exit code 1 with this text on stderr."""

    def __init__(self, message, category="ParserError", error_id="ceopsLab.ScriptRefused", line=None, breaks_out=False):
        super().__init__(message)
        self.breaks_out = breaks_out  # the request literal ended early: data would have run as code
        self.message = message
        self.category = category
        self.error_id = error_id
        self.line = line


class WsmanFault(Exception):
    def __init__(self, code, subcode, reason, wsman_code, message, status=500):
        super().__init__(message)
        self.code, self.subcode, self.reason, self.wsman_code, self.message, self.status = code, subcode, reason, wsman_code, message, status


# ----- the script ------------------------------------------------------------------------------------------------
def _normalized_lines(text):
    out = []
    for number, line in enumerate(re.split(r"\r\n|\n|\r", text), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") and not stripped.startswith("#>"):
            continue
        out.append((number, stripped))
    return out


def _parse_ps_single_quoted(text):
    """(value, rest) of a PowerShell single-quoted string starting at text[0]; raises ValueError."""
    if not text or text[0] not in PS_QUOTES:
        raise ValueError("no opening quote")
    value = []
    index = 1
    while index < len(text):
        char = text[index]
        if char in PS_QUOTES:
            if index + 1 < len(text) and text[index + 1] in PS_QUOTES:
                value.append(text[index + 1])
                index += 2
                continue
            return "".join(value), text[index + 1:]
        value.append(char)
        index += 1
    raise ValueError("The string is missing the terminator: '.")


def extract_request(script):
    """The request JSON text of a script of the agreed shape; raises ScriptRefused."""
    received = _normalized_lines(script)
    request_text = None
    request_line = None
    shaped = []
    for number, line in received:
        if request_text is None and line.startswith("$request = "):
            head = "$request = "
            try:
                value, rest = _parse_ps_single_quoted(line[len(head):])
            except ValueError as exc:
                raise ScriptRefused("%s\r\nAt line:%d char:12" % (exc, number), line=number, breaks_out=True) from None
            if rest != " | ConvertFrom-Json" or not _REQUEST_LINE.match(line):
                raise ScriptRefused("Unexpected token '%s' in expression or statement.\r\nAt line:%d char:%d\r\n(ceops lab: the request "
                                    "literal must be the only thing between \"$request = \" and \" | ConvertFrom-Json\"; double every "
                                    "single quote in the JSON)" % (rest.strip()[:40], number, len(line) - len(rest) + 2), line=number,
                                    breaks_out=True)
            request_text = value
            request_line = number
            shaped.append((number, "$request = '%s' | ConvertFrom-Json" % REQUEST_PLACEHOLDER))
        else:
            shaped.append((number, line))
    if request_text is None:
        raise ScriptRefused("ceops lab: the script has no line \"$request = '<JSON>' | ConvertFrom-Json\"; it is not the agreed script "
                            "(see the docstring of lab/ceops_lab/winrm.py).", error_id="ceopsLab.NotTheAgreedScript")
    expected = [line for _, line in _normalized_lines(SCRIPT_TEMPLATE)]
    for index, (number, line) in enumerate(shaped):
        if index >= len(expected) or line != expected[index]:
            wanted = expected[index] if index < len(expected) else "<end of script>"
            raise ScriptRefused("ceops lab: the script is not the agreed script (see the docstring of lab/ceops_lab/winrm.py): line %d "
                                "is %r, expected %r." % (number, line[:120], wanted[:120]), error_id="ceopsLab.NotTheAgreedScript",
                                line=number)
    if len(shaped) < len(expected):
        raise ScriptRefused("ceops lab: the script is not the agreed script: it ends before %r." % expected[len(shaped)][:120],
                            error_id="ceopsLab.NotTheAgreedScript")
    return request_text, request_line


def _pairs_without_case_duplicates(pairs):
    seen = {}
    for key, _ in pairs:
        lowered = key.lower()
        if lowered in seen:
            raise ValueError("Cannot convert the JSON string because a dictionary that was converted from the string contains the "
                             "duplicated keys '%s' and '%s'." % (seen[lowered], key))
        seen[lowered] = key
    return dict(pairs)


def _reject_constant(name):
    raise ValueError("Invalid JSON primitive: %s." % name)


def parse_request(request_text, line):
    try:
        request = json.loads(request_text, object_pairs_hook=_pairs_without_case_duplicates, parse_constant=_reject_constant)
    except ValueError as exc:
        message = str(exc) if str(exc).startswith(("Cannot convert", "Invalid JSON")) else "Invalid JSON primitive: %s" % exc
        raise ScriptRefused("%s\r\nAt line:%d char:1" % (message, line), category="NotSpecified",
                            error_id="System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand", line=line) from None
    if not isinstance(request, dict):
        raise ScriptRefused("ceops lab: the request must be a JSON object.", category="InvalidData", line=line)
    for key in ("organization", "app_id", "certificate_thumbprint", "cmdlet"):
        if not isinstance(request.get(key), str) or not request[key].strip():
            raise ScriptRefused("ceops lab: request field %r must be a non-empty string." % key, category="InvalidData", line=line)
    if request.get("parameters") is not None and not isinstance(request["parameters"], dict):
        raise ScriptRefused("ceops lab: request field 'parameters' must be a JSON object.", category="InvalidData", line=line)
    return request


def decode_command_line(command_line):
    """The script of `powershell ... -EncodedCommand <b64>`; raises ScriptRefused, or returns None
    when the command is not PowerShell at all."""
    tokens = command_line.split()
    if not tokens:
        return None
    program = tokens[0].strip('"').replace("\\", "/").rsplit("/", 1)[-1].lower()
    if program.endswith(".exe"):
        program = program[:-4]
    if program not in ("powershell", "pwsh"):
        return None
    encoded = None
    index = 1
    while index < len(tokens):
        option = tokens[index].lower()
        if not option.startswith(("-", "/")):
            raise ScriptRefused("ceops lab: unexpected argument %r; only -EncodedCommand scripts are interpreted." % tokens[index][:40])
        name = option[1:]
        if name in ("noprofile", "nop", "noninteractive", "noni", "nologo"):
            index += 1
            continue
        if name in ("executionpolicy", "ex", "ep", "inputformat", "outputformat", "windowstyle", "w"):
            index += 2
            continue
        if name in ("ec", "e") or (len(name) >= 3 and "encodedcommand".startswith(name)):
            if index + 1 >= len(tokens):
                raise ScriptRefused("Missing argument for parameter -EncodedCommand.")
            encoded = tokens[index + 1]
            index += 2
            continue
        raise ScriptRefused("ceops lab: %s is not supported; the lab only interprets -EncodedCommand scripts of the agreed shape."
                            % tokens[index][:40])
    if encoded is None:
        raise ScriptRefused("ceops lab: no -EncodedCommand; the lab only interprets -EncodedCommand scripts of the agreed shape.")
    try:
        raw = base64.b64decode(encoded, validate=True)
        return raw.decode("utf-16-le")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ScriptRefused("Cannot process the command because the value specified with -EncodedCommand is not properly encoded. The "
                            "value must be Base64 encoded.", category="InvalidArgument") from None


def clixml_error(refused):
    """stderr as powershell.exe writes a terminating error when its output is redirected."""
    lines = [refused.message]
    lines.append("    + CategoryInfo          : %s: (:) [], %s" % (refused.category, "ParseException" if refused.category == "ParserError"
                                                                   else "RuntimeException"))
    lines.append("    + FullyQualifiedErrorId : %s" % refused.error_id)
    parts = []
    for line in "\r\n".join(lines).split("\r\n"):
        text = escape(line).replace("\t", "_x0009_")
        parts.append('<S S="Error">%s_x000D__x000A_</S>' % text)
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>'
            % "".join(parts)).encode("utf-8")


def powershell_json(value):
    """ConvertTo-Json -Compress as Windows PowerShell 5.1 writes it (', <, >, & escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("'", "\\u0027"), ("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text


# ----- the service -------------------------------------------------------------------------------------------------
class WinrmService(Service):
    name = "winrm"

    def __init__(self, lab):
        super().__init__(lab)
        self.username = ADMIN_USER
        self.password = "Lab-" + secrets.token_urlsafe(18)
        self._shells = {}
        self._shells_lock = threading.Lock()
        self.ntlm = winrm_ntlm.NtlmAcceptor(HOST_NAME, self.username, self.password)
        # What became of each script received: tests of the quoting contract read it from /state/winrm.
        self._scripts = collections.deque(maxlen=SCRIPT_LOG_SIZE)

    def reset(self):
        with self._shells_lock:
            self._scripts.clear()

    def _log_script(self, outcome, **details):
        with self._shells_lock:
            self._scripts.append(dict(details, outcome=outcome, time=time.time()))

    def ansible_vars(self):
        host, port = self.url.split("://", 1)[1].split(":")
        thumbprints = {name: identity.thumbprints["sha1_hex"] for name, identity in self.lab.automation_certificates.items()}
        return {"lab_winrm": {"host": host, "port": int(port), "scheme": "https", "path": "/wsman", "endpoint": self.url + "/wsman",
                              "username": self.username, "password": self.password, "transport": "basic",
                              "transports": ["basic", "ntlm"], "certificate_thumbprints": thumbprints}}

    def env_vars(self):
        return {"CEOPS_LAB_WINRM_ENDPOINT": self.url + "/wsman", "CEOPS_LAB_WINRM_USERNAME": self.username,
                "CEOPS_LAB_WINRM_PASSWORD": self.password}

    # ----- counters -----------------------------------------------------------------------------------------
    def _action_of(self, request):
        if not hasattr(request, "_wsman_action"):
            action = None
            try:
                root = ET.fromstring(request.body)
                node = root.find("s:Header/a:Action", NS)
                action = ACTIONS.get((node.text or "").strip()) if node is not None else None
            except ET.ParseError:
                action = None
            request._wsman_action = action
        return request._wsman_action

    def endpoint(self, request):
        action = self._action_of(request) if request.body else None
        base = "%s %s" % (request.method, request.raw_path)
        return "%s %s" % (base, action) if action else base

    def counted_method(self, request):
        return "GET" if request.method == "POST" and request.raw_path.rstrip("/") == "/wsman" else request.method

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        return Response(status, b"", headers, content_type="application/soap+xml;charset=UTF-8")

    def error_response(self, request, exc):
        return self._fault(None, WsmanFault("s:Receiver", "w:InternalError", "Internal error.", 2150858770,
                                            "The WS-Management service cannot process the request: %s" % type(exc).__name__))

    # ----- HTTP --------------------------------------------------------------------------------------------------
    def handle(self, request):
        if request.raw_path.rstrip("/").lower() != "/wsman":
            return Response(404, b"", content_type="text/html")
        if request.method != "POST":
            return Response(405, b"", {"Allow": "POST"}, content_type="text/html")
        user, challenge = self._authenticate(request)
        if user is None:
            headers = {"WWW-Authenticate": challenge or 'Negotiate, Basic realm="WSMAN"'}
            return Response(401, b"", headers, content_type="text/html")
        if not request.body:
            return Response(200, b"", content_type="application/soap+xml;charset=UTF-8")
        message_id = None
        try:
            root = ET.fromstring(request.body)
            message_id = _text(root, "s:Header/a:MessageID")
            action = self._action_of(request)
            if action is None:
                raise WsmanFault("s:Sender", "w:ActionNotSupported", "The action is not supported by the service.", 2150858771,
                                 "The WS-Management service does not support the specified action: %s."
                                 % (_text(root, "s:Header/a:Action") or "(none)")[:200])
            body = getattr(self, "_" + action.lower())(request, root, user)
        except WsmanFault as fault:
            return self._fault(message_id, fault)
        except ET.ParseError:
            return self._fault(None, WsmanFault("s:Sender", "w:InvalidMessageInformationHeader", "The SOAP message is not well formed.",
                                                2150858817, "The WS-Management service cannot process the request because the XML is "
                                                "invalid."))
        return self._envelope(RESPONSE_ACTIONS[action], message_id, body)

    def _authenticate(self, request):
        """(user, None) when authenticated, else (None, WWW-Authenticate value)."""
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return None, None
            name = user.split("\\")[-1].split("@")[0]
            if name.lower() == self.username.lower() and secrets.compare_digest(password.encode("utf-8"), self.password.encode("utf-8")):
                return self.username, None
            return None, None
        if scheme in ("negotiate", "ntlm"):
            try:
                token = base64.b64decode(value.strip())
            except (binascii.Error, ValueError):
                return None, None
            outcome = self.ntlm.step(token)
            if outcome.authenticated:
                return self.username, None
            if outcome.challenge is not None:
                return None, "%s %s" % ("Negotiate" if scheme == "negotiate" else "NTLM", base64.b64encode(outcome.challenge).decode())
            return None, None
        return None, None

    # ----- SOAP ----------------------------------------------------------------------------------------------------
    def _envelope(self, action, relates_to, body):
        xml = ('<s:Envelope xml:lang="en-US" xmlns:s="%(s)s" xmlns:a="%(a)s" xmlns:x="%(x)s" xmlns:w="%(w)s" xmlns:rsp="%(rsp)s" '
               'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>%(action)s</a:Action>'
               '<a:MessageID>uuid:%(id)s</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>'
               '%(relates)s</s:Header><s:Body>%(body)s</s:Body></s:Envelope>'
               % dict(NS, action=action, id=str(uuid.uuid4()).upper(), body=body,
                      relates="<a:RelatesTo>%s</a:RelatesTo>" % escape(relates_to) if relates_to else ""))
        return Response(200, xml.encode("utf-8"), content_type="application/soap+xml;charset=UTF-8")

    def _fault(self, relates_to, fault):
        body = ('<s:Fault><s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code><s:Reason>'
                '<s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail><f:WSManFault '
                'xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="%d" Machine="%s"><f:Message>%s</f:Message>'
                '</f:WSManFault></s:Detail></s:Fault>'
                % (fault.code, fault.subcode, escape(fault.reason), fault.wsman_code, HOST_NAME.lower(), escape(fault.message)))
        response = self._envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)
        response.status = fault.status
        return response

    def _shell(self, root, user):
        shell_id = None
        for selector in root.findall("s:Header/w:SelectorSet/w:Selector", NS):
            if selector.get("Name") == "ShellId":
                shell_id = (selector.text or "").strip()
        with self._shells_lock:
            shell = self._shells.get((shell_id or "").upper())
        if shell is None or shell["user"] != user:
            raise WsmanFault("s:Sender", "w:InvalidSelectors", "The WS-Management service cannot process the request because the request "
                             "contained invalid selectors for the resource. ", 2150858843,
                             "The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the "
                             "server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. "
                             "Provide the correct ShellId or create a new shell and retry the operation. " % shell_id)
        return shell

    def _create(self, request, root, user):
        with self._shells_lock:
            if sum(1 for s in self._shells.values() if s["user"] == user) >= MAX_SHELLS_PER_USER:
                raise WsmanFault("s:Receiver", "w:InternalError", "The WS-Management service cannot process the request. ", 2150859174,
                                 "The WS-Management service cannot process the request. This user is allowed a maximum number of %d "
                                 "concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "
                                 % MAX_SHELLS_PER_USER)
            shell_id = str(uuid.uuid4()).upper()
            self._shells[shell_id] = {"user": user, "commands": {}}
        return ('<x:ResourceCreated><a:Address>%s/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>'
                '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
                '<rsp:Shell><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>%s</rsp:ResourceUri><rsp:Owner>%s</rsp:Owner>'
                '<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin'
                '</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>'
                % (self.url, CMD_RESOURCE, shell_id, shell_id, CMD_RESOURCE, escape(user)))

    def _delete(self, request, root, user):
        shell = self._shell(root, user)
        with self._shells_lock:
            for key in [k for k, v in self._shells.items() if v is shell]:
                del self._shells[key]
        return ""

    def _command(self, request, root, user):
        shell = self._shell(root, user)
        command = _text(root, "s:Body/rsp:CommandLine/rsp:Command") or ""
        arguments = [a.text or "" for a in root.findall("s:Body/rsp:CommandLine/rsp:Arguments", NS)]
        stdout, stderr, exit_code = self._run(request, " ".join([command.strip()] + arguments))
        command_id = str(uuid.uuid4()).upper()
        shell["commands"][command_id] = {"stdout": stdout, "stderr": stderr, "exit_code": exit_code, "sent": 0}
        return "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % command_id

    def _send(self, request, root, user):
        self._shell(root, user)
        return "<rsp:SendResponse/>"

    def _receive(self, request, root, user):
        shell = self._shell(root, user)
        stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = ((stream.get("CommandId") if stream is not None else "") or "").upper()
        command = shell["commands"].get(command_id)
        if command is None:
            raise WsmanFault("s:Sender", "w:InvalidSelectors", "The request contained an invalid command id. ", 2150858843,
                             "The Windows Remote Shell received a request to perform an operation on a command identifier that does "
                             "not exist. Either the command has completed execution or the client specified an invalid command "
                             "identifier. Check the command identifier and retry the operation. ")
        chunk = command["stdout"][command["sent"]:command["sent"] + RECEIVE_CHUNK]
        command["sent"] += len(chunk)
        done = command["sent"] >= len(command["stdout"])
        parts = []
        if chunk:
            parts.append('<rsp:Stream Name="stdout" CommandId="%s">%s</rsp:Stream>' % (command_id, base64.b64encode(chunk).decode()))
        if done:
            parts.append('<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>' % command_id)
            if command["stderr"]:
                parts.append('<rsp:Stream Name="stderr" CommandId="%s">%s</rsp:Stream>'
                             % (command_id, base64.b64encode(command["stderr"]).decode()))
            parts.append('<rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>' % command_id)
            parts.append('<rsp:CommandState CommandId="%s" State="%s/CommandState/Done"><rsp:ExitCode>%d</rsp:ExitCode>'
                         '</rsp:CommandState>' % (command_id, SHELL_URI, command["exit_code"]))
        else:
            parts.append('<rsp:CommandState CommandId="%s" State="%s/CommandState/Running"/>' % (command_id, SHELL_URI))
        return '<rsp:ReceiveResponse SequenceID="0">%s</rsp:ReceiveResponse>' % "".join(parts)

    def _signal(self, request, root, user):
        shell = self._shell(root, user)
        signal = root.find("s:Body/rsp:Signal", NS)
        if signal is not None:
            shell["commands"].pop((signal.get("CommandId") or "").upper(), None)
        return "<rsp:SignalResponse/>"

    # ----- running the script -------------------------------------------------------------------------------------------
    def _run(self, request, command_line):
        """(stdout bytes, stderr bytes, exit code) of a command line."""
        try:
            script = decode_command_line(command_line)
            if script is None:
                program = command_line.split()[0] if command_line.split() else ""
                return b"", ("'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
                             % program).encode("utf-8"), 1
            request_text, line = extract_request(script)
            exo_request = parse_request(request_text, line)
        except ScriptRefused as refused:
            # A request literal that ends early means data became code: PowerShell would have run the rest.
            self._log_script("refused", reason=refused.message.split("\r\n", 1)[0], error_id=refused.error_id,
                             breaks_out=refused.breaks_out)
            return b"", clixml_error(refused), 1
        result = self._execute(request, exo_request)
        self._log_script("ran", cmdlet=exo_request["cmdlet"], parameters=exo_request.get("parameters") or {},
                         ok=result["ok"], error=(result.get("error") or {}).get("message"))
        return (powershell_json(result) + "\r\n").encode("utf-8"), b"", 0

    def _execute(self, request, exo_request):
        """What the agreed script's try/catch produces for a well-formed request."""
        result = {"ok": True, "value": [], "warnings": []}
        cmdlet_name = exo_request["cmdlet"]
        if cmdlet_name.lower() not in (c.lower() for c in ALLOWED_CMDLETS):
            return _failed(result, "Cmdlet '%s' is not allowed by this script." % cmdlet_name, "OperationStopped",
                           "System.Management.Automation.RuntimeException")
        cmdlet = exo.lookup_cmdlet(cmdlet_name)
        world = self.lab.world
        with world.lock:
            try:
                directory = self._connect(exo_request, cmdlet)
            except ConnectFailed as failure:
                return _failed(result, failure.message, failure.category, failure.type_name)
            request.directory = directory.tenant_id
            status = 200
            try:
                outcome = exo.run_cmdlet(self.lab, directory, cmdlet, exo_request.get("parameters") or {})
                result["value"] = outcome.value
                result["warnings"] = outcome.warnings
            except exo.CmdletError as exc:
                status = exc.status
                if exc.kind == "binding":
                    _failed(result, exc.message, exc.category, exc.type_name)
                else:
                    _failed(result, exc.prefixed, exc.category, exc.type_name)
        self.lab.counters.record(self.name, "GET" if cmdlet.is_read else "POST", "CMDLET %s" % cmdlet.name, status,
                                 directory=directory.tenant_id)
        notes = journal.take()  # this cmdlet's notes: a WS-Management request may run more than one
        if not cmdlet.is_read:
            self.lab.journal.record(self.name, "POST", "CMDLET %s" % cmdlet.name, status, notes, directory=directory.tenant_id,
                                    request_id=request.request_id)
        return result

    def _connect(self, exo_request, cmdlet):
        """Connect-ExchangeOnline -AppId -CertificateThumbprint -Organization -CommandName (World.lock held)."""
        organization = exo_request["organization"].strip()
        app_id = exo_request["app_id"].strip()
        directory = self.lab.world.directory(organization)
        if directory is None or organization.lower() == directory.name.lower() and organization.lower() not in (
                directory.tenant_id.lower(), directory.domain.lower()):
            raise ConnectFailed("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing "
                                "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
                                "active subscriptions for the tenant." % organization, "Microsoft.Identity.Client.MsalServiceException")
        app = directory.app_by_app_id(app_id)
        if app is None:
            raise ConnectFailed("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the "
                                "application has not been installed by the administrator of the tenant or consented to by any user in the "
                                "tenant. You may have sent your authentication request to the wrong tenant." % (app_id, directory.display_name),
                                "Microsoft.Identity.Client.MsalServiceException")
        sp = directory.sp_by_app_id(app_id)
        if sp is None or self.lab.is_fresh(sp, directory, "login"):
            raise ConnectFailed("AADSTS7000229: The client application %s is missing service principal in the tenant %s."
                                % (app_id, directory.tenant_id), "Microsoft.Identity.Client.MsalServiceException")
        thumbprint = re.sub(r"[\s:]", "", exo_request["certificate_thumbprint"]).upper()
        on_host = {identity.thumbprints["sha1_hex"] for identity in self.lab.automation_certificates.values()}
        if thumbprint not in on_host:
            raise ConnectFailed("No certificate with thumbprint %s was found in the certificate stores Cert:\\CurrentUser\\My and "
                                "Cert:\\LocalMachine\\My of %s." % (thumbprint, HOST_NAME), "System.Exception")
        registered = {hashlib.sha1(c["der"]).hexdigest().upper(): c for c in app["_certs"].values()}  # noqa: S324 - thumbprints are SHA-1
        if thumbprint not in registered:
            raise ConnectFailed("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on "
                                "application. [Reason - The key was not found., Thumbprint of key used by client: '%s']" % thumbprint,
                                "Microsoft.Identity.Client.MsalServiceException")
        if registered[thumbprint]["not_after"] <= datetime.datetime.now(datetime.timezone.utc):
            raise ConnectFailed("AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., "
                                "Thumbprint of key used by client: '%s']" % thumbprint, "Microsoft.Identity.Client.MsalServiceException")
        if not sp.get("accountEnabled", True):
            raise ConnectFailed("AADSTS7000112: Application '%s'(%s) is disabled." % (app_id, app.get("displayName")),
                                "Microsoft.Identity.Client.MsalServiceException")
        resource = directory.resource_sp(exo.EXCHANGE_RESOURCE)
        roles = directory.role_values(sp["id"], resource, visible=lambda a: not self.lab.is_fresh(a, directory, "login"))
        try:
            exo.check_app_access(self.lab, directory, sp, roles, cmdlet=None)
        except exo.CmdletError as exc:
            raise ConnectFailed(exc.message, "System.Exception" if exc.message == "UnAuthorized" else "System.SystemException") from None
        try:
            exo.check_app_access(self.lab, directory, sp, roles, cmdlet=cmdlet.name)
        except exo.CmdletError:
            # Connect-ExchangeOnline -CommandName imports only the cmdlets the role allows.
            raise ConnectFailed("The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "
                                "Check the spelling of the name, or if a path was included, verify that the path is correct and try "
                                "again." % cmdlet.name, "System.Management.Automation.CommandNotFoundException",
                                category="ObjectNotFound") from None
        return directory

    # ----- lab views -------------------------------------------------------------------------------------------------
    def snapshot(self):
        with self._shells_lock:
            return {"username": self.username, "open_shells": [{"shell_id": k, "user": v["user"], "commands": len(v["commands"])}
                                                               for k, v in self._shells.items()],
                    "scripts": list(self._scripts)}


class ConnectFailed(Exception):
    def __init__(self, message, type_name, category="OperationStopped"):
        super().__init__(message)
        self.message, self.type_name, self.category = message, type_name, category


def _failed(result, message, category, type_name):
    result["ok"] = False
    result["value"] = []
    result["warnings"] = []
    result["error"] = {"message": message, "category": category, "type": type_name}
    return result


def _text(root, path):
    node = root.find(path, NS)
    return node.text.strip() if node is not None and node.text else None
