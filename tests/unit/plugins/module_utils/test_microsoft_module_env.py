# -*- coding: utf-8 -*-
"""Which credentials a Microsoft module takes from the environment: the Azure SDK's variable names, and the ones AWX's
built-in "Microsoft Azure Resource Manager" credential injects (AZURE_CLIENT_ID, AZURE_SECRET, AZURE_TENANT,
AZURE_CLOUD_ENVIRONMENT), with the documented precedence: task option or module_defaults > SDK name > AWX name."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import MicrosoftModule
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import patch_module_args

TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"
AWX_TENANT = "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"
CLIENT = "11111111-2222-3333-4444-555555555555"
VARIABLES = ("AZURE_TENANT_ID", "AZURE_TENANT", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_SECRET",
             "AZURE_CLOUD_ENVIRONMENT", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_AUTHORITY_HOST")


@pytest.fixture
def environ(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_


def module(args=None):
    """A Microsoft module as it starts: its parameters after Ansible's validation, or its failure."""
    with patch_module_args(dict(args or {}, _ansible_check_mode=True)):
        return MicrosoftModule({}, supports_check_mode=True)


def failure(args, capsys):
    with pytest.raises(SystemExit):
        module(args)
    return json.loads(capsys.readouterr().out)


def test_awx_azure_credential_alone_gives_tenant_client_and_secret(environ):
    # What AWX's azure_rm injector sets for a credential with client, secret, tenant and a cloud environment.
    environ(AZURE_SUBSCRIPTION_ID="unused", AZURE_CLIENT_ID=CLIENT, AZURE_TENANT=AWX_TENANT, AZURE_SECRET="awx-secret-value",
            AZURE_CLOUD_ENVIRONMENT="AzureUSGovernment")
    params = module().params
    assert (params["tenant_id"], params["client_id"], params["client_secret"], params["cloud"]) == \
        (AWX_TENANT, CLIENT, "awx-secret-value", "usgov")


def test_the_secret_from_awx_is_masked_like_any_secret(environ):
    environ(AZURE_CLIENT_ID=CLIENT, AZURE_TENANT=AWX_TENANT, AZURE_SECRET="awx-secret-value")
    assert "awx-secret-value" in module().no_log_values


def test_the_sdk_names_win_over_awx_names(environ):
    environ(AZURE_TENANT_ID=TENANT, AZURE_TENANT=AWX_TENANT, AZURE_CLIENT_SECRET="sdk-secret", AZURE_SECRET="awx-secret")
    params = module().params
    assert (params["tenant_id"], params["client_secret"]) == (TENANT, "sdk-secret")


def test_options_and_module_defaults_win_over_the_environment(environ):
    environ(AZURE_TENANT_ID=TENANT, AZURE_TENANT=AWX_TENANT, AZURE_CLIENT_SECRET="sdk-secret", AZURE_SECRET="awx-secret",
            AZURE_CLOUD_ENVIRONMENT="AzureChinaCloud")
    params = module(dict(tenant_id="contoso.onmicrosoft.com", client_secret="task-secret", cloud="public")).params
    assert (params["tenant_id"], params["client_secret"], params["cloud"]) == ("contoso.onmicrosoft.com", "task-secret", "public")


@pytest.mark.parametrize("value, cloud", [
    ("AzureCloud", "public"), ("AzureUSGovernment", "usgov"), ("AzureChinaCloud", "china"), ("azureusgovernment", "usgov"),
    ("", "public"),  # AWX injects nothing when the field is empty; an empty variable is the default too
])
def test_the_azure_cloud_environment_names_map_to_cloud(environ, value, cloud):
    environ(AZURE_TENANT_ID=TENANT, AZURE_CLOUD_ENVIRONMENT=value)
    assert module().params["cloud"] == cloud


@pytest.mark.parametrize("value", ["AzureGermanCloud", "https://management.local.azurestack.external/metadata/endpoints"])
def test_a_cloud_environment_we_cannot_serve_is_refused_naming_it(environ, capsys, value):
    environ(AZURE_TENANT_ID=TENANT, AZURE_CLOUD_ENVIRONMENT=value)
    result = failure({}, capsys)
    assert result["failed"] is True and "cloud" in result["msg"] and value in result["msg"], result


def test_without_a_tenant_anywhere_the_message_names_both_variables(environ, capsys):
    result = failure({}, capsys)
    assert "AZURE_TENANT_ID or AZURE_TENANT" in result["msg"], result
