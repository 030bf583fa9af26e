"""The admin API: faults, counters, state without secrets, reset, and the request log."""

import json
import os
import time

import pytest
from ceops_lab.admin import LabError

EXO = "00000002-0000-0ff1-ce00-000000000000"


def test_fail_next_is_deterministic_and_counted(graph, fresh_lab, contoso):
    fresh_lab.fail_next("graph", 429, method="GET", path_regex=r"^/v1\.0/applications$", count=2, retry_after=7)
    for _ in range(2):
        response = graph.get("/applications")
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        error = response.json()["error"]
        assert error["code"] == "TooManyRequests" and error["innerError"]["request-id"] == response.headers["request-id"]
    assert graph.get("/applications").status_code == 200
    assert graph.get("/servicePrincipals").status_code == 200  # the rule only matched /applications

    fresh_lab.fail_next("graph", 503, retry_after=None)
    response = graph.get("/servicePrincipals")
    assert response.status_code == 503 and "Retry-After" not in response.headers

    fresh_lab.fail_next("login", 429)
    with pytest.raises(LabError):
        fresh_lab.token("contoso")
    graph_counts = fresh_lab.counters()["services"]["graph"]
    assert graph_counts["faults"] == {"GET /v1.0/applications": 2, "GET /v1.0/servicePrincipals": 1}
    assert graph_counts["reads"]["GET /v1.0/applications"] == 3 and graph_counts["totals"]["faults"] == 3
    assert fresh_lab.counters()["services"]["login"]["totals"]["faults"] == 1


def test_fail_next_can_answer_raw_bytes(graph, fresh_lab):
    # A proxy's binary error page: NUL bytes, not JSON.
    fresh_lab.fail_next("graph", 403, method="GET", path_regex=r"^/v1\.0/applications$", body_base64="AAAAAAAA", content_type="text/html")
    response = graph.get("/applications")
    assert response.status_code == 403 and response.content == b"\x00" * 6 and response.headers["Content-Type"] == "text/html"
    assert graph.get("/applications").status_code == 200
    with pytest.raises(LabError):
        fresh_lab.fail_next("graph", 403, body_base64="not base64!")


def test_random_faults_are_reproducible_with_a_seed(graph, fresh_lab):
    def run():
        fresh_lab.clear_faults()
        fresh_lab.set_faults("graph", rate_429=0.3, rate_503=0.2, seed=42, retry_after=0)
        return [graph.get("/applications").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert {429, 503, 200} <= set(first)
    fresh_lab.clear_faults("graph")
    assert graph.get("/applications").status_code == 200


def test_latency_is_injected(graph, fresh_lab):
    fresh_lab.set_faults("graph", latency_ms=300)
    started = time.monotonic()
    graph.get("/applications")
    assert time.monotonic() - started >= 0.3
    fresh_lab.clear_faults()
    with pytest.raises(LabError):
        fresh_lab.set_faults("graph", rate_429=2)
    with pytest.raises(LabError):
        fresh_lab.set_faults("admin", latency_ms=1)  # the admin API is never faulted


def test_counters_by_endpoint_template_and_directory(graph, fresh_lab, contoso):
    fresh_lab.reset_counters()
    app = graph.create_app("CE Email")
    graph.post("/applications/%s/addPassword" % app["id"], {})
    graph.get("/applications(appId='%s')" % app["appId"])
    sp = graph.create_sp(app["appId"])
    exchange = graph.resource_sp(EXO)
    assignment = graph.post("/servicePrincipals/%s/appRoleAssignedTo" % exchange["id"],
                            {"principalId": sp["id"], "resourceId": exchange["id"], "appRoleId": "5e5addcd-3e8d-4e90-baf5-964efab2b20a"}).json()
    graph.delete("/servicePrincipals/%s/appRoleAssignedTo/%s" % (exchange["id"], assignment["id"]))
    fresh_lab.token("fabrikam")
    counters = fresh_lab.counters()
    graph_counts = counters["services"]["graph"]
    assert graph_counts["writes"] == {
        "POST /v1.0/applications": 1,
        "POST /v1.0/applications/{id}/addPassword": 1,
        "POST /v1.0/servicePrincipals": 1,
        "POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo": 1,
        "DELETE /v1.0/servicePrincipals/{id}/appRoleAssignedTo/{id}": 1,
    }
    assert graph_counts["reads"] == {"GET /v1.0/applications(appId={appId})": 1, "GET /v1.0/servicePrincipals(appId={appId})": 1}
    assert graph_counts["totals"] == {"reads": 2, "writes": 5, "faults": 0, "requests": 7}
    assert counters["directories"][contoso["tenant_id"]]["graph"]["requests"] == 7
    fabrikam = fresh_lab.directory("fabrikam")
    assert "graph" not in counters["directories"][fabrikam["tenant_id"]]
    assert counters["tokens"] == {"%s|%s|https://graph.microsoft.com" % (fabrikam["tenant_id"], fabrikam["automation_client_id"]): 1}
    assert fresh_lab.count("graph", "POST") == 4 and fresh_lab.writes("graph") == 5 and fresh_lab.reads("graph") == 2
    fresh_lab.reset_counters()
    assert fresh_lab.counters()["services"].get("graph") is None


def test_state_and_log_never_show_secrets(graph, fresh_lab, contoso):
    app = graph.create_app("CE Email")
    secret = graph.post("/applications/%s/addPassword" % app["id"], {}).json()["secretText"]
    graph.get("/applications?$filter=displayName eq 'CE Email'")
    dumped = json.dumps(fresh_lab.state()) + json.dumps(fresh_lab.state("graph")) + json.dumps(fresh_lab.state("login"))
    assert secret not in dumped and contoso["automation_client_secret"] not in dumped and "secretText" not in dumped
    created = next(a for a in fresh_lab.state("graph")["directories"]["contoso"]["applications"] if a["id"] == app["id"])
    assert created["passwordCredentials"][0]["hint"] == secret[:3]
    with open(fresh_lab.info["log_file"], encoding="utf-8") as handle:
        log = handle.read()
    assert secret not in log and contoso["automation_client_secret"] not in log and "CE Email" not in log
    assert "graph GET /v1.0/applications?$filter 200 request-id=" in log


def test_reset_restores_the_seed(graph, fresh_lab, contoso):
    app = graph.create_app("temporary")
    fresh_lab.set_policy("contoso", max_password_lifetime_days=10)
    fresh_lab.set_faults("*", latency_ms=1)
    fresh_lab.revoke_app_roles("contoso", "Application.ReadWrite.All")
    fresh_lab.reset()
    assert all(a["id"] != app["id"] for a in fresh_lab.state("graph")["directories"]["contoso"]["applications"])
    assert fresh_lab.directory("contoso")["policy"]["max_password_lifetime_days"] is None
    assert fresh_lab.faults() == {"*": {}}
    assert fresh_lab.grant_app_roles("contoso") == ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"]
    assert fresh_lab.counters()["services"]["admin"]["totals"]["requests"] >= 1


def test_vars_and_info_files(lab):
    yaml = pytest.importorskip("yaml")
    state_dir = lab.state_dir
    with open(os.path.join(state_dir, "lab-vars.yml"), encoding="utf-8") as handle:
        from_yaml = yaml.safe_load(handle)
    assert from_yaml == lab.vars
    assert set(from_yaml) >= {"lab_ca_path", "lab_authority_host", "lab_graph_endpoint", "lab_admin_url", "lab_directories"}
    assert from_yaml["lab_authority_host"] == lab.login_url and from_yaml["lab_graph_endpoint"] == lab.graph_url
    assert set(from_yaml["lab_directories"]) == {"contoso", "fabrikam", "northwind"}
    contoso = from_yaml["lab_directories"]["contoso"]
    assert contoso["tenant_id"] == "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51" and contoso["domain"] == "contoso.onmicrosoft.com"
    with open(contoso["automation_certificate_path"], encoding="utf-8") as handle:
        pem = handle.read()
    assert "PRIVATE KEY" in pem and "BEGIN CERTIFICATE" in pem
    assert oct(os.stat(contoso["automation_certificate_path"]).st_mode & 0o777) == "0o600"
    assert all(url.startswith("https://127.0.0.1:") for url in (s["url"] for s in lab.info["services"].values()))
    with open(os.path.join(state_dir, "lab.env"), encoding="utf-8") as handle:
        env = handle.read()
    assert "export CEOPS_LAB_GRAPH_ENDPOINT='%s'" % lab.graph_url in env


def test_echo_request_makes_error_answers_quote_what_the_client_sent(fresh_lab, graph, token_request, contoso):
    secret = 'Wr0ng/se+cr=et"\u00f6'
    form = {"grant_type": "client_credentials", "client_id": contoso["automation_client_id"], "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default"}
    status, dummy, body = token_request(contoso["tenant_id"], form)
    assert status == 401 and "client_secret" not in body["error_description"]  # no echo unless asked for
    fresh_lab.set_faults("*", echo_request=True)
    status, dummy, body = token_request(contoso["tenant_id"], form)
    first_line = body["error_description"].splitlines()[0]
    assert status == 401 and first_line.startswith("AADSTS7000215: ") and "client_secret=Wr0ng%2Fse%2Bcr%3Det%22%C3%B6" in first_line
    response = graph.get("/applications/not-there")
    message = response.json()["error"]["message"]
    assert response.status_code == 404 and "GET /v1.0/applications/not-there" in message and "Bearer " + graph.token in message
    entry = fresh_lab.vars["lab_ce_deployments"]["emea"]
    status, dummy, body = fresh_lab.request("POST", entry["url"] + "/api/v1/tenants/acme/oauth-settings",
                                            body={"name": "x", "client_secret": secret},
                                            headers={"Authorization": "Bearer " + entry["admin_token"]})
    assert status == 400 and json.dumps(secret)[1:-1] in body["error"]["message"] and entry["admin_token"] in body["error"]["message"]
    with pytest.raises(LabError):
        fresh_lab.set_faults("graph", echo_request="yes")
