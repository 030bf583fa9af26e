# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import threading

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import msauth
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, Transport

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
CLIENT = "11111111-2222-3333-4444-555555555555"


def auth(tmp_path, **kwargs):
    options = dict(tenant_id=TENANT, client_id=CLIENT, client_secret="s3cr3t-value", token_cache_dir=str(tmp_path / "cache"))
    options.update(kwargs)
    return msauth.MicrosoftAuth(**options)


@pytest.mark.parametrize("cloud,graph,exchange", [
    ("public", "https://graph.microsoft.com", "https://outlook.office365.com"),
    ("usgov", "https://graph.microsoft.us", "https://outlook.office365.us"),
    ("usgov_dod", "https://dod-graph.microsoft.us", "https://outlook-dod.office365.us"),
    ("china", "https://microsoftgraph.chinacloudapi.cn", "https://partner.outlook.cn"),
])
def test_clouds_give_resources_and_overrides_change_only_urls(cloud, graph, exchange):
    plain = msauth.cloud_endpoints(cloud)
    assert (plain["graph_resource"], plain["exchange_resource"]) == (graph, exchange)
    moved = msauth.cloud_endpoints(cloud, graph_endpoint="https://127.0.0.1:9/", authority_host="https://127.0.0.1:8")
    assert moved["graph_endpoint"] == "https://127.0.0.1:9"
    assert moved["graph_resource"] == graph  # tokens are still for the real resource


@pytest.mark.parametrize("tenant,ok", [(TENANT, True), ("contoso.onmicrosoft.com", True), ("not a tenant", False),
                                       ("6f1c2d3e-1a2b-4c5d-8e9f", False), ("", False)])
def test_tenant_validation(tenant, ok):
    assert (msauth.validate_tenant(tenant) is None) == ok


def test_configuration_problems_are_found_before_any_request(tmp_path):
    problems = auth(tmp_path, client_id="CE Email", client_secret=None, authority_host="http://login.example").validate()
    text = " ".join(problems)
    assert "not a GUID" in text and "client_secret or client_certificate_path" in text and "not https" in text


def test_cache_serves_one_fetch_to_many_callers_and_is_private(tmp_path):
    a = auth(tmp_path)
    fetches = []

    def fetch():
        fetches.append(1)
        return "token-1", 3599

    key = a.cache_key("https://graph.microsoft.com")
    threads = [threading.Thread(target=lambda: a.cache.get_or_fetch(key, fetch)) for dummy in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetches) == 1
    cache_dir = tmp_path / "cache"
    assert stat.S_IMODE(os.stat(str(cache_dir)).st_mode) == 0o700
    for name in os.listdir(str(cache_dir)):
        assert stat.S_IMODE(os.stat(str(cache_dir / name)).st_mode) == 0o600
        assert "s3cr3t-value" not in (cache_dir / name).read_text()


def test_cache_refetches_tokens_close_to_expiry(tmp_path):
    a = auth(tmp_path)
    key = a.cache_key("https://graph.microsoft.com")
    a.cache.get_or_fetch(key, lambda: ("old", 200))  # expires within 5 minutes
    assert a.cache.get_or_fetch(key, lambda: ("new", 3599)) == "new"
    assert a.cache.get_or_fetch(key, lambda: ("newer", 3599)) == "new"


def test_cache_keys_separate_credentials_resources_and_directories(tmp_path):
    base = auth(tmp_path)
    graph = base.cache_key("https://graph.microsoft.com")
    assert graph != base.cache_key("https://outlook.office365.com")
    assert graph != auth(tmp_path, client_secret="other").cache_key("https://graph.microsoft.com")
    assert graph != auth(tmp_path, tenant_id="contoso.onmicrosoft.com").cache_key("https://graph.microsoft.com")
    assert graph == auth(tmp_path).cache_key("https://graph.microsoft.com")


def test_token_error_quotes_aadsts_and_says_what_to_do(tmp_path):
    error = auth(tmp_path)._token_error({
        "error": "invalid_client", "error_codes": [7000215], "correlation_id": "corr-1",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}, "https://graph.microsoft.com/.default")
    text = error.describe()
    assert "AADSTS7000215: Invalid client secret provided." in text and "Trace ID" not in text
    assert "corr-1" in text and "Value (not its ID)" in text and TENANT in text


class _Answer:
    """What the transport returns: a requests-like response."""

    def __init__(self, status, body, method="POST", url=None):
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.headers = {}
        self.reason = "reason"
        self.url = url
        self.request = type("Request", (), {"method": method})()

    def json(self):
        return json.loads(self.text)


class _Transport(Transport):
    """The real error handling, with each send answered from a queue and recorded."""

    def __init__(self, *answers):
        super(_Transport, self).__init__("Entra ID")
        self.answers = list(answers)
        self.sent = []

    def send(self, method, path_or_url, **kwargs):
        self.sent.append((method, path_or_url, kwargs))
        status, body = self.answers.pop(0)
        return _Answer(status, body, method, path_or_url)


def test_a_client_secret_token_is_one_post_to_the_token_endpoint(tmp_path):
    transport = _Transport((200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ.token"}))
    assert auth(tmp_path, transport=transport).exchange_token() == "eyJ.token"
    # No openid-configuration read first (msal's tenant discovery): one request per token, as CE sends it.
    [(method, url, kwargs)] = transport.sent
    assert (method, url) == ("POST", "https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT)
    assert kwargs["data"] == {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": "s3cr3t-value",
                              "scope": "https://outlook.office365.com/.default"}
    assert auth(tmp_path, transport=transport).exchange_token() == "eyJ.token" and len(transport.sent) == 1  # from the cache


def test_a_refused_client_secret_quotes_entra_and_says_what_to_do(tmp_path):
    transport = _Transport((401, {"error": "invalid_client", "error_codes": [7000215], "trace_id": "trace-9",
                                  "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: trace-9"}))
    with pytest.raises(ServiceError) as caught:
        auth(tmp_path, transport=transport).graph_token()
    text = caught.value.describe()
    assert "AADSTS7000215: Invalid client secret provided." in text and "trace-9" in text and "Value (not its ID)" in text
    assert caught.value.code == "invalid_client" and "s3cr3t-value" not in text


def test_an_answer_that_is_not_entras_names_the_url_and_status(tmp_path):
    transport = _Transport((404, "<html>Not Found</html>"))
    with pytest.raises(ServiceError) as caught:
        auth(tmp_path, transport=transport, authority_host="https://login.example.test").graph_token()
    text = caught.value.describe()
    assert caught.value.status == 404 and "login.example.test/%s/oauth2/v2.0/token" % TENANT in text and "authority_host" in text
