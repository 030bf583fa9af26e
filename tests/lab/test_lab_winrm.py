"""The lab's WS-Management endpoint, driven by real pywinrm: the agreed script is interpreted, its
request is data only, and it runs against the same Exchange state as the REST endpoint."""

import base64
import json

import pytest
import requests
import winrm
from ceops_lab import winrm as lab_winrm
from winrm.exceptions import InvalidCredentialsError, WSManFaultError

MAILBOX = "ce-support@contoso.onmicrosoft.com"


def script_for(request):
    """What the collection's client helper sends: the template with the JSON as a single-quoted literal."""
    literal = json.dumps(request, ensure_ascii=True).replace("'", "''")
    return lab_winrm.SCRIPT_TEMPLATE.replace(lab_winrm.REQUEST_PLACEHOLDER, literal)


@pytest.fixture
def wsman(fresh_lab):
    settings = fresh_lab.vars["lab_winrm"]
    return settings


def session(lab, settings, transport="basic", password=None):
    return winrm.Session(settings["endpoint"], auth=(settings["username"], password or settings["password"]), transport=transport,
                         server_cert_validation="validate", ca_trust_path=lab.ca_file)


@pytest.fixture
def run(fresh_lab, wsman, contoso):
    """Run one cmdlet through the agreed script as contoso's automation identity: (response, parsed stdout or None)."""
    thumbprint = fresh_lab.vars["lab_directories"]["contoso"]["automation_certificate_thumbprint"]
    shell = session(fresh_lab, wsman)

    def _run(cmdlet, parameters=None, **overrides):
        request = {"organization": contoso["tenant_id"], "app_id": contoso["automation_client_id"], "certificate_thumbprint": thumbprint,
                   "cmdlet": cmdlet, "parameters": parameters or {}}
        request.update(overrides)
        response = shell.run_ps(script_for(request))
        return response, (json.loads(response.std_out) if response.status_code == 0 else None)
    return _run


def test_docstring_template_is_the_script(wsman):
    assert lab_winrm.SCRIPT_TEMPLATE.count(lab_winrm.REQUEST_PLACEHOLDER) == 1
    assert "$request = '__REQUEST_JSON__' | ConvertFrom-Json\n" in lab_winrm.SCRIPT_TEMPLATE
    assert set(wsman) >= {"host", "port", "scheme", "path", "username", "password", "transport"}
    assert (wsman["host"], wsman["scheme"], wsman["path"], wsman["transport"]) == ("127.0.0.1", "https", "/wsman", "basic")


def test_run_ps_get_mailbox_and_shared_state_with_rest(fresh_lab, run, contoso):
    response, result = run("Get-Mailbox", {"Identity": MAILBOX})
    assert response.status_code == 0 and response.std_err == b""
    assert result["ok"] is True and result["warnings"] == []
    assert [m["PrimarySmtpAddress"] for m in result["value"]] == [MAILBOX]

    sp_id = contoso["automation_service_principal_id"]
    _, created = run("New-ServicePrincipal", {"AppId": contoso["automation_client_id"], "ObjectId": sp_id})
    assert created["ok"] and created["value"][0]["ObjectId"] == sp_id
    _, added = run("Add-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"], "AutoMapping": False})
    assert added["ok"] and added["value"][0]["AccessRights"] == ["FullAccess"]
    _, duplicate = run("Add-MailboxPermission", {"Identity": MAILBOX, "User": sp_id, "AccessRights": ["FullAccess"]})
    assert duplicate["ok"] is False and duplicate["value"] == []
    assert duplicate["error"]["message"] == ("|Microsoft.Exchange.Configuration.Tasks.TaskException|An existing permission entry was "
                                             "found for user: %s." % sp_id)

    # The REST endpoint sees what WinRM did: one Exchange organization per directory.
    state = fresh_lab.exchange_state("contoso")
    support = next(m for m in state["mailboxes"] if m["PrimarySmtpAddress"] == MAILBOX)
    assert any(p["User"] == sp_id and p["AccessRights"] == ["FullAccess"] for p in support["permissions"])

    counters = fresh_lab.counters()["services"]["winrm"]
    assert counters["reads"]["CMDLET Get-Mailbox"] == 1
    assert counters["writes"] == {"CMDLET New-ServicePrincipal": 1, "CMDLET Add-MailboxPermission": 2}
    assert counters["reads"]["POST /wsman Create"] == 4 and counters["reads"]["POST /wsman Delete"] == 4
    assert fresh_lab.writes("exchange") == 0
    # The write journal has one entry per cmdlet that writes, with what it did (the WS-Management requests are reads).
    journal = fresh_lab.journal()
    assert [(e["service"], e["directory"], e["endpoint"], e["status"]) for e in journal] == [
        ("winrm", contoso["tenant_id"], "CMDLET New-ServicePrincipal", 200), ("winrm", contoso["tenant_id"], "CMDLET Add-MailboxPermission", 200),
        ("winrm", contoso["tenant_id"], "CMDLET Add-MailboxPermission", 400)]
    assert journal[0]["objects"] == [{"kind": "exchange_service_principal", "id": sp_id, "provenance": None, "action": "created",
                                      "app_id": contoso["automation_client_id"]}]
    permission = {"kind": "mailbox_permission", "id": "%s|%s|Allow" % (MAILBOX, sp_id), "provenance": None}
    assert [journal[1]["objects"], journal[2]["objects"]] == [[dict(permission, action="created")], [dict(permission, action="addressed")]]


def test_cmdlet_errors_are_data_not_exit_codes(run):
    response, result = run("Get-MailboxPermission", {"Identity": "nobody"})
    assert response.status_code == 0
    assert result["ok"] is False and result["error"]["category"] == "NotSpecified"
    assert result["error"]["message"].startswith("Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
                                                 "The operation couldn't be performed because object 'nobody' couldn't be found on '")
    _, result = run("Get-Mailbox", {"Identiti": "x"})
    assert result["error"] == {"message": "A parameter cannot be found that matches parameter name 'Identiti'.",
                               "category": "InvalidArgument", "type": "System.Management.Automation.ParameterBindingException"}
    _, result = run("Remove-Mailbox", {"Identity": "ce-support"})
    assert result["error"]["message"] == "Cmdlet 'Remove-Mailbox' is not allowed by this script."


def test_injection_in_the_data_stays_data(fresh_lab, run):
    hostile = "x'; Remove-Mailbox -Identity y; '"
    response, result = run("Get-Mailbox", {"Identity": hostile})
    assert response.status_code == 0 and result["ok"] is False
    assert "object '%s' couldn't be found" % hostile in result["error"]["message"]
    assert fresh_lab.counters()["services"]["winrm"]["reads"]["CMDLET Get-Mailbox"] == 1
    # \u0027 as Windows PowerShell 5.1's ConvertTo-Json writes a quote, and JSON readers accept.
    assert b"\\u0027" in response.std_out


@pytest.mark.parametrize("literal", [
    # The client forgot to double the quotes: PowerShell would end the string early and run code.
    """{"cmdlet": "Get-Mailbox", "parameters": {"Identity": "x'; Remove-Mailbox -Identity y; '"}}""",
    # A right single quotation mark is a quote to PowerShell too (json.dumps without ensure_ascii).
    """{"cmdlet": "Get-Mailbox", "parameters": {"Identity": "x\u2019; Remove-Mailbox -Identity y; \u2019"}}""",
    # Not JSON at all.
    """{cmdlet: Get-Mailbox}""",
])
def test_broken_request_literal_is_refused(fresh_lab, wsman, literal):
    script = lab_winrm.SCRIPT_TEMPLATE.replace(lab_winrm.REQUEST_PLACEHOLDER, literal)
    response = session(fresh_lab, wsman).run_ps(script)
    assert response.status_code == 1 and response.std_out == b""
    assert response.std_err and b"CLIXML" not in response.std_err  # pywinrm turned the CLIXML into text
    assert "CMDLET Get-Mailbox" not in str(fresh_lab.counters()["services"]["winrm"])


def test_scripts_not_of_the_agreed_shape_are_refused(fresh_lab, wsman):
    shell = session(fresh_lab, wsman)
    response = shell.run_ps("Get-Mailbox -Identity ce-support | ConvertTo-Json")
    assert response.status_code == 1 and b"not the agreed script" in response.std_err
    tampered = script_for({"organization": "x", "app_id": "y", "certificate_thumbprint": "z", "cmdlet": "Get-Mailbox"})
    tampered = tampered.replace("$output = & $request.cmdlet", "$output = Invoke-Expression $request.cmdlet; & $request.cmdlet")
    response = shell.run_ps(tampered)
    assert response.status_code == 1 and b"not the agreed script" in response.std_err
    response = shell.run_cmd("ipconfig", ["/all"])
    assert response.status_code == 1 and b"'ipconfig' is not recognized" in response.std_err


def test_connection_is_authorized_like_exchange(fresh_lab, run, contoso):
    other_thumbprint = fresh_lab.vars["lab_directories"]["fabrikam"]["automation_certificate_thumbprint"]
    _, result = run("Get-Mailbox", certificate_thumbprint=other_thumbprint)
    assert result["error"]["message"].startswith("AADSTS700027:") and result["error"]["category"] == "OperationStopped"
    _, result = run("Get-Mailbox", certificate_thumbprint="00" * 20)
    assert "No certificate with thumbprint" in result["error"]["message"]
    _, result = run("Get-Mailbox", organization="unknown.onmicrosoft.com")
    assert result["error"]["message"].startswith("AADSTS90002:")

    fresh_lab.revoke_directory_roles("contoso", "Exchange Administrator")
    _, result = run("Get-Mailbox")
    assert result["error"]["message"].startswith("The role assigned to application %s isn't supported" % contoso["automation_client_id"])
    fresh_lab.grant_directory_roles("contoso", "Global Reader")
    assert run("Get-Mailbox")[1]["ok"] is True
    _, result = run("Add-MailboxPermission", {"Identity": MAILBOX, "User": "x", "AccessRights": ["FullAccess"]})
    assert result["error"]["type"] == "System.Management.Automation.CommandNotFoundException"
    fresh_lab.revoke_app_roles("contoso", "Exchange.ManageAsApp", resource="exchange")
    _, result = run("Get-Mailbox")
    assert result["error"]["message"] == "UnAuthorized"
    assert fresh_lab.writes("winrm") == 0


def test_wrong_credentials_are_rejected(fresh_lab, wsman):
    with pytest.raises(InvalidCredentialsError):
        session(fresh_lab, wsman, password="not-the-password").run_ps("Get-Date")
    anonymous = requests.post(wsman["endpoint"], data=b"<x/>", verify=fresh_lab.ca_file, timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]


def test_ntlm_transport(fresh_lab, wsman, contoso):
    thumbprint = fresh_lab.vars["lab_directories"]["contoso"]["automation_certificate_thumbprint"]
    script = script_for({"organization": contoso["domain"], "app_id": contoso["automation_client_id"], "certificate_thumbprint": thumbprint,
                         "cmdlet": "Get-Mailbox", "parameters": {"ResultSize": "Unlimited"}})
    response = session(fresh_lab, wsman, transport="ntlm").run_ps(script)
    assert response.status_code == 0 and len(json.loads(response.std_out)["value"]) == 6
    with pytest.raises(InvalidCredentialsError):
        session(fresh_lab, wsman, transport="ntlm", password="wrong").run_ps(script)


def test_long_output_takes_several_receives_and_unknown_shells_fault(fresh_lab, wsman, run):
    response, result = run("Get-MailboxPermission", {"Identity": MAILBOX})
    assert len(response.std_out) > lab_winrm.RECEIVE_CHUNK and len(result["value"]) == 14
    assert fresh_lab.counters()["services"]["winrm"]["reads"]["POST /wsman Receive"] > 1
    protocol = session(fresh_lab, wsman).protocol
    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command("0E2C6F0B-0000-4000-8000-000000000000", "powershell", ["-EncodedCommand", base64.b64encode(b"x").decode()])
    assert caught.value.wsman_fault_code == 2150858843
