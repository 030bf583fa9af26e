# -*- coding: utf-8 -*-
"""The Exchange client: error unwrapping, the REST runner, the PowerShell script and the WinRM runner."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

import pytest
import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import exchange, exo_errors, exo_powershell, exo_rest, exo_winrm
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import Transport

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
APP = "42417622-2b96-42f2-9804-f25bf4fa86e5"
THUMB = "0123456789ABCDEF0123456789ABCDEF01234567"
NOT_FOUND = ("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed "
             "because object 'nope@contoso.onmicrosoft.com' couldn't be found on 'AM0PR01A001DC01.EURPR01A001.prod.outlook.com'.")
INJECTION = "x'; Remove-Mailbox -Identity y; '"


# -- fakes ----------------------------------------------------------------------------------------
class FakeResponse:
    def __init__(self, status, body=None, headers=None, url="https://exo.example/adminapi/beta/t/InvokeCommand"):
        self.status_code = status
        self._body = body
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})
        self.text = "" if body is None else json.dumps(body)
        self.content = self.text.encode()
        self.reason = "reason"
        self.url = url
        self.request = type("R", (), {"method": "POST"})()

    def json(self):
        if self._body is None:
            raise ValueError("no json")
        return self._body


class FakeSession:
    def __init__(self, answers):
        self.answers = list(answers)
        self.headers = {}
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append(dict(kwargs, method=method, url=url))
        return self.answers.pop(0)

    def mount(self, prefix, adapter):
        pass


class FakeAuth:
    client_id = APP
    endpoints = {"exchange_endpoint": "https://exo.example"}
    ca_path = None
    validate_certs = True
    timeout = 30

    def __init__(self):
        self.calls = 0

    def exchange_token(self):
        self.calls += 1
        return "token-%d" % self.calls


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


# -- the PowerShell script ------------------------------------------------------------------------
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


def request_of(script):
    lines = [line for line in script.splitlines() if line.startswith("$request = ")]
    assert len(lines) == 1
    value, rest = read_single_quoted(lines[0][len("$request = "):])
    assert rest == " | ConvertFrom-Json"
    return json.loads(value)


def request(**parameters):
    return {"organization": "contoso.onmicrosoft.com", "app_id": APP, "certificate_thumbprint": THUMB,
            "cmdlet": "Add-MailboxPermission", "parameters": parameters}


@pytest.mark.parametrize("hostile", [INJECTION, "a\u2019; Remove-Mailbox y; \u2018", "$(Remove-Mailbox y)", "x`n'@\n'@; Stop-Computer",
                                     "\"; Remove-Mailbox y; \""])
def test_cmdlet_parameters_stay_data_whatever_they_contain(hostile):
    wanted = request(Identity=hostile, User="sp", AccessRights=["FullAccess"], AutoMapping=False)
    script = exo_powershell.build_script(wanted)
    assert request_of(script) == wanted
    # Outside the one literal the script is the same whatever the data: nothing leaked into code.
    literal_line = [line for line in script.splitlines() if line.startswith("$request = ")][0]
    neutral = exo_powershell.build_script(request(Identity="ok@contoso.onmicrosoft.com", User="sp", AccessRights=["FullAccess"], AutoMapping=False))
    assert script.replace(literal_line, "") == neutral.replace([ln for ln in neutral.splitlines() if ln.startswith("$request = ")][0], "")
    assert "Remove-Mailbox " not in script.replace(literal_line, "") and "Stop-Computer" not in script.replace(literal_line, "")


def test_the_injection_example_appears_only_doubled_inside_the_literal():
    script = exo_powershell.build_script(request(Identity=INJECTION))
    assert "x''; Remove-Mailbox -Identity y; ''" in script
    assert script.count("Remove-Mailbox -Identity y") == 1


def test_the_script_has_the_agreed_shape():
    script = exo_powershell.build_script(request(Identity="a@b.example"))
    assert "    Connect-ExchangeOnline -AppId $request.app_id -CertificateThumbprint $request.certificate_thumbprint " \
           "-Organization $request.organization -CommandName $request.cmdlet -ShowBanner:$false\n" in script
    assert "$output = & $request.cmdlet @parameters -WarningVariable warnings -WarningAction SilentlyContinue" in script
    assert "if ($allowed -notcontains $request.cmdlet) {" in script
    assert script.rstrip().endswith("ConvertTo-Json -InputObject $result -Depth 6 -Compress")
    assert list(request_of(script)) == ["organization", "app_id", "certificate_thumbprint", "cmdlet", "parameters"]
    government = exo_powershell.build_script(request(Identity="a@b.example"), cloud="usgov")
    assert "-ShowBanner:$false -ExchangeEnvironmentName $request.exchange_environment\n" in government
    assert request_of(government)["exchange_environment"] == "O365USGovGCCHigh"


def test_the_scripts_allow_list_is_the_clients():
    script = exo_powershell.build_script(request(Identity="a@b.example"))
    allowed = [line for line in script.splitlines() if line.startswith("$allowed = @(")][0]
    assert sorted(re.findall(r"'([A-Za-z-]+)'", allowed)) == sorted(exo_powershell.ALLOWED_CMDLETS)


def test_only_allowed_cmdlets_are_scripted():
    with pytest.raises(ValueError):
        exo_powershell.build_script(dict(request(), cmdlet="Remove-Mailbox"))


# -- script output --------------------------------------------------------------------------------
def test_script_output_ok_and_noise_before_it():
    out = b"WARNING: something\r\n" + json.dumps({"ok": True, "value": [{"User": "x"}], "warnings": ["w"]}).encode() + b"\r\n"
    assert exo_powershell.parse_script_output(out, b"", 0, "Get-MailboxPermission", "WinRM h") == ([{"User": "x"}], ["w"])


def test_script_errors_match_the_rest_error_for_the_same_failure():
    document = {"ok": False, "error": {"message": NOT_FOUND, "category": "NotSpecified", "type": "System.Exception"}}
    with pytest.raises(exo_errors.ExchangeError) as over_winrm:
        exo_powershell.parse_script_output(json.dumps(document).encode(), b"", 0, "Get-MailboxPermission", "WinRM h")
    runner, _ignored = rest_runner([exo_error(NOT_FOUND)])
    with pytest.raises(exo_errors.ExchangeError) as over_rest:
        runner.invoke("Get-MailboxPermission", {})
    assert over_winrm.value.message == over_rest.value.message
    assert over_winrm.value.code == over_rest.value.code == "ManagementObjectNotFoundException"
    assert not over_winrm.value.fatal


def test_a_refused_connection_is_fatal_and_explains_the_roles():
    document = {"ok": False, "value": [], "warnings": [], "error": {"message": "UnAuthorized", "category": "OperationStopped",
                                                                    "type": "System.Exception"}}
    with pytest.raises(exo_errors.ExchangeError) as caught:
        exo_powershell.parse_script_output(b"\xef\xbb\xbf" + json.dumps(document).encode() + b"\r\n", b"", 0, "Get-MailboxPermission", "WinRM h")
    assert caught.value.fatal and caught.value.message == "UnAuthorized" and "Exchange.ManageAsApp" in caught.value.hint


def test_a_failed_script_is_fatal_with_powershells_words():
    clixml = b'#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">ceops: The term \'pwsh\' is not recognized_x000D__x000A_</S></Objs>'
    with pytest.raises(exo_errors.ExchangeError) as caught:
        exo_powershell.parse_script_output(b"", clixml, 1, "Get-Mailbox", "WinRM h")
    assert caught.value.fatal and "The term 'pwsh' is not recognized" in caught.value.message


# -- WinRM ----------------------------------------------------------------------------------------
class FakeProtocol:
    def __init__(self, output=None, fail=None):
        self.output = output
        self.fail = fail
        self.commands = []
        self.closed = 0

    def open_shell(self):
        if self.fail:
            raise self.fail
        return "shell"

    def run_command(self, shell_id, command, args):
        self.commands.append((command, list(args)))
        return "cmd"

    def get_command_output(self, shell_id, command_id):
        return self.output

    def cleanup_command(self, shell_id, command_id):
        pass

    def close_shell(self, shell_id):
        self.closed += 1


def winrm_runner(protocol, **options):
    opts = dict(host="mgmt.example", scheme="https", path="/wsman", transport="ntlm", username="CORP\\exo", password="pw",
                certificate_thumbprint=THUMB, organization=None)
    opts.update(options)
    return exo_winrm.WinRMRunner(opts, TENANT, APP, protocol_factory=lambda: protocol)


def test_winrm_runs_pwsh_with_the_encoded_script_and_reads_its_answer():
    protocol = FakeProtocol((json.dumps({"ok": True, "value": [{"AppId": APP}]}).encode(), b"", 0))
    runner = winrm_runner(protocol, organization="contoso.onmicrosoft.com")
    assert runner.endpoint == "https://mgmt.example:5986/wsman"
    assert runner.invoke("Get-ServicePrincipal", {"Identity": APP}) == ([{"AppId": APP}], [])
    command, args = protocol.commands[0]
    assert command == "pwsh" and args[:4] == ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    script = base64.b64decode(args[4]).decode("utf-16-le")
    assert request_of(script) == {"organization": "contoso.onmicrosoft.com", "app_id": APP, "certificate_thumbprint": THUMB,
                                  "cmdlet": "Get-ServicePrincipal", "parameters": {"Identity": APP}}
    assert protocol.closed == 1


def test_winrm_organization_defaults_to_the_tenant_and_http_to_5985():
    runner = winrm_runner(FakeProtocol(), scheme="http")
    assert runner.organization == TENANT and runner.endpoint == "http://mgmt.example:5985/wsman"


class InvalidCredentialsError(Exception):
    pass


@pytest.mark.parametrize("failure,words", [
    (InvalidCredentialsError("the specified credentials were rejected by the server"), "refused the credentials"),
    (requests.exceptions.ConnectionError("Max retries exceeded"), "did not answer"),
])
def test_winrm_transport_failures_are_fatal_and_say_what_to_check(failure, words):
    runner = winrm_runner(FakeProtocol(fail=failure))
    with pytest.raises(exo_errors.ExchangeError) as caught:
        runner.invoke("Get-Mailbox", {})
    assert caught.value.fatal and words in caught.value.message and caught.value.hint


def test_winrm_configuration_problems_are_found_before_anything_is_sent():
    runner = exo_winrm.WinRMRunner({"host": "h", "certificate_thumbprint": "nope", "transport": "ntlm"}, TENANT, "not-a-guid")
    problems = " ".join(runner.problems())
    assert "not a GUID" in problems and "thumbprint" in problems and "username" in problems


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
