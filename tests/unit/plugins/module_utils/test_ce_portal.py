# -*- coding: utf-8 -*-
"""The CE Portal client against an in-memory Portal; every request it sends is checked against the contract."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import ce_portal
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_portal import DEPLOYMENT_TOKEN, FakePortal, FakeResponse  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def fake():
    portal = FakePortal()
    yield portal
    assert portal.contract_problems() == []


GATEWAY = {"name": "Exchange Online", "description": None,
           "inbound": {"protocol": "imap", "host": "outlook.office365.com", "port": 993, "security": "ssl"},
           "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}}
SETTINGS = {"name": "Exchange Online OAuth", "client_id": "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c",
            "scopes": ["https://outlook.office365.com/.default"],
            "token_endpoint_url": "https://login.microsoftonline.com/6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51/oauth2/v2.0/token"}


@pytest.mark.parametrize("given,expected", [
    ("https://ce.example.com", "https://ce.example.com/api/v1"),
    ("https://ce.example.com/", "https://ce.example.com/api/v1"),
    ("https://127.0.0.1:8443/emea", "https://127.0.0.1:8443/emea/api/v1"),
    ("https://ce.example.com/api/v1/", "https://ce.example.com/api/v1"),
])
def test_api_base_url_appends_the_api_prefix_once(given, expected):
    assert ce_portal.api_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", None, "ce.example.com", "ftp://ce.example.com"])
def test_api_base_url_refuses_what_is_not_a_url(bad):
    with pytest.raises(ValueError):
        ce_portal.api_base_url(bad)


def test_versions_and_capabilities():
    assert ce_portal.parse_version("7.4.4") == (7, 4, 4)
    assert ce_portal.parse_version("7.4") == (7, 4, 0)
    assert ce_portal.parse_version("7.6.0.1234-hotfix") == (7, 6, 0, 1234)
    assert ce_portal.parse_version("CE seven") is None
    assert ce_portal.oauth_problem({"version": "7.4.4", "capabilities": []}) is None
    problem = ce_portal.oauth_problem({"version": "7.4.3", "capabilities": []})
    assert "requires CE 7.4 CU4 or later" in problem and "7.4.3" in problem
    assert "oauth_send_smtp" in ce_portal.oauth_send_problem({"version": "7.4.4", "capabilities": ["oauth_receive_imap"]})
    assert ce_portal.oauth_send_problem({"version": "7.6.0", "capabilities": ["oauth_receive_imap", "oauth_send_smtp"]}) is None
    assert ce_portal.protocol_supports_oauth("imap") and not ce_portal.protocol_supports_oauth("pop3")


def test_local_validation_names_each_problem():
    assert ce_portal.tenant_name_problem("acme") is None
    assert "short code" in ce_portal.tenant_name_problem("Acme Corp")
    problems = ce_portal.oauth_settings_problems(dict(SETTINGS, client_id="CE Email", token_endpoint_url="http://x"), creating=True)
    assert len(problems) == 3 and any("GUID" in p for p in problems) and any("https" in p for p in problems)
    assert ce_portal.gateway_problems(dict(GATEWAY, outbound=dict(GATEWAY["outbound"], port=70000))) == [
        "outbound.port 70000 must be between 1 and 65535"]


def test_info_is_read_once_per_client(fake):
    client = fake.client()
    assert client.info() == {"version": "7.4.4", "capabilities": ["oauth_receive_imap"]}
    client.info()
    assert [entry[1] for entry in fake.log] == ["/info"]


def test_bearer_and_basic_authentication(fake):
    fake.client().info()
    assert fake.log[-1][2]["Authorization"] == "Bearer " + DEPLOYMENT_TOKEN
    client = ce_portal.CePortal("https://ce.example.test/emea", username="admin", password="admin-password",
                                transport=fake.transport())
    assert client.info()["version"] == "7.4.4"
    assert "Authorization" not in fake.log[-1][2]


def test_errors_carry_code_message_details_request_id_and_a_hint(fake):
    existing = fake.add_gateway("Exchange Online")
    with pytest.raises(ServiceError) as caught:
        fake.client().create_gateway(GATEWAY)
    error = caught.value
    assert (error.status, error.code) == (409, "name_conflict")
    assert "already exists" in error.message and "name: already used by %s" % existing["id"] in error.message
    assert error.request_id == "req-%d" % len(fake.log) and error.details == fake.answers[-1]["error"]["details"] == [
        {"field": "name", "message": "already used by %s" % existing["id"]}]
    assert "pick another name" in error.hint
    assert "409 name_conflict" in error.describe() and error.request_id in error.describe()


def test_wrong_credentials_say_which_options_to_check(fake):
    with pytest.raises(ServiceError) as caught:
        fake.client(token="wrong").info()
    assert caught.value.status == 401 and "ce_token" in caught.value.hint


def test_tenant_admin_on_another_tenant_is_forbidden(fake):
    with pytest.raises(ServiceError) as caught:
        fake.client(token="acme-admin-token").find_oauth_settings("globex", "x")
    assert caught.value.status == 403 and "its own tenant" in caught.value.hint


def test_not_a_portal_at_that_url():
    class NotPortal(FakePortal):
        def handle(self, method, url, headers, params, body, auth):
            self.log.append((method, "/info", headers, params, body))
            return FakeResponse(404, None, {}, url, method)
    with pytest.raises(ServiceError) as caught:
        NotPortal().client().info()
    assert "ce_url must be the Portal's base URL" in caught.value.hint


def test_paging_follows_next_cursor(fake):
    for number in range(5):
        fake.add_gateway("gateway %d" % number)
    fake.add_gateway("Exchange Online")
    found = fake.client().find_gateway("Exchange Online")
    assert found["name"] == "Exchange Online"
    # The name filter leaves one page; a plain list of six takes three pages of two, each asked with the cursor the one
    # before it returned.
    assert len(fake.client()._list("email-gateways")) == 6
    returned = [answer["next_cursor"] for answer in fake.answers[-3:]]
    assert [entry[3].get("cursor") for entry in fake.log[-3:]] == [None] + returned[:2] and returned[2] is None and None not in returned[:2]
    assert all(entry[3]["limit"] == ce_portal.PAGE_LIMIT for entry in fake.log)


def test_a_repeating_cursor_ends_with_an_error_not_a_hang(fake):
    gateway = fake.add_gateway("a")
    fake.answer_next("GET", "^/email-gateways$", 200, {"items": [fake.deployment.gateway_view(gateway)], "next_cursor": "same"}, count=3)
    with pytest.raises(ServiceError, match="repeats cursor"):
        fake.client().find_gateway("a")


def test_records_are_mapped_both_ways(fake):
    client = fake.client()
    created = client.create_gateway(GATEWAY)
    assert created["id"] and created["revision"] == 1 and created["inbound"]["protocol"] == "imap"
    assert "description" not in fake.log[-1][4]  # None is omitted, not sent as null
    settings = client.create_oauth_settings("acme", SETTINGS, "the-secret")
    assert settings["client_secret_set"] is True and "client_secret" not in settings
    assert fake.log[-1][4]["client_secret"] == "the-secret"
    connection = client.create_connection("acme", {"name": "Exchange Online", "gateway_id": created["id"],
                                                   "oauth_settings_id": settings["id"], "use_oauth_receive": True, "use_oauth_send": False})
    assert connection["use_oauth_receive"] is True and connection["gateway_id"] == created["id"]
    assert client.connection_mailboxes("acme", connection["id"]) == []


def test_if_match_on_every_put_and_delete(fake):
    client = fake.client()
    gateway = client.create_gateway(GATEWAY)
    updated = client.update_gateway(gateway, dict(GATEWAY, description="EXO"))
    assert fake.log[-1][2]["If-Match"] == '"1"' and updated["revision"] == 2
    settings = client.create_oauth_settings("acme", SETTINGS, "s")
    client.update_oauth_settings("acme", settings, SETTINGS)
    assert "client_secret" not in fake.log[-1][4]  # omitted keeps the stored secret
    client.delete_oauth_settings("acme", client.find_oauth_settings("acme", SETTINGS["name"]))
    client.delete_gateway(updated)
    assert [(e[0], e[2].get("If-Match")) for e in fake.log if e[0] in ("PUT", "DELETE")] == [
        ("PUT", '"1"'), ("PUT", '"1"'), ("DELETE", '"2"'), ("DELETE", '"2"')]


def test_stale_revision_is_recognisable(fake):
    client = fake.client()
    gateway = client.create_gateway(GATEWAY)
    client.update_gateway(gateway, dict(GATEWAY, description="first"))
    with pytest.raises(ServiceError) as caught:
        client.update_gateway(gateway, dict(GATEWAY, description="second"))
    assert ce_portal.is_stale_revision(caught.value) and caught.value.code == "revision_mismatch"


def test_throttling_is_retried_honouring_retry_after(fake):
    sleeps = []
    fake.sleep = sleeps.append
    fake.faults.append(("GET", "^/info$", 429, "throttled", {"Retry-After": "3"}))
    fake.faults.append(("GET", "^/info$", 503, "unavailable", {"Retry-After": "1"}))
    assert fake.client().info()["version"] == "7.4.4"
    assert sleeps == [3.0, 1.0]


def test_start_update_reports_a_running_one_instead_of_failing(fake):
    client = fake.client()
    first, running = client.start_update()
    assert first["status"] == "queued" and running is None
    second, running = client.start_update()
    assert second is None and running == first["id"]
    assert client.active_update()["id"] == first["id"]


def test_wait_for_update_polls_until_finished_or_deadline(fake):
    client = fake.client()
    update = client.start_update()[0]
    unfinished = client.wait_for_update(update["id"], deadline=fake.now + 4, interval=1)
    assert unfinished["status"] == "running" and fake.now == 4
    finished = client.wait_for_update(update["id"], deadline=fake.now + 60, interval=1)
    assert finished["status"] == "succeeded" and fake.now == 10
    assert client.active_update() is None


def test_pending_changes(fake):
    client = fake.client()
    assert client.pending_changes() == (False, [])
    gateway = client.create_gateway(GATEWAY)
    pending, changes = client.pending_changes()
    assert pending and changes[0]["kind"] == "email_gateway" and changes[0]["id"] == gateway["id"]


def test_tenant_list(fake):
    assert fake.client().tenants() == ["acme", "globex"]
    assert fake.client(token="acme-admin-token").tenants() == ["acme"]
