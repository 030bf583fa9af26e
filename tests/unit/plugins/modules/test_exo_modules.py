# -*- coding: utf-8 -*-
"""exo_service_principal and exo_mailbox_permission as Ansible runs them, on an in-memory Exchange."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import json
import os
import sys

import pytest
from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import patch_module_args

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import microsoft_module
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange import ExchangeClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from exchange_fakes import (APP_ID, APP_OBJECT_ID, MAILBOXES, SP_ID, TENANT, FakeExchange, FakeGraph,  # noqa: E402
                            registered)  # pylint: disable=wrong-import-position

AUTH = dict(tenant_id=TENANT, client_id="55555555-5555-4555-8555-555555555555", client_secret="s3cret", token_cache_dir="/nonexistent")
THUMBPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"


class Runner:
    def __init__(self, exchange, graph, monkeypatch, capsys):
        self.exchange = exchange
        self.capsys = capsys
        self.built = []

        def client_from_params(params, auth=None, pool_size=10):
            self.built.append(dict(transport=params["transport"], pool_size=pool_size, auth=auth is not None))
            return ExchangeClient(exchange, params["tenant_id"])
        monkeypatch.setattr(microsoft_module, "client_from_params", client_from_params)
        monkeypatch.setattr(microsoft_module.MicrosoftModule, "graph", property(lambda module: graph))

    def __call__(self, name, args, check_mode=False):
        module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
        full = dict(AUTH, **args)
        full.update(_ansible_check_mode=check_mode, _ansible_diff=True)
        self.capsys.readouterr()
        with patch_module_args(full):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(self.capsys.readouterr().out)


@pytest.fixture
def exchange():
    return FakeExchange()


@pytest.fixture
def run(exchange, monkeypatch, capsys):
    return Runner(exchange, FakeGraph(), monkeypatch, capsys)


def test_service_principal_then_permissions_then_nothing_to_do(exchange, run):
    sp = run("exo_service_principal", {"app_id": APP_ID, "object_id": SP_ID})
    assert sp["changed"] is True and sp["object_id"] == SP_ID and sp["display_name"] == "CE Email"
    access = run("exo_mailbox_permission", {"user": SP_ID, "mailboxes": MAILBOXES, "parallelism": 3})
    assert access["changed"] is True and access["summary"]["added"] == MAILBOXES and access["summary"]["failed"] == []
    assert run.built[-1] == {"transport": "rest", "pool_size": 3, "auth": True}
    assert run("exo_service_principal", {"app_id": APP_ID, "object_id": SP_ID})["changed"] is False
    again = run("exo_mailbox_permission", {"user": SP_ID, "mailboxes": MAILBOXES})
    assert again["changed"] is False and again["summary"]["unchanged"] == MAILBOXES


def test_check_mode_sends_no_write(exchange, run):
    run("exo_service_principal", {"app_id": APP_ID, "object_id": SP_ID}, check_mode=True)
    result = run("exo_mailbox_permission", {"user": SP_ID, "mailboxes": MAILBOXES}, check_mode=True)
    assert result["changed"] is True and exchange.writes() == []
    assert "has no service principal with object id" in json.dumps(result["warnings"])


def test_the_application_object_id_fails_with_the_explanation(exchange, run):
    result = run("exo_service_principal", {"app_id": APP_ID, "object_id": APP_OBJECT_ID})
    assert result["failed"] is True and "APPLICATION" in result["msg"] and SP_ID in result["msg"] and TENANT in result["msg"]
    assert exchange.writes() == []


def test_an_unknown_mailbox_fails_the_task_after_the_others(exchange, run):
    registered(exchange)
    result = run("exo_mailbox_permission", {"user": SP_ID, "mailboxes": MAILBOXES + ["ce-nope@contoso.onmicrosoft.com"]})
    assert result["failed"] is True and result["changed"] is True and result["summary"]["added"] == MAILBOXES
    assert "ce-nope@contoso.onmicrosoft.com" in result["msg"] and "does not exist" in result["msg"] and TENANT in result["msg"]
    relaxed = run("exo_mailbox_permission", {"user": SP_ID, "mailboxes": MAILBOXES + ["ce-nope@contoso.onmicrosoft.com"],
                                             "fail_on_mailbox_error": False})
    assert not relaxed.get("failed") and relaxed["summary"]["failed"] == ["ce-nope@contoso.onmicrosoft.com"]


@pytest.mark.parametrize("args,words", [
    ({"mailboxes": []}, "mailboxes is empty"),
    ({"mailboxes": ["x'; Remove-Mailbox -Identity y; '"]}, "not an email address"),
    ({"parallelism": 100}, "parallelism must be between 1 and 32"),
    ({"transport": "winrm"}, "transport is winrm but all of the following are missing: winrm"),
])
def test_bad_input_fails_before_anything_is_sent(exchange, run, args, words):
    result = run("exo_mailbox_permission", dict({"user": SP_ID, "mailboxes": MAILBOXES}, **args))
    assert result["failed"] is True and words in result["msg"], result["msg"]
    assert exchange.calls == [] and run.built == []


def test_winrm_needs_no_secret_and_its_options_are_checked_before_sending(exchange, monkeypatch, capsys):
    run = Runner(exchange, FakeGraph(), monkeypatch, capsys)
    monkeypatch.setattr(microsoft_module, "client_from_params", importlib.import_module(
        "ansible_collections.ceops.exchange_oauth.plugins.module_utils.exchange").client_from_params)
    args = {"app_id": APP_ID, "object_id": SP_ID, "client_secret": None, "transport": "winrm",
            "winrm": {"host": "mgmt.example", "username": "CORP\\exo", "password": "pw", "certificate_thumbprint": "not-a-thumbprint"}}
    result = run("exo_service_principal", args)
    assert result["failed"] is True and "certificate_thumbprint" in result["msg"] and "client_secret" not in result["msg"]
    assert "pw" not in json.dumps(result.get("invocation", {}))
