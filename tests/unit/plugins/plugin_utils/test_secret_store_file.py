# -*- coding: utf-8 -*-
"""The secret store's file (plugins/plugin_utils/secret_store.py): what is refused, the merge, the atomic 0600 write, and
writers at once under the lock. Encryption is a stand-in here (the action plugin's test uses Ansible Vault itself): the file
must look vault-encrypted, and the stand-in proves what was written went through it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import multiprocessing
import os
import stat

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import secret_store

HEADER = b"$ANSIBLE_VAULT;1.1;AES256\n"


def encrypt(plaintext):
    return HEADER + base64.b64encode(plaintext) + b"\n"


def decrypt(raw):
    if not raw.startswith(HEADER):
        raise ValueError("Decryption failed (no vault secrets were found that could decrypt)")
    return base64.b64decode(raw[len(HEADER):])


def entry(host, key_id, secret="s3cr3t-value-of-%s", **extra):
    base = {"tenant_id": "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "app_id": "app-1", "key_id": key_id,
            "secret_name": "CE mailbox access (%s)" % host, "ce_tenant": host, "start_date_time": "2026-12-07T12:00:00Z",
            "end_date_time": "2027-12-07T12:00:00Z", "client_secret": secret % host if "%s" in secret else secret}
    base.update(extra)
    return base


@pytest.fixture
def store(tmp_path):
    directory = tmp_path / "keep"
    directory.mkdir()
    return str(directory / "store.yml")


def test_a_store_that_does_not_exist_is_empty_and_an_update_makes_it_0600_encrypted(store):
    assert secret_store.read(store, decrypt) == []
    report = secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    assert report["changed"] and [a["key_id"] for a in report["added"]] == ["k1"]
    raw = open(store, "rb").read()
    assert raw.startswith(HEADER) and b"s3cr3t" not in raw
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    (read,) = secret_store.read(store, decrypt)
    assert read["client_secret"] == "s3cr3t-value-of-acme" and read["key_id"] == "k1"
    # Nothing of the write is left beside it but the (empty) lock file.
    assert sorted(os.listdir(os.path.dirname(store))) == ["store.yml", "store.yml.lock"]
    assert os.path.getsize(store + ".lock") == 0


def test_an_unchanged_update_writes_nothing_and_check_mode_never_writes(store):
    secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    before = os.stat(store)
    again = secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")], remove_key_ids=["not-there"])
    assert not again["changed"] and again["added"] == [] and again["removed"] == []
    assert os.stat(store).st_ino == before.st_ino  # not replaced
    plan = secret_store.update(store, decrypt, encrypt, add=[entry("globex", "K2")], remove_key_ids=["K1"], check_mode=True)
    assert plan["changed"] and [a["ce_tenant"] for a in plan["added"]] == ["globex"] and [r["key_id"] for r in plan["removed"]] == ["k1"]
    assert os.stat(store).st_ino == before.st_ino and [e["key_id"] for e in secret_store.read(store, decrypt)] == ["k1"]


def test_merge_replaces_by_key_id_removes_and_reports_no_value():
    entries = [secret_store.checked(entry("acme", "K1"), "x"), secret_store.checked(entry("globex", "K2"), "x")]
    merged, report = secret_store.merge(entries, add=[entry("acme", "k1", secret="new"), entry("initech", "K3")], remove_key_ids=["K2"])
    assert [(e["ce_tenant"], e["key_id"], e["client_secret"]) for e in merged] == [("acme", "k1", "new"), ("initech", "k3", "s3cr3t-value-of-initech")]
    assert [r["key_id"] for r in report["replaced"]] == ["k1"] and [a["key_id"] for a in report["added"]] == ["k3"]
    assert [r["key_id"] for r in report["removed"]] == ["k2"]
    assert "s3cr3t" not in repr(report) and "new" not in repr(report["replaced"])


def test_an_entry_without_its_value_or_key_id_is_refused_naming_it_but_not_its_secret():
    with pytest.raises(secret_store.StoreError, match=r"key id K1, CE tenant acme\) has no client_secret"):
        secret_store.merge([], add=[entry("acme", "K1", secret="")])
    with pytest.raises(secret_store.StoreError) as raised:
        secret_store.merge([], add=[dict(entry("acme", "K1"), key_id=None)])
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize("content", [b"version: 1\nentries:\n- client_secret: in-clear\n", b"", b"just text"])
def test_a_store_that_is_not_vault_encrypted_is_refused_and_left_as_it_is(store, content):
    with open(store, "wb") as handle:
        handle.write(content)
    for call in (lambda: secret_store.read(store, decrypt), lambda: secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])):
        with pytest.raises(secret_store.StoreError, match=r"%s exists but is not encrypted with Ansible Vault.*ansible-vault encrypt" % store):
            call()
    assert open(store, "rb").read() == content


def test_a_symlink_or_a_directory_in_the_stores_place_is_refused(store, tmp_path):
    target = tmp_path / "elsewhere.yml"
    target.write_bytes(encrypt(secret_store.dump([])))
    os.symlink(str(target), store)
    with pytest.raises(secret_store.StoreError, match="is a symbolic link"):
        secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    assert os.path.islink(store) and target.read_bytes() == encrypt(secret_store.dump([]))
    os.unlink(store)
    os.mkdir(store)
    with pytest.raises(secret_store.StoreError, match="is not a regular file"):
        secret_store.read(store, decrypt)


def test_a_lock_file_that_is_a_symlink_is_refused(store, tmp_path):
    os.symlink(str(tmp_path / "planted"), store + ".lock")
    with pytest.raises(secret_store.StoreError, match="lock file .* cannot be opened"):
        secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    assert not (tmp_path / "planted").exists() and not os.path.exists(store)


def wrong_password(raw):
    raise ValueError("Decryption failed (no vault secrets were found that could decrypt)")


def test_a_store_the_run_cannot_decrypt_says_what_to_give(store):
    with open(store, "wb") as handle:
        handle.write(b"$ANSIBLE_VAULT;1.1;AES256\nnot-ours\n")
    with pytest.raises(secret_store.StoreError, match=r"cannot be decrypted with the vault secrets of this run .*--ask-vault-pass or --vault-id"):
        secret_store.read(store, wrong_password)


def test_a_store_of_another_shape_is_refused(store):
    with open(store, "wb") as handle:
        handle.write(encrypt(b"version: 7\nentries: []\n"))
    with pytest.raises(secret_store.StoreError, match="not a store of version 1"):
        secret_store.read(store, decrypt)


def test_a_failed_write_leaves_the_old_store_and_no_temporary_file(store, monkeypatch):
    secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    old = open(store, "rb").read()

    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        secret_store.update(store, decrypt, encrypt, add=[entry("globex", "K2")])
    assert open(store, "rb").read() == old
    assert sorted(os.listdir(os.path.dirname(store))) == ["store.yml", "store.yml.lock"]


def _writer(store, host, count, start):
    start.wait()
    for number in range(count):
        secret_store.update(store, decrypt, encrypt, add=[entry(host, "%s-%d" % (host, number))])


def test_writers_at_once_lose_no_entry(store):
    """Four processes (as four app leads in forked workers, or runs at once) add 15 entries each, one update at a time: with the
    lock each read-modify-write sees the others' entries, and all 60 are in the store."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    writers = [context.Process(target=_writer, args=(store, host, 15, start)) for host in ("acme", "globex", "initech", "stark")]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    assert len(secret_store.read(store, decrypt)) == 60


def test_for_ce_tenants_keeps_only_theirs():
    entries = [secret_store.checked(entry(h, "K-" + h), "x") for h in ("acme", "globex", "initech")]
    assert [e["ce_tenant"] for e in secret_store.for_ce_tenants(entries, ["globex", "acme"])] == ["acme", "globex"]
    assert len(secret_store.for_ce_tenants(entries)) == 3


def test_an_empty_path_is_refused():
    with pytest.raises(secret_store.StoreError, match="ceops_secret_store is empty"):
        secret_store.store_path("  ")


def test_a_directory_others_may_write_to_or_that_is_not_there_is_refused_before_anything_is_read_or_written(store):
    directory = os.path.dirname(store)
    os.chmod(directory, 0o777)
    for attempt in (lambda: secret_store.read(store, decrypt), lambda: secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])):
        with pytest.raises(secret_store.StoreError) as refused:
            attempt()
        assert "group or others may write to its directory %s (mode 0777)" % directory in str(refused.value)
    assert os.listdir(directory) == []
    os.chmod(directory, 0o755)
    missing = os.path.join(directory, "nowhere", "store.yml")
    with pytest.raises(secret_store.StoreError, match="mkdir -m 700"):
        secret_store.read(missing, decrypt)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_a_directory_of_another_user_is_refused(store):
    directory = os.path.dirname(store)
    os.chown(directory, 65534, -1)
    with pytest.raises(secret_store.StoreError, match="belongs to user id 65534"):
        secret_store.update(store, decrypt, encrypt, add=[entry("acme", "K1")])
    assert not os.path.exists(store)
