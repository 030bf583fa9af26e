# -*- coding: utf-8 -*-
"""The secret_store action with Ansible's own DataLoader and vault secrets, as a run has them: read and update, the vault id
it encrypts with, check mode, and no secret in a result."""
from __future__ import annotations

import importlib
import os
import sys
from unittest import mock

import pytest
import yaml

SECRET = "Zq8~uV3.lab-secret-of-acme"
ENTRY = {"tenant_id": "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "app_id": "app-1", "key_id": "K1", "secret_name": "CE mailbox access (acme)",
         "ce_tenant": "acme", "start_date_time": "2026-12-07T12:00:00Z", "end_date_time": "2027-12-07T12:00:00Z", "client_secret": SECRET}


@pytest.fixture(autouse=True)
def controller():
    """Importing Ansible's controller code switches ansible.module_utils to controller mode process-wide: put it back after each
    test, for the module tests sharing this pytest process (as tests/unit/plugins/action/test_in_process.py does)."""
    internal = sys.modules.get("ansible.module_utils._internal")
    before = getattr(internal, "is_controller", None)
    yield
    if before is not None:
        internal.is_controller = before


def vault(*identities):
    from ansible.parsing.vault import VaultSecret
    return [(name, VaultSecret(password.encode())) for name, password in identities]


def run(args, secrets, check_mode=False, diff=False):
    from ansible.parsing.dataloader import DataLoader
    action_module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.action.secret_store")
    loader = DataLoader()
    loader.set_vault_secrets(secrets)
    task = mock.MagicMock(args=args, async_val=0, check_mode=check_mode, diff=diff, no_log=False)
    action = action_module.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader, None, None)
    return action.run(task_vars={})


def decrypted(path, secrets):
    from ansible.parsing.vault import VaultLib
    return yaml.safe_load(VaultLib(secrets).decrypt(open(path, "rb").read()))


def test_update_encrypts_with_the_runs_secret_and_read_returns_the_entries_as_a_hidden_fact(tmp_path):
    path = str(tmp_path / "store.yml")
    secrets = vault(("ceops", "pw-1"))
    result = run({"path": path, "state": "update", "add": [ENTRY]}, secrets, diff=True)
    assert result["changed"] and result["added"][0]["key_id"] == "k1" and "failed" not in result, result
    assert SECRET not in repr(result) and "k1" in result["diff"]["after"]
    raw = open(path, "rb").read()
    assert raw.startswith(b"$ANSIBLE_VAULT;1.2;AES256;ceops") and SECRET.encode() not in raw
    assert decrypted(path, secrets)["entries"][0]["client_secret"] == SECRET

    read = run({"path": path, "ce_tenants": ["acme", "globex"]}, secrets)
    assert read["ansible_facts"]["ceops_secret_store_entries"][0]["client_secret"] == SECRET
    assert read["_ansible_no_log"] is True and read["changed"] is False and read["path"] == path
    assert run({"path": path, "ce_tenants": ["globex"]}, secrets)["ansible_facts"]["ceops_secret_store_entries"] == []

    again = run({"path": path, "state": "update", "add": [ENTRY]}, secrets)
    assert again["changed"] is False and open(path, "rb").read() == raw


def test_check_mode_reads_and_reports_but_writes_nothing(tmp_path):
    path = str(tmp_path / "store.yml")
    secrets = vault(("ceops", "pw-1"))
    plan = run({"path": path, "state": "update", "add": [ENTRY]}, secrets, check_mode=True)
    assert plan["changed"] and plan["added"][0]["ce_tenant"] == "acme" and not os.path.exists(path)
    run({"path": path, "state": "update", "add": [ENTRY]}, secrets)
    raw = open(path, "rb").read()
    plan = run({"path": path, "state": "update", "remove_key_ids": ["K1"]}, secrets, check_mode=True)
    assert plan["changed"] and plan["removed"][0]["key_id"] == "k1" and open(path, "rb").read() == raw


def test_the_vault_id_named_is_the_one_it_encrypts_with_and_one_the_run_lacks_is_refused(tmp_path):
    path = str(tmp_path / "store.yml")
    secrets = vault(("first", "pw-1"), ("store", "pw-2"))
    run({"path": path, "state": "update", "add": [ENTRY], "vault_id": "store"}, secrets)
    assert open(path, "rb").read().startswith(b"$ANSIBLE_VAULT;1.2;AES256;store")
    assert decrypted(path, vault(("store", "pw-2")))["entries"][0]["key_id"] == "k1"
    # Read back by a run that has it among others, whatever its order.
    assert run({"path": path}, list(reversed(secrets)))["entries"] == 1
    refused = run({"path": path, "state": "update", "add": [ENTRY], "vault_id": "elsewhere"}, secrets)
    assert refused["failed"] and "vault id 'elsewhere'" in refused["msg"] and "--vault-id elsewhere@" in refused["msg"]


def test_without_a_vault_secret_or_with_the_wrong_one_it_says_what_to_give(tmp_path):
    path = str(tmp_path / "store.yml")
    missing = run({"path": path}, [])
    assert missing["failed"] and "--ask-vault-pass or --vault-id" in missing["msg"] and path in missing["msg"]
    run({"path": path, "state": "update", "add": [ENTRY]}, vault(("ceops", "pw-1")))
    wrong = run({"path": path}, vault(("ceops", "not-the-password")))
    assert wrong["failed"] and "cannot be decrypted with the vault secrets of this run" in wrong["msg"], wrong
    assert "ansible_facts" not in wrong


def test_a_store_in_clear_is_refused_and_no_secret_reaches_the_message(tmp_path):
    path = tmp_path / "store.yml"
    path.write_text(yaml.safe_dump({"version": 1, "entries": [ENTRY]}))
    refused = run({"path": str(path)}, vault(("ceops", "pw-1")))
    assert refused["failed"] and "is not encrypted with Ansible Vault" in refused["msg"] and SECRET not in refused["msg"]
    bad = run({"path": str(tmp_path / "new.yml"), "state": "update", "add": [dict(ENTRY, key_id="")]}, vault(("ceops", "pw-1")))
    assert bad["failed"] and "has no key_id" in bad["msg"] and SECRET not in repr(bad)
