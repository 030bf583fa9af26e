r"""A WS-Management endpoint ("winrm") that pywinrm talks to for real, standing in for a Windows management host
with PowerShell 7 and the ExchangeOnlineManagement module. The host runs WHATEVER script it is sent: a pwsh process
per WS-Man Command (winrm_host.py) interprets the script with the lab's PowerShell-subset interpreter
(powershell.py) against the same emulated Exchange Online as the REST service (exchange_state.py). Nothing here
knows any client's script; what a script may do is what PowerShell and the module allow, and anything outside the
interpreter's subset is refused with a PowerShell-shaped error (lab/README.md lists what is not covered).

Transport
  https://127.0.0.1:<port>/wsman (lab CA), SOAP 1.2 WS-Management as pywinrm speaks it: Create shell, Command,
  Send (stdin, End="true" closes it), Receive (returns as soon as the process wrote something or ended: all it wrote
  so far, as Stream blocks of at most RECEIVE_CHUNK bytes, within the request's MaxEnvelopeSize, so longer output
  takes several Receives; MS-WSMV 3.1.4.1.31.1: a ReceiveResponse can hold several stream data blocks. With nothing
  to return it waits up to the request's OperationTimeout and then answers the WS-Man fault 2150858793, which pywinrm
  raises as WinRMOperationTimeoutError; MS-WSMV 3.1.4.14), Signal (terminate ends
  the process), Delete (ends the shell's processes); Signal and Delete answer RelatesTo = the request MessageID.
  Auth: HTTP Basic (transport="basic") and NTLM (transport="ntlm", NTLMv2 via requests_ntlm) with the lab's admin
  user; wrong credentials get 401 (pywinrm: InvalidCredentialsError). Unknown shell ids get the WS-Man fault
  2150858843; more than 30 open shells per user get a fault.
  Command lines: `powershell|pwsh [-NoProfile] [-NonInteractive] [-NoLogo] [-ExecutionPolicy X] [-InputFormat X]
  [-OutputFormat X] -EncodedCommand <base64 UTF-16LE>` (what pywinrm's Session.run_ps sends); anything else that is
  not PowerShell exits 1 with cmd.exe's "is not recognized" text on stderr.

The process
  stdin is what Send delivered, read by [Console]::In.ReadLine() in the console's code page (IBM437 unless the script
  sets [Console]::InputEncoding); stdout / stderr are encoded with [Console]::OutputEncoding (IBM437 until the script
  sets it). Errors go to stderr as CLIXML, as PowerShell writes them when its output is redirected; the exit code is
  1 after an uncaught terminating error or a failed last statement, else 0 (or `exit N`).

Counters (service "winrm"): each SOAP message as "POST /wsman <Action>" (Create, Command, Receive, Signal, Delete,
Send), counted as READS (they change nothing in Exchange); each Connect-ExchangeOnline as "CONNECT
Connect-ExchangeOnline" (a read); each Exchange cmdlet a script ran as "CMDLET <Cmdlet-Name>", a read for Get-*, a
write otherwise. So check mode over WinRM means lab.writes("winrm") == 0, as lab.writes("exchange") == 0 over REST,
and "POST /wsman Command" counts the PowerShell processes started.

Logs (GET /state/winrm, the last 500 of each, cleared by reset):
  "scripts": each process when it ended: {"outcome": "ran" | "refused" (PowerShell could not parse it, or the
             command line was not one PowerShell accepts), "program", "exit_code", "error": the first error it
             reported, or None}
  "cmdlets": each Exchange cmdlet a script ran: {"cmdlet", "parameters" (as bound, plain JSON values), "ok", "error"}
  "open_shells": the shells open now, with the number of processes in each.
"""

import base64
import binascii
import collections
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from . import powershell as ps
from . import winrm_ntlm
from .service import Response, Service
from .winrm_host import HOST_NAME, HostProcess

MAX_SHELLS_PER_USER = 30
LOG_SIZE = 500  # the last scripts and cmdlets the host ran
RECEIVE_CHUNK = 4096  # bytes per stream data block of a ReceiveResponse
MAX_ENVELOPE_SIZE = 500 * 1024  # MaxEnvelopeSizekb's default (MS-WSMV 2.2.4.10); a client may ask for less
ENVELOPE_OVERHEAD = 4096  # the SOAP around the stream blocks, with room to spare
DEFAULT_OPERATION_TIMEOUT = 60.0
MAX_OPERATION_TIMEOUT = 50.0  # below the lab's idle-connection timeout (server._Handler.timeout)
ADMIN_USER = "ceops-admin"

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


class CommandLineRefused(Exception):
    """PowerShell would not start with this command line: exit code 1 with this text on stderr."""

    def __init__(self, message, category="InvalidArgument"):
        super().__init__(message)
        self.message = message
        self.category = category


class WsmanFault(Exception):
    def __init__(self, code, subcode, reason, wsman_code, message, status=500):
        super().__init__(message)
        self.code, self.subcode, self.reason, self.wsman_code, self.message, self.status = code, subcode, reason, wsman_code, message, status



# ----- command lines ------------------------------------------------------------------------------------------
def decode_command_line(command_line):
    """(program, script) of `powershell ... -EncodedCommand <b64>`; raises CommandLineRefused, or returns None
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
            raise CommandLineRefused("ceops lab: unexpected argument %r; only -EncodedCommand scripts are interpreted." % tokens[index][:40])
        name = option[1:]
        if name in ("noprofile", "nop", "noninteractive", "noni", "nologo"):
            index += 1
            continue
        if name in ("executionpolicy", "ex", "ep", "inputformat", "inp", "if", "outputformat", "o", "of", "windowstyle", "w"):
            index += 2
            continue
        if name in ("ec", "e") or (len(name) >= 3 and "encodedcommand".startswith(name)):
            if index + 1 >= len(tokens):
                raise CommandLineRefused("Missing argument for parameter -EncodedCommand.")
            encoded = tokens[index + 1]
            index += 2
            continue
        raise CommandLineRefused("ceops lab: %s is not supported by the lab's management host; it runs -EncodedCommand scripts."
                                 % tokens[index][:40])
    if encoded is None:
        raise CommandLineRefused("ceops lab: no -EncodedCommand; the lab's management host runs -EncodedCommand scripts.")
    try:
        raw = base64.b64decode(encoded, validate=True)
        return program, raw.decode("utf-16-le")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CommandLineRefused("Cannot process the command because the value specified with -EncodedCommand is not properly encoded. The "
                            "value must be Base64 encoded.", category="InvalidArgument") from None



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
        # What the host ran: tests of the data-not-code contract read them from /state/winrm.
        self._scripts = collections.deque(maxlen=LOG_SIZE)
        self._cmdlets = collections.deque(maxlen=LOG_SIZE)

    def reset(self):
        with self._shells_lock:
            shells, self._shells = self._shells, {}
            self._scripts.clear()
            self._cmdlets.clear()
        for shell in shells.values():
            for process in shell["commands"].values():
                process.kill()

    def log_script(self, outcome, **details):
        with self._shells_lock:
            self._scripts.append(dict(details, outcome=outcome, time=time.time()))

    def log_cmdlet(self, cmdlet, parameters, failure):
        with self._shells_lock:
            self._cmdlets.append({"cmdlet": cmdlet, "parameters": parameters, "ok": failure is None, "time": time.time(),
                                  "error": None if failure is None else failure.prefixed})

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
        for process in shell["commands"].values():
            process.kill()
        return ""

    def _command(self, request, root, user):
        shell = self._shell(root, user)
        command = _text(root, "s:Body/rsp:CommandLine/rsp:Command") or ""
        arguments = [a.text or "" for a in root.findall("s:Body/rsp:CommandLine/rsp:Arguments", NS)]
        process = self._start(" ".join([command.strip()] + arguments))
        command_id = str(uuid.uuid4()).upper()
        with self._shells_lock:
            shell["commands"][command_id] = process
        return "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>" % command_id

    def _start(self, command_line):
        """The process a command line starts: PowerShell running its -EncodedCommand script, or one that has failed."""
        try:
            decoded = decode_command_line(command_line)
        except CommandLineRefused as refused:
            self.log_script("refused", program=command_line.split()[0] if command_line.split() else "", exit_code=1, error=refused.message)
            return HostProcess.finished(self, b"", ps.clixml_error(ps.ErrorRecord(refused.message, category=refused.category,
                                                                                   error_id="ceopsLab.CommandLineRefused")).encode("utf-8"), 1)
        if decoded is None:
            program = command_line.split()[0] if command_line.split() else ""
            return HostProcess.finished(self, b"", ("'%s' is not recognized as an internal or external command,\r\noperable program or "
                                                    "batch file.\r\n" % program).encode("utf-8"), 1)
        program, script = decoded
        process = HostProcess(self, script, program)
        process.start()
        return process

    def _process(self, shell, command_id):
        with self._shells_lock:
            process = shell["commands"].get((command_id or "").upper())
        if process is None:
            raise WsmanFault("s:Sender", "w:InvalidSelectors", "The request contained an invalid command id. ", 2150858843,
                             "The Windows Remote Shell received a request to perform an operation on a command identifier that does "
                             "not exist. Either the command has completed execution or the client specified an invalid command "
                             "identifier. Check the command identifier and retry the operation. ")
        return process

    def _send(self, request, root, user):
        shell = self._shell(root, user)
        stream = root.find("s:Body/rsp:Send/rsp:Stream", NS)
        if stream is None or stream.get("Name") != "stdin":
            raise WsmanFault("s:Sender", "w:InvalidParameter", "The request contains an invalid stream. ", 2150858882,
                             "The WS-Management service cannot process the request because the stream is not stdin.")
        process = self._process(shell, stream.get("CommandId"))
        try:
            data = base64.b64decode((stream.text or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WsmanFault("s:Sender", "w:InvalidParameter", "The stdin data is not valid base64. ", 2150858882,
                             "The WS-Management service cannot process the request because the stdin data is not valid.") from None
        process.feed(data, (stream.get("End") or "").lower() == "true")
        return "<rsp:SendResponse/>"

    def _receive(self, request, root, user):
        shell = self._shell(root, user)
        stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = ((stream.get("CommandId") if stream is not None else "") or "").upper()
        process = self._process(shell, command_id)
        taken = process.take(receive_budget(root), operation_timeout(root))
        if taken is None:
            raise WsmanFault("s:Receiver", "w:TimedOut", "The WS-Management service cannot complete the operation within the time "
                             "specified in OperationTimeout.  ", 2150858793,
                             "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ")
        stdout, stderr, done, exit_code = taken
        parts = []
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            for start in range(0, len(data), RECEIVE_CHUNK):
                block = base64.b64encode(data[start:start + RECEIVE_CHUNK]).decode()
                parts.append('<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>' % (name, command_id, block))
        if done:
            parts.append('<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream>' % command_id)
            parts.append('<rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>' % command_id)
            parts.append('<rsp:CommandState CommandId="%s" State="%s/CommandState/Done"><rsp:ExitCode>%d</rsp:ExitCode>'
                         '</rsp:CommandState>' % (command_id, SHELL_URI, exit_code))
        else:
            parts.append('<rsp:CommandState CommandId="%s" State="%s/CommandState/Running"/>' % (command_id, SHELL_URI))
        return '<rsp:ReceiveResponse SequenceID="0">%s</rsp:ReceiveResponse>' % "".join(parts)

    def _signal(self, request, root, user):
        shell = self._shell(root, user)
        signal = root.find("s:Body/rsp:Signal", NS)
        if signal is not None:
            with self._shells_lock:
                process = shell["commands"].pop((signal.get("CommandId") or "").upper(), None)
            if process is not None:
                process.kill()
        return "<rsp:SignalResponse/>"

    # ----- lab views -------------------------------------------------------------------------------------------------
    def snapshot(self):
        with self._shells_lock:
            return {"username": self.username, "open_shells": [{"shell_id": k, "user": v["user"], "commands": len(v["commands"])}
                                                               for k, v in self._shells.items()],
                    "scripts": list(self._scripts), "cmdlets": list(self._cmdlets)}


def operation_timeout(root):
    """Seconds of the request's w:OperationTimeout (xs:duration "PT20.000S"), within the lab's limits."""
    text = _text(root, "s:Header/w:OperationTimeout") or ""
    match = re.match(r"^PT(\d+(\.\d+)?)S$", text)
    seconds = float(match.group(1)) if match else DEFAULT_OPERATION_TIMEOUT
    return min(seconds, MAX_OPERATION_TIMEOUT)


def receive_budget(root):
    """Bytes of output one ReceiveResponse may carry: the request's w:MaxEnvelopeSize (at most the service's), less the
    envelope, before base64."""
    text = _text(root, "s:Header/w:MaxEnvelopeSize") or ""
    size = min(int(text), MAX_ENVELOPE_SIZE) if text.isdigit() else MAX_ENVELOPE_SIZE
    blocks = max(1, (size - ENVELOPE_OVERHEAD) * 3 // 4 // (RECEIVE_CHUNK + 128))  # 128: each block's <rsp:Stream> element
    return blocks * RECEIVE_CHUNK


def _text(root, path):
    node = root.find(path, NS)
    return node.text.strip() if node is not None and node.text else None
