"""The CE Portal emulator ("ce"): contract rules of docs/ce-portal-api.yaml, lab settings, counters.

Responses are checked against the contract's own schemas (jsonschema, test-only) where the contract
has one. Batch updates run with update_seconds set small, so the suite stays fast.
"""

import datetime
import hashlib
import json
import os
import time

import jsonschema
import pytest
import requests
import yaml
from ceops_lab.admin import LabError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRACT_FILE = os.path.join(REPO, "docs", "ce-portal-api.yaml")
CLIENT_ID = "0f7d3c2a-5b1e-4c8d-9a6f-2e4b7c9d1a35"
SECRET = "Abc8Q~first-secret-value-0123456789abcdefg"
EXO_GATEWAY = {"name": "Exchange Online", "description": "Microsoft 365",
               "inbound": {"host": "outlook.office365.com", "port": 993, "security": "ssl", "protocol": "imap"},
               "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}}
POP_GATEWAY = {"name": "EXO POP3", "inbound": {"host": "outlook.office365.com", "port": 995, "security": "ssl", "protocol": "pop3"},
               "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}}


def oauth_body(name="Exchange Online OAuth", secret=SECRET, **overrides):
    body = {"name": name, "client_id": CLIENT_ID, "scopes": ["https://outlook.office365.com/.default"],
            "token_endpoint_url": "https://login.microsoftonline.com/6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51/oauth2/v2.0/token"}
    if secret is not None:
        body["client_secret"] = secret
    body.update(overrides)
    return body


# ----- the contract's schemas (PyYAML and jsonschema are test dependencies, never the lab's) ----------------
def _load_contract():
    if not os.path.exists(CONTRACT_FILE):
        return None
    with open(CONTRACT_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


CONTRACT = _load_contract()


def _response_schema(path, method, status):
    content = CONTRACT["paths"][path][method]["responses"][str(status)]["content"]
    schema = dict(content["application/json"]["schema"])
    schema["components"] = CONTRACT["components"]
    return schema


def _rfc3339(value):
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.datetime.fromisoformat(value[:-1] + "+00:00")


def check(response, status, path=None, method="get"):
    """Assert the status, the X-Request-Id header, the error shape, and the contract's schema."""
    assert response.status_code == status, "%s %s -> %s %s" % (response.request.method, response.url, response.status_code, response.text)
    assert response.headers.get("X-Request-Id"), response.headers
    if status == 204:
        assert response.content == b""
        return None
    body = response.json()
    if status >= 400:
        error = body["error"]
        assert set(error) == {"code", "message", "details"} and isinstance(error["message"], str) and error["message"]
        for detail in error["details"]:
            assert set(detail) == {"field", "message"}
        return body
    if path is not None and CONTRACT is not None:
        jsonschema.Draft202012Validator(_response_schema(path, method, status)).validate(body)
    return body


def error_code(response, status, code):
    body = check(response, status)
    assert body["error"]["code"] == code, body
    return body["error"]


# ----- a Portal caller -----------------------------------------------------------------------------------------
class Portal:
    """Calls one deployment's Portal API as its deployment administrator or a tenant administrator."""

    def __init__(self, lab, deployment, tenant=None, basic=False):
        self.lab = lab
        self.ca = lab.vars["lab_ca_path"]
        entry = lab.vars["lab_ce_deployments"][deployment]
        self.deployment = deployment
        self.base = entry["url"] + "/api/v1"
        creds = entry["tenants"][tenant] if tenant else entry
        self.token = creds["admin_token"]
        self.basic = (creds["admin_username"], creds["admin_password"]) if basic else None

    def call(self, method, path, body=None, headers=None, params=None, auth="default"):
        all_headers = dict(headers or {})
        kwargs = {}
        if auth == "default":
            if self.basic:
                kwargs["auth"] = self.basic
            else:
                all_headers["Authorization"] = "Bearer " + self.token
        elif auth is not None:
            all_headers["Authorization"] = auth
        url = path if path.startswith("https://") else self.base + path
        return requests.request(method, url, json=body, headers=all_headers, params=params, verify=self.ca, timeout=10, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def put(self, path, body=None, **kwargs):
        return self.call("PUT", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)

    def create(self, path, body, template):
        return check(self.post(path, body), 201, template, "post")

    def items(self, path, params=None, template=None):
        """Every item of a paged list, following next_cursor; (items, number of pages)."""
        params, items, pages = dict(params or {}), [], 0
        while True:
            if template is None and CONTRACT is not None and path in CONTRACT["paths"]:
                template = path
            page = check(self.get(path, params=params), 200, template)
            items += page["items"]
            pages += 1
            if page["next_cursor"] is None:
                return items, pages
            params["cursor"] = page["next_cursor"]
            assert pages < 100

    def wait_update(self, update_id, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            update = check(self.get("/server-updates/" + update_id), 200, "/server-updates/{update_id}")
            if update["status"] in ("succeeded", "failed"):
                return update
            time.sleep(0.05)
        raise AssertionError("update %s did not finish" % update_id)


@pytest.fixture
def ce(fresh_lab):
    """The lab after a reset, with short batch updates everywhere."""
    for deployment in ("emea", "us", "legacy"):
        fresh_lab.ce_settings(deployment, update_seconds=0.2)
    return fresh_lab


@pytest.fixture
def emea(ce):
    return Portal(ce, "emea")


@pytest.fixture
def us(ce):
    return Portal(ce, "us")


@pytest.fixture
def legacy(ce):
    return Portal(ce, "legacy")


# ----- seed, vars, info -------------------------------------------------------------------------------------------
def test_contract_file_is_present():
    assert CONTRACT is not None, "responses are validated against %s" % CONTRACT_FILE


def test_vars_and_seed(ce, emea, us, legacy):
    variables = ce.vars
    assert variables["lab_ce_url"].startswith("https://127.0.0.1:")
    deployments = variables["lab_ce_deployments"]
    assert set(deployments) == {"emea", "us", "legacy"}
    expected = {"emea": ("7.4.4", {"acme", "globex", "initech"}), "us": ("7.6.0", {"umbrella", "hooli", "stark"}), "legacy": ("7.4.3", {"oldco"})}
    for name, (version, tenants) in expected.items():
        entry = deployments[name]
        assert set(entry) == {"url", "version", "admin_token", "admin_username", "admin_password", "tenants"}
        assert entry["url"] == "%s/%s" % (variables["lab_ce_url"], name) and entry["version"] == version
        assert set(entry["tenants"]) == tenants
        for tenant in entry["tenants"].values():
            assert set(tenant) == {"admin_token", "admin_username", "admin_password", "mailboxes"}
            assert 2 <= len(tenant["mailboxes"]) <= 3
    assert deployments["emea"]["tenants"]["acme"]["mailboxes"][0].endswith("@contoso.onmicrosoft.com")
    assert deployments["us"]["tenants"]["hooli"]["mailboxes"][0].endswith("@northwind.onmicrosoft.com")
    with open(os.path.join(ce.state_dir, "lab-vars.yml"), encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["lab_ce_deployments"] == deployments

    capabilities = {"emea": ["oauth_receive_imap"], "us": ["oauth_receive_imap", "oauth_send_smtp"], "legacy": []}
    for portal in (emea, us, legacy):
        info = check(portal.get("/info"), 200, "/info")
        assert info == {"product": "CE", "version": expected[portal.deployment][0], "capabilities": capabilities[portal.deployment]}

    assert check(emea.get("/email-gateways"), 200, "/email-gateways") == {"items": [], "next_cursor": None}
    (gateway,) = check(us.get("/email-gateways"), 200, "/email-gateways")["items"]
    assert gateway["name"] == "Exchange Online" and gateway["inbound"] == EXO_GATEWAY["inbound"] and gateway["outbound"] == EXO_GATEWAY["outbound"]
    (connection,) = check(us.get("/tenants/umbrella/email-connections"), 200, "/tenants/{tenant}/email-connections")["items"]
    assert connection["gateway_id"] == gateway["id"] and connection["use_oauth_receive"] is False
    (pop,) = check(legacy.get("/email-gateways"), 200, "/email-gateways")["items"]
    assert pop["name"] == "Legacy POP" and pop["inbound"]["protocol"] == "pop3"
    for portal in (emea, us, legacy):
        assert check(portal.get("/server-updates/pending"), 200, "/server-updates/pending") == {"pending": False, "changes": []}
    state = ce.ce_state("us")
    assert state["applied"]["email_gateways"] == state["configured"]["email_gateways"] == [gateway]


# ----- authentication and authorisation ----------------------------------------------------------------------------
def test_authentication(ce, emea, us):
    error = error_code(emea.get("/info", auth=None), 401, "unauthorized")
    assert error["details"] == []
    response = emea.get("/info", auth=None)
    assert "Bearer" in response.headers["WWW-Authenticate"] and "Basic" in response.headers["WWW-Authenticate"]
    error_code(emea.get("/info", auth="Bearer wrong"), 401, "unauthorized")
    error_code(emea.get("/info", auth="Token " + emea.token), 401, "unauthorized")
    error_code(emea.get("/info", auth="Basic !!!notbase64"), 401, "unauthorized")
    # Credentials of one deployment are invalid on another.
    error_code(us.get("/info", auth="Bearer " + emea.token), 401, "unauthorized")
    entry = ce.vars["lab_ce_deployments"]["emea"]
    response = requests.get(us.base + "/info", auth=(entry["admin_username"], entry["admin_password"]), verify=us.ca, timeout=10)
    error_code(response, 401, "unauthorized")
    response = requests.get(emea.base + "/info", auth=(entry["admin_username"], "wrong"), verify=emea.ca, timeout=10)
    error_code(response, 401, "unauthorized")
    # Basic works for deployment and tenant administrators.
    check(Portal(ce, "emea", basic=True).get("/info"), 200, "/info")
    check(Portal(ce, "emea", "acme", basic=True).get("/tenants/acme/oauth-settings"), 200, "/tenants/{tenant}/oauth-settings")
    # Unknown deployments and endpoints.
    response = requests.get(ce.vars["lab_ce_url"] + "/apac/api/v1/info", headers={"Authorization": "Bearer " + emea.token}, verify=emea.ca, timeout=10)
    error_code(response, 404, "not_found")
    error_code(emea.get("/nothing-here"), 404, "not_found")
    error_code(emea.call("PATCH", "/email-gateways"), 405, "method_not_allowed")


def test_authorisation(ce, emea):
    acme = Portal(ce, "emea", "acme")
    # A tenant administrator sees only its tenant, reads gateways, and may not write them.
    assert check(acme.get("/tenants"), 200, "/tenants")["items"] == [{"name": "acme", "display_name": "Acme Corporation"}]
    assert [t["name"] for t in check(emea.get("/tenants"), 200, "/tenants")["items"]] == ["acme", "globex", "initech"]
    gateway = emea.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    check(acme.get("/email-gateways"), 200, "/email-gateways")
    check(acme.get("/email-gateways/" + gateway["id"]), 200, "/email-gateways/{gateway_id}")
    error_code(acme.post("/email-gateways", dict(EXO_GATEWAY, name="Mine")), 403, "forbidden")
    error_code(acme.put("/email-gateways/" + gateway["id"], EXO_GATEWAY), 403, "forbidden")
    error_code(acme.delete("/email-gateways/" + gateway["id"]), 403, "forbidden")
    # Another tenant is forbidden for a tenant administrator, whether it exists or not.
    for path in ("/tenants/globex/oauth-settings", "/tenants/globex/email-connections", "/tenants/nosuch/oauth-settings"):
        error_code(acme.get(path), 403, "forbidden")
    error_code(acme.post("/tenants/globex/oauth-settings", oauth_body()), 403, "forbidden")
    # The deployment administrator gets tenant_not_found for a tenant that does not exist.
    error_code(emea.get("/tenants/nosuch/oauth-settings"), 404, "tenant_not_found")
    error_code(emea.get("/tenants/umbrella/email-connections"), 404, "tenant_not_found")  # a tenant of another deployment
    # Both may run batch updates and read their state.
    check(acme.get("/server-updates"), 200, "/server-updates")
    assert ce.writes("ce") == 5  # one gateway created, four writes refused (refused writes count too)


# ----- email gateways --------------------------------------------------------------------------------------------------
def test_gateway_crud_etag_and_validation(ce, emea):
    created = emea.post("/email-gateways", EXO_GATEWAY)
    gateway = check(created, 201, "/email-gateways", "post")
    assert created.headers["ETag"] == '"1"' and gateway["revision"] == 1 and gateway["description"] == "Microsoft 365"
    assert created.headers["Location"].endswith("/emea/api/v1/email-gateways/" + gateway["id"])
    path = "/email-gateways/" + gateway["id"]
    response = emea.get(path)
    assert check(response, 200, "/email-gateways/{gateway_id}") == gateway and response.headers["ETag"] == '"1"'

    # PUT replaces the whole representation: no description now; without If-Match it is accepted.
    changed = dict(EXO_GATEWAY, inbound=dict(EXO_GATEWAY["inbound"], port=143, security="starttls"))
    del changed["description"]
    response = emea.put(path, changed)
    updated = check(response, 200, "/email-gateways/{gateway_id}", "put")
    assert updated["revision"] == 2 and response.headers["ETag"] == '"2"' and "description" not in updated
    assert updated["inbound"]["port"] == 143
    # A stale If-Match changes nothing.
    error = error_code(emea.put(path, EXO_GATEWAY, headers={"If-Match": '"1"'}), 412, "revision_mismatch")
    assert error["details"][0]["field"] == "If-Match"
    assert check(emea.get(path), 200)["revision"] == 2
    error_code(emea.put(path, EXO_GATEWAY, headers={"If-Match": "2"}), 412, "revision_mismatch")  # not an entity tag
    error_code(emea.put(path, EXO_GATEWAY, headers={"If-Match": 'W/"2"'}), 412, "revision_mismatch")  # strong comparison
    response = emea.put(path, EXO_GATEWAY, headers={"If-Match": '"2"'})
    assert check(response, 200)["revision"] == 3 and check(emea.get(path), 200)["description"] == "Microsoft 365"

    # Names are unique per deployment, on create and on rename; ?name= filters.
    other = emea.create("/email-gateways", POP_GATEWAY, "/email-gateways")
    error = error_code(emea.post("/email-gateways", EXO_GATEWAY), 409, "name_conflict")
    assert error["details"][0]["field"] == "name"
    error_code(emea.put("/email-gateways/" + other["id"], dict(POP_GATEWAY, name="Exchange Online")), 409, "name_conflict")
    listed = check(emea.get("/email-gateways", params={"name": "EXO POP3"}), 200, "/email-gateways")
    assert [g["id"] for g in listed["items"]] == [other["id"]] and listed["next_cursor"] is None
    assert check(emea.get("/email-gateways", params={"name": "exo pop3"}), 200)["items"] == []  # exact match
    # Another deployment may use the same name.
    check(Portal(ce, "legacy").post("/email-gateways", EXO_GATEWAY), 201)

    # Validation: every broken field is named.
    bad = {"name": "x" * 129, "inbound": {"host": "h", "port": 0, "security": "tls", "protocol": "smtp"},
           "outbound": {"host": "h", "port": 65536, "security": "ssl"}}
    error = error_code(emea.post("/email-gateways", bad), 400, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"name", "inbound.port", "inbound.security", "inbound.protocol", "outbound.port"}
    error = error_code(emea.post("/email-gateways", {"name": "n", "inbound": {"host": "h", "port": True, "security": "ssl"}}), 400, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"inbound.port", "inbound.protocol", "outbound"}
    error_code(emea.call("POST", "/email-gateways", headers={"Content-Type": "application/json"}), 400, "validation_failed")
    error_code(emea.post("/email-gateways", ["not", "an", "object"]), 400, "validation_failed")

    # Delete: stale If-Match 412, then 204, then 404.
    error_code(emea.delete(path, headers={"If-Match": '"1"'}), 412, "revision_mismatch")
    check(emea.delete(path, headers={"If-Match": '"3"'}), 204)
    error_code(emea.get(path), 404, "not_found")
    error_code(emea.put(path, EXO_GATEWAY), 404, "not_found")
    error_code(emea.delete(path), 404, "not_found")


# ----- oauth settings -----------------------------------------------------------------------------------------------------
def test_oauth_settings_secret_is_write_only(ce, emea):
    acme = Portal(ce, "emea", "acme")
    base = "/tenants/acme/oauth-settings"
    error = error_code(acme.post(base, oauth_body(secret=None)), 400, "validation_failed")
    assert [d["field"] for d in error["details"]] == ["client_secret"]
    error = error_code(acme.post(base, oauth_body(secret="")), 400, "validation_failed")
    assert [d["field"] for d in error["details"]] == ["client_secret"]
    bad = oauth_body(client_id="not-a-uuid", scopes=[], token_endpoint_url="http://login.microsoftonline.com/x/oauth2/v2.0/token", name="")
    error = error_code(acme.post(base, bad), 400, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"name", "client_id", "scopes", "token_endpoint_url"}

    created = acme.post(base, oauth_body())
    settings = check(created, 201, base.replace("acme", "{tenant}"), "post")
    assert "client_secret" not in settings and settings["client_secret_set"] is True
    assert created.headers["ETag"] == '"1"'
    first_update = _rfc3339(settings["client_secret_updated_at"])
    path = "%s/%s" % (base, settings["id"])
    assert SECRET not in created.text

    def fingerprint():
        (stored,) = ce.ce_state("emea")["configured"]["tenants"]["acme"]["oauth_settings"]
        return stored["client_secret_sha256_8"]

    assert fingerprint() == hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    # PUT without client_secret keeps it (and its timestamp); with it replaces it.
    kept = check(acme.put(path, oauth_body(secret=None, scopes=["https://outlook.office365.com/.default", "offline_access"]),
                          headers={"If-Match": '"1"'}), 200, "/tenants/{tenant}/oauth-settings/{settings_id}", "put")
    assert kept["revision"] == 2 and kept["client_secret_set"] is True
    assert kept["client_secret_updated_at"] == settings["client_secret_updated_at"] and fingerprint() == hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    replaced = check(acme.put(path, oauth_body(secret="second-secret")), 200)
    assert replaced["revision"] == 3 and _rfc3339(replaced["client_secret_updated_at"]) > first_update
    assert fingerprint() == hashlib.sha256(b"second-secret").hexdigest()[:8]
    assert check(acme.get(path), 200, "/tenants/{tenant}/oauth-settings/{settings_id}") == replaced

    # Secrets appear nowhere: not in reads, not in the lab state, not in the log.
    everything = json.dumps([ce.state(), ce.ce_state("emea"), acme.get(base).json()])
    assert SECRET not in everything and "second-secret" not in everything
    with open(os.path.join(ce.state_dir, "lab.log"), encoding="utf-8") as handle:
        log = handle.read()
    assert SECRET not in log and "second-secret" not in log

    # Names are unique per tenant; another tenant may reuse one.
    error_code(acme.post(base, oauth_body()), 409, "name_conflict")
    check(emea.post("/tenants/globex/oauth-settings", oauth_body()), 201)
    assert [o["id"] for o in check(acme.get(base, params={"name": "Exchange Online OAuth"}), 200)["items"]] == [settings["id"]]
    error_code(acme.put(path, oauth_body(), headers={"If-Match": '"2"'}), 412, "revision_mismatch")
    error_code(acme.get(base + "/oas_000000000000"), 404, "not_found")
    check(acme.delete(path), 204)
    error_code(acme.get(path), 404, "not_found")


def test_secret_accessor_is_python_only():
    """What CE would use (the applied secret) is readable in-process only, for other emulators."""
    from ceops_lab.ce_portal import CePortalService

    class FakeLab:
        pass

    service = CePortalService(FakeLab())
    deployment = service.deployments["emea"]
    tenant = deployment.tenant("acme")
    settings = deployment.create_oauth_settings(tenant, oauth_body())
    assert service.oauth_client_secret("emea", "acme", settings["id"], applied=False) == SECRET
    assert service.oauth_client_secret("emea", "acme", settings["id"]) is None  # not applied yet
    deployment.settings["update_seconds"] = 0
    deployment.start_update()
    assert service.oauth_client_secret("emea", "acme", settings["id"]) == SECRET
    assert service.applied("emea")["tenants"]["acme"]["oauth_settings"][settings["id"]]["_secret"] == SECRET
    assert SECRET not in json.dumps(service.snapshot())


# ----- email connections -------------------------------------------------------------------------------------------------
def test_email_connections_and_oauth_rules(ce, emea, us, legacy):
    imap = emea.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    pop = emea.create("/email-gateways", POP_GATEWAY, "/email-gateways")
    acme = Portal(ce, "emea", "acme")
    settings = acme.create("/tenants/acme/oauth-settings", oauth_body(), "/tenants/{tenant}/oauth-settings")
    globex_settings = emea.create("/tenants/globex/oauth-settings", oauth_body(), "/tenants/{tenant}/oauth-settings")
    base = "/tenants/acme/email-connections"
    template = "/tenants/{tenant}/email-connections"

    def body(**overrides):
        result = {"name": "Exchange Online", "gateway_id": imap["id"], "oauth_settings_id": settings["id"], "use_oauth_receive": True}
        result.update(overrides)
        return result

    # OAuth refusals, each with its own reason.
    error = error_code(acme.post(base, body(gateway_id=pop["id"])), 400, "oauth_not_supported")
    assert error["details"][0]["field"] == "use_oauth_receive" and "POP3" in error["message"]
    error = error_code(acme.post(base, body(use_oauth_send=True)), 400, "oauth_not_supported")  # 7.4.4 has no oauth_send_smtp
    assert error["details"][0]["field"] == "use_oauth_send"
    error = error_code(acme.post(base, body(oauth_settings_id=None)), 400, "oauth_not_supported")
    assert error["details"][0]["field"] == "oauth_settings_id"
    # Broken references are validation errors.
    error = error_code(acme.post(base, body(gateway_id="egw_000000000000", oauth_settings_id=globex_settings["id"])), 400, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"gateway_id", "oauth_settings_id"}
    error = error_code(acme.post(base, {"name": "x", "use_oauth_receive": "yes"}), 400, "validation_failed")
    assert {d["field"] for d in error["details"]} == {"gateway_id", "use_oauth_receive"}
    # POP3 without OAuth is fine.
    check(acme.post(base, {"name": "POP", "gateway_id": pop["id"]}), 201)

    created = acme.post(base, body())
    connection = check(created, 201, template, "post")
    assert connection == {"id": connection["id"], "revision": 1, "name": "Exchange Online", "gateway_id": imap["id"],
                          "oauth_settings_id": settings["id"], "use_oauth_receive": True, "use_oauth_send": False}
    path = "%s/%s" % (base, connection["id"])
    assert created.headers["ETag"] == '"1"'
    error_code(acme.post(base, body()), 409, "name_conflict")
    by_gateway = check(acme.get(base, params={"gateway_id": imap["id"]}), 200, template)["items"]
    assert [c["id"] for c in by_gateway] == [connection["id"]]
    assert check(acme.get(base, params={"name": "POP"}), 200)["items"][0]["gateway_id"] == pop["id"]

    mailboxes = check(acme.get(path + "/mailboxes"), 200, "/tenants/{tenant}/email-connections/{connection_id}/mailboxes")
    assert [m["address"] for m in mailboxes["items"]] == ce.vars["lab_ce_deployments"]["emea"]["tenants"]["acme"]["mailboxes"]
    assert all(m["username"] == m["address"] for m in mailboxes["items"])
    error_code(acme.get(base + "/ecn_000000000000/mailboxes"), 404, "not_found")

    # Referenced objects cannot go, nor can the gateway switch to POP3 under an OAuth connection.
    error = error_code(emea.delete("/email-gateways/" + imap["id"]), 409, "in_use")
    assert connection["id"] in error["details"][0]["message"]
    error_code(acme.delete("/tenants/acme/oauth-settings/" + settings["id"]), 409, "in_use")
    error_code(emea.put("/email-gateways/" + imap["id"], dict(EXO_GATEWAY, inbound=POP_GATEWAY["inbound"])), 400, "oauth_not_supported")

    # PUT replaces everything: omitted flags fall back to false, oauth settings to null.
    response = acme.put(path, {"name": "Exchange Online", "gateway_id": imap["id"]}, headers={"If-Match": '"1"'})
    plain = check(response, 200, template + "/{connection_id}", "put")
    assert plain["revision"] == 2 and plain["oauth_settings_id"] is None and plain["use_oauth_receive"] is False
    assert response.headers["ETag"] == '"2"'
    error_code(acme.delete(path, headers={"If-Match": '"1"'}), 412, "revision_mismatch")
    check(acme.delete("/tenants/acme/oauth-settings/" + settings["id"]), 204)
    check(acme.delete(path), 204)
    error_code(acme.get(path), 404, "not_found")

    # us (7.6.0) supports sending with OAuth; legacy (7.4.3) supports no OAuth at all.
    (us_gateway,) = check(us.get("/email-gateways"), 200)["items"]
    us_settings = us.create("/tenants/hooli/oauth-settings", oauth_body(), "/tenants/{tenant}/oauth-settings")
    check(us.post("/tenants/hooli/email-connections", body(gateway_id=us_gateway["id"], oauth_settings_id=us_settings["id"], use_oauth_send=True)), 201)
    (legacy_gateway,) = check(legacy.get("/email-gateways"), 200)["items"]
    legacy_imap = legacy.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    legacy_settings = legacy.create("/tenants/oldco/oauth-settings", oauth_body(), "/tenants/{tenant}/oauth-settings")
    error = error_code(legacy.post("/tenants/oldco/email-connections", body(gateway_id=legacy_imap["id"], oauth_settings_id=legacy_settings["id"])),
                       400, "oauth_not_supported")
    assert "7.4.3" in error["message"]
    error_code(legacy.delete("/email-gateways/" + legacy_gateway["id"]), 409, "in_use")  # the seeded POP connection uses it


# ----- paging ----------------------------------------------------------------------------------------------------------------
def test_paging_with_cursors(ce, emea):
    base = "/tenants/initech/oauth-settings"
    ids = [emea.create(base, oauth_body(name="settings %d" % n), "/tenants/{tenant}/oauth-settings")["id"] for n in range(5)]
    first = check(emea.get(base, params={"limit": 2}), 200, "/tenants/{tenant}/oauth-settings")
    assert [o["id"] for o in first["items"]] == ids[:2] and first["next_cursor"]
    items, pages = emea.items(base, {"limit": 2}, "/tenants/{tenant}/oauth-settings")
    assert [o["id"] for o in items] == ids and pages == 3
    # Keyset paging: deleting an item already returned neither repeats nor skips the others.
    check(emea.delete("%s/%s" % (base, ids[0])), 204)
    second = check(emea.get(base, params={"limit": 2, "cursor": first["next_cursor"]}), 200)
    assert [o["id"] for o in second["items"]] == ids[2:4]
    # The lab's page_size makes pages smaller than limit; the default limit is 50.
    ce.ce_settings("emea", page_size=1)
    items, pages = emea.items(base, template="/tenants/{tenant}/oauth-settings")
    assert [o["id"] for o in items] == ids[1:] and pages == 4
    ce.ce_settings("emea", page_size=None)
    assert emea.items(base, template="/tenants/{tenant}/oauth-settings") == (items, 1)
    ce.set_faults("ce", page_size=2)
    assert emea.items("/tenants")[1] == 2
    ce.clear_faults("ce")

    for limit in ("0", "201", "ten"):
        error = error_code(emea.get(base, params={"limit": limit}), 400, "validation_failed")
        assert error["details"][0]["field"] == "limit"
    check(emea.get(base, params={"limit": 200}), 200)
    assert error_code(emea.get(base, params={"cursor": "garbage!"}), 400, "validation_failed")["details"][0]["field"] == "cursor"
    cursor = check(emea.get(base, params={"limit": 1}), 200)["next_cursor"]
    error_code(emea.get("/tenants/acme/oauth-settings", params={"cursor": cursor}), 400, "validation_failed")  # another list
    filtered = check(emea.get(base, params={"limit": 1, "name": "settings 1"}), 200)
    assert filtered["next_cursor"] is None
    # A cursor remembers its filters; repeating them is fine, changing them is not.
    ce.ce_settings("emea", page_size=1)
    emea.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    emea.create("/email-gateways", POP_GATEWAY, "/email-gateways")
    page = check(emea.get("/email-gateways"), 200)
    assert page["next_cursor"]
    assert check(emea.get("/email-gateways", params={"cursor": page["next_cursor"]}), 200)["items"][0]["name"] == "EXO POP3"
    page = check(emea.get("/email-gateways", params={"name": "EXO POP3"}), 200)
    assert page["next_cursor"] is None and len(page["items"]) == 1


# ----- pending configuration and batch updates -----------------------------------------------------------------------------
def test_batch_update_lifecycle(ce, emea):
    ce.ce_settings("emea", update_seconds=1.0)
    gateway = emea.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    settings = emea.create("/tenants/acme/oauth-settings", oauth_body(), "/tenants/{tenant}/oauth-settings")
    pending = check(emea.get("/server-updates/pending"), 200, "/server-updates/pending")
    assert pending["pending"] is True
    assert [(c.get("tenant"), c["kind"], c["id"]) for c in pending["changes"]] == [
        (None, "email_gateway", gateway["id"]), ("acme", "oauth_settings", settings["id"])]
    assert "tenant" not in pending["changes"][0]  # deployment-wide: the contract types tenant as a string
    for change in pending["changes"]:
        _rfc3339(change["changed_at"])
    # A tenant administrator sees its own and the deployment-wide changes only.
    globex = Portal(ce, "emea", "globex")
    assert [c["id"] for c in check(globex.get("/server-updates/pending"), 200)["changes"]] == [gateway["id"]]
    assert ce.ce_state("emea")["applied"]["email_gateways"] == []

    response = emea.post("/server-updates")
    update = check(response, 202, "/server-updates", "post")
    assert update["status"] == "queued" and update["finished_at"] is None and update["errors"] == []
    assert response.headers["Location"].endswith("/server-updates/" + update["id"])
    _rfc3339(update["requested_at"])
    # Only one at a time; the running update's id is in details[0].
    error = error_code(globex.post("/server-updates"), 409, "update_in_progress")
    assert error["details"][0] == {"field": "id", "message": update["id"]}
    # A change made while the update runs stays pending after it.
    connection = emea.create("/tenants/acme/email-connections", {"name": "EXO", "gateway_id": gateway["id"], "oauth_settings_id": settings["id"],
                                                                 "use_oauth_receive": True}, "/tenants/{tenant}/email-connections")
    statuses = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        current = check(emea.get("/server-updates/" + update["id"]), 200, "/server-updates/{update_id}")
        statuses.add(current["status"])
        if current["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert statuses >= {"running", "succeeded"} and current["errors"] == []
    assert _rfc3339(current["finished_at"]) >= _rfc3339(current["requested_at"])
    pending = check(emea.get("/server-updates/pending"), 200, "/server-updates/pending")
    assert [(c["kind"], c["id"]) for c in pending["changes"]] == [("email_connection", connection["id"])]
    state = ce.ce_state("emea")
    assert state["applied"]["update_id"] == update["id"]
    assert [g["id"] for g in state["applied"]["email_gateways"]] == [gateway["id"]]
    assert [o["id"] for o in state["applied"]["tenants"]["acme"]["oauth_settings"]] == [settings["id"]]
    assert state["applied"]["tenants"]["acme"]["oauth_settings"][0]["client_secret_sha256_8"] == hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    assert state["applied"]["tenants"]["acme"]["email_connections"] == []
    assert [c["id"] for c in state["configured"]["tenants"]["acme"]["email_connections"]] == [connection["id"]]

    second = check(emea.post("/server-updates"), 202)
    assert emea.wait_update(second["id"])["status"] == "succeeded"
    assert check(emea.get("/server-updates/pending"), 200) == {"pending": False, "changes": []}
    assert len(ce.ce_state("emea")["applied"]["tenants"]["acme"]["email_connections"]) == 1
    listed = check(emea.get("/server-updates"), 200, "/server-updates")
    assert [u["id"] for u in listed["items"]] == [second["id"], update["id"]]  # newest first
    assert emea.items("/server-updates", {"limit": 1})[1] == 2
    error_code(emea.get("/server-updates/upd_000000000000"), 404, "not_found")
    # Other deployments are untouched.
    assert ce.ce_state("us")["updates"] == [] and ce.ce_counters("us")["batch_updates"] == 0
    assert ce.ce_counters("emea")["batch_updates"] == 3  # two started, one refused


def test_failed_update_keeps_changes_pending(ce, us):
    gateway_id = check(us.get("/email-gateways"), 200)["items"][0]["id"]
    path = "/email-gateways/" + gateway_id
    check(us.put(path, dict(EXO_GATEWAY, name="Exchange Online (renamed)")), 200)
    assert ce.ce_settings("us", fail_next_update="mail02: configuration rejected")["fail_next_update"] == "mail02: configuration rejected"
    update = check(us.post("/server-updates"), 202)
    failed = us.wait_update(update["id"])
    assert failed["status"] == "failed" and failed["errors"] == ["mail02: configuration rejected"] and failed["finished_at"]
    assert check(us.get("/server-updates/pending"), 200)["pending"] is True
    state = ce.ce_state("us")
    assert state["applied"]["email_gateways"][0]["name"] == "Exchange Online" and state["applied"]["update_id"] is None
    assert state["settings"]["fail_next_update"] is None  # one-shot
    retry = check(us.post("/server-updates"), 202)
    assert us.wait_update(retry["id"])["status"] == "succeeded"
    assert ce.ce_state("us")["applied"]["email_gateways"][0]["name"] == "Exchange Online (renamed)"
    assert check(us.get("/server-updates/pending"), 200)["pending"] is False
    # A failure rate fails updates at random; a batch update without pending changes is allowed.
    ce.ce_settings("us", update_failure_rate=1.0, update_seconds=0)
    assert us.wait_update(check(us.post("/server-updates"), 202)["id"])["status"] == "failed"


def test_lab_settings_validation_and_version(ce, emea):
    for bad in ({"update_seconds": -1}, {"update_failure_rate": 2}, {"page_size": 0}, {"nonsense": 1}, {"version": "seven"},
                {"capabilities": ["teleport"]}, {"fail_next_update": 5}):
        with pytest.raises(LabError):
            ce.ce_settings("emea", **bad)
    with pytest.raises(LabError):
        ce.ce_settings("apac", update_seconds=1)
    settings = ce.ce_settings("emea", version="7.6.1")
    assert settings["capabilities"] == ["oauth_receive_imap", "oauth_send_smtp"]
    assert check(emea.get("/info"), 200, "/info")["version"] == "7.6.1"
    ce.ce_settings("emea", version="7.4.3")
    assert check(emea.get("/info"), 200)["capabilities"] == []
    assert set(ce._call("GET", "/services/ce/deployments")["deployments"]) == {"emea", "us", "legacy"}


# ----- faults, counters, reset --------------------------------------------------------------------------------------------------
def test_faults_and_counters(ce, emea, us):
    acme = Portal(ce, "emea", "acme")
    ce.fail_next("ce", 429, method="POST", path_regex=r"^/emea/api/v1/server-updates$", retry_after=3)
    response = emea.post("/server-updates")
    error = error_code(response, 429, "too_many_requests")
    assert response.headers["Retry-After"] == "3" and error["details"] == []
    update = check(emea.post("/server-updates"), 202)
    ce.fail_next("ce", 503, path_regex=r"/tenants/acme/")
    error_code(acme.get("/tenants/acme/oauth-settings"), 503, "service_unavailable")
    check(acme.get("/tenants/acme/oauth-settings"), 200)
    check(us.get("/info"), 200)

    emea_counts = ce.ce_counters("emea")
    assert emea_counts["batch_updates"] == 2 and emea_counts["writes"] == 2 and emea_counts["faults"] == 2
    assert emea_counts["endpoints"]["reads"]["GET /emea/api/v1/tenants/{tenant}/oauth-settings"] == 2
    assert emea_counts["tenants"]["acme"] == {"reads": 2, "writes": 0, "faults": 1, "requests": 2}
    assert ce.ce_counters("us")["requests"] == 1 and ce.ce_counters("legacy")["requests"] == 0
    assert ce.count("ce", "POST", "/emea/api/v1/server-updates") == 2
    assert ce.count("ce", "GET", "/emea/api/v1/tenants/{tenant}/oauth-settings") == 2
    emea.wait_update(update["id"])
    ce.reset_counters()
    assert ce.ce_counters("emea")["requests"] == 0

    # Random throttling through the lab's fault settings, reproducible with a seed.
    ce.set_faults("ce", rate_429=0.5, seed=7, retry_after=0)
    statuses = [emea.get("/info").status_code for _ in range(12)]
    assert {200, 429} == set(statuses)
    ce.clear_faults("ce")
    ce.set_faults("ce", latency_ms=200)
    started = time.monotonic()
    check(emea.get("/info"), 200)
    assert time.monotonic() - started >= 0.2


def test_reset_restores_the_seed_but_keeps_credentials(ce, emea):
    token = ce.vars["lab_ce_deployments"]["emea"]["admin_token"]
    emea.create("/email-gateways", EXO_GATEWAY, "/email-gateways")
    ce.ce_settings("emea", page_size=1, fail_next_update="x")
    ce.reset()
    assert check(emea.get("/email-gateways"), 200)["items"] == []
    assert check(emea.get("/server-updates/pending"), 200)["pending"] is False
    settings = ce.ce_settings("emea")
    assert settings["page_size"] is None and settings["fail_next_update"] is None and settings["update_seconds"] == 1.0
    assert ce.vars["lab_ce_deployments"]["emea"]["admin_token"] == token == emea.token
