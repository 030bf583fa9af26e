# -*- coding: utf-8 -*-
"""The token cache on a hostile machine: a directory or file someone else controls is never trusted."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import time

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import msauth

OTHER_UID = 65534  # nobody
KEY = "k" * 64
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")


class Fetches:
    def __init__(self, token="fresh-token"):
        self.token = token
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.token, 3599


def refusal(directory):
    fetch = Fetches()
    with pytest.raises(msauth.TokenCacheError) as caught:
        msauth.TokenCache(str(directory)).get_or_fetch(KEY, fetch)
    assert fetch.calls == 0
    return caught.value.describe()


@as_root
def test_a_cache_directory_owned_by_another_user_is_refused_naming_the_owner_and_the_fix(tmp_path):
    cache = tmp_path / "tokens"
    cache.mkdir(mode=0o700)
    os.chown(str(cache), OTHER_UID, OTHER_UID)
    message = refusal(cache)
    assert str(cache) in message and "owned by" in message and "uid %d" % OTHER_UID in message
    assert "chown %d %s" % (os.geteuid(), cache) in message and "CEOPS_TOKEN_CACHE_DIR" in message
    assert os.listdir(str(cache)) == []  # nothing written into it


@as_root
def test_a_world_writable_cache_directory_of_another_user_gets_no_token_file(tmp_path):
    # The case: the other user owns the directory and has planted the file the token would go to.
    cache = tmp_path / "tokens"
    cache.mkdir()
    os.chmod(str(cache), 0o777)
    os.chown(str(cache), OTHER_UID, OTHER_UID)
    planted = cache / (KEY + ".json")
    planted.write_text("")
    os.chmod(str(planted), 0o666)
    os.chown(str(planted), OTHER_UID, OTHER_UID)
    refusal(cache)
    assert planted.read_text() == ""


@pytest.mark.parametrize("mode,says", [(0o777, "write to"), (0o770, "write to"), (0o755, "read"), (0o740, "read")])
def test_a_cache_directory_group_or_others_can_open_is_refused_with_chmod(tmp_path, mode, says):
    cache = tmp_path / "tokens"
    cache.mkdir()
    os.chmod(str(cache), mode)
    message = refusal(cache)
    assert "mode is %04o" % mode in message and "group or others may %s it" % says in message
    assert "chmod 700 %s" % cache in message


def test_a_cache_directory_that_is_a_symbolic_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "tokens"
    link.symlink_to(real)
    message = refusal(link)
    assert "symbolic link" in message and str(real) in message
    assert os.listdir(str(real)) == []


def test_an_absent_cache_directory_is_made_private(tmp_path):
    old = os.umask(0)
    try:
        token = msauth.TokenCache(str(tmp_path / "new" / "tokens")).get_or_fetch(KEY, Fetches())
    finally:
        os.umask(old)
    assert token == "fresh-token"
    assert stat.S_IMODE(os.stat(str(tmp_path / "new" / "tokens")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(tmp_path / "new" / "tokens" / (KEY + ".json"))).st_mode) == 0o600


def plant_entry(path, token="planted-token"):
    path.write_text(json.dumps({"access_token": token, "expires_on": time.time() + 3000}))


def plant_foreign_file(cache, path):
    plant_entry(path)
    os.chmod(str(path), 0o600)
    os.chown(str(path), OTHER_UID, OTHER_UID)


def plant_readable_file(cache, path):
    plant_entry(path)
    os.chmod(str(path), 0o644)


def plant_symlink(cache, path):
    elsewhere = cache.parent / "elsewhere.json"
    plant_entry(elsewhere)
    os.chmod(str(elsewhere), 0o600)
    path.symlink_to(elsewhere)


@pytest.mark.parametrize("plant", [
    pytest.param(plant_foreign_file, marks=as_root, id="owned-by-another-user"),
    pytest.param(plant_readable_file, id="readable-by-others"),
    pytest.param(plant_symlink, id="symbolic-link"),
])
def test_a_cached_token_is_served_only_from_a_private_regular_file_of_ours(tmp_path, plant):
    cache = tmp_path / "tokens"
    cache.mkdir(mode=0o700)
    path = cache / (KEY + ".json")
    plant(cache, path)
    fetch = Fetches()
    assert msauth.TokenCache(str(cache)).get_or_fetch(KEY, fetch) == "fresh-token"
    assert fetch.calls == 1
    # What is there now is our own file, in place of what was planted.
    info = os.lstat(str(path))
    assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o600
    assert json.loads(path.read_text())["access_token"] == "fresh-token"


def test_a_link_planted_at_the_temporary_file_name_is_not_followed(tmp_path):
    cache = tmp_path / "tokens"
    cache.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # The name a write used to take, predictable from the process id.
    (cache / ("%s.json.%d.tmp" % (KEY, os.getpid()))).symlink_to(victim)
    assert msauth.TokenCache(str(cache)).get_or_fetch(KEY, Fetches()) == "fresh-token"
    assert victim.read_text() == "precious"
    assert sorted(os.listdir(str(cache))) == sorted(["%s.json" % KEY, "%s.json.%d.tmp" % (KEY, os.getpid()), "%s.lock" % KEY])


def test_a_refused_cache_fails_the_token_request_before_any_request(tmp_path):
    cache = tmp_path / "tokens"
    cache.mkdir()
    os.chmod(str(cache), 0o777)

    class NoTransport:
        def send(self, *args, **kwargs):
            raise AssertionError("no request may be sent")

    auth = msauth.MicrosoftAuth("6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", client_id="11111111-2222-3333-4444-555555555555",
                                client_secret="s3cr3t", token_cache_dir=str(cache), transport=NoTransport())
    with pytest.raises(msauth.TokenCacheError) as caught:
        auth.graph_token()
    assert "chmod 700" in str(caught.value)
