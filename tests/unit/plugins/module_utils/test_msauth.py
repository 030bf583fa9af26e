# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import threading

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import msauth

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
