# -*- coding: utf-8 -*-
"""Tests of the unit tests' CE Portal harness (fake_portal.py): the contract checker and the lab's Portal run in-process."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_portal import Contract, FakePortal, ceops_lab_ce_portal  # noqa: E402  pylint: disable=wrong-import-position


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


def test_the_harness_runs_the_labs_portal():
    """One CE Portal emulator: what the unit tests talk to is the lab's, with its rules (POP3 never with OAuth, If-Match,
    pending configuration, batch updates on the virtual clock)."""
    portal = FakePortal()
    assert isinstance(portal.service, ceops_lab_ce_portal.CePortalService)
    client = portal.client()
    pop = client.create_gateway({"name": "Legacy POP", "inbound": {"protocol": "pop3", "host": "outlook.office365.com", "port": 995, "security": "ssl"},
                                 "outbound": {"host": "smtp.office365.com", "port": 587, "security": "starttls"}})
    settings = client.create_oauth_settings("acme", {"name": "OAuth", "client_id": "0b2f6c1a-5d4e-4f3a-9b8c-7d6e5f4a3b2c",
                                                     "scopes": ["https://outlook.office365.com/.default"],
                                                     "token_endpoint_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token"}, "s3cret")
    with pytest.raises(ServiceError) as caught:
        client.create_connection("acme", {"name": "POP", "gateway_id": pop["id"], "oauth_settings_id": settings["id"],
                                          "use_oauth_receive": True, "use_oauth_send": False})
    assert caught.value.code == "oauth_not_supported" and "POP3" in caught.value.message
    assert portal.answers[-1]["error"]["code"] == "oauth_not_supported"
    assert [c["kind"] for c in portal.pending] == ["email_gateway", "oauth_settings"]
    update = client.start_update()[0]
    portal.sleep(10)
    assert client.wait_for_update(update["id"], deadline=portal.now + 1, interval=1)["status"] == "succeeded" and portal.pending == []
    assert portal.deployment.applied["tenants"]["acme"]["oauth_settings"][settings["id"]]["_secret"] == "s3cret"
    assert portal.contract_problems() == []


def test_harness_faults_are_the_labs_fail_next_rules():
    portal = FakePortal()
    portal.faults.append(("GET", "^/info$", 503, "unavailable", {"Retry-After": "4"}))
    sleeps = []
    portal.sleep = sleeps.append
    assert portal.client().info()["version"] == "7.4.4" and sleeps == [4.0]
    assert [(entry[0], entry[1]) for entry in portal.log] == [("GET", "/info"), ("GET", "/info")]
    assert portal.answers[0] == {"error": {"code": "unavailable", "message": "injected", "details": []}}
