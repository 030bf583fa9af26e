# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import ce_reconcile

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"


@pytest.mark.parametrize("cloud,host,scope", [
    ("public", "login.microsoftonline.com", "https://outlook.office365.com/.default"),
    ("usgov", "login.microsoftonline.us", "https://outlook.office365.us/.default"),
    ("usgov_dod", "login.microsoftonline.us", "https://outlook-dod.office365.us/.default"),
    ("china", "login.chinacloudapi.cn", "https://partner.outlook.cn/.default"),
])
def test_token_endpoint_and_scope_per_cloud(cloud, host, scope):
    assert ce_reconcile.token_endpoint_url(TENANT, cloud) == "https://%s/%s/oauth2/v2.0/token" % (host, TENANT)
    assert ce_reconcile.default_scopes(cloud) == [scope]


def test_authority_override_with_or_without_scheme():
    assert ce_reconcile.token_endpoint_url(TENANT, authority_host="https://127.0.0.1:8443/") == \
        "https://127.0.0.1:8443/%s/oauth2/v2.0/token" % TENANT
    assert ce_reconcile.token_endpoint_url("contoso.onmicrosoft.com", authority_host="login.example.test") == \
        "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token"


def test_differences_name_each_changed_field_and_ignore_unmanaged_ones():
    current = {"id": "gw-1", "name": "EXO", "description": "x", "inbound": {"host": "a", "port": 995}, "scopes": ["b", "a"]}
    desired = {"name": "EXO", "inbound": {"host": "a", "port": 993}, "scopes": ["a", "b"]}
    assert ce_reconcile.differences(current, desired) == ["inbound.port 995 -> 993"]
    assert ce_reconcile.differences(None, {"name": "EXO", "oauth_settings_id": None}) == ["name (none) -> EXO"]
    assert ce_reconcile.differences({"scopes": ["a"]}, {"scopes": ["a", "b"]}) == ["scopes a -> a,b"]


def test_describe_endpoint():
    assert ce_reconcile.describe_endpoint(ce_reconcile.EXCHANGE_ONLINE_INBOUND) == "IMAP outlook.office365.com:993 (ssl)"
    assert ce_reconcile.describe_endpoint(ce_reconcile.EXCHANGE_ONLINE_OUTBOUND) == "smtp.office365.com:587 (starttls)"
