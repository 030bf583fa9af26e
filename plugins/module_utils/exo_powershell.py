# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The PowerShell that runs one Exchange Online cmdlet on a Windows management host (transport winrm), and the reading of
its output. The request travels as JSON data inside the script, never as script text."""

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



def clean_clixml(text):
    """PowerShell writes errors to stderr as CLIXML when it is not on a console; keep the words."""
    if not text.startswith("#< CLIXML"):
        return text.strip()
    pieces = re.findall(r'<S S="Error">(.*?)</S>', text, re.S)
    joined = "".join(pieces).replace("_x000D_", "").replace("_x000A_", "\n")
    return re.sub(r"&(lt|gt|amp|quot|apos);", lambda m: {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}[m.group(1)],
                  joined).strip()


