# -*- coding: utf-8 -*-
"""The execution environment (execution-environment.yml, meta/execution-environment.yml), without a container engine:
ansible-builder creates the build context, then the two steps of the image build that decide what gets in are run here
as the Containerfile runs them: ansible-galaxy installs the collection from the context (galaxy stage), and
ansible-builder's own introspect script, copied into the context, collects the Python and system packages the installed
collection declares (builder stage). Offline: the collection comes from its artifact, nothing from Galaxy or PyPI."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import filecmp
import os
import re
import subprocess
import sys
import types

import pytest
import yaml
from collection_artifact import BIN, REPO, build_collection, galaxy_version


def requirement_lines(path):
    """A pip requirements or bindep file's entries, without comments and blank lines."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        lines = (line.split("#", 1)[0].strip() for line in handle)
        return [line for line in lines if line]


def dev_requirement(name):
    """The version range requirements-dev.txt tests with, e.g. 'ansible-core>=2.19.0,<2.20'."""
    (line,) = [line for line in requirement_lines(os.path.join(REPO, "requirements-dev.txt")) if re.match(re.escape(name) + r"\b", line)]
    return line.replace(" ", "")


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context ansible-builder creates from execution-environment.yml, with the artifact where the definition
    expects it (build/ next to it, as `ansible-galaxy collection build --output-path build/` leaves it)."""
    project = tmp_path_factory.mktemp("ee-project")
    artifact = build_collection(project / "build")
    os.symlink(os.path.join(REPO, "execution-environment.yml"), str(project / "execution-environment.yml"))
    path = project / "context"
    result = subprocess.run([os.path.join(BIN, "ansible-builder"), "create", "--file", str(project / "execution-environment.yml"),
                             "--context", str(path), "--output-filename", "Containerfile"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No matches" not in result.stdout + result.stderr  # every additional build file was found
    return types.SimpleNamespace(build=path / "_build", artifact=artifact, containerfile=(path / "Containerfile").read_text())


@pytest.fixture(scope="module")
def image_collections(context, tmp_path_factory):
    """The galaxy stage: `ansible-galaxy collection install -r requirements.yml` in the context's _build directory."""
    assert re.search(r"^RUN .*ansible-galaxy collection install .*-r requirements\.yml", context.containerfile, re.M)
    collections = tmp_path_factory.mktemp("image") / "collections"
    env = dict(os.environ, ANSIBLE_GALAXY_DISABLE_GPG_VERIFY="1", ANSIBLE_COLLECTIONS_PATH=str(collections))
    result = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-r", "requirements.yml",
                             "--collections-path", str(collections)], cwd=str(context.build), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return collections


def test_context_installs_this_release_of_the_collection(context, image_collections):
    artifact_name = "ceops-exchange_oauth-%s.tar.gz" % galaxy_version()
    assert context.artifact.name == artifact_name
    with open(str(context.build / "requirements.yml")) as handle:
        wanted = yaml.safe_load(handle)["collections"]
    assert wanted == [{"name": "collections/" + artifact_name, "type": "file"}]
    assert filecmp.cmp(str(context.build / "collections" / artifact_name), str(context.artifact), shallow=False)
    with open(str(image_collections / "ansible_collections" / "ceops" / "exchange_oauth" / "MANIFEST.json")) as handle:
        assert yaml.safe_load(handle)["collection_info"]["version"] == galaxy_version()


def test_image_gets_ansible_core_and_runner_that_the_collection_is_tested_with(context):
    (refs,) = re.findall(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', context.containerfile, re.M)
    refs = refs.split()
    assert dev_requirement("ansible-core") in refs
    assert [r for r in refs if r.startswith("ansible-runner")]
    assert re.search(r'^ARG PYCMD="/usr/bin/python3\.(1[1-9])"', context.containerfile, re.M)  # ansible-core 2.19 needs 3.11+


def test_image_gets_every_runtime_dependency_the_collection_declares(context, image_collections, tmp_path):
    """The builder stage's introspection over the installed collection yields requirements.txt and bindep.txt (if any)."""
    assert "/output/scripts/introspect.py introspect" in context.containerfile
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    result = subprocess.run([sys.executable, str(context.build / "scripts" / "introspect.py"), "introspect", str(image_collections),
                             "--write-pip", str(pip_out), "--write-bindep", str(bindep_out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

    declared = requirement_lines(os.path.join(REPO, "requirements.txt"))
    names = set(re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower() for line in declared)
    assert {"msal", "requests", "pywinrm", "cryptography"} <= names
    with open(str(pip_out)) as handle:
        introspected = handle.read().splitlines()
    assert sorted(line.split("#", 1)[0].strip() for line in introspected if line) == sorted(declared)
    assert all(line.endswith("# from collection ceops.exchange_oauth") for line in introspected if line)

    system_packages = requirement_lines(os.path.join(REPO, "bindep.txt"))
    assert requirement_lines(str(bindep_out)) == system_packages
