# -*- coding: utf-8 -*-
"""Fakes for the Exchange client's tests: an in-memory Exchange Online that answers cmdlets as a runner of the real
ExchangeClient (with a Graph that knows CE's service principal), and a requests session, response and MicrosoftAuth
for the REST runner."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time

import requests

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
APP_ID = "11111111-1111-4111-8111-111111111111"
APP_OBJECT_ID = "22222222-2222-4222-8222-222222222222"
SP_ID = "33333333-3333-4333-8333-333333333333"
MAILBOXES = ["ce-%s@contoso.onmicrosoft.com" % n for n in ("support", "sales", "billing")]
WRITES = ("New-ServicePrincipal", "Set-ServicePrincipal", "Remove-ServicePrincipal", "Add-MailboxPermission", "Remove-MailboxPermission")
APP = "42417622-2b96-42f2-9804-f25bf4fa86e5"


# -- Exchange Online, in memory --------------------------------------------------------------------
class FakeExchange:
    """Just enough of Exchange Online's behaviour, as a runner for the real ExchangeClient."""

    def __init__(self, mailboxes=MAILBOXES, delay=0.0):
        self.service_principals = []
        self.permissions = dict((m.lower(), [{"User": "NT AUTHORITY\\SELF", "AccessRights": ["FullAccess", "ReadPermission"],
                                              "IsInherited": False, "Deny": False, "InheritanceType": "All"}]) for m in mailboxes)
        self.calls = []
        self.delay = delay
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        self.fail = {}

    def writes(self):
        return [c for c, _params in self.calls if c in WRITES]

    def find_sp(self, identity):
        for sp in self.service_principals:
            if identity.lower() in (sp["AppId"].lower(), sp["ObjectId"].lower(), sp["DisplayName"].lower()):
                return sp
        return None

    def not_found(self, cmdlet, what):
        return ExchangeError("The operation couldn't be performed because object '%s' couldn't be found on 'AM0PR01'." % what,
                             cmdlet=cmdlet, error_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException")

    def invoke(self, cmdlet, p):
        with self.lock:
            self.calls.append((cmdlet, p))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            if cmdlet in self.fail:
                raise self.fail[cmdlet]
            return getattr(self, cmdlet.replace("-", "_").lower())(cmdlet, p), []
        finally:
            with self.lock:
                self.active -= 1

    def get_serviceprincipal(self, cmdlet, p):
        sp = self.find_sp(p["Identity"])
        if not sp:
            raise self.not_found(cmdlet, p["Identity"])
        return [dict(sp)]

    def new_serviceprincipal(self, cmdlet, p):
        sp = {"AppId": p["AppId"], "ObjectId": p["ObjectId"], "DisplayName": p.get("DisplayName") or p["AppId"],
              "Identity": p["ObjectId"]}
        self.service_principals.append(sp)
        return [dict(sp)]

    def set_serviceprincipal(self, cmdlet, p):
        self.find_sp(p["Identity"])["DisplayName"] = p["DisplayName"]
        return []

    def remove_serviceprincipal(self, cmdlet, p):
        self.service_principals.remove(self.find_sp(p["Identity"]))
        return []

    def entries(self, cmdlet, mailbox):
        if mailbox.lower() not in self.permissions:
            raise self.not_found(cmdlet, mailbox)
        return self.permissions[mailbox.lower()]

    def get_mailboxpermission(self, cmdlet, p):
        return [dict(e, Identity=p["Identity"]) for e in self.entries(cmdlet, p["Identity"])]

    def add_mailboxpermission(self, cmdlet, p):
        entries = self.entries(cmdlet, p["Identity"])
        sp = self.find_sp(p["User"])
        # Exchange shows a service principal by its Identity (its ObjectId) in the User column, as the lab does.
        user = sp["Identity"] if sp else p["User"]
        for entry in entries:
            if entry["User"] == user and not entry["IsInherited"] and not entry["Deny"] and set(p["AccessRights"]) <= set(entry["AccessRights"]):
                raise ExchangeError("An existing permission entry was found for user: %s." % user, cmdlet=cmdlet)
        entries.append({"User": user, "AccessRights": list(p["AccessRights"]), "IsInherited": False, "Deny": False,
                        "InheritanceType": p["InheritanceType"]})
        return []

    def remove_mailboxpermission(self, cmdlet, p):
        entries = self.entries(cmdlet, p["Identity"])
        user = self.find_sp(p["User"])["Identity"]
        for entry in list(entries):
            if entry["User"] == user and not entry["IsInherited"] and not entry["Deny"]:
                entry["AccessRights"] = [r for r in entry["AccessRights"] if r not in p["AccessRights"]]
                if not entry["AccessRights"]:
                    entries.remove(entry)
        return []


def registered(fake, display_name="CE Email"):
    fake.service_principals.append({"AppId": APP_ID, "ObjectId": SP_ID, "DisplayName": display_name, "Identity": SP_ID})
    return fake


class FakeGraph:
    def __init__(self, sp_id=SP_ID, app_object_id=APP_OBJECT_ID, error=None):
        self.sp = {"id": sp_id, "appId": APP_ID, "displayName": "CE Email"} if sp_id else None
        self.app = {"id": app_object_id, "appId": APP_ID} if app_object_id else None
        self.error = error

    def get_service_principal(self, app_id):
        if self.error:
            raise self.error
        return self.sp

    def find_applications(self, app_id=None):
        return [self.app] if self.app else []


# -- the REST runner's requests --------------------------------------------------------------------
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
