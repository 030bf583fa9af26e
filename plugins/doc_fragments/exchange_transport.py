# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  transport:
    description:
      - How the Exchange Online cmdlets are run. Results are the same with both.
      - V(rest) posts them to Exchange Online's C(InvokeCommand) endpoint (the one the ExchangeOnlineManagement v3 module uses)
        with an app-only token of the automation identity, from the host that runs the module. Needs nothing but Python.
      - V(winrm) runs them in PowerShell 7 (C(pwsh)) with the ExchangeOnlineManagement module on a Windows management host, over
        WinRM (O(winrm)). That host connects with C(Connect-ExchangeOnline -AppId <client_id> -CertificateThumbprint ...
        -Organization ...) and a certificate of the automation identity from its own store, so O(client_secret) is not needed
        for Exchange (only for the optional Microsoft Graph checks). A module run starts one PowerShell session and connects
        once (seconds on a real host); the session then runs the module's cmdlets one after another, so V(rest), which runs
        them side by side, stays faster for long mailbox lists.
    type: str
    choices: [rest, winrm]
    default: rest
  winrm:
    description:
      - The Windows management host for O(transport=winrm). Required with it, ignored otherwise.
      - Each cmdlet and its parameters travel to the session as a line of JSON data on its standard input, never as script
        text, and the script runs only the cmdlets these modules need.
    type: dict
    suboptions:
      host:
        description: Host name or address of the management host.
        type: str
        required: true
      port:
        description: WinRM port. Defaults to 5986 for V(https) and 5985 for V(http).
        type: int
      scheme:
        description: V(https) (recommended) or V(http). Over V(http) only V(ntlm), V(kerberos) and V(credssp) encrypt the messages.
        type: str
        choices: [https, http]
        default: https
      path:
        description: Path of the WS-Management endpoint.
        type: str
        default: /wsman
      transport:
        description:
          - WinRM authentication. V(kerberos) needs pykerberos and a ticket, V(credssp) needs requests-credssp.
          - V(basic) sends the password as is; use it only over V(https).
        type: str
        choices: [ntlm, kerberos, credssp, basic]
        default: ntlm
      username:
        description: The WinRM user, C(DOMAIN\user) or C(user@domain). Its certificate store must hold the certificate of O(winrm.certificate_thumbprint).
        type: str
      password:
        description: Password of O(winrm.username).
        type: str
      validate_certs:
        description: Whether to verify the host's TLS certificate (V(https)).
        type: bool
        default: true
      ca_path:
        description: PEM file of the CA that signed the host's certificate, instead of the system store.
        type: path
      certificate_thumbprint:
        description:
          - SHA-1 thumbprint of the automation identity's certificate (the one registered on the app of O(client_id)), installed
            with its private key in the WinRM user's certificate store on the management host.
        type: str
        required: true
      organization:
        description:
          - The C(-Organization) of C(Connect-ExchangeOnline). Defaults to O(tenant_id).
          - C(Connect-ExchangeOnline) documents the directory's primary C(.onmicrosoft.com) domain here; set it when O(tenant_id) is a GUID
            and the host's module version does not accept one.
        type: str
notes:
  - The automation identity needs the Office 365 Exchange Online application permission C(Exchange.ManageAsApp) with admin
    consent AND the Entra role Exchange Administrator in the directory; Exchange answers 401/403 (or, over WinRM, a refused
    connection) without either.
requirements:
  - pywinrm >= 0.5.0 (only for O(transport=winrm))
'''
