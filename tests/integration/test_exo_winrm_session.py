# -*- coding: utf-8 -*-
"""The collection's WinRM session script (exo_powershell.SESSION_SCRIPT) run by the lab's management host, which
interprets whatever it is sent: its security properties, checked by what the script DOES, not by its text.

- Requests travel as data: hostile text in any value reaches Exchange verbatim, and nothing else runs.
- The allow-list is enforced on the host too: a request naming any other command (bypassing the client's own check)
  runs nothing.
- Nothing from a request is evaluated as code, and these tests would see it if it were: the same requests against a
  copy of the script that evaluates data (Invoke-Expression) or skips the allow-list do run the injected cmdlet.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_powershell import build_session_script
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_winrm import WinRMRunner
from winrm_session import run_session

DIRECTORY = "contoso"
MAILBOX = "ce-support@contoso.onmicrosoft.com"
HOSTILE = [
    "x'; Remove-ServicePrincipal -Identity {sp} -Confirm:$false; '",
    "x\u2019; Remove-ServicePrincipal -Identity {sp} -Confirm:$false; \u2018",
    "$(Remove-ServicePrincipal -Identity {sp} -Confirm:$false)",
    "\"; Remove-ServicePrincipal -Identity {sp} -Confirm:$false; \"",
    "x`n'@\n'@; Remove-ServicePrincipal -Identity {sp} -Confirm:$false",
    "x'; Invoke-Expression 'Remove-ServicePrincipal -Identity {sp} -Confirm:$false'; #",
]
ALLOW_LIST_CHECK = ("            if ($request.cmdlet -isnot [string] -or $allowed -notcontains $request.cmdlet) {\n"
                    "                throw \"Cmdlet '$($request.cmdlet)' is not allowed by this script.\"\n"
                    "            }\n")
INVOCATION = "$output = & $request.cmdlet @parameters -WarningVariable warnings -WarningAction SilentlyContinue"


def automation(lab):
    return lab.directory(DIRECTORY)


def settings(lab):
    d = automation(lab)
    return {"organization": d["tenant_id"], "app_id": d["automation_client_id"],
            "certificate_thumbprint": lab.vars["lab_winrm"]["certificate_thumbprints"][DIRECTORY]}


def runner(lab):
    w, d = lab.vars["lab_winrm"], automation(lab)
    options = dict(host=w["host"], port=w["port"], scheme=w["scheme"], path=w["path"], transport=w["transport"], username=w["username"],
                   password=w["password"], ca_path=lab.vars["lab_ca_path"], certificate_thumbprint=w["certificate_thumbprints"][DIRECTORY])
    return WinRMRunner(options, d["tenant_id"], d["automation_client_id"])


def cmdlets_run(lab):
    counted = lab.counters()["services"].get("winrm", {})
    return dict((k[len("CMDLET "):], n) for kind in ("reads", "writes") for k, n in counted.get(kind, {}).items() if k.startswith("CMDLET "))


@pytest.fixture
def victim(fresh_lab):
    """An Exchange service principal that an injected Remove-ServicePrincipal would delete: its object id."""
    object_id = "0badc0de-1111-4222-8333-444455556666"
    fresh_lab.exchange_register_service_principal(DIRECTORY, "0badc0de-aaaa-4bbb-8ccc-ddddeeeeffff", object_id, "victim")
    fresh_lab.reset_counters()
    return object_id


def victim_exists(lab, object_id):
    return any(p["ObjectId"] == object_id for p in lab.exchange_state(DIRECTORY)["service_principals"])


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_text_reaches_exchange_as_data_and_nothing_else_runs(fresh_lab, victim, template):
    hostile = template.replace("{sp}", victim)
    d = automation(fresh_lab)
    client = runner(fresh_lab)
    try:
        created, _ = client.invoke("New-ServicePrincipal", {"AppId": d["automation_client_id"], "ObjectId": d["automation_service_principal_id"],
                                                           "DisplayName": hostile})
        with pytest.raises(ExchangeError) as missing:
            client.invoke("Get-MailboxPermission", {"Identity": hostile})
    finally:
        client.close()
    assert created[0]["DisplayName"] == hostile and hostile in missing.value.message
    logged = [(c["cmdlet"], c["parameters"]) for c in fresh_lab.state("winrm")["cmdlets"]]
    assert logged == [("New-ServicePrincipal", {"AppId": d["automation_client_id"], "ObjectId": d["automation_service_principal_id"],
                                                "DisplayName": hostile}),
                      ("Get-MailboxPermission", {"Identity": hostile})]
    assert cmdlets_run(fresh_lab) == {"New-ServicePrincipal": 1, "Get-MailboxPermission": 1} and victim_exists(fresh_lab, victim)
    assert [(s["outcome"], s["exit_code"], s["error"]) for s in fresh_lab.state("winrm")["scripts"]] == [("ran", 0, None)]


@pytest.mark.parametrize("cmdlet,parameters", [
    ("Invoke-Expression", {"Command": "Remove-ServicePrincipal -Identity {sp} -Confirm:$false"}),
    ("Get-Mailbox; Remove-ServicePrincipal -Identity {sp} -Confirm:$false", {}),
    (["Remove-ServicePrincipal"], {"Identity": "{sp}", "Confirm": False}),
    ("Remove-Mailbox", {"Identity": MAILBOX}),
    ("Connect-ExchangeOnline", {"AppId": "x", "CertificateThumbprint": "y", "Organization": "z"}),
    ("Disconnect-ExchangeOnline", {}),
    (None, {}),
])
def test_the_host_runs_only_the_allowed_cmdlets(fresh_lab, victim, cmdlet, parameters):
    cmdlet = [c.replace("{sp}", victim) for c in cmdlet] if isinstance(cmdlet, list) else cmdlet and cmdlet.replace("{sp}", victim)
    parameters = dict((k, v.replace("{sp}", victim) if isinstance(v, str) else v) for k, v in parameters.items())
    answers, _out, _err, code = run_session(fresh_lab, build_session_script(settings(fresh_lab)),
                                            [{"id": 1, "cmdlet": cmdlet, "parameters": parameters},
                                             {"id": 2, "cmdlet": "Get-Mailbox", "parameters": {"Identity": MAILBOX}}])
    assert code == 0 and answers[0]["ok"] is True
    assert answers[1]["id"] == 1 and answers[1]["ok"] is False and answers[1]["error"]["message"].endswith("is not allowed by this script.")
    assert answers[2]["ok"] is True  # and the session goes on
    assert cmdlets_run(fresh_lab) == {"Get-Mailbox": 1} and victim_exists(fresh_lab, victim)


def test_parameter_names_and_malformed_requests_stay_data(fresh_lab, victim):
    answers, _out, _err, code = run_session(fresh_lab, build_session_script(settings(fresh_lab)), [
        {"id": 1, "cmdlet": "Get-Mailbox", "parameters": {"Identity; Remove-ServicePrincipal -Identity %s" % victim: "y"}},
        {"id": 2, "cmdlet": "Get-Mailbox", "parameters": "Remove-ServicePrincipal -Identity %s" % victim},
        b"{not json; Remove-ServicePrincipal\n",
        {"id": 4, "cmdlet": "Get-Mailbox", "parameters": {"Identity": MAILBOX}},
    ])
    assert code == 0
    assert answers[1]["error"]["message"] == ("A parameter cannot be found that matches parameter name 'Identity; Remove-ServicePrincipal "
                                              "-Identity %s'." % victim)
    # A string's only property is Length: PowerShell splats that, and Get-Mailbox has no such parameter.
    assert answers[2]["error"]["message"] == "A parameter cannot be found that matches parameter name 'Length'."
    assert answers[3]["id"] is None and answers[3]["error"]["message"].startswith("Conversion from JSON failed")
    assert answers[4]["id"] == 4 and answers[4]["ok"] is True
    assert cmdlets_run(fresh_lab) == {"Get-Mailbox": 1} and victim_exists(fresh_lab, victim)


def test_these_checks_catch_a_script_that_evaluates_data(fresh_lab, victim):
    """Worth something only if a script that did evaluate data failed them: two such copies of the script, run by the
    same host, do run the injected cmdlet."""
    script = build_session_script(settings(fresh_lab))
    assert ALLOW_LIST_CHECK in script and INVOCATION in script
    request = {"id": 1, "cmdlet": "Invoke-Expression", "parameters": {"Command": "Remove-ServicePrincipal -Identity %s -Confirm:$false" % victim}}
    run_session(fresh_lab, script.replace(ALLOW_LIST_CHECK, ""), [request])
    assert not victim_exists(fresh_lab, victim) and cmdlets_run(fresh_lab) == {"Remove-ServicePrincipal": 1}

    fresh_lab.exchange_register_service_principal(DIRECTORY, "0badc0de-aaaa-4bbb-8ccc-ddddeeeeffff", victim, "victim")
    fresh_lab.reset_counters()
    evaluating = script.replace(INVOCATION, "$output = Invoke-Expression \"$($request.cmdlet) -Identity '$($request.parameters.Identity)'\"")
    # A mailbox that exists, so that the first half does not stop the line ($ErrorActionPreference is Stop).
    hostile = MAILBOX + "'; Remove-ServicePrincipal -Identity %s -Confirm:$false; '" % victim
    run_session(fresh_lab, evaluating, [{"id": 1, "cmdlet": "Get-Mailbox", "parameters": {"Identity": hostile}}])
    assert not victim_exists(fresh_lab, victim) and cmdlets_run(fresh_lab) == {"Get-Mailbox": 1, "Remove-ServicePrincipal": 1}

    # The real script, the same request: data.
    fresh_lab.exchange_register_service_principal(DIRECTORY, "0badc0de-aaaa-4bbb-8ccc-ddddeeeeffff", victim, "victim")
    fresh_lab.reset_counters()
    answers, _out, _err, _code = run_session(fresh_lab, script, [{"id": 1, "cmdlet": "Get-Mailbox", "parameters": {"Identity": hostile}}])
    assert "couldn't be found" in answers[1]["error"]["message"] and victim_exists(fresh_lab, victim)


def test_a_refused_connection_is_answer_zero_and_ends_the_session(fresh_lab):
    wrong = dict(settings(fresh_lab), organization="x'; [Console]::Out.WriteLine('INJECTED'); '")
    answers, out, _err, code = run_session(fresh_lab, build_session_script(wrong), [{"id": 1, "cmdlet": "Get-Mailbox", "parameters": {}}])
    assert code == 0 and len(answers) == 1 and answers[0]["id"] == 0 and answers[0]["ok"] is False
    assert answers[0]["error"]["message"].startswith("AADSTS90002: Tenant 'x'; [Console]::Out.WriteLine('INJECTED'); '' not found")
    assert answers[0]["error"]["category"] == "OperationStopped" and b"INJECTED\r\n" not in out
    assert cmdlets_run(fresh_lab) == {}
