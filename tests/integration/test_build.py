# -*- coding: utf-8 -*-
"""The built collection: collection content only (no lab, no test harness, no local state), everything users need, and
installable offline into a fresh path from which ansible-doc and ansible-playbook use it (against the lab)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import tarfile

import pytest
from collection_artifact import BIN, REPO, build_collection, galaxy_version

COLLECTION = "ceops.exchange_oauth"
# Paths of the working tree that are not collection content (galaxy.yml build_ignore).
NOT_SHIPPED = ("lab/", "inventories/lab/", "inventories/brownfield/", "tests/integration/", "tests/lab/", "extensions/molecule/", "scripts/", "bench/", "build/", ".lab/", ".venv/",
               ".ci/", ".git/", ".pytest_cache/")
NOT_SHIPPED_FILES = ("Makefile", "conftest.py", "pytest.ini", "requirements-dev.txt", ".ansible-lint", "execution-environment.yml")
# What users need from the repository root.
SHIPPED_FILES = ("README.md", "CHANGELOG.md", "requirements.txt", "meta/runtime.yml", "meta/execution-environment.yml",
                 "changelogs/changelog.yaml")


def working_tree_files(*tops):
    """Files under these top-level folders of the working tree, as paths relative to it (no byte code)."""
    found = []
    for top in tops:
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found.extend(os.path.relpath(os.path.join(root, f), REPO) for f in files if not f.endswith(".pyc"))
    return found


def isolated_env(collections_path):
    """Ansible sees only the collections under collections_path: not the working tree (which the root conftest exports),
    not ~/.ansible/collections, not a copy somewhere on sys.path."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="false")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return build_collection(tmp_path_factory.mktemp("artifact"))


@pytest.fixture(scope="module")
def artifact_names(artifact):
    with tarfile.open(str(artifact)) as tar:
        return [name[2:] if name.startswith("./") else name for name in tar.getnames()]


@pytest.fixture(scope="module")
def installed(artifact, tmp_path_factory):
    """The artifact installed the way users install it, offline, into a fresh collections path."""
    path = tmp_path_factory.mktemp("installed")
    result = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", str(artifact), "-p", str(path)],
                            env=isolated_env(path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def test_artifact_has_no_lab_or_harness(artifact_names):
    leaked = [n for n in artifact_names if n.startswith(NOT_SHIPPED) or n.rstrip("/") + "/" in NOT_SHIPPED or n in NOT_SHIPPED_FILES]
    assert not leaked


def test_artifact_has_what_users_need(artifact_names):
    """Every module, doc fragment, module util, role, playbook, doc and unit test of the working tree, the AWX extensions
    when the tree has them, and the files ansible-builder and Galaxy read."""
    wanted = working_tree_files("plugins", "roles", "playbooks", "docs", os.path.join("extensions", "awx"), os.path.join("tests", "unit"))
    wanted += [f for f in SHIPPED_FILES + ("LICENSE", "COPYING") if os.path.exists(os.path.join(REPO, f))]
    assert "docs/collection/index.rst" in wanted and "plugins/modules/azuread_app.py" in wanted  # the walk saw the tree
    assert sorted(set(wanted) - set(artifact_names)) == []
    assert set(SHIPPED_FILES) <= set(artifact_names)


def test_artifact_manifest_names_this_release(artifact):
    with tarfile.open(str(artifact)) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("ceops", "exchange_oauth", galaxy_version())
    assert artifact.name == "ceops-exchange_oauth-%s.tar.gz" % galaxy_version()


def test_installed_collection_documents_every_module_and_role(installed):
    modules = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py") and f != "__init__.py")
    roles = sorted(os.listdir(os.path.join(REPO, "roles")))
    env = isolated_env(installed)
    shown = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json"] + ["%s.%s" % (COLLECTION, m) for m in modules], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    docs = json.loads(shown.stdout)
    installed_modules = os.path.join(str(installed), "ansible_collections", "ceops", "exchange_oauth", "plugins", "modules")
    for module in modules:
        doc = docs["%s.%s" % (COLLECTION, module)]["doc"]
        assert doc["filename"].startswith(installed_modules + os.sep), doc["filename"]
        assert doc["short_description"] and doc["options"]

    role_docs = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "-t", "role"] + ["%s.%s" % (COLLECTION, r) for r in roles],
                               env=env, capture_output=True, text=True, timeout=120)
    assert role_docs.returncode == 0, role_docs.stderr
    role_docs = json.loads(role_docs.stdout)
    assert sorted(role_docs) == ["%s.%s" % (COLLECTION, r) for r in roles]
    for name, doc in role_docs.items():
        assert doc["entry_points"]["main"]["options"], name


def other_collections(playbook):
    """Collections other than ansible.builtin and this one whose modules a playbook calls (awx_configure.yml needs awx.awx)."""
    with open(os.path.join(REPO, "playbooks", playbook + ".yml")) as handle:
        called = set(re.findall(r"^\s*-?\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", handle.read(), re.M))
    return called - {"ansible.builtin", COLLECTION}


def test_installed_playbooks_run_by_their_collection_name(installed, tmp_path):
    """What ops run from an installed copy: ansible-playbook ceops.exchange_oauth.<playbook> (roles and imports resolve there).
    Playbooks that need another collection are left out: it is not installed here, and not a dependency of this one."""
    playbooks = sorted(f[:-4] for f in os.listdir(os.path.join(REPO, "playbooks")) if f.endswith(".yml"))
    playbooks = [p for p in playbooks if not other_collections(p)]
    assert "site" in playbooks and "rotate_secret" in playbooks
    result = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", "-i", "localhost,"]
                            + ["%s.%s" % (COLLECTION, p) for p in playbooks], cwd=str(tmp_path), env=isolated_env(installed),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    installed_playbooks = os.path.join(str(installed), "ansible_collections", "ceops", "exchange_oauth", "playbooks")
    assert result.stdout.count("playbook: " + installed_playbooks + os.sep) == len(playbooks)


PLAY = """---
- name: The installed collection against the lab's CE Portal
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  # The action group comes from the installed meta/runtime.yml.
  module_defaults:
    group/ceops.exchange_oauth.ce:
      ce_url: "{{ lab_ce_url }}"
      ce_token: "{{ lab_ce_token }}"
      ca_path: "{{ lab_ca_path }}"
  tasks:
    - name: The deployment's Exchange Online gateway
      ceops.exchange_oauth.ce_email_gateway:
        name: Installed artifact check
      register: created

    - name: The same again changes nothing
      ceops.exchange_oauth.ce_email_gateway:
        name: Installed artifact check
      register: again

    - name: Created once, then found as it is
      ansible.builtin.assert:
        that:
          - created is changed
          - again is not changed
          - created.email_gateway.inbound.host == 'outlook.office365.com'
"""


def test_installed_collection_runs_a_play_against_the_lab(installed, fresh_lab, tmp_path):
    deployment = fresh_lab.vars["lab_ce_deployments"]["emea"]
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "lab.json").write_text(json.dumps({"lab_ce_url": deployment["url"], "lab_ce_token": deployment["admin_token"],
                                                   "lab_ca_path": fresh_lab.vars["lab_ca_path"]}))
    try:
        result = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-vvv", "-i", "localhost,", "-e", "@" + str(tmp_path / "lab.json"),
                                 str(tmp_path / "play.yml")], cwd=str(tmp_path), env=isolated_env(installed), capture_output=True,
                                text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        module_file = os.path.join(str(installed), "ansible_collections", "ceops", "exchange_oauth", "plugins", "modules",
                                   "ce_email_gateway.py")
        # On this local connection the module runs in Ansible's worker process (plugins/plugin_utils/in_process.py).
        assert "Running module file %s in the worker process" % module_file in output
        assert REPO + "/plugins" not in output  # nothing of the working tree ran
        gateways = [g for g in fresh_lab.ce_state("emea")["configured"]["email_gateways"] if g["name"] == "Installed artifact check"]
        assert len(gateways) == 1
        assert (gateways[0]["inbound"]["host"], gateways[0]["inbound"]["port"]) == ("outlook.office365.com", 993)
        assert (gateways[0]["outbound"]["host"], gateways[0]["outbound"]["port"]) == ("smtp.office365.com", 587)
    finally:
        fresh_lab.reset()  # later tests of this worker's lab start from the seed again
