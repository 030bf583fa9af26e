# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The PowerShell session that runs Exchange Online cmdlets on a Windows management host (transport winrm), and the
reading of what it writes. One pwsh process serves a whole module invocation: it connects once, then reads one request
per line on stdin and answers each with one line of JSON on stdout. Requests travel as data (JSON that the script reads
with ConvertFrom-Json), never as script text; the session's own settings are one JSON string literal in the script."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError, connect_hint, split_exchange_message

# What the modules may run. The script carries the same list, so a tampered request cannot
# make the management host run anything else.
ALLOWED_CMDLETS = (
    "Get-Mailbox", "Get-ServicePrincipal", "New-ServicePrincipal", "Set-ServicePrincipal", "Remove-ServicePrincipal",
    "Get-MailboxPermission", "Add-MailboxPermission", "Remove-MailboxPermission",
)

# Connect-ExchangeOnline -ExchangeEnvironmentName per cloud; public needs none.
EXCHANGE_ENVIRONMENTS = {"usgov": "O365USGovGCCHigh", "usgov_dod": "O365USGovDoD", "china": "O365China"}

# Answer 0 is Connect-ExchangeOnline's; requests are numbered from 1.
CONNECT_ANSWER = 0

SESSION_SCRIPT = r"""# ceops.exchange_oauth: Exchange Online cmdlets over ONE connection for a module run.
# The session's settings are the JSON literal below (single quotes doubled). Each cmdlet arrives on stdin as one line
# of JSON {"id": n, "cmdlet": "...", "parameters": {...}} and is answered on stdout by one line of JSON with that id.
# Requests are data: the cmdlet is looked up in $allowed and invoked by name with &, its parameters are splatted from
# a hashtable; nothing that arrives is ever run as script. Answer 0 says whether Connect-ExchangeOnline worked.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$session = '__SESSION_JSON__' | ConvertFrom-Json
$allowed = @(__ALLOWED__)
$answer = [ordered]@{ id = 0; ok = $true; value = @(); warnings = @() }
try {
    Import-Module ExchangeOnlineManagement
    # -CommandName loads only the cmdlets the modules need, which keeps the connection quick.
    $connect = @{
        AppId = $session.app_id
        CertificateThumbprint = $session.certificate_thumbprint
        Organization = $session.organization
        CommandName = $allowed
        ShowBanner = $false
    }
    if ($null -ne $session.exchange_environment) {
        $connect.ExchangeEnvironmentName = $session.exchange_environment
    }
    Connect-ExchangeOnline @connect
}
catch {
    $answer.ok = $false
    $answer.error = [ordered]@{
        message = $_.Exception.Message
        category = [string]$_.CategoryInfo.Category
        type = $_.Exception.GetType().FullName
    }
}
[Console]::Out.WriteLine((ConvertTo-Json -InputObject $answer -Depth 6 -Compress))
$connected = $answer.ok
try {
    while ($connected) {
        # The client closing stdin ends the session.
        $line = [Console]::In.ReadLine()
        if ($null -eq $line) {
            break
        }
        if ([string]::IsNullOrWhiteSpace($line)) {
            continue
        }
        $answer = [ordered]@{ id = $null; ok = $true; value = @(); warnings = @() }
        try {
            $request = ConvertFrom-Json -InputObject $line
            $answer.id = $request.id
            if ($request.cmdlet -isnot [string] -or $allowed -notcontains $request.cmdlet) {
                throw "Cmdlet '$($request.cmdlet)' is not allowed by this script."
            }
            $parameters = @{}
            if ($null -ne $request.parameters) {
                foreach ($property in $request.parameters.PSObject.Properties) {
                    $parameters[$property.Name] = $property.Value
                }
            }
            $warnings = @()
            $output = & $request.cmdlet @parameters -WarningVariable warnings -WarningAction SilentlyContinue
            $answer.value = @($output)
            $answer.warnings = @($warnings | ForEach-Object { [string]$_ })
        }
        catch {
            $answer.ok = $false
            $answer.value = @()
            $answer.warnings = @()
            $answer.error = [ordered]@{
                message = $_.Exception.Message
                category = [string]$_.CategoryInfo.Category
                type = $_.Exception.GetType().FullName
            }
        }
        # One line per answer (Console.Out flushes each line); exit code 0 whatever the cmdlets did.
        [Console]::Out.WriteLine((ConvertTo-Json -InputObject $answer -Depth 6 -Compress))
    }
}
finally {
    Disconnect-ExchangeOnline -Confirm:$false -ErrorAction SilentlyContinue
}
"""


def powershell_literal(text):
    """A PowerShell single-quoted string body: only the quote is special, and it is doubled.

    ``text`` must be ASCII (json.dumps' default), so PowerShell's typographic quotes, which it also
    treats as single quotes, cannot occur in it.
    """
    if any(ord(ch) > 127 for ch in text):
        raise ValueError("PowerShell literal must be ASCII")
    return text.replace("'", "''")


def build_session_script(settings, cloud="public"):
    """The PowerShell of one session; ``settings`` (organization, app_id, certificate_thumbprint) travel as one JSON
    string literal."""
    settings = dict(settings)
    if cloud in EXCHANGE_ENVIRONMENTS:
        settings["exchange_environment"] = EXCHANGE_ENVIRONMENTS[cloud]
    payload = json.dumps(settings, separators=(",", ":"), sort_keys=True)  # ensure_ascii: \\uXXXX for all non-ASCII
    allowed = ", ".join("'%s'" % name for name in ALLOWED_CMDLETS)
    return SESSION_SCRIPT.replace("__ALLOWED__", allowed).replace("__SESSION_JSON__", powershell_literal(payload))


def encode_request(request_id, cmdlet, parameters):
    """One request line for the session's stdin. ASCII only (json.dumps escapes the rest), so the host's console code
    page, whatever it is, reads it unchanged; JSON escapes line breaks, so it is always one line."""
    if cmdlet not in ALLOWED_CMDLETS:
        raise ValueError("cmdlet %r is not allowed" % cmdlet)
    line = json.dumps({"id": request_id, "cmdlet": cmdlet, "parameters": parameters}, separators=(",", ":"))
    return (line + "\n").encode("ascii")


def encode_command(script):
    """What -EncodedCommand wants: base64 of UTF-16LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def read_answer(line):
    """The answer document on one line of the session's stdout, or None for anything else the host printed (module
    warnings, banners)."""
    text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).strip().lstrip("\ufeff")
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if isinstance(document, dict) and "ok" in document and "id" in document:
        return document
    return None


def answer_result(document, cmdlet, where):
    """(values, warnings) of one answer, or the ExchangeError it describes."""
    if document.get("ok"):
        return list(document.get("value") or []), list(document.get("warnings") or [])
    error = document.get("error") or {}
    error_type, message = split_exchange_message(error.get("message"))
    # Connect-ExchangeOnline failed (category OperationStopped), the role does not let it load the cmdlet, or Exchange
    # refused the app mid-session: every further cmdlet would fail the same way.
    connect_failed = error.get("category") in ("OperationStopped", "AuthenticationError") or "is not recognized as" in (message or "")
    raise ExchangeError(message or "unknown error", cmdlet=cmdlet, error_type=error_type or error.get("type"), category=error.get("category"),
                        where=where, fatal=connect_failed, hint=connect_hint(message) if connect_failed else None)


def process_failure(stdout_tail, stderr, exit_code, cmdlet, where):
    """The ExchangeError for a session whose PowerShell process ended (or never answered as the script would)."""
    err = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    out = stdout_tail.decode("utf-8", "replace") if isinstance(stdout_tail, bytes) else (stdout_tail or "")
    detail = clean_clixml(err) or out.strip()[-500:] or "no output"
    return ExchangeError("the PowerShell session ended (exit code %s): %s" % (exit_code, detail[:1000]), cmdlet=cmdlet, fatal=True,
                         where=where, hint="check that PowerShell 7 (pwsh) and the ExchangeOnlineManagement module are installed "
                                           "for the WinRM user on the management host")


def clean_clixml(text):
    """PowerShell writes errors to stderr as CLIXML when it is not on a console; keep the words."""
    if not text.startswith("#< CLIXML"):
        return text.strip()
    pieces = re.findall(r'<S S="Error">(.*?)</S>', text, re.S)
    joined = "".join(pieces).replace("_x000D_", "").replace("_x000A_", "\n")
    return re.sub(r"&(lt|gt|amp|quot|apos);", lambda m: {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}[m.group(1)],
                  joined).strip()
