# -*- coding: utf-8 -*-
"""Helpers for the ce_* lab tests: a module runner, Portal options, edits by hand.

The module runner is the shared `run_module` fixture of tests/integration/conftest.py.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

TENANT_ID = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"   # contoso
CLIENT_ID = "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c"


def deployment(lab, name="emea"):
    return lab.vars["lab_ce_deployments"][name]


def ce_args(lab, deployment_name="emea", tenant_admin=None, basic=False, **kwargs):
    """Portal options for a deployment's administrator (or a tenant's, with tenant_admin=<tenant>), plus module options."""
    d = deployment(lab, deployment_name)
    who = d["tenants"][tenant_admin] if tenant_admin else {"admin_token": d["admin_token"], "admin_username": d["admin_username"],
                                                            "admin_password": d["admin_password"]}
    args = dict(ce_url=d["url"], ca_path=lab.vars["lab_ca_path"])
    if basic:
        args.update(ce_username=who["admin_username"], ce_password=who["admin_password"])
    else:
        args["ce_token"] = who["admin_token"]
    args.update(kwargs)
    return args


def ce_totals(lab):
    return lab.counters()["services"].get("ce", {}).get("totals", {"reads": 0, "writes": 0, "faults": 0})


def writes(lab):
    return ce_totals(lab).get("writes", 0)


def configured(lab, name="emea"):
    """The deployment's configured objects, read from the lab's own state (not through the client under test)."""
    return lab.ce_state(name)["configured"]


def gateway_named(lab, gateway, name="emea"):
    return next((g for g in configured(lab, name)["email_gateways"] if g["name"] == gateway), None)


def settings_named(lab, tenant, settings, name="emea"):
    return next((s for s in configured(lab, name)["tenants"][tenant]["oauth_settings"] if s["name"] == settings), None)


def connection_named(lab, tenant, connection, name="emea"):
    return next((c for c in configured(lab, name)["tenants"][tenant]["email_connections"] if c["name"] == connection), None)


class HandEdits:
    """Changes made "in the Portal by hand": raw API calls with the deployment administrator's token."""

    def __init__(self, lab, name="emea"):
        self.lab = lab
        self.base = deployment(lab, name)["url"] + "/api/v1"
        self.token = deployment(lab, name)["admin_token"]

    def call(self, method, path, body=None, headers=None):
        all_headers = {"Authorization": "Bearer " + self.token}
        all_headers.update(headers or {})
        status, response_headers, payload = self.lab.request(method, self.base + path, body=body, headers=all_headers)
        assert status < 300, (method, path, status, payload)
        return payload

    def edit(self, path, **changes):
        """GET, change some fields, PUT with If-Match: like a person saving a form."""
        current = self.call("GET", path)
        body = dict((k, v) for k, v in current.items() if k not in ("id", "revision", "client_secret_set", "client_secret_updated_at"))
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = dict(body[key], **value)
            else:
                body[key] = value
        return self.call("PUT", path, body, {"If-Match": '"%d"' % current["revision"]})

    def start_update(self):
        return self.call("POST", "/server-updates")


def contract_error(code, message):
    return {"error": {"code": code, "message": message, "details": []}}
