# -*- coding: utf-8 -*-
"""An in-memory CE Portal behind a fake requests session, and a checker of requests against the contract.

The unit tests of the CE client and modules run against FakePortal; every request they send is
checked against docs/ce-portal-api.yaml by Contract. The tests at the end check the checker.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json
import os
import re

import pytest
import requests
import yaml
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import forget_warnings, patch_module_args, warnings_of  # noqa: F401  pylint: disable=unused-import

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import ce_module, ce_portal
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import Transport

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CONTRACT_PATH = os.path.join(REPO, "docs", "ce-portal-api.yaml")
URL = "https://ce.example.test/emea"
DEPLOYMENT_TOKEN = "deployment-admin-token"
TENANT_TOKENS = {"acme-admin-token": "acme", "globex-admin-token": "globex"}


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


# -- the fake Portal --------------------------------------------------------------------------------
class FakeResponse:
    def __init__(self, status, body=None, headers=None, url="", method="GET"):
        self.status_code = status
        self._body = body
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})
        self.text = json.dumps(body) if body is not None else ""
        self.content = self.text.encode("utf-8")
        self.reason = "reason"
        self.url = url
        self.request = type("Request", (), {"method": method})()

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class PortalError(Exception):
    def __init__(self, status, code, message, details=None, headers=None):
        super(PortalError, self).__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details or [], headers or {}


class FakeSession:
    def __init__(self, portal):
        self.portal = portal
        self.headers = {}

    def request(self, method, url, headers=None, params=None, json=None, auth=None, **kwargs):
        return self.portal.handle(method, url, dict(headers or {}), dict(params or {}), json, auth)


class FakePortal:
    """Enough of the contract for the client and the modules; ``page_size`` is small so paging is exercised."""

    def __init__(self, version="7.4.4", capabilities=None, page_size=2, tenants=("acme", "globex")):
        self.version = version
        self.capabilities = capabilities if capabilities is not None else (
            ["oauth_receive_imap"] + (["oauth_send_smtp"] if ce_portal.parse_version(version) >= (7, 6, 0) else [])
            if ce_portal.parse_version(version) >= (7, 4, 4) else [])
        self.page_size = page_size
        self.tenants = list(tenants)
        self.users = {("admin", "admin-password"): None}
        self.gateways, self.settings, self.connections, self.secrets, self.mailboxes = {}, {}, {}, {}, {}
        self.pending, self.updates = [], []
        self.update_duration, self.update_outcome, self.update_errors = 10.0, "succeeded", []
        self.now = 0.0
        self.sequence = 0
        self.log = []           # (method, path, headers, params, body) of every request
        self.faults = []        # [(method, path regex, status, code, headers)] one-shot answers
        self.hooks = []         # [(method, path regex, callable)] run once before a matching request
        self.contract = shared_contract()

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

    def add_gateway(self, name, protocol="imap", host="outlook.office365.com", port=993, security="ssl", **extra):
        gateway = {"id": self.new_id("gw"), "revision": 1, "name": name, "description": extra.get("description", ""),
                   "inbound": {"protocol": protocol, "host": host, "port": port, "security": security},
                   "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}}
        self.gateways[gateway["id"]] = gateway
        return gateway

    def add_settings(self, tenant, name, client_id="0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c", secret="s3cret", **extra):
        settings = {"id": self.new_id("oauth"), "revision": 1, "name": name, "client_id": client_id,
                    "scopes": ["https://outlook.office365.com/.default"],
                    "token_endpoint_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token"}
        settings.update(extra)
        self.settings.setdefault(tenant, {})[settings["id"]] = settings
        self.secrets[settings["id"]] = secret
        return settings

    def add_connection(self, tenant, name, gateway_id, settings_id=None, receive=False, send=False, mailboxes=()):
        connection = {"id": self.new_id("conn"), "revision": 1, "name": name, "gateway_id": gateway_id, "oauth_settings_id": settings_id,
                      "use_oauth_receive": receive, "use_oauth_send": send}
        self.connections.setdefault(tenant, {})[connection["id"]] = connection
        self.mailboxes[connection["id"]] = [{"address": a, "username": a} for a in mailboxes]
        return connection

    def start_update(self, status_after=None):
        update = {"id": self.new_id("upd"), "started": self.now, "covers": list(self.pending), "status": "queued",
                  "requested_at": "2026-11-28T12:00:00Z", "finished_at": None, "errors": [], "outcome": status_after or self.update_outcome}
        self.updates.insert(0, update)
        return update

    # -- the server ------------------------------------------------------------------------------
    def handle(self, method, url, headers, params, body, auth):
        path = "/" + url.split("/api/v1/", 1)[1] if "/api/v1/" in url else url
        self.log.append((method, path, headers, params, body))
        for hook in list(self.hooks):
            if hook[0] == method and re.search(hook[1], path):
                self.hooks.remove(hook)
                hook[2]()
                break  # one hook per request: a list of hooks plays out over consecutive requests
        for fault in list(self.faults):
            if fault[0] in ("*", method) and re.search(fault[1], path):
                self.faults.remove(fault)
                status, code, extra_headers = fault[2], fault[3], fault[4]
                return FakeResponse(status, {"error": {"code": code, "message": "injected", "details": []}},
                                    dict({"X-Request-Id": "req-fault"}, **extra_headers), url, method)
        self.tick()
        try:
            principal = self.authenticate(headers, auth)
            status, answer, extra = self.route(method, path, params, body, principal, headers)
        except PortalError as error:
            return FakeResponse(error.status, {"error": {"code": error.code, "message": error.message, "details": error.details}},
                                dict({"X-Request-Id": "req-%d" % len(self.log)}, **error.headers), url, method)
        response_headers = dict({"X-Request-Id": "req-%d" % len(self.log)}, **extra)
        if isinstance(answer, dict) and "revision" in answer:
            response_headers["ETag"] = '"%d"' % answer["revision"]
        return FakeResponse(status, answer, response_headers, url, method)

    def authenticate(self, headers, auth):
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            token = authorization[7:]
            if token == DEPLOYMENT_TOKEN:
                return None
            if token in TENANT_TOKENS:
                return TENANT_TOKENS[token]
        elif auth and tuple(auth) in self.users:
            return self.users[tuple(auth)]
        raise PortalError(401, "unauthorized", "missing or invalid credentials")

    def tick(self):
        for update in self.updates:
            if update["status"] in ("succeeded", "failed"):
                continue
            elapsed = self.now - update["started"]
            if elapsed >= self.update_duration:
                update["status"] = update["outcome"]
                update["finished_at"] = "2026-11-28T12:01:00Z"
                if update["status"] == "succeeded":
                    self.pending = [c for c in self.pending if c not in update["covers"]]
                else:
                    update["errors"] = list(self.update_errors) or ["mail server rejected the configuration"]
            elif elapsed > 0:
                update["status"] = "running"

    def page(self, items, params):
        limit = min(int(params.get("limit", 50)), self.page_size)
        start = int(params.get("cursor", 0))
        chunk = items[start:start + limit]
        more = start + limit < len(items)
        return 200, {"items": chunk, "next_cursor": str(start + limit) if more else None}, {}

    def check_tenant(self, tenant, principal):
        if tenant not in self.tenants:
            raise PortalError(404, "tenant_not_found", "no tenant %s" % tenant)
        if principal is not None and principal != tenant:
            raise PortalError(403, "forbidden", "not allowed on tenant %s" % tenant)

    def check_revision(self, headers, record):
        match = headers.get("If-Match")
        if match is not None and match != '"%d"' % record["revision"]:
            raise PortalError(412, "revision_mismatch", "revision is %d" % record["revision"])

    def record_change(self, tenant, kind, object_id):
        self.pending.append({"tenant": tenant, "kind": kind, "id": object_id, "changed_at": "2026-11-28T12:00:00Z"})

    def route(self, method, path, params, body, principal, headers):
        parts = path.strip("/").split("/")
        if parts == ["info"]:
            return 200, {"product": "CE", "version": self.version, "capabilities": self.capabilities}, {}
        if parts == ["tenants"]:
            return self.page([{"name": t, "display_name": t.title()} for t in self.tenants if principal in (None, t)], params)
        if parts[0] == "email-gateways":
            return self.route_gateways(method, parts[1:], params, body, principal, headers)
        if parts[0] == "tenants" and len(parts) >= 3:
            self.check_tenant(parts[1], principal)
            if parts[2] == "oauth-settings":
                return self.route_settings(method, parts[1], parts[3:], params, body, headers)
            if parts[2] == "email-connections":
                return self.route_connections(method, parts[1], parts[3:], params, body, headers)
        if parts[0] == "server-updates":
            return self.route_updates(method, parts[1:], params)
        raise PortalError(404, "not_found", "no route %s" % path)

    def lookup(self, table, object_id):
        if object_id not in table:
            raise PortalError(404, "not_found", "no object %s" % object_id)
        return table[object_id]

    def unique(self, table, name, except_id=None):
        if any(o["name"] == name and o["id"] != except_id for o in table.values()):
            raise PortalError(409, "name_conflict", "name %r is already used" % name, [{"field": "name", "message": "already used"}])

    def listing(self, table, params, view=dict):
        items = [view(o) for o in table.values() if "name" not in params or o["name"] == params["name"]]
        return self.page(items, params)

    def route_gateways(self, method, rest, params, body, principal, headers):
        if method != "GET" and principal is not None:
            raise PortalError(403, "forbidden", "only deployment administrators may change email gateways")
        if not rest:
            if method == "GET":
                return self.listing(self.gateways, params)
            self.unique(self.gateways, body["name"])
            gateway = dict(body, id=self.new_id("gw"), revision=1)
            self.gateways[gateway["id"]] = gateway
            self.record_change(None, "email_gateway", gateway["id"])
            return 201, gateway, {}
        gateway = self.lookup(self.gateways, rest[0])
        if method == "GET":
            return 200, gateway, {}
        self.check_revision(headers, gateway)
        if method == "PUT":
            self.unique(self.gateways, body["name"], gateway["id"])
            revision = gateway["revision"] + 1
            gateway.clear()
            gateway.update(dict(body, id=rest[0], revision=revision))
            self.record_change(None, "email_gateway", gateway["id"])
            return 200, gateway, {}
        if any(c["gateway_id"] == gateway["id"] for t in self.connections.values() for c in t.values()):
            raise PortalError(409, "in_use", "an email connection uses this gateway")
        del self.gateways[rest[0]]
        self.record_change(None, "email_gateway", rest[0])
        return 204, None, {}

    def settings_view(self, settings):
        view = dict(settings, client_secret_set=bool(self.secrets.get(settings["id"])))
        view.setdefault("client_secret_updated_at", "2026-11-28T12:00:00Z" if view["client_secret_set"] else None)
        return view

    def route_settings(self, method, tenant, rest, params, body, headers):
        table = self.settings.setdefault(tenant, {})
        if not rest:
            if method == "GET":
                return self.listing(table, params, self.settings_view)
            if not body.get("client_secret"):
                raise PortalError(400, "validation_failed", "invalid", [{"field": "client_secret", "message": "required on create"}])
            self.unique(table, body["name"])
            settings = dict((k, v) for k, v in body.items() if k != "client_secret")
            settings.update(id=self.new_id("oauth"), revision=1)
            table[settings["id"]] = settings
            self.secrets[settings["id"]] = body["client_secret"]
            self.record_change(tenant, "oauth_settings", settings["id"])
            return 201, self.settings_view(settings), {}
        settings = self.lookup(table, rest[0])
        if method == "GET":
            return 200, self.settings_view(settings), {}
        self.check_revision(headers, settings)
        if method == "PUT":
            self.unique(table, body["name"], settings["id"])
            revision = settings["revision"] + 1
            settings.update((k, v) for k, v in body.items() if k != "client_secret")
            settings["revision"] = revision
            if body.get("client_secret"):
                self.secrets[settings["id"]] = body["client_secret"]
                settings["client_secret_updated_at"] = "2026-11-28T13:00:00Z"
            self.record_change(tenant, "oauth_settings", settings["id"])
            return 200, self.settings_view(settings), {}
        if any(c["oauth_settings_id"] == settings["id"] for c in self.connections.get(tenant, {}).values()):
            raise PortalError(409, "in_use", "an email connection uses these settings")
        del table[rest[0]]
        self.record_change(tenant, "oauth_settings", rest[0])
        return 204, None, {}

    def validate_connection(self, tenant, body):
        gateway = self.gateways.get(body["gateway_id"])
        if gateway is None:
            raise PortalError(400, "validation_failed", "invalid", [{"field": "gateway_id", "message": "unknown gateway"}])
        if body.get("use_oauth_receive") and gateway["inbound"]["protocol"] == "pop3":
            raise PortalError(400, "oauth_not_supported", "OAuth is not supported for POP3")
        if body.get("use_oauth_send") and "oauth_send_smtp" not in self.capabilities:
            raise PortalError(400, "oauth_not_supported", "OAuth for SMTP is not supported by this release")
        if (body.get("use_oauth_receive") or body.get("use_oauth_send")) and not body.get("oauth_settings_id"):
            raise PortalError(400, "validation_failed", "invalid", [{"field": "oauth_settings_id", "message": "required with OAuth"}])

    def route_connections(self, method, tenant, rest, params, body, headers):
        table = self.connections.setdefault(tenant, {})
        if not rest:
            if method == "GET":
                return self.listing(table, params)
            self.validate_connection(tenant, body)
            self.unique(table, body["name"])
            connection = dict(body, id=self.new_id("conn"), revision=1)
            table[connection["id"]] = connection
            self.mailboxes[connection["id"]] = []
            self.record_change(tenant, "email_connection", connection["id"])
            return 201, connection, {}
        connection = self.lookup(table, rest[0])
        if rest[1:] == ["mailboxes"]:
            return self.page(self.mailboxes.get(connection["id"], []), params)
        if method == "GET":
            return 200, connection, {}
        self.check_revision(headers, connection)
        if method == "PUT":
            self.validate_connection(tenant, body)
            self.unique(table, body["name"], connection["id"])
            revision = connection["revision"] + 1
            connection.update(body)
            connection["revision"] = revision
            self.record_change(tenant, "email_connection", connection["id"])
            return 200, connection, {}
        del table[rest[0]]
        self.record_change(tenant, "email_connection", rest[0])
        return 204, None, {}

    @staticmethod
    def update_view(update):
        return dict((k, update[k]) for k in ("id", "status", "requested_at", "finished_at", "errors"))

    def route_updates(self, method, rest, params):
        if rest == ["pending"]:
            return 200, {"pending": bool(self.pending), "changes": list(self.pending)}, {}
        if rest:
            return 200, self.update_view(self.lookup(dict((u["id"], u) for u in self.updates), rest[0])), {}
        if method == "GET":
            return self.page([self.update_view(u) for u in self.updates], params)
        active = next((u for u in self.updates if u["status"] in ("queued", "running")), None)
        if active:
            raise PortalError(409, "update_in_progress", "an update is in progress", [{"field": "id", "message": active["id"]}])
        return 202, self.update_view(self.start_update()), {}


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
        module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
        full = dict(ce_url=URL, ce_token=DEPLOYMENT_TOKEN) if auth else {}
        full.update(args)
        full.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        self.capsys.readouterr()
        forget_warnings()
        try:
            with patch_module_args(full):
                with pytest.raises(SystemExit):
                    module.main()
        finally:
            forget_warnings()
        out = self.capsys.readouterr().out
        result = json.loads(out)
        result["_raw"] = out
        return result


# -- tests of the fake and the checker --------------------------------------------------------------
@pytest.fixture
def contract():
    return Contract()


def test_contract_accepts_valid_requests(contract):
    gateway = {"name": "Exchange Online", "inbound": {"protocol": "imap", "host": "h", "port": 993, "security": "ssl"},
               "outbound": {"host": "h", "port": 587, "security": "starttls"}}
    assert contract.check("POST", "/email-gateways", {}, {}, gateway) == []
    assert contract.check("PUT", "/email-gateways/gw-1", {"If-Match": '"3"'}, {}, gateway) == []
    assert contract.check("GET", "/tenants/acme/oauth-settings", {}, {"limit": 200, "name": "x"}, None) == []


@pytest.mark.parametrize("method,path,headers,body,expected", [
    ("PATCH", "/email-gateways/gw-1", {}, None, "no PATCH"),
    ("GET", "/gateways", {}, None, "no such path"),
    ("PUT", "/tenants/acme/email-connections/c-1", {}, {"name": "x", "gateway_id": "g"}, "If-Match"),
    ("POST", "/tenants/acme/email-connections", {}, {"name": "x"}, "'gateway_id' missing"),
    ("POST", "/tenants/acme/email-connections", {}, {"name": "x", "gateway_id": "g", "id": "c"}, "unknown field 'id'"),
    ("POST", "/tenants/Acme/oauth-settings", {}, {"name": "x", "client_id": "c", "scopes": ["s"], "token_endpoint_url": "u"}, "does not match"),
    ("POST", "/tenants/acme/oauth-settings", {}, {"name": "x", "client_id": "c", "scopes": [], "token_endpoint_url": "u"}, "fewer than 1"),
    ("POST", "/email-gateways", {}, {"name": "x", "inbound": {"host": "h", "port": 993, "security": "ssl"},
                                     "outbound": {"host": "h", "port": 587, "security": "tls"}}, "'protocol' missing"),
])
def test_contract_finds_invalid_requests(contract, method, path, headers, body, expected):
    problems = contract.check(method, path, headers, {}, body)
    assert any(expected in p for p in problems), problems
