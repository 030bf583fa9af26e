# -*- coding: utf-8 -*-
"""The Exchange client: error unwrapping, the REST runner, the PowerShell script and the WinRM runner."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import exchange, exo_errors, exo_powershell, exo_rest, exo_winrm
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import Transport

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exchange_fakes import APP, TENANT, FakeAuth, FakeResponse, FakeSession  # noqa: E402  pylint: disable=wrong-import-position

THUMB = "0123456789ABCDEF0123456789ABCDEF01234567"
NOT_FOUND = ("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed "
             "because object 'nope@contoso.onmicrosoft.com' couldn't be found on 'AM0PR01A001DC01.EURPR01A001.prod.outlook.com'.")
INJECTION = "x'; Remove-Mailbox -Identity y; '"


# -- fakes ----------------------------------------------------------------------------------------
def rest_runner(answers, clock=None):
    transport = Transport("Exchange Online", base_url="https://exo.example", error_parser=exo_errors.exchange_error_parser,
                          sleep=lambda s: None)
    transport.session = FakeSession(answers)
    kwargs = {"clock": clock} if clock else {}
    return exo_rest.RestRunner(FakeAuth(), TENANT, transport=transport, **kwargs), transport.session


def exo_error(text, status=400):
    # The shape ExchangeOnlineManagement v3 gets back: the outer and internal messages say nothing.
    return FakeResponse(status, {"error": {"code": "BadRequest", "message": "Invalid Operation",
                                           "details": [{"code": "Client", "target": "", "message": text}],
                                           "innererror": {"message": "Invalid Operation", "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                                                          "internalexception": {"message": "Exception of type 'Microsoft.Exchange.Management."
                                                                                           "PSDirectInvoke.DirectInvokeCmdletExecutionException' "
                                                                                           "was thrown.",
                                                                                "type": "DirectInvokeCmdletExecutionException"}}}},
                        headers={"request-id": "req-1"})


# -- error text -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,error_type,message", [
    (NOT_FOUND, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException", NOT_FOUND.split("|", 2)[2]),
    ("|Microsoft.Exchange.Management.Tasks.Foo|An existing permission entry was found for user: X.",
     "Microsoft.Exchange.Management.Tasks.Foo", "An existing permission entry was found for user: X."),
    ("Plain text", None, "Plain text"),
    (None, None, ""),
])
def test_exchange_messages_lose_their_type_prefix(text, error_type, message):
    assert exo_errors.split_exchange_message(text) == (error_type, message)


def test_error_parser_finds_the_real_text_wherever_exchange_nested_it():
    code, message = exo_errors.exchange_error_parser(exo_error(NOT_FOUND))[:2]
    assert code.endswith("ManagementObjectNotFoundException") and message.startswith("The operation couldn't be performed")
    in_internal = FakeResponse(400, {"error": {"message": "Invalid Operation", "innererror": {"internalexception": {
        "message": "|T.X|Internal text", "type": "System.Exception"}}}})
    assert exo_errors.exchange_error_parser(in_internal)[:2] == ("T.X", "Internal text")
    binding = FakeResponse(400, {"error": {"message": "Invalid Operation", "innererror": {"message": "Invalid Operation", "internalexception": {
        "message": "A parameter cannot be found that matches parameter name 'Bogus'.",
        "type": "System.Management.Automation.ParameterBindingException"}}}})
    assert exo_errors.exchange_error_parser(binding)[:2] == ("System.Management.Automation.ParameterBindingException",
                                                             "A parameter cannot be found that matches parameter name 'Bogus'.")
    refused = FakeResponse(401, {"error": {"code": "Unauthorized", "message": "UnAuthorized", "innererror": {"message": "UnAuthorized"}}})
    assert exo_errors.exchange_error_parser(refused)[1] == "UnAuthorized"
    assert exo_errors.exchange_error_parser(FakeResponse(401))[1] == "empty body"  # the status says the rest


# -- REST -----------------------------------------------------------------------------------------
def test_rest_posts_the_cmdlet_with_exchanges_headers_and_follows_pages():
    runner, session = rest_runner([
        FakeResponse(200, {"value": [{"n": 1}], "@odata.nextLink": "https://exo.example/adminapi/beta/%s/InvokeCommand?$skiptoken=2" % TENANT}),
        FakeResponse(200, {"value": [{"n": 2}], "@adminapi.warnings": ["careful"]}),
    ])
    values, warnings = runner.invoke("Get-MailboxPermission", {"Identity": "a@b.example"})
    assert values == [{"n": 1}, {"n": 2}] and warnings == ["careful"]
    first, second = session.calls
    assert first["method"] == "POST" and first["url"] == "https://exo.example/adminapi/beta/%s/InvokeCommand" % TENANT
    assert first["json"] == {"CmdletInput": {"CmdletName": "Get-MailboxPermission", "Parameters": {"Identity": "a@b.example"}}}
    headers = first["headers"]
    assert headers["Authorization"] == "Bearer token-1"
    assert headers["X-AnchorMailbox"] == "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" + TENANT
    assert headers["Prefer"] == "odata.maxpagesize=1000" and headers["X-ResponseFormat"] == "json" and headers["client-request-id"]
    assert second["url"].endswith("$skiptoken=2") and second["json"] == first["json"]


def test_rest_asks_msauth_for_the_token_again_only_after_a_while():
    now = [0.0]
    runner, _ignored = rest_runner([FakeResponse(200, {"value": []})] * 3, clock=lambda: now[0])
    runner.invoke("Get-Mailbox", {})
    now[0] = 100
    runner.invoke("Get-Mailbox", {})
    assert runner.auth.calls == 1
    now[0] = 400
    runner.invoke("Get-Mailbox", {})
    assert runner.auth.calls == 2


def test_rest_errors_carry_exchanges_text_type_and_request_id():
    runner, _ignored = rest_runner([exo_error(NOT_FOUND, status=404)])
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-MailboxPermission", {"Identity": "nope@contoso.onmicrosoft.com"})
    error = caught.value
    assert error.code == "ManagementObjectNotFoundException" and exo_errors.is_not_found(error)
    assert error.request_id == "req-1" and error.cmdlet == "Get-MailboxPermission" and not error.fatal
    assert "Invalid Operation" not in error.describe() and "couldn't be found" in error.describe()


@pytest.mark.parametrize("status,message", [(401, "UnAuthorized"), (403, "Forbidden"),
                                            (401, "The role assigned to application %s isn't supported in this scenario." % APP)])
def test_rest_refusals_explain_both_exchange_needs_and_stop_the_run(status, message):
    runner, _ignored = rest_runner([FakeResponse(status, {"error": {"code": "Unauthorized", "message": message}})])
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-ServicePrincipal", {"Identity": APP})
    assert caught.value.fatal and "Exchange.ManageAsApp" in caught.value.hint and "Exchange Administrator" in caught.value.hint
    assert caught.value.message == message


def test_a_refused_token_says_so():
    runner, _ignored = rest_runner([FakeResponse(401, {"error": {"code": "Unauthorized", "message": "The token's tenant 'x' does not match"}})])
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-ServicePrincipal", {"Identity": APP})
    assert caught.value.fatal and "exchange_endpoint" in caught.value.hint


# -- the PowerShell session's script and requests --------------------------------------------------
def read_single_quoted(text):
    """Tokenise a PowerShell single-quoted string at the start of ``text``: (value, rest)."""
    assert text[0] == "'"
    value, i = [], 1
    while True:
        ch = text[i]
        if ch in "'\u2018\u2019\u201a\u201b":
            if i + 1 < len(text) and text[i + 1] in "'\u2018\u2019\u201a\u201b":
                value.append("'")
                i += 2
                continue
            return "".join(value), text[i + 1:]
        value.append(ch)
        i += 1


def settings_line(script):
    lines = [line for line in script.splitlines() if line.startswith("$session = ")]
    assert len(lines) == 1
    return lines[0]


def settings_of(script):
    value, rest = read_single_quoted(settings_line(script)[len("$session = "):])
    assert rest == " | ConvertFrom-Json"
    return json.loads(value)


def settings(**overrides):
    return dict({"organization": "contoso.onmicrosoft.com", "app_id": APP, "certificate_thumbprint": THUMB}, **overrides)


HOSTILE = [INJECTION, "a\u2019; Remove-Mailbox y; \u2018", "$(Remove-Mailbox y)", "x`n'@\n'@; Stop-Computer", "\"; Remove-Mailbox y; \""]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_sessions_settings_stay_data_whatever_they_contain(hostile):
    script = exo_powershell.build_session_script(settings(organization=hostile))
    assert settings_of(script) == settings(organization=hostile)
    # Outside the one literal the script is the same whatever the data: nothing leaked into code.
    neutral = exo_powershell.build_session_script(settings())
    assert script.replace(settings_line(script), "") == neutral.replace(settings_line(neutral), "")
    assert "Remove-Mailbox " not in script.replace(settings_line(script), "")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_request_is_one_ascii_line_of_json_whatever_it_contains(hostile):
    line = exo_powershell.encode_request(7, "Add-MailboxPermission", {"Identity": hostile, "User": "sp", "AccessRights": ["FullAccess"]})
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert all(byte < 128 for byte in line)  # whatever code page the host's console reads stdin in
    assert json.loads(line.decode("ascii")) == {"id": 7, "cmdlet": "Add-MailboxPermission",
                                                "parameters": {"Identity": hostile, "User": "sp", "AccessRights": ["FullAccess"]}}


def test_only_allowed_cmdlets_are_requested():
    with pytest.raises(ValueError):
        exo_powershell.encode_request(1, "Remove-Mailbox", {"Identity": "x"})


def test_the_scripts_allow_list_is_the_clients():
    script = exo_powershell.build_session_script(settings())
    allowed = [line for line in script.splitlines() if line.startswith("$allowed = @(")][0]
    assert sorted(re.findall(r"'([A-Za-z-]+)'", allowed)) == sorted(exo_powershell.ALLOWED_CMDLETS)


def test_sovereign_clouds_name_their_exchange_environment():
    assert "exchange_environment" not in settings_of(exo_powershell.build_session_script(settings()))
    government = exo_powershell.build_session_script(settings(), cloud="usgov")
    assert settings_of(government)["exchange_environment"] == "O365USGovGCCHigh"


# -- answers ----------------------------------------------------------------------------------------
def test_only_answer_lines_are_answers():
    assert exo_powershell.read_answer(b"WARNING: something") is None
    assert exo_powershell.read_answer(b'{"not": "an answer"}') is None
    assert exo_powershell.read_answer(b"{broken") is None
    assert exo_powershell.read_answer(b'\xef\xbb\xbf{"id": 3, "ok": true, "value": []}\r') == {"id": 3, "ok": True, "value": []}


def test_answers_give_values_and_warnings():
    document = {"id": 1, "ok": True, "value": [{"User": "x"}], "warnings": ["w"]}
    assert exo_powershell.answer_result(document, "Get-MailboxPermission", "WinRM h") == ([{"User": "x"}], ["w"])


def test_answer_errors_match_the_rest_error_for_the_same_failure():
    document = {"id": 1, "ok": False, "error": {"message": NOT_FOUND, "category": "NotSpecified", "type": "System.Exception"}}
    with pytest.raises(exo_errors.ExchangeError) as over_winrm:
        exo_powershell.answer_result(document, "Get-MailboxPermission", "WinRM h")
    runner, _ignored = rest_runner([exo_error(NOT_FOUND)])
    with pytest.raises(exo_errors.ExchangeError) as over_rest:
        runner.invoke("Get-MailboxPermission", {})
    assert over_winrm.value.message == over_rest.value.message
    assert over_winrm.value.code == over_rest.value.code == "ManagementObjectNotFoundException"
    assert not over_winrm.value.fatal


def test_a_refused_connection_is_fatal_and_explains_the_roles():
    document = {"id": 0, "ok": False, "value": [], "warnings": [], "error": {"message": "UnAuthorized", "category": "OperationStopped",
                                                                             "type": "System.Exception"}}
    with pytest.raises(exo_errors.ExchangeError) as caught:
        exo_powershell.answer_result(document, "Get-MailboxPermission", "WinRM h")
    assert caught.value.fatal and caught.value.message == "UnAuthorized" and "Exchange.ManageAsApp" in caught.value.hint


def test_an_ended_session_is_fatal_with_powershells_words():
    clixml = b'#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">ceops: The term \'pwsh\' is not recognized_x000D__x000A_</S></Objs>'
    error = exo_powershell.process_failure(b"", clixml, 1, "Get-Mailbox", "WinRM h")
    assert error.fatal and "The term 'pwsh' is not recognized" in error.message and "exit code 1" in error.message


# -- the WinRM session ------------------------------------------------------------------------------
class WinRMOperationTimeoutError(Exception):
    """pywinrm's name for "the host had no output within the operation timeout"."""


class FakeHost:
    """pywinrm's Protocol in front of a management host that runs the session script: answer 0 when it starts, then one
    answer per request line, from ``answers`` (cmdlet -> values, or an error dict), in the order of the lines."""

    def __init__(self, answers=None, connect=None, fail=None, end_after=None, stderr=b"", reverse=False):
        self.answers = answers or {}
        self.connect = connect or {"ok": True}
        self.fail = fail
        self.end_after = end_after  # the process dies after this many answers
        self.stderr_at_end = stderr
        self.reverse = reverse  # answer a batch of lines last-first: answers are matched by id, not order
        self.lock = threading.Lock()
        self.stdout = b""
        self.done = False
        self.exit_code = -1
        self.shells = self.commands_run = self.sends = self.cleaned = self.closed = 0
        self.requests = []
        self.script = None
        self.console_mode_stdin = None
        self.eof = False

    def open_shell(self):
        if self.fail:
            raise self.fail
        self.shells += 1
        return "shell"

    def run_command(self, shell_id, command, args, console_mode_stdin=True):
        self.commands_run += 1
        assert command == "pwsh" and args[:4] == ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
        self.script = base64.b64decode(args[4]).decode("utf-16-le")
        self.console_mode_stdin = console_mode_stdin
        with self.lock:
            self.stdout += b"WARNING: a module banner\r\n" + json.dumps(dict(self.connect, id=0)).encode() + b"\r\n"
            if not self.connect.get("ok"):
                self.done, self.exit_code = True, 0
        return "cmd"

    def send_command_input(self, shell_id, command_id, data, end=False):
        with self.lock:
            self.sends += 1
            lines = [json.loads(line) for line in data.decode("ascii").splitlines() if line]
            out = []
            for request in lines:
                self.requests.append(request)
                answer = self.answers.get(request["cmdlet"], [])
                if callable(answer):
                    answer = answer(request["parameters"])
                if isinstance(answer, dict):
                    document = {"id": request["id"], "ok": False, "value": [], "warnings": [], "error": answer}
                else:
                    document = {"id": request["id"], "ok": True, "value": answer, "warnings": []}
                out.append(json.dumps(document).encode() + b"\r\n")
                if self.end_after is not None and len(self.requests) >= self.end_after:
                    self.done, self.exit_code = True, 1
                    break
            self.stdout += b"".join(reversed(out) if self.reverse else out)
            if end:
                self.eof, self.done, self.exit_code = True, True, 0

    def get_command_output_raw(self, shell_id, command_id):
        with self.lock:
            if not self.stdout and not self.done:
                raise WinRMOperationTimeoutError()
            out, self.stdout = self.stdout, b""
            return out, self.stderr_at_end if self.done else b"", self.exit_code, self.done

    def cleanup_command(self, shell_id, command_id):
        self.cleaned += 1

    def close_shell(self, shell_id):
        self.closed += 1


def winrm_runner(protocol, clock=None, silence_limit=exo_winrm.SILENCE_LIMIT, **options):
    opts = dict(host="mgmt.example", scheme="https", path="/wsman", transport="ntlm", username="CORP\\exo", password="pw",
                certificate_thumbprint=THUMB, organization=None)
    opts.update(options)
    extra = {"clock": clock} if clock else {}
    return exo_winrm.WinRMRunner(opts, TENANT, APP, protocol_factory=lambda: protocol, silence_limit=silence_limit, **extra)


def test_one_session_connects_once_and_serves_every_cmdlet():
    host = FakeHost({"Get-ServicePrincipal": [{"AppId": APP}], "Get-MailboxPermission": lambda p: [{"Identity": p["Identity"]}]})
    runner = winrm_runner(host, organization="contoso.onmicrosoft.com")
    assert runner.endpoint == "https://mgmt.example:5986/wsman"
    assert runner.invoke("Get-ServicePrincipal", {"Identity": APP}) == ([{"AppId": APP}], [])
    for mailbox in ("a@contoso.example", "b@contoso.example"):
        assert runner.invoke("Get-MailboxPermission", {"Identity": mailbox}) == ([{"Identity": mailbox}], [])
    assert (host.shells, host.commands_run) == (1, 1)  # one pwsh, one Connect-ExchangeOnline
    assert settings_of(host.script) == settings(organization="contoso.onmicrosoft.com")
    assert host.console_mode_stdin is False  # stdin is a pipe that Send feeds
    assert [r["cmdlet"] for r in host.requests] == ["Get-ServicePrincipal", "Get-MailboxPermission", "Get-MailboxPermission"]
    assert host.closed == 0
    runner.close()
    assert host.eof and (host.cleaned, host.closed) == (1, 1)  # stdin closed: the script disconnects and ends


def test_threads_share_the_session_and_each_gets_its_own_answer():
    host = FakeHost({"Get-MailboxPermission": lambda p: [{"Identity": p["Identity"]}]}, reverse=True)
    runner = winrm_runner(host)
    mailboxes = ["m%03d@contoso.example" % n for n in range(60)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda m: runner.invoke("Get-MailboxPermission", {"Identity": m}), mailboxes))
    assert results == [([{"Identity": m}], []) for m in mailboxes]
    assert host.commands_run == 1 and sorted(r["Identity"] for r in (q["parameters"] for q in host.requests)) == mailboxes
    runner.close()
    assert host.closed == 1


def test_a_cmdlet_error_is_that_cmdlets_and_the_session_goes_on():
    host = FakeHost({"Get-MailboxPermission": lambda p: ({"message": NOT_FOUND, "category": "NotSpecified", "type": "System.Exception"}
                                                         if p["Identity"] == "nope" else [{"Identity": p["Identity"]}])})
    runner = winrm_runner(host)
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-MailboxPermission", {"Identity": "nope"})
    assert not caught.value.fatal and caught.value.code == "ManagementObjectNotFoundException"
    assert runner.invoke("Get-MailboxPermission", {"Identity": "ok"}) == ([{"Identity": "ok"}], [])
    assert host.commands_run == 1


def test_a_refused_connection_fails_every_cmdlet_alike_without_reconnecting():
    refused = {"ok": False, "value": [], "warnings": [],
               "error": {"message": "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on "
                                    "application.", "category": "OperationStopped", "type": "Microsoft.Identity.Client.MsalServiceException"}}
    host = FakeHost(connect=refused)
    runner = winrm_runner(host)
    for cmdlet in ("Get-ServicePrincipal", "Get-MailboxPermission"):
        with pytest.raises(exo_errors.ExchangeError) as caught:
            runner.invoke(cmdlet, {"Identity": "x"})
        assert caught.value.fatal and caught.value.cmdlet == cmdlet and caught.value.message.startswith("AADSTS700027")
        assert "certificate_thumbprint" in caught.value.hint
    assert host.commands_run == 1 and host.requests == []  # nothing was sent to a session that is not connected
    runner.close()
    assert host.closed == 1


def test_a_session_that_ends_fails_what_waits_with_powershells_words():
    clixml = b'#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">Out of memory._x000D__x000A_</S></Objs>'
    host = FakeHost({"Get-Mailbox": [{"Name": "a"}]}, end_after=1, stderr=clixml)
    runner = winrm_runner(host)
    assert runner.invoke("Get-Mailbox", {}) == ([{"Name": "a"}], [])
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert caught.value.fatal and "session ended (exit code 1): Out of memory." in caught.value.message
    assert "pwsh" in caught.value.hint


def test_a_silent_host_is_given_up_after_the_silence_limit():
    class SilentHost(FakeHost):
        def send_command_input(self, shell_id, command_id, data, end=False):
            self.sends += 1  # the host takes requests and never answers

    now = [0.0]

    def clock():
        now[0] += 10.0
        return now[0]
    runner = winrm_runner(SilentHost(), clock=clock, silence_limit=100)
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert caught.value.fatal and "answered nothing for 100 seconds" in caught.value.message


def test_an_answer_to_a_request_never_sent_is_fatal():
    class Confused(FakeHost):
        def send_command_input(self, shell_id, command_id, data, end=False):
            with self.lock:
                self.stdout += json.dumps({"id": None, "ok": False, "error": {"message": "Conversion from JSON failed"}}).encode() + b"\n"
    runner = winrm_runner(Confused())
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert caught.value.fatal and "did not send: Conversion from JSON failed" in caught.value.message


def test_winrm_organization_defaults_to_the_tenant_and_http_to_5985():
    runner = winrm_runner(FakeHost(), scheme="http")
    assert runner.organization == TENANT and runner.endpoint == "http://mgmt.example:5985/wsman"


class InvalidCredentialsError(Exception):
    pass


@pytest.mark.parametrize("failure,words", [
    (InvalidCredentialsError("the specified credentials were rejected by the server"), "refused the credentials"),
    (requests.exceptions.ConnectionError("Max retries exceeded"), "did not answer"),
])
def test_winrm_transport_failures_are_fatal_and_say_what_to_check(failure, words):
    runner = winrm_runner(FakeHost(fail=failure))
    for attempt in range(2):  # the first failure answers every later cmdlet: no new connection attempt per mailbox
        with pytest.raises(exo_errors.ExchangeError) as caught:
            runner.invoke("Get-Mailbox", {})
        assert caught.value.fatal and words in caught.value.message and caught.value.hint, attempt
    runner.close()


class WinRMError(Exception):
    pass


def test_a_missing_kerberos_library_says_what_to_install():
    runner = winrm_runner(FakeHost(fail=WinRMError("requested auth method is kerberos, but pykerberos is not installed")), transport="kerberos")
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert caught.value.fatal and "pykerberos is not installed" in caught.value.message and "pywinrm[kerberos]" in caught.value.hint


def test_winrm_configuration_problems_are_found_before_anything_is_sent():
    runner = exo_winrm.WinRMRunner({"host": "h", "certificate_thumbprint": "nope", "transport": "ntlm"}, TENANT, "not-a-guid")
    problems = " ".join(runner.problems())
    assert "not a GUID" in problems and "thumbprint" in problems and "username" in problems


def test_the_client_closes_its_runner():
    closed = []

    class Runner(ScriptedRunner):
        def close(self):
            closed.append(True)
    client = exchange.ExchangeClient(Runner({}), TENANT)
    client.close()
    assert closed == [True]
    exchange.ExchangeClient(ScriptedRunner({}), TENANT).close()  # a transport with nothing to close


# -- the client -----------------------------------------------------------------------------------
class ScriptedRunner:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def invoke(self, cmdlet, parameters):
        self.calls.append((cmdlet, parameters))
        answer = self.answers[cmdlet]
        if isinstance(answer, Exception):
            raise answer
        return answer, []


def test_client_wrappers_send_exchanges_parameter_names():
    runner = ScriptedRunner({"Add-MailboxPermission": [], "Remove-MailboxPermission": [], "New-ServicePrincipal": [{"AppId": APP}],
                             "Remove-ServicePrincipal": []})
    client = exchange.ExchangeClient(runner, TENANT)
    assert client.add_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is True
    assert client.remove_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is True
    assert client.new_service_principal(APP, "obj", "CE Email") == {"AppId": APP}
    client.remove_service_principal("obj")
    assert runner.calls == [
        ("Add-MailboxPermission", {"Identity": "a@b.example", "User": "sp", "AccessRights": ["FullAccess"], "InheritanceType": "All",
                                   "AutoMapping": False}),
        ("Remove-MailboxPermission", {"Identity": "a@b.example", "User": "sp", "AccessRights": ["FullAccess"], "InheritanceType": "All",
                                      "Confirm": False}),
        ("New-ServicePrincipal", {"AppId": APP, "ObjectId": "obj", "DisplayName": "CE Email"}),
        ("Remove-ServicePrincipal", {"Identity": "obj", "Confirm": False}),
    ]
    assert client.invocations["Add-MailboxPermission"] == 1


def test_client_maps_exchanges_benign_refusals():
    client = exchange.ExchangeClient(ScriptedRunner({
        "Get-ServicePrincipal": exo_errors.ExchangeError("The operation couldn't be performed because object 'x' couldn't be found on 'y'."),
        "Add-MailboxPermission": exo_errors.ExchangeError("An existing permission entry was found for user: CE Email."),
        "Remove-MailboxPermission": exo_errors.ExchangeError("Can't remove the access control entry on the object \"a\" for account "
                                                             "\"b\" because the ACE isn't present."),
    }), TENANT)
    assert client.service_principals(APP) == []
    assert client.add_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is False
    assert client.remove_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is False
    with pytest.raises(ValueError):
        client.invoke("Remove-Mailbox", {"Identity": "a@b.example"})


class SequenceRunner:
    """Answers each cmdlet from a list, in order: an exception, or (values, warnings)."""

    def __init__(self, answers):
        self.answers = dict((k, list(v)) for k, v in answers.items())
        self.calls = []

    def invoke(self, cmdlet, parameters):
        self.calls.append(cmdlet)
        answer = self.answers[cmdlet].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_principal_exchange_does_not_see_yet_is_waited_for():
    unknown = exo_errors.ExchangeError('User or group "%s" wasn\'t found. Please make sure you\'ve typed it correctly.' % APP,
                                       cmdlet="Add-MailboxPermission")
    sleeps = []
    client = exchange.ExchangeClient(SequenceRunner({"Add-MailboxPermission": [unknown, unknown, ([], [])]}), TENANT, sleep=sleeps.append)
    assert client.add_mailbox_permission("a@b.example", APP, ["FullAccess"]) is True
    assert sleeps == [1, 2]
    # ... but not for ever.
    client = exchange.ExchangeClient(SequenceRunner({"Add-MailboxPermission": [unknown] * 10}), TENANT, sleep=sleeps.append,
                                     consistency_delays=(1, 1))
    with pytest.raises(exo_errors.ExchangeError):
        client.add_mailbox_permission("a@b.example", APP, ["FullAccess"])


def test_new_service_principal_waits_for_entra_only_when_the_ids_were_verified():
    missing = exo_errors.ExchangeError("The service principal with ObjectId 'o' and AppId 'a' couldn't be found in Microsoft Entra ID for "
                                       "this organization.", cmdlet="New-ServicePrincipal")
    sleeps = []
    runner = SequenceRunner({"New-ServicePrincipal": [missing, ([{"AppId": APP}], [])]})
    assert exchange.ExchangeClient(runner, TENANT, sleep=sleeps.append).new_service_principal(APP, "o", verified=True) == {"AppId": APP}
    assert sleeps == [1]
    runner = SequenceRunner({"New-ServicePrincipal": [missing, ([{"AppId": APP}], [])]})
    with pytest.raises(exo_errors.ExchangeError):
        exchange.ExchangeClient(runner, TENANT, sleep=sleeps.append).new_service_principal(APP, "o")
    assert runner.calls == ["New-ServicePrincipal"]


def test_removing_an_entry_that_is_not_there_is_a_warning_not_a_removal():
    warning = "Can't remove the access control entry on the object \"CN=x\" for account \"sp\" because the ACE doesn't exist on the object."
    client = exchange.ExchangeClient(SequenceRunner({"Remove-MailboxPermission": [([], [warning]), ([], [])]}), TENANT)
    assert client.remove_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is False
    assert client.remove_mailbox_permission("a@b.example", "sp", ["FullAccess"]) is True
    assert client.warnings == []
