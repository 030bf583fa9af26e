# -*- coding: utf-8 -*-
"""The lab's CE Portal run in-process behind a fake requests session, and a checker of requests against the contract.

The unit tests of the CE client and modules run against FakePortal, which is the lab's CE Portal emulator
(ceops_lab.ce_portal: one emulator for unit tests and the lab) with test helpers around it; every request they send
is checked against docs/ce-portal-api.yaml by Contract. test_ce_fake_portal.py checks the checker and the harness.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import yaml
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import run_module_main, warnings_of  # noqa: F401  pylint: disable=unused-import

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import ce_module, ce_portal
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import Transport

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CONTRACT_PATH = os.path.join(REPO, "docs", "ce-portal-api.yaml")
URL = "https://ce.example.test/emea"
DEPLOYMENT_TOKEN = "deployment-admin-token"


# -- the contract checker ---------------------------------------------------------------------------
class Contract:
    def __init__(self, path=CONTRACT_PATH):
        with open(path, encoding="utf-8") as handle:
            self.spec = yaml.safe_load(handle)
        self.templates = []
        for template, item in self.spec["paths"].items():
            regex = "^" + re.sub(r"\{[^}]+\}", "([^/]+)", template) + "$"
            names = re.findall(r"\{([^}]+)\}", template)
            self.templates.append((re.compile(regex), names, template, item))

    def resolve(self, schema):
        while "$ref" in schema:
            node = self.spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def flatten(self, schema):
        """(required, properties) of a schema with $ref and allOf merged."""
        schema = self.resolve(schema)
        required, properties = set(schema.get("required", [])), dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            more_required, more_properties = self.flatten(part)
            required |= more_required
            properties.update(more_properties)
        return required, properties

    def check_value(self, schema, value, where):
        schema = self.resolve(schema)
        if "allOf" in schema or "properties" in schema:
            return self.check_object(schema, value, where)
        types = schema.get("type")
        types = types if isinstance(types, list) else [types] if types else []
        python = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict, "null": type(None)}
        if types and not any(isinstance(value, python[t]) and not (t == "integer" and isinstance(value, bool)) for t in types):
            return ["%s: %r is not %s" % (where, value, "/".join(types))]
        problems = []
        if "enum" in schema and value not in schema["enum"]:
            problems.append("%s: %r not in %s" % (where, value, schema["enum"]))
        if isinstance(value, str) and "minLength" in schema and len(value) < schema["minLength"]:
            problems.append("%s: shorter than %s" % (where, schema["minLength"]))
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                problems.append("%s: fewer than %s items" % (where, schema["minItems"]))
            for index, item in enumerate(value):
                problems.extend(self.check_value(schema.get("items", {}), item, "%s[%d]" % (where, index)))
        if isinstance(value, int) and not isinstance(value, bool):
            if value < schema.get("minimum", value) or value > schema.get("maximum", value):
                problems.append("%s: %s out of range" % (where, value))
        return problems

    def check_object(self, schema, body, where):
        if not isinstance(body, dict):
            return ["%s: not an object" % where]
        required, properties = self.flatten(schema)
        problems = ["%s: required field %r missing" % (where, name) for name in sorted(required - set(body))]
        for name, value in body.items():
            if name not in properties:
                problems.append("%s: unknown field %r" % (where, name))
                continue
            prop = self.resolve(properties[name])
            if prop.get("readOnly"):
                problems.append("%s: read-only field %r sent" % (where, name))
            problems.extend(self.check_value(prop, value, "%s.%s" % (where, name)))
        return problems

    def check(self, method, path, headers, params, body):
        """Problems of one request (path relative to /api/v1), or []."""
        for regex, names, template, item in self.templates:
            match = regex.match(path)
            if not match:
                continue
            operation = item.get(method.lower())
            if operation is None:
                return ["%s %s: the contract has no %s on %s" % (method, path, method, template)]
            problems = []
            for name, value in zip(names, match.groups()):
                parameter = next((self.resolve(p) for p in item.get("parameters", []) if self.resolve(p)["name"] == name), None)
                pattern = (parameter or {}).get("schema", {}).get("pattern")
                if pattern and not re.match(pattern, requests.utils.unquote(value)):
                    problems.append("%s %s: %s %r does not match %s" % (method, path, name, value, pattern))
            limit = (params or {}).get("limit")
            if limit is not None and not 1 <= int(limit) <= 200:
                problems.append("%s %s: limit %s outside 1..200" % (method, path, limit))
            if method in ("PUT", "DELETE") and not re.match(r'^"\d+"$', headers.get("If-Match", "")):
                problems.append("%s %s: no If-Match with the revision" % (method, path))
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                problems.extend(self.check_object(schema, body, "%s %s body" % (method, template)))
            return problems
        return ["%s %s: no such path in the contract" % (method, path)]


_CONTRACT = []


def shared_contract():
    """The contract parsed once per test session (PyYAML takes a tenth of a second for it)."""
    if not _CONTRACT:
        _CONTRACT.append(Contract())
    return _CONTRACT[0]


# -- the lab's CE Portal, in-process ---------------------------------------------------------------
# The one CE Portal emulator of this project is the lab's (lab/ceops_lab/ce_portal.py and ce_portal_state.py, built from
# the contract). Unit tests run that same Portal in-process, behind a fake requests session, with a virtual clock.
ceops_lab_ce_portal = pytest.importorskip("ceops_lab.ce_portal", reason="the lab's CE Portal (pip install -e ./lab; not shipped)")
ceops_lab_faults = pytest.importorskip("ceops_lab.faults")
ceops_lab_service = pytest.importorskip("ceops_lab.service")
BASE_URL = "https://ce.example.test"
DEPLOYMENT = "emea"


class FakeResponse:
    """What the transport reads of a requests.Response."""

    def __init__(self, status, body=None, headers=None, url="", method="GET", text=None):
        self.status_code = status
        self._body = body
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})
        self.text = text if text is not None else (json.dumps(body) if body is not None else "")
        self.content = self.text.encode("utf-8")
        self.reason = "reason"
        self.url = url
        self.request = type("Request", (), {"method": method})()

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class FakeSession:
    def __init__(self, portal):
        self.portal = portal
        self.headers = {}

    def request(self, method, url, headers=None, params=None, json=None, auth=None, **kwargs):
        return self.portal.handle(method, url, dict(headers or {}), dict(params or {}), json, auth)


class _Lab:
    """What the Portal needs of a lab when it runs without one: fault settings (page_size, one-shot answers)."""

    def __init__(self):
        self.faults = ceops_lab_faults.Faults()
        self.seed = {}


class FakePortal:
    """The lab's CE Portal (one deployment, "emea", with tenants acme and globex) behind a fake requests session.

    Test helpers around it: a virtual clock (sleep / now) that batch updates run on, predictable ids ("egw-1"),
    add_gateway / add_settings / add_connection to arrange existing objects, a request log checked against the contract,
    faults (one-shot answers: (method, path regex below /api/v1, status, code, headers)) and hooks (callables run once
    before a matching request). page_size is small so paging is exercised."""

    def __init__(self, version="7.4.4", capabilities=None, page_size=2, tenants=("acme", "globex")):
        self.now = 0.0
        self.sequence = 0
        self.log = []           # (method, path, headers, params, body) of every request
        self.answers = []       # the JSON answered to each request of the log (None when empty)
        self.faults = []        # [(method, path regex, status, code, headers)] one-shot error answers
        self.hooks = []         # [(method, path regex, callable)] run once before a matching request
        self.contract = shared_contract()
        self.tenants = list(tenants)
        self._lab = _Lab()
        entry = {"name": DEPLOYMENT, "version": version, "admin_username": "admin", "email_gateways": [],
                 "tenants": [{"name": t, "display_name": t.title(), "admin_username": t + "-admin", "mailboxes": []} for t in tenants]}
        if capabilities is not None:
            entry["capabilities"] = list(capabilities)
        credentials = {DEPLOYMENT: {"admin": {"username": "admin", "password": "admin-password", "token": DEPLOYMENT_TOKEN},
                                    "tenants": {t: {"username": t + "-admin", "password": t + "-password", "token": t + "-admin-token"}
                                                for t in tenants}}}
        self.service = ceops_lab_ce_portal.CePortalService(self._lab, seed={"deployments": [entry]}, credentials=credentials,
                                                           clock=self.clock, id_factory=self.new_id)
        self.service.url = BASE_URL
        self.deployment = self.service.deployments[DEPLOYMENT]
        self.deployment.settings.update(page_size=page_size, update_seconds=10.0)
        self._outcome, self._errors = "succeeded", []

    # -- test helpers ----------------------------------------------------------------------------
    def sleep(self, seconds):
        self.now += seconds

    def sleep_later_bound(self, seconds):
        # Tests may replace self.sleep after the transport exists.
        self.sleep(seconds)

    def clock(self):
        return self.now

    def transport(self, url=URL):
        transport = Transport("CE Portal", base_url=ce_portal.api_base_url(url), error_parser=ce_portal.portal_error_parser,
                              sleep=self.sleep_later_bound)
        transport.session = FakeSession(self)
        return transport

    def client(self, token=DEPLOYMENT_TOKEN, **kwargs):
        return ce_portal.CePortal(URL, token=token, transport=self.transport(), sleep=self.sleep, clock=self.clock, **kwargs)

    def new_id(self, prefix):
        self.sequence += 1
        return "%s-%d" % (prefix, self.sequence)

    def writes(self):
        return [entry for entry in self.log if entry[0] != "GET"]

    def contract_problems(self):
        problems = []
        for method, path, headers, params, body in self.log:
            problems.extend(self.contract.check(method, path, headers, params, body))
        return problems

    def answer_next(self, method, path_regex, status, body, count=1):
        """The next `count` matching requests get `status` and `body` (any status, 200 included) instead of the Portal's
        answer: the lab's fail_next fault. path_regex is below /api/v1, as in the log."""
        self._lab.faults.set("ce", fail_next=[{"method": method, "path_regex": _below_api(path_regex), "status": status, "body": body,
                                               "count": count}])

    # What the Portal holds: its own objects (the contract's fields; "_" keys are the Portal's bookkeeping), so a test
    # can also change one behind the API's back, as someone editing in the Portal would.
    @property
    def gateways(self):
        return dict(self.deployment.gateways)

    @property
    def settings(self):
        return {t.name: dict(t.oauth_settings) for t in self.deployment.tenants.values()}

    @property
    def secrets(self):
        return {i: o.get("_secret") for t in self.deployment.tenants.values() for i, o in t.oauth_settings.items()}

    @property
    def connections(self):
        return {t.name: dict(t.connections) for t in self.deployment.tenants.values()}

    @property
    def pending(self):
        return self.deployment.pending()["changes"]

    # Batch updates started from now on take update_duration seconds and end with update_outcome / update_errors.
    @property
    def update_duration(self):
        return self.deployment.settings["update_seconds"]

    @update_duration.setter
    def update_duration(self, seconds):
        self.deployment.settings["update_seconds"] = float(seconds)

    @property
    def update_outcome(self):
        return self._outcome

    @update_outcome.setter
    def update_outcome(self, outcome):
        self._outcome = outcome
        self._arm_failure()

    @property
    def update_errors(self):
        return self._errors

    @update_errors.setter
    def update_errors(self, errors):
        self._errors = list(errors)
        self._arm_failure()

    def _arm_failure(self):
        failed = self._outcome == "failed"
        self.deployment.settings["fail_next_update"] = ("; ".join(self._errors) or "mail server rejected the configuration") if failed else None

    def add_gateway(self, name, protocol="imap", host="outlook.office365.com", port=993, security="ssl", **extra):
        fields = {"name": name, "description": extra.get("description"), "inbound": {"host": host, "port": port, "security": security, "protocol": protocol},
                  "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}}
        return self.deployment.add_existing(self.deployment.gateways, self.new_id("egw"), fields)

    def add_settings(self, tenant, name, client_id="0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c", secret="s3cret", **extra):
        fields = {"name": name, "client_id": client_id, "scopes": ["https://outlook.office365.com/.default"],
                  "token_endpoint_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token"}
        fields.update(extra)
        return self.deployment.add_existing(self.deployment.tenant(tenant).oauth_settings, self.new_id("oas"), fields, secret=secret)

    def add_connection(self, tenant, name, gateway_id, settings_id=None, receive=False, send=False, mailboxes=()):
        """An existing connection; `mailboxes` become the tenant's (the Portal lists a tenant's mailboxes on each connection)."""
        owner = self.deployment.tenant(tenant)
        fields = {"name": name, "gateway_id": gateway_id, "oauth_settings_id": settings_id, "use_oauth_receive": receive, "use_oauth_send": send}
        obj = self.deployment.add_existing(owner.connections, self.new_id("ecn"), fields)
        if mailboxes:
            owner.mailboxes = [{"address": a, "username": a} for a in mailboxes]
        return obj

    def record_change(self, tenant, kind, object_id):
        self.deployment.record_change(tenant, kind, object_id)

    def start_update(self):
        """A batch update started by someone else."""
        return self.deployment.start_update()

    # -- the server ------------------------------------------------------------------------------
    def handle(self, method, url, headers, params, body, auth):
        path = "/" + url.split("/api/v1/", 1)[1] if "/api/v1/" in url else url
        self.log.append((method, path, headers, params, body))
        for hook in list(self.hooks):
            if hook[0] == method and re.search(hook[1], path):
                self.hooks.remove(hook)
                hook[2]()
                break  # one hook per request: a list of hooks plays out over consecutive requests
        while self.faults:
            fault_method, regex, status, code, extra_headers = self.faults.pop(0)
            retry_after = float(extra_headers["Retry-After"]) if "Retry-After" in extra_headers else None  # None: no header
            self._lab.faults.set("ce", fail_next=[{"method": fault_method, "path_regex": _below_api(regex), "status": status, "retry_after": retry_after,
                                                   "body": {"error": {"code": code, "message": "injected", "details": []}}}])
        request = self._request(method, url, headers, params, body, auth)
        response = None
        fault = self._lab.faults.pick("ce", method, request.raw_path, request.body)
        if fault is not None:
            response = self.service.fault_response(request, fault["status"], self._lab.faults.resolve_retry_after("ce", fault), fault.get("body"))
        if response is None:
            response = self.service.handle(request)
        text = response.body.decode("utf-8")
        answer = json.loads(text) if text else None
        self.answers.append(answer)
        return FakeResponse(response.status, answer, response.headers, url, method, text=text)

    def _request(self, method, url, headers, params, body, auth):
        headers = requests.structures.CaseInsensitiveDict(headers)
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % tuple(auth)).encode("utf-8")).decode("ascii")
        raw = urlsplit(url).path + ("?" + urlencode(params, doseq=True) if params else "")
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        request = ceops_lab_service.Request(self.service, method, raw, headers, data, BASE_URL)
        request.request_id = "req-%d" % len(self.log)
        return request


def _below_api(regex):
    """A path regex of the log (below /api/v1) as one for the Portal's full path (/emea/api/v1/...)."""
    return "^/%s/api/v1" % DEPLOYMENT + regex[1:] if regex.startswith("^") else regex


class ModuleRunner:
    """Runs a ce_* module's main() in-process against a FakePortal, as Ansible would run it."""

    def __init__(self, portal, monkeypatch, capsys):
        self.portal = portal
        self.capsys = capsys

        def client_factory(ce_url, token=None, username=None, password=None, **_tls):
            return ce_portal.CePortal(ce_url, token=token, username=username, password=password, transport=portal.transport(ce_url),
                                      sleep=portal.sleep, clock=portal.clock)
        monkeypatch.setattr(ce_module, "CePortal", client_factory)

    def __call__(self, name, args, check_mode=False, diff=True, auth=True):
        full = dict(ce_url=URL, ce_token=DEPLOYMENT_TOKEN) if auth else {}
        full.update(args)
        return run_module_main(self.capsys, name, full, check_mode, diff)
