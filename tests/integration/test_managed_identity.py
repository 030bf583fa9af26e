# -*- coding: utf-8 -*-
"""managed_identity=true against the lab's App Service-style managed identity endpoint.

msal picks its managed identity source from the environment: IDENTITY_ENDPOINT + IDENTITY_HEADER
select App Service, which the lab emulates per directory. Without them msal would ask IMDS at
169.254.169.254, so every test here (1) sets them to the lab, (2) makes msal's IMDS path fail the
test, and (3) refuses any socket connection to a non-loopback address.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import socket

import pytest

from ceops_lab.testing import claims_of

msal_managed_identity = pytest.importorskip("msal.managed_identity")

MI_ENV = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")
# Any of these would make msal pick another source (Service Fabric, Azure ML, Arc) or move IMDS.
OTHER_IDENTITY = "00000000-0000-0000-0000-000000000001"  # a user-assigned identity the endpoint does not have
OTHER_SOURCES = ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")


def _is_loopback(address):
    if not isinstance(address, tuple):
        return True  # AF_UNIX path
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse (and remember) every connection this process tries to a non-loopback address."""
    refused = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address):
        if not _is_loopback(address):
            refused.append(address)
            raise OSError("test refused a connection to non-loopback address %r" % (address,))

    def connect(sock, address):
        guard(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        guard(address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield refused
    assert not refused, "tried to reach non-loopback addresses: %r" % refused


@pytest.fixture(autouse=True)
def no_imds(monkeypatch):
    """If msal ever chose the VM (IMDS) source, fail instead of sending a request to 169.254.169.254."""
    def refuse(*args, **kwargs):
        pytest.fail("msal fell back to IMDS (169.254.169.254): IDENTITY_ENDPOINT / IDENTITY_HEADER were not in effect",
                    pytrace=False)
    monkeypatch.setattr(msal_managed_identity, "_obtain_token_on_azure_vm", refuse)
    monkeypatch.setattr(msal_managed_identity, "_obtain_token_on_arc", refuse)


@pytest.fixture
def identity_env(monkeypatch):
    """``identity_env(lab, name="contoso", header=None)``: the App Service environment of that directory's identity."""
    def setup(lab, name="contoso", header=None):
        for variable in OTHER_SOURCES:
            monkeypatch.delenv(variable, raising=False)
        endpoint = lab.vars["lab_directories"][name]["managed_identity_endpoint"]
        assert endpoint.startswith("https://127.0.0.1:"), endpoint
        monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", header if header is not None else lab.vars["lab_managed_identity_header"])
        assert msal_managed_identity.get_managed_identity_source() is msal_managed_identity.APP_SERVICE
        return endpoint
    return setup


def mi_args(lab, name="contoso", **overrides):
    d = lab.vars["lab_directories"][name]
    args = dict(tenant_id=d["tenant_id"], managed_identity=True, authority_host=lab.vars["lab_authority_host"],
                graph_endpoint=lab.vars["lab_graph_endpoint"], ca_path=lab.vars["lab_ca_path"],
                display_name="CE Email", unique_name="ce-email", app_secret={"name": "CE mailbox access", "lifetime_days": 180})
    args.update(overrides)
    return args


def token_counts(lab):
    return lab.counters()["tokens"]


def test_managed_identity_creates_the_app_and_rerun_is_unchanged_with_one_token(fresh_lab, run_module, identity_env):
    identity_env(fresh_lab)
    contoso = fresh_lab.vars["lab_directories"]["contoso"]

    first = run_module("azuread_app", mi_args(fresh_lab))
    assert first.get("failed") is not True, first
    assert first["changed"] is True and first["client_secret_created"] is True
    second = run_module("azuread_app", mi_args(fresh_lab))
    assert second.get("failed") is not True, second
    assert second["changed"] is False, second["actions"]
    assert second["app_id"] == first["app_id"]

    # One token between the two invocations (the second is served by the file cache), issued by
    # the managed identity endpoint for the automation identity, and no client-credentials token.
    assert token_counts(fresh_lab) == {"%s|%s|https://graph.microsoft.com" % (contoso["tenant_id"], contoso["automation_client_id"]): 1}
    counters = fresh_lab.counters()["services"]
    assert counters["managed_identity"]["reads"] == {"GET /{tenant}/msi/token": 1}
    assert "login" not in counters


def test_the_endpoint_answers_in_app_service_shape_with_a_managed_identity_token(fresh_lab):
    contoso = fresh_lab.vars["lab_directories"]["contoso"]
    endpoint, header = contoso["managed_identity_endpoint"], fresh_lab.vars["lab_managed_identity_header"]
    url = endpoint + "?api-version=2019-08-01&resource=https://graph.microsoft.com&client_id=" + contoso["automation_client_id"]
    status, _, body = fresh_lab.request("GET", url, headers={"X-IDENTITY-HEADER": header})
    assert status == 200, body
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    assert (body["resource"], body["token_type"]) == ("https://graph.microsoft.com", "Bearer")
    assert body["client_id"] == contoso["automation_client_id"]
    claims = claims_of(body["access_token"])
    assert (claims["appid"], claims["oid"], claims["tid"]) == (contoso["automation_client_id"], contoso["automation_service_principal_id"],
                                                               contoso["tenant_id"])
    assert claims["appidacr"] == "2" and claims["idtyp"] == "app" and claims["xms_mirid"].startswith("/subscriptions/")
    assert sorted(claims["roles"]) == ["AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.All"]
    assert str(claims["exp"]) == body["expires_on"]

    refusals = [
        ({"X-IDENTITY-HEADER": "wrong"}, "api-version=2019-08-01&resource=https://graph.microsoft.com", 401),
        ({}, "api-version=2019-08-01&resource=https://graph.microsoft.com", 401),
        ({"X-IDENTITY-HEADER": header}, "api-version=2019-08-01&resource=https://vault.azure.net", 400),
        ({"X-IDENTITY-HEADER": header}, "api-version=2017-09-01&resource=https://graph.microsoft.com", 400),
        ({"X-IDENTITY-HEADER": header}, "api-version=2019-08-01&resource=https://graph.microsoft.com&client_id=" + OTHER_IDENTITY, 400),
    ]
    for headers, query, expected in refusals:
        status, _, body = fresh_lab.request("GET", endpoint + "?" + query, headers=headers)
        assert status == expected and body["statusCode"] == expected and body["message"], (query, body)
    assert len(token_counts(fresh_lab)) == 1 and sum(token_counts(fresh_lab).values()) == 1


def test_a_wrong_identity_header_is_one_clear_failure(fresh_lab, run_module, identity_env):
    endpoint = identity_env(fresh_lab, header="not-the-identity-header")
    result = run_module("azuread_app", mi_args(fresh_lab))
    assert result["failed"] is True
    assert "exception" not in result and "Traceback" not in result["msg"], result
    msg = result["msg"]
    assert "managed identity (App Service) answered HTTP 401" in msg, msg
    assert "check IDENTITY_ENDPOINT and IDENTITY_HEADER" in msg, msg  # what to check, from the module, not the lab
    assert endpoint in msg, msg
    assert token_counts(fresh_lab) == {}
    assert fresh_lab.counters()["services"]["managed_identity"]["statuses"] == {"401": 1}
