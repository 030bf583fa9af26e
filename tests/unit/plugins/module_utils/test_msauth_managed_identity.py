# -*- coding: utf-8 -*-
"""managed_identity=true in MicrosoftAuth: the source msal picks, and failures that name it (no network)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import msauth
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError

pytest.importorskip("msal")

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
USER_ASSIGNED = "11111111-2222-3333-4444-555555555555"
ENDPOINT = "https://127.0.0.1:9/msi/token"
MI_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET",
                "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")


class FakeResponse:
    def __init__(self, status, text):
        self.status_code = status
        self.text = text
        self.headers = {}


class FakeTransport:
    """Answers every request with the next queued (status, body) and records what was asked."""

    timeout = (10.0, 30.0)

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def send(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return FakeResponse(status, body if isinstance(body, str) else json.dumps(body))


@pytest.fixture
def app_service(monkeypatch):
    for name in MI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("IDENTITY_HEADER", "the-header")


def mi_auth(tmp_path, transport, **kwargs):
    return msauth.MicrosoftAuth(TENANT, managed_identity=True, token_cache_dir=str(tmp_path / "cache"), transport=transport, **kwargs)


@pytest.mark.parametrize("env,source,endpoint", [
    ({"IDENTITY_ENDPOINT": ENDPOINT, "IDENTITY_HEADER": "h"}, "App Service", ENDPOINT),
    ({"IDENTITY_ENDPOINT": ENDPOINT, "IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": "ab"}, "Service Fabric", ENDPOINT),
    ({"MSI_ENDPOINT": ENDPOINT, "MSI_SECRET": "s"}, "Azure Machine Learning", ENDPOINT),
    ({"IDENTITY_ENDPOINT": ENDPOINT, "IMDS_ENDPOINT": "http://localhost:40342"}, "Azure Arc", ENDPOINT),
    ({"IDENTITY_ENDPOINT": ENDPOINT}, "IMDS", "http://169.254.169.254/metadata/identity/oauth2/token"),
    ({}, "IMDS", "http://169.254.169.254/metadata/identity/oauth2/token"),
])
def test_the_source_is_read_as_msal_reads_it(env, source, endpoint, monkeypatch):
    assert msauth.managed_identity_source(env) == (source, endpoint)
    from msal import managed_identity as msal_mi
    for name in MI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert msauth.managed_identity_source() == (source, endpoint)
    detected = {msal_mi.APP_SERVICE: "App Service", msal_mi.SERVICE_FABRIC: "Service Fabric",
                msal_mi.MACHINE_LEARNING: "Azure Machine Learning", msal_mi.AZURE_ARC: "Azure Arc"}.get(
        msal_mi.get_managed_identity_source(), "IMDS")
    assert detected == source


def test_managed_identity_needs_no_client_credentials(tmp_path):
    assert mi_auth(tmp_path, None).validate() == []
    assert "not a GUID" in " ".join(mi_auth(tmp_path, None, client_id="my identity").validate())


def test_app_service_token_request_and_answer(tmp_path, app_service):
    expires_on = int(time.time()) + 86399
    transport = FakeTransport((200, {"access_token": "tok", "expires_on": str(expires_on), "resource": "https://graph.microsoft.com",
                                     "token_type": "Bearer", "client_id": USER_ASSIGNED}))
    auth = mi_auth(tmp_path, transport, client_id=USER_ASSIGNED)
    assert auth.graph_token() == "tok"
    assert auth.graph_token() == "tok"  # from the file cache
    assert len(transport.sent) == 1
    method, url, kwargs = transport.sent[0]
    assert (method, url) == ("GET", ENDPOINT)
    assert kwargs["params"] == {"api-version": "2019-08-01", "resource": "https://graph.microsoft.com", "client_id": USER_ASSIGNED}
    assert kwargs["headers"]["X-IDENTITY-HEADER"] == "the-header"
    for name in os.listdir(str(tmp_path / "cache")):
        assert "the-header" not in (tmp_path / "cache" / name).read_text()


def test_a_refusal_names_the_source_the_status_and_what_to_check(tmp_path, app_service):
    transport = FakeTransport((401, {"statusCode": 401, "message": "Unauthorized", "correlationId": "c-1"}))
    with pytest.raises(ServiceError) as caught:
        mi_auth(tmp_path, transport).graph_token()
    error = caught.value
    assert error.service == "managed identity (App Service)" and error.status == 401 and error.code is None
    text = error.describe()
    assert "answered HTTP 401" in text and ENDPOINT in text and "Unauthorized" in text
    assert "check IDENTITY_ENDPOINT and IDENTITY_HEADER" in text and "invalid_scope" not in text
    assert "the-header" not in text
    assert len(transport.sent) == 1  # no tenant discovery: managed identity involves no authority


def test_an_answer_that_is_not_json_is_reported_without_asking_the_authority(tmp_path, app_service):
    transport = FakeTransport((502, "<html>Bad Gateway</html>"))
    with pytest.raises(ServiceError) as caught:
        mi_auth(tmp_path, transport).graph_token()
    assert "the answer is not JSON" in caught.value.describe() and "IDENTITY_HEADER" in caught.value.describe()
    assert [sent[1] for sent in transport.sent] == [ENDPOINT]


def test_no_answer_keeps_the_transport_error_and_adds_the_source(tmp_path, app_service):
    transport = FakeTransport(ServiceError("Entra ID", "no answer: connection refused", method="GET", url=ENDPOINT,
                                           hint="check that the endpoint URL is right"))
    with pytest.raises(ServiceError) as caught:
        mi_auth(tmp_path, transport).graph_token()
    text = caught.value.describe()
    assert "connection refused" in text and "check that the endpoint URL is right" in text and "IDENTITY_ENDPOINT" in text


def test_the_imds_hint_says_no_app_service_variables_were_set(tmp_path, monkeypatch):
    for name in MI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # A pod identity host on loopback, so even this path cannot leave the machine; the fake answers anyway.
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "https://127.0.0.1:9")
    transport = FakeTransport((400, {"error": "invalid_request", "error_description": "Identity not found"}))
    with pytest.raises(ServiceError) as caught:
        mi_auth(tmp_path, transport).graph_token()
    text = caught.value.describe()
    assert caught.value.service == "managed identity (IMDS)" and caught.value.code == "invalid_request"
    assert "Identity not found" in text and "none of IDENTITY_ENDPOINT + IDENTITY_HEADER" in text
    assert [sent[1] for sent in transport.sent] == ["https://127.0.0.1:9/metadata/identity/oauth2/token"]


def test_cache_keys_follow_the_identity_endpoint_and_header(tmp_path, app_service, monkeypatch):
    auth = mi_auth(tmp_path, None)
    first = auth.cache_key("https://graph.microsoft.com")
    monkeypatch.setenv("IDENTITY_HEADER", "another-header")
    second = auth.cache_key("https://graph.microsoft.com")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "https://127.0.0.1:10/msi/token")
    third = auth.cache_key("https://graph.microsoft.com")
    assert len({first, second, third}) == 3
    assert mi_auth(tmp_path, None, client_id=USER_ASSIGNED).cache_key("https://graph.microsoft.com") != third
