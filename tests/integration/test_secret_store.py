# -*- coding: utf-8 -*-
"""The secret store (ceops_secret_store, docs/lifecycle.md) on the lab fleet: every secret the collection makes for CE is kept,
encrypted with Ansible Vault, and later runs prove the logins and give CE its secret back from it, with nothing copied by hand.

One world for the module: a cold site.yml with the store from the lab's seed (its new secrets also saved in clear to the test's
own file, the only way the test learns their values), then a second site.yml. Every later run is given the store and no ms_apps:
what works, works from the store. The tests run in the file's order; each breaks only what it is about.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from lab_fleet import DIRECTORIES, REPO, SAVE_APPS, TENANTS, Fleet, writes
from playbook_output import recap, summary
from security_support import lab_secrets, variants

PASSWORD = b"store-password-of-the-test"
ALL_LOGINS = re.compile(r"\slogins (\d+)/\1 ok$")


def saving(fleet, name, playbook="site.yml"):
    """A playbook that runs ``playbook`` and then writes the secrets the run made, in clear, to the test's own file."""
    path = fleet.work / (name + ".json")
    wrapper = fleet.work / (name + ".yml")
    wrapper.write_text(SAVE_APPS.replace("@REPO@/playbooks/site.yml", os.path.join(REPO, "playbooks", playbook))
                       .replace("@REPO@", REPO).replace("@PATH@", str(path)))
    return str(wrapper), path


@pytest.fixture(scope="module")
def world(lab, tmp_path_factory):
    work = tmp_path_factory.mktemp("store")
    lab.reset()
    fleet = Fleet(lab, work)
    keep = work / "keep"
    keep.mkdir(mode=0o700)
    password = work / "vault-password"
    password.write_bytes(PASSWORD)
    fleet.store = keep / "ce-secrets.yml"
    fleet.store_args = ("-e", "ceops_secret_store=%s" % fleet.store, "--vault-id", "ceops@%s" % password)
    wrapper, fleet.ms_apps_file = saving(fleet, "cold")
    fleet.cold = fleet.run(wrapper, *fleet.store_args, apps=False)
    fleet.made = fleet.apps()
    fleet.cold_store = fleet.store.read_bytes() if fleet.store.exists() else b""
    lab.reset_counters()
    fleet.warm = fleet.run("site.yml", *fleet.store_args, apps=False)
    fleet.warm_writes = writes(lab)
    return fleet


def entries(fleet):
    """{CE tenant: its entries} of the store, decrypted as ansible-vault view would."""
    document = yaml.safe_load(VaultLib([("ceops", VaultSecret(PASSWORD))]).decrypt(fleet.store.read_bytes()))
    assert document["version"] == 1
    found = {}
    for entry in document["entries"]:
        found.setdefault(entry["ce_tenant"], []).append(entry)
    return found


def entra_secrets(lab, host):
    """[key ids] of the CE tenant's own secrets in its app, as Graph lists them."""
    directory = next(name for name, tenant_id in DIRECTORIES.items() if tenant_id == TENANTS[host]["ms_tenant_id"])
    return sorted(c["keyId"].lower() for app in lab.state("graph")["directories"][directory]["applications"]
                  for c in app["passwordCredentials"] if c["displayName"] == "CE mailbox access (%s)" % host)


def assert_no_clear_secret(fleet, raw, *made):
    """Not one of the secrets the lab hands out nor one made for CE, in any encoding, in ``raw``."""
    values = dict(lab_secrets(fleet.lab))
    for apps in made:
        for tenant_id, app in apps.items():
            values.update(("CE secret %s" % host, secret) for host, secret in app["client_secrets"].items())
    assert len(values) > len(TENANTS)
    for what, secret in values.items():
        for form in variants(secret):
            assert form.encode("utf-8") not in raw, "%s is in the store in clear" % what


def test_site_keeps_each_new_secret_encrypted_and_the_next_run_proves_every_mailbox_with_it(world):
    """The cold run keeps the secret it made for each CE tenant (one per CE tenant; the app leads of the three directories write
    at once), encrypted for the run's vault id, 0600, without one secret in clear; the second run proves every login of every
    CE tenant from the store (no "not checked") and writes nothing, neither to the services nor to the store."""
    assert world.cold.returncode == 0, world.cold.output[-4000:]
    stored = entries(world)
    assert sorted(stored) == sorted(TENANTS), stored.keys()
    assert sorted(set(e["tenant_id"] for es in stored.values() for e in es)) == sorted(DIRECTORIES.values())
    for host, (entry,) in stored.items():
        tenant_id = TENANTS[host]["ms_tenant_id"]
        assert entry["key_id"] in entra_secrets(world.lab, host), (host, entry["key_id"])
        assert (entry["tenant_id"], entry["app_id"]) == (tenant_id, world.made[tenant_id]["app_id"])
        assert entry["secret_name"] == "CE mailbox access (%s)" % host and entry["end_date_time"]
        assert entry["client_secret"] == world.made[tenant_id]["client_secrets"][host], host
    raw = world.store.read_bytes()
    assert raw.startswith(b"$ANSIBLE_VAULT;1.2;AES256;ceops\n"), raw[:40]
    assert oct(world.store.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in world.store.parent.iterdir()) == ["ce-secrets.yml", "ce-secrets.yml.lock"]
    assert_no_clear_secret(world, raw + world.cold.output.encode() + world.warm.output.encode(), world.made)

    assert world.warm.returncode == 0, world.warm.output[-4000:]
    lines = summary(world.warm.stdout)
    assert sorted(lines) == sorted(TENANTS)
    for host, host_lines in lines.items():
        assert ALL_LOGINS.search(host_lines[0]) and int(ALL_LOGINS.search(host_lines[0]).group(1)) > 0, host_lines
    assert all(h["changed"] == 0 for h in recap(world.warm.stdout).values()), world.warm.output[-3000:]
    assert world.warm_writes == {} and world.store.read_bytes() == world.cold_store


def test_a_run_that_cannot_decrypt_the_store_makes_nothing_and_says_why(world):
    """Without the store's vault secret the run cannot keep what it would make: every CE tenant fails in the part "Secret store"
    with what to do, the summary comes, nothing is written, the exit code is non-zero."""
    lab = world.lab
    lab.reset_counters()
    refused = world.run("site.yml", "-e", "ceops_secret_store=%s" % world.store, apps=False)
    assert refused.returncode != 0 and writes(lab) == {}, refused.output[-3000:]
    for host, host_lines in summary(refused.stdout).items():
        assert re.match(r"%s\s+FAILED\s" % host, host_lines[0]), host_lines
        assert any(line.startswith("Secret store: secret store %s" % world.store) and "--ask-vault-pass" in line for line in host_lines), host_lines
    assert world.store.read_bytes() == world.cold_store


def test_ce_alone_without_microsoft_credentials_gives_ce_its_secret_back_from_the_store(world, monkeypatch):
    """acme's CE administrator deletes its OAuth settings in the Portal; ce.yml run without any Microsoft credentials and without
    ms_apps makes them again with acme's secret from the store, and CE logs in with it (the lab's oracle)."""
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    connection = world.connection("emea", "acme")
    settings_id = connection["oauth_settings_id"]
    world.portal("emea", "PUT", "/tenants/acme/email-connections/%s" % connection["id"],
                 dict(dict((k, connection[k]) for k in ("name", "gateway_id")), oauth_settings_id=None, use_oauth_receive=False, use_oauth_send=False))
    world.portal("emea", "DELETE", "/tenants/acme/oauth-settings/%s" % settings_id)
    world.portal("emea", "POST", "/server-updates")
    world.lab.reset_counters()

    alone = world.run("ce.yml", "-e", '{"ms_credentials": {}}', *world.store_args, apps=False)
    assert alone.returncode == 0, alone.output[-4000:]
    assert "graph" not in writes(world.lab), writes(world.lab)
    oracle = world.lab.ce_login_oracle("emea", "acme")
    assert oracle["ok"] is True, oracle
    held = [o["key_id"].lower() for c in oracle["connections"] for o in c["secret"]["owners"]]
    assert held == [entries(world)["acme"][0]["key_id"]], held


def test_verify_alone_proves_every_mailbox_from_the_store(world):
    verified = world.run("verify.yml", *world.store_args, apps=False)
    assert verified.returncode == 0, verified.output[-4000:]
    lines = summary(verified.stdout)
    assert sorted(lines) == sorted(TENANTS)
    assert all(ALL_LOGINS.search(host_lines[0]) for host_lines in lines.values()), lines


def test_a_secret_removed_by_hand_or_rotated_leaves_the_store(world):
    """An Entra administrator removes globex's secret by hand: azuread.yml alone (which makes no secret) takes it out of the store.
    A rotation of initech's secret puts the new one in and takes the old one out, still nothing in clear."""
    lab = world.lab
    (globex_key,) = [e["key_id"] for e in entries(world)["globex"]]
    contoso = next(a for a in lab.state("graph")["directories"]["contoso"]["applications"] if a["appId"] == world.made[DIRECTORIES["contoso"]]["app_id"])
    world.graph("contoso", "POST", "/applications/%s/removePassword" % contoso["id"], {"keyId": globex_key})

    kept = world.run("azuread.yml", *world.store_args, apps=False)
    assert kept.returncode == 0, kept.output[-4000:]
    stored = entries(world)
    assert "globex" not in stored and sorted(stored) == sorted(set(TENANTS) - {"globex"}), stored.keys()

    (old_key,) = [e["key_id"] for e in stored["initech"]]
    wrapper, rotated_file = saving(world, "rotated", "rotate_secret.yml")
    rotated = world.run(wrapper, "-e", "ceops_hosts=initech", "-e", "rotate_secret_force=true", *world.store_args, apps=False)
    assert rotated.returncode == 0, rotated.output[-4000:]
    assert re.search(r"logins 3/3 ok$", summary(rotated.stdout)["initech"][0]), summary(rotated.stdout)["initech"]
    (new_entry,) = entries(world)["initech"]
    assert new_entry["key_id"] != old_key and entra_secrets(lab, "initech") == [new_entry["key_id"]]
    new_apps = yaml.safe_load(rotated_file.read_text())["ms_apps"]
    assert new_entry["client_secret"] == new_apps[TENANTS["initech"]["ms_tenant_id"]]["client_secrets"]["initech"]
    assert sorted(entries(world)) == sorted(stored)
    assert_no_clear_secret(world, world.store.read_bytes() + rotated.output.encode(), world.made, new_apps)
