"""The lab's WS-Management endpoint, driven by real pywinrm: a management host that runs whatever PowerShell it is sent
(within the interpreter's subset), with the ExchangeOnlineManagement commands working against the same Exchange state
as the REST endpoint. The scripts are written for these tests; the collection's own session script is exercised by
tests/integration/test_exo_winrm_session.py."""

import base64
import json

import pytest
import winrm
from ceops_lab import winrm as lab_winrm
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError
from winrm.protocol import Protocol

MAILBOX = "ce-support@contoso.onmicrosoft.com"


@pytest.fixture
def wsman(fresh_lab):
    return fresh_lab.vars["lab_winrm"]


def session(lab, settings, transport="basic", password=None):
    return winrm.Session(settings["endpoint"], auth=(settings["username"], password or settings["password"]), transport=transport,
                         server_cert_validation="validate", ca_trust_path=lab.ca_file)


def protocol(lab, settings, operation_timeout=20):
    return Protocol(settings["endpoint"], transport="basic", username=settings["username"], password=settings["password"],
                    server_cert_validation="validate", ca_trust_path=lab.ca_file, read_timeout_sec=operation_timeout + 10,
                    operation_timeout_sec=operation_timeout)


def ps_literal(text):
    return "'%s'" % text.replace("'", "''")


@pytest.fixture
def connect(fresh_lab, contoso):
    """``connect(**overrides)`` -> PowerShell that connects app-only as contoso's automation identity."""
    thumbprint = fresh_lab.vars["lab_directories"]["contoso"]["automation_certificate_thumbprint"]

    def build(organization=None, app_id=None, certificate_thumbprint=None, extra=""):
        return ("$ErrorActionPreference = 'Stop'\n"
                "Connect-ExchangeOnline -AppId %s -CertificateThumbprint %s -Organization %s -ShowBanner:$false%s\n"
                % (ps_literal(app_id or contoso["automation_client_id"]), ps_literal(certificate_thumbprint or thumbprint),
                   ps_literal(organization or contoso["tenant_id"]), extra))
    return build


def stdout_lines(response):
    return response.std_out.decode("utf-8").splitlines()


def test_the_host_runs_a_script_against_the_labs_exchange(fresh_lab, wsman, contoso, connect):
    sp_id = contoso["automation_service_principal_id"]
    script = connect() + (
        "Get-Mailbox -Identity %s | ForEach-Object { $_.PrimarySmtpAddress }\n"
        "$sp = New-ServicePrincipal -AppId %s -ObjectId %s\n$sp.ObjectId\n"
        "Add-MailboxPermission -Identity %s -User $sp.ObjectId -AccessRights FullAccess -AutoMapping:$false | ConvertTo-Json -Compress\n"
        "try { Add-MailboxPermission -Identity %s -User $sp.ObjectId -AccessRights FullAccess } catch { $_.Exception.Message }\n"
        % (ps_literal(MAILBOX), ps_literal(contoso["automation_client_id"]), ps_literal(sp_id), ps_literal(MAILBOX), ps_literal(MAILBOX)))
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.status_code == 0, response.std_err
    lines = stdout_lines(response)
    assert lines[0] == MAILBOX and lines[1] == sp_id
    assert json.loads(lines[2])["AccessRights"] == ["FullAccess"]
    assert lines[3] == "|Microsoft.Exchange.Configuration.Tasks.TaskException|An existing permission entry was found for user: %s." % sp_id

    # The REST endpoint sees what the host did: one Exchange organization per directory.
    support = next(m for m in fresh_lab.exchange_state("contoso")["mailboxes"] if m["PrimarySmtpAddress"] == MAILBOX)
    assert any(p["User"] == sp_id and p["AccessRights"] == ["FullAccess"] for p in support["permissions"])
    counters = fresh_lab.counters()["services"]["winrm"]
    assert counters["reads"]["CONNECT Connect-ExchangeOnline"] == 1 and counters["reads"]["CMDLET Get-Mailbox"] == 1
    assert counters["writes"] == {"CMDLET New-ServicePrincipal": 1, "CMDLET Add-MailboxPermission": 2}
    assert counters["reads"]["POST /wsman Command"] == 1 and counters["reads"]["POST /wsman Delete"] == 1
    assert fresh_lab.writes("exchange") == 0
    assert [c["cmdlet"] for c in fresh_lab.state("winrm")["cmdlets"]] == ["Get-Mailbox", "New-ServicePrincipal", "Add-MailboxPermission",
                                                                       "Add-MailboxPermission"]
    # The write journal has one entry per cmdlet that writes, with what it did (the WS-Management requests are reads).
    journal = fresh_lab.journal()
    assert [(e["service"], e["directory"], e["endpoint"], e["status"]) for e in journal] == [
        ("winrm", contoso["tenant_id"], "CMDLET New-ServicePrincipal", 200), ("winrm", contoso["tenant_id"], "CMDLET Add-MailboxPermission", 200),
        ("winrm", contoso["tenant_id"], "CMDLET Add-MailboxPermission", 400)]
    assert journal[0]["objects"] == [{"kind": "exchange_service_principal", "id": sp_id, "provenance": None, "action": "created",
                                      "app_id": contoso["automation_client_id"]}]
    permission = {"kind": "mailbox_permission", "id": "%s|%s|Allow" % (MAILBOX, sp_id), "provenance": None}
    assert [journal[1]["objects"], journal[2]["objects"]] == [[dict(permission, action="created")], [dict(permission, action="addressed")]]


def test_exchange_cmdlets_exist_only_after_connect_exchangeonline(fresh_lab, wsman):
    response = session(fresh_lab, wsman).run_ps("Import-Module ExchangeOnlineManagement\nGet-Mailbox")
    assert response.status_code == 1 and b"The term 'Get-Mailbox' is not recognized" in response.std_err
    assert "CMDLET Get-Mailbox" not in str(fresh_lab.counters()["services"]["winrm"])


def test_cmdlet_errors_are_non_terminating_unless_error_action_says_stop(fresh_lab, wsman, connect):
    script = connect() + (
        "$ErrorActionPreference = 'Continue'\n"
        "Get-MailboxPermission -Identity nobody\n'went on'\n"
        "try { Get-MailboxPermission -Identity nobody -ErrorAction Stop } catch { [string]$_.CategoryInfo.Category + ' ' + "
        "$_.Exception.Message }\n"
        "try { Get-Mailbox -Identiti x } catch { $_.Exception.GetType().FullName + ' ' + $_.Exception.Message }\n")
    response = session(fresh_lab, wsman).run_ps(script)
    lines = stdout_lines(response)
    assert lines[0] == "went on"
    assert lines[1].startswith("NotSpecified Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The "
                               "operation couldn't be performed because object 'nobody' couldn't be found on '")
    assert lines[2] == ("System.Management.Automation.ParameterBindingException A parameter cannot be found that matches parameter name "
                        "'Identiti'.")
    assert b"couldn't be found" in response.std_err  # the first, non-terminating error went to stderr


def test_connection_is_authorized_like_exchange(fresh_lab, wsman, contoso, connect):
    def attempt(**overrides):
        script = connect(**overrides) + "Get-Mailbox -Identity %s | ForEach-Object { 'ok' }\n" % ps_literal(MAILBOX)
        script = "try {\n%s}\ncatch { [string]$_.CategoryInfo.Category + ' ' + $_.Exception.Message }" % script
        return stdout_lines(session(fresh_lab, wsman).run_ps(script))[0]

    other = fresh_lab.vars["lab_directories"]["fabrikam"]["automation_certificate_thumbprint"]
    assert attempt(certificate_thumbprint=other).startswith("OperationStopped AADSTS700027:")
    assert "No certificate with thumbprint" in attempt(certificate_thumbprint="00" * 20)
    assert attempt(organization="unknown.onmicrosoft.com").startswith("OperationStopped AADSTS90002:")
    assert attempt(organization=contoso["domain"]) == "ok"

    fresh_lab.revoke_directory_roles("contoso", "Exchange Administrator")
    assert attempt().startswith("OperationStopped The role assigned to application %s isn't supported" % contoso["automation_client_id"])
    fresh_lab.grant_directory_roles("contoso", "Global Reader")
    assert attempt() == "ok"
    # A read-only role: Connect-ExchangeOnline does not import the write cmdlets at all.
    script = connect() + "Add-MailboxPermission -Identity %s -User x -AccessRights FullAccess" % ps_literal(MAILBOX)
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.status_code == 1 and b"The term 'Add-MailboxPermission' is not recognized" in response.std_err
    fresh_lab.revoke_app_roles("contoso", "Exchange.ManageAsApp", resource="exchange")
    assert attempt() == "OperationStopped UnAuthorized"
    assert fresh_lab.writes("winrm") == 0


def test_a_session_reads_requests_from_stdin_and_answers_each(fresh_lab, wsman, connect):
    """What a long-lived session looks like on the wire: one process, stdin fed by Send, answers read by Receive."""
    script = connect() + (
        "while ($true) {\n"
        "    $line = [Console]::In.ReadLine()\n"
        "    if ($null -eq $line) { break }\n"
        "    $request = ConvertFrom-Json -InputObject $line\n"
        "    $found = @(Get-Mailbox -Identity $request.mailbox)\n"
        "    [Console]::Out.WriteLine((ConvertTo-Json -InputObject @{ id = $request.id; name = $found[0].PrimarySmtpAddress } -Compress))\n"
        "}\n")
    shell = protocol(fresh_lab, wsman)
    shell_id = shell.open_shell()
    command_id = shell.run_command(shell_id, "pwsh", ["-NoProfile", "-EncodedCommand", base64.b64encode(script.encode("utf-16-le")).decode()],
                                   console_mode_stdin=False)
    requests = [{"id": n, "mailbox": MAILBOX} for n in range(3)]
    shell.send_command_input(shell_id, command_id, "".join(json.dumps(r) + "\n" for r in requests).encode("ascii"))
    answers = b""
    while answers.count(b"\n") < 3:
        stdout, stderr, _code, done = shell.get_command_output_raw(shell_id, command_id)
        assert not done, stderr
        answers += stdout
    assert [json.loads(line) for line in answers.splitlines()] == [{"id": n, "name": MAILBOX} for n in range(3)]
    shell.send_command_input(shell_id, command_id, b"", end=True)
    stdout, stderr, code, done = shell.get_command_output_raw(shell_id, command_id)
    assert done and code == 0 and stdout == b""
    shell.cleanup_command(shell_id, command_id)
    shell.close_shell(shell_id)
    assert fresh_lab.counters()["services"]["winrm"]["reads"]["CONNECT Connect-ExchangeOnline"] == 1
    assert fresh_lab.state("winrm")["open_shells"] == []


def test_a_receive_without_output_waits_for_the_operation_timeout(fresh_lab, wsman):
    shell = protocol(fresh_lab, wsman, operation_timeout=1)
    shell_id = shell.open_shell()
    script = "$line = [Console]::In.ReadLine()\n[Console]::Out.WriteLine('read ' + $line)"
    command_id = shell.run_command(shell_id, "pwsh", ["-EncodedCommand", base64.b64encode(script.encode("utf-16-le")).decode()],
                                   console_mode_stdin=False)
    with pytest.raises(WinRMOperationTimeoutError):
        shell.get_command_output_raw(shell_id, command_id)
    shell.send_command_input(shell_id, command_id, b"hello\r\n")
    assert shell.get_command_output(shell_id, command_id) == (b"read hello\r\n", b"", 0)
    shell.close_shell(shell_id)


def test_long_output_takes_several_receives_within_the_envelope_size(fresh_lab, wsman):
    # 2 ** 18 characters: more than pywinrm's MaxEnvelopeSize (153600 bytes) lets one ReceiveResponse carry.
    script = "$s = 'x'\nforeach ($i in @(%s)) { $s = $s + $s }\n[Console]::Out.WriteLine($s)" % ",".join(["1"] * 18)
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.status_code == 0 and response.std_out == b"x" * 2 ** 18 + b"\r\n"
    assert fresh_lab.counters()["services"]["winrm"]["reads"]["POST /wsman Receive"] >= 2


def test_the_console_writes_in_its_code_page_until_the_script_sets_utf8(fresh_lab, wsman):
    script = "[Console]::Out.WriteLine('M\u00fcller \u20ac')\n[Console]::OutputEncoding = [System.Text.Encoding]::UTF8\n" \
             "[Console]::Out.WriteLine('M\u00fcller \u20ac')"
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.std_out == "M\u00fcller ?\r\n".encode("cp437") + "M\u00fcller \u20ac\r\n".encode("utf-8")


def test_scripts_outside_the_subset_are_refused_before_anything_runs(fresh_lab, wsman, connect):
    script = connect() + "Remove-ServicePrincipal -Identity x -Confirm:$false\nfunction Get-Secret { 'x' }\n"
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.status_code == 1 and response.std_out == b""
    assert b"The 'function' keyword is outside the PowerShell subset" in response.std_err
    assert "CONNECT" not in str(fresh_lab.counters()["services"]["winrm"])
    assert fresh_lab.state("winrm")["scripts"][-1]["outcome"] == "refused"


def test_command_lines_that_are_not_powershell(fresh_lab, wsman):
    shell = session(fresh_lab, wsman)
    response = shell.run_cmd("ipconfig", ["/all"])
    assert response.status_code == 1 and b"'ipconfig' is not recognized" in response.std_err
    response = shell.run_cmd("pwsh", ["-Command", "Get-Date"])
    assert response.status_code == 1 and b"-Command is not supported by the lab's management host" in response.std_err


def test_signal_terminate_ends_a_waiting_process(fresh_lab, wsman):
    shell = protocol(fresh_lab, wsman)
    shell_id = shell.open_shell()
    script = "$line = [Console]::In.ReadLine()"
    command_id = shell.run_command(shell_id, "pwsh", ["-EncodedCommand", base64.b64encode(script.encode("utf-16-le")).decode()],
                                   console_mode_stdin=False)
    shell.cleanup_command(shell_id, command_id)  # Signal terminate
    with pytest.raises(WSManFaultError):
        shell.get_command_output_raw(shell_id, command_id)
    shell.close_shell(shell_id)
    assert fresh_lab.state("winrm")["scripts"][-1]["exit_code"] == -1073741510  # STATUS_CONTROL_C_EXIT


def test_wrong_credentials_are_rejected(fresh_lab, wsman):
    import requests
    with pytest.raises(InvalidCredentialsError):
        session(fresh_lab, wsman, password="not-the-password").run_ps("'x'")
    anonymous = requests.post(wsman["endpoint"], data=b"<x/>", verify=fresh_lab.ca_file, timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]


def test_ntlm_transport(fresh_lab, wsman, contoso, connect):
    script = connect(organization=contoso["domain"]) + "@(Get-Mailbox -ResultSize Unlimited).Count"
    response = session(fresh_lab, wsman, transport="ntlm").run_ps(script)
    assert response.status_code == 0 and stdout_lines(response) == ["6"]
    with pytest.raises(InvalidCredentialsError):
        session(fresh_lab, wsman, transport="ntlm", password="wrong").run_ps(script)


def test_unknown_shells_fault(fresh_lab, wsman):
    shell = protocol(fresh_lab, wsman)
    with pytest.raises(WSManFaultError) as caught:
        shell.run_command("0E2C6F0B-0000-4000-8000-000000000000", "powershell", ["-EncodedCommand", base64.b64encode(b"x").decode()])
    assert caught.value.wsman_fault_code == 2150858843
    assert lab_winrm.MAX_SHELLS_PER_USER == 30
