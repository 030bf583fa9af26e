# -*- coding: utf-8 -*-
"""The release says what it is: galaxy.yml, the changelog, the modules' version_added, the execution environment, the
ansible-core range and the requirement files agree with each other (docs/install.md, Release)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py") and f != "__init__.py")


def read(*path):
    with open(os.path.join(REPO, *path)) as handle:
        return handle.read()


def galaxy_version():
    return Version(yaml.safe_load(read("galaxy.yml"))["version"])


def releases():
    """{version: release} of changelogs/changelog.yaml: what has been released."""
    return dict((Version(v), r) for v, r in yaml.safe_load(read("changelogs", "changelog.yaml"))["releases"].items())


def documentation(module):
    return yaml.safe_load(re.search(r"^DOCUMENTATION = r'''(.*?)^'''", read("plugins", "modules", module + ".py"), re.M | re.S).group(1))


def option_versions(options, prefix=""):
    for name, option in (options or {}).items():
        if "version_added" in option:
            yield prefix + name, Version(str(option["version_added"]))
        yield from option_versions(option.get("suboptions"), prefix + name + ".")


def requirements(*path):
    lines = (line.split("#", 1)[0].strip() for line in read(*path).splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def test_galaxy_yml_holds_the_next_release():
    assert galaxy_version() > max(releases()), "galaxy.yml must name the release being prepared, after %s" % max(releases())


def test_each_module_says_the_release_that_first_shipped_it():
    """A module listed in a release of the changelog was added in that release; any other is new in the next one."""
    shipped = dict((m["name"], version) for version, r in releases().items() for m in r.get("modules", []))
    for module in MODULES:
        doc = documentation(module)
        added = Version(str(doc["version_added"]))
        assert added == shipped.get(module, galaxy_version()), (module, str(added))
        # An option added later names a release after the module's, up to the next one.
        for name, version in option_versions(doc["options"]):
            assert added < version <= galaxy_version(), (module, name, str(version))


def test_a_release_now_lists_exactly_the_new_modules(tmp_path):
    """What `antsibull-changelog release` would write for the version in galaxy.yml: a release of that version, whose new
    modules are the ones with that version_added, and none of the earlier release's."""
    copy = tmp_path / "ansible_collections" / "ceops" / "exchange_oauth"
    copy.mkdir(parents=True)
    for name in ("galaxy.yml", "CHANGELOG.md", "changelogs", "meta", "plugins"):
        source = os.path.join(REPO, name)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, str(copy / name))
    result = subprocess.run([os.path.join(BIN, "antsibull-changelog"), "release", "--date", "2030-01-01"], cwd=str(copy),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(str(copy / "changelogs" / "changelog.yaml")) as handle:
        released = yaml.safe_load(handle)["releases"][str(galaxy_version())]
    new = sorted(m["name"] for m in released.get("modules", []))
    assert new == sorted(m for m in MODULES if Version(str(documentation(m)["version_added"])) == galaxy_version())
    assert new and "azuread_app" not in new
    assert "v%s" % galaxy_version() in (copy / "CHANGELOG.md").read_text().replace("\\", "")


def test_the_execution_environment_builds_this_release_on_a_pinned_base():
    ee = yaml.safe_load(read("execution-environment.yml"))
    version = str(galaxy_version())
    artifact = "ceops-exchange_oauth-%s.tar.gz" % version
    assert ee["dependencies"]["galaxy"]["collections"] == [{"name": "collections/" + artifact, "type": "file"}]
    assert ee["additional_build_files"] == [{"src": "build/" + artifact, "dest": "collections"}]
    assert all(tag.endswith(":" + version) for tag in ee["options"]["tags"])
    base = ee["images"]["base_image"]["name"]
    assert re.match(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$", base) and ":latest" not in base, base
    assert base in read("docs", "execution-environment.md").replace("`\n`", "")  # the pin is documented where it is explained


def ansible_core_range():
    spec = yaml.safe_load(read("meta", "runtime.yml"))["requires_ansible"]
    return SpecifierSet(spec)


def test_the_ansible_core_range_ends_at_the_first_untested_release():
    """The range's newest release line is the one of requirements-dev.txt (the main venv); make test runs the older ones
    (scripts/cores.sh reads the same range). Its upper bound is the first release nobody ran."""
    (core,) = [r for r in requirements("requirements-dev.txt") if r.name == "ansible-core"]
    upper = [s.version for s in ansible_core_range() if s.operator == "<"]
    assert upper and [s.version for s in core.specifier if s.operator == "<"][0].split(".")[:2] == upper[0].split(".")[:2]
    assert "2.16.0" in ansible_core_range() and "2.15.13" not in ansible_core_range()
    ee_core = yaml.safe_load(read("execution-environment.yml"))["dependencies"]["ansible_core"]["package_pip"]
    assert Requirement(ee_core) == core
    # docs/install.md says which releases and why.
    assert yaml.safe_load(read("meta", "runtime.yml"))["requires_ansible"] in read("docs", "install.md")


def test_every_development_tool_has_an_upper_bound_and_the_venv_keeps_to_them():
    """constraints-dev.txt bounds every tool of requirements-dev.txt that requirements.txt does not hold (or
    requirements-dev.txt pins it), and make venv installed within those bounds."""
    runtime = set(r.name.lower() for r in requirements("requirements.txt"))
    bounds = dict((r.name.lower(), r.specifier) for r in requirements("constraints-dev.txt"))
    for tool in requirements("requirements-dev.txt"):
        name = tool.name.lower()
        if name in runtime:
            continue
        limits = list(tool.specifier) + list(bounds.get(name, SpecifierSet()))
        assert any(s.operator in ("<", "<=", "==", "~=") for s in limits), "%s has no upper bound" % tool.name
        assert (tool.specifier & bounds.get(name, SpecifierSet())).contains(metadata.version(tool.name), prereleases=True), \
            (tool.name, metadata.version(tool.name))


def test_unit_test_requirements_hold_the_runtime_requirements():
    """ansible-test units installs tests/unit/requirements.txt only; the modules the unit tests run need requirements.txt."""
    unit = set(str(r) for r in requirements("tests", "unit", "requirements.txt"))
    assert set(str(r) for r in requirements("requirements.txt")) <= unit


@pytest.mark.parametrize("release", sorted(str(v) for v in releases()))
def test_released_versions_are_not_claimed_by_unreleased_fragments(release):
    """A fragment belongs to the next release: none may be one a release already consumed."""
    consumed = set(releases()[Version(release)].get("fragments", []))
    assert not consumed & set(os.listdir(os.path.join(REPO, "changelogs", "fragments")))
