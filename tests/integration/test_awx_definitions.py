# -*- coding: utf-8 -*-
"""extensions/awx (credential types, job templates, surveys, workflows) and playbooks/awx_configure.yml.

The definitions are checked against AWX's rules for them. The configure playbook is syntax-checked and its tasks'
options validated against the awx.awx collection's own documentation. awx.awx cannot come from Galaxy here: it is
taken from PyPI's `ansible` package (which bundles it) into a cache, once; without network and cache it is skipped.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(REPO, "extensions", "awx")
BIN = os.path.dirname(sys.executable)
# The `ansible` release whose bundled awx.awx is checked against (awx.awx 24.6.1).
ANSIBLE_PACKAGE = "ansible==11.13.0"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "ceops-exchange-oauth", "awx-collection", ANSIBLE_PACKAGE.split("==")[1])
# How AWX finds a project's playbooks (awx/main/utils/ansible.py, could_be_playbook): a job template may only run those.
AWX_PLAYBOOK_LINE = re.compile(r"^\s*?-?\s*?(?:hosts|include|import_playbook):\s*?.*?$")
# AWX's survey question types (awx/main/models/mixins.py SurveyJobTemplateMixin).
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def load(name):
    with open(os.path.join(AWX, name)) as handle:
        return yaml.safe_load(handle)


CREDENTIAL_TYPES = load("credential_types.yml")["ceops_awx_credential_types"]
JOB_TEMPLATES = load("job_templates.yml")["ceops_awx_job_templates"]
WORKFLOWS = load("workflows.yml")["ceops_awx_workflows"]


def names_in(template):
    """The variables a Jinja template of an injector reads."""
    return set(re.findall(r"(?<![.\w])([a-z_][a-z0-9_]*)\b", " ".join(re.findall(r"{[{%](.*?)[%}]}", template)))) - {"if", "endif", "tower"}


@pytest.mark.parametrize("credential_type", CREDENTIAL_TYPES, ids=lambda t: t["name"])
def test_credential_types_follow_awx_rules_and_inject_secrets_only_as_files(credential_type):
    assert credential_type["kind"] in ("cloud", "net")
    fields = dict((f["id"], f) for f in credential_type["inputs"]["fields"])
    assert all(f["type"] in ("string", "boolean") and f.get("label") for f in fields.values())
    assert set(credential_type["inputs"].get("required", [])) <= set(fields)
    injectors = credential_type["injectors"]
    assert set(injectors) <= {"env", "extra_vars", "file"}
    files = set(label.split(".", 1)[1] for label in injectors.get("file", {}))
    assert all(label.startswith("template.") for label in injectors.get("file", {}))
    for label, template in injectors.get("file", {}).items():
        assert names_in(template) <= set(fields), label
    secrets = set(i for i, f in fields.items() if f.get("secret"))
    for name, template in injectors.get("env", {}).items():
        assert name.startswith("CEOPS_"), name  # not ANSIBLE_* (AWX refuses it), not what modules fall back to
        used = names_in(template)
        # A secret may only decide whether a file's path is given, never be the variable's value.
        assert not (used & secrets) or re.fullmatch(r"{% if (\w+) %}{{ tower\.filename\.\1 }}{% endif %}", template), (name, template)
        assert set(re.findall(r"tower\.filename\.(\w+)", template)) <= files, name
    assert not injectors.get("extra_vars")


def test_docs_name_every_credential_type_field_job_template_workflow_and_survey_question_as_awx_shows_them():
    with open(os.path.join(REPO, "docs", "awx.md")) as handle:
        guide = handle.read()
    shown = [t["name"] for t in CREDENTIAL_TYPES] + [f["label"] for t in CREDENTIAL_TYPES for f in t["inputs"]["fields"]]
    shown += [t["name"] for t in JOB_TEMPLATES] + [w["name"] for w in WORKFLOWS]
    for path in glob.glob(os.path.join(AWX, "surveys", "*.yml")):
        with open(path) as handle:
            shown += [q["question_name"] for q in yaml.safe_load(handle)["spec"]]
    assert [name for name in shown if name not in guide] == []


def test_job_templates_take_known_credential_types_and_existing_playbooks_and_surveys():
    known = set(t["name"] for t in CREDENTIAL_TYPES) | {"Vault"}
    for template in JOB_TEMPLATES:
        assert os.path.isfile(os.path.join(REPO, template["playbook"])), template["name"]
        with open(os.path.join(REPO, template["playbook"])) as handle:
            assert any(AWX_PLAYBOOK_LINE.match(line) for line in handle), "AWX would not list %s" % template["playbook"]
        assert template["job_type"] in ("run", "check")
        assert set(template["credential_types"]) <= known, template["name"]
        if "survey" in template:
            assert os.path.isfile(os.path.join(AWX, "surveys", template["survey"]))
    assert len(set(t["name"] for t in JOB_TEMPLATES)) == len(JOB_TEMPLATES)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(AWX, "surveys", "*.yml"))), ids=os.path.basename)
def test_surveys_are_valid_awx_survey_specs(path):
    with open(path) as handle:
        survey = yaml.safe_load(handle)
    assert survey["name"] and "description" in survey and survey["spec"]
    for question in survey["spec"]:
        assert question["question_name"] and re.fullmatch(r"[a-z_][a-z0-9_]*", question["variable"])
        assert question["type"] in SURVEY_TYPES and isinstance(question["required"], bool)
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["default"] in question["choices"], question
    variables = [q["variable"] for q in survey["spec"]]
    assert len(variables) == len(set(variables))


def test_workflows_link_existing_nodes_and_job_templates_in_the_runbooks_order():
    templates = set(t["name"] for t in JOB_TEMPLATES)
    for workflow in WORKFLOWS:
        identifiers = [n["identifier"] for n in workflow["nodes"]]
        assert len(identifiers) == len(set(identifiers))
        for node in workflow["nodes"]:
            assert ("job_template" in node) != ("approval" in node), node
            assert node.get("job_template", next(iter(templates))) in templates, node
            assert set(node.get("success_nodes", []) + node.get("always_nodes", [])) <= set(identifiers), node
    per_team = next(w for w in WORKFLOWS if w["name"].startswith("CE Ops - Per team"))
    order, node = [], per_team["nodes"][0]
    while node:
        order.append(node["job_template"])
        node = next((n for n in per_team["nodes"] if n["identifier"] in node.get("success_nodes", [])), None)
    assert order == ["CE Ops - Azure AD", "CE Ops - Exchange Online", "CE Ops - CE", "CE Ops - Verify"]


@pytest.fixture(scope="module")
def awx_collection(tmp_path_factory):
    """A collections path holding awx.awx, from PyPI's `ansible` package (cached)."""
    target = os.path.join(CACHE, "ansible_collections", "awx", "awx")
    if not os.path.isfile(os.path.join(target, "MANIFEST.json")):
        download = tmp_path_factory.mktemp("ansible-wheel")
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(download), ANSIBLE_PACKAGE],
                                 capture_output=True, text=True, timeout=300)
        if fetched.returncode != 0:
            pytest.skip("awx.awx is not cached and PyPI's %s cannot be downloaded: %s" % (ANSIBLE_PACKAGE, fetched.stderr[-500:]))
        (wheel,) = glob.glob(str(download / "*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(CACHE, [n for n in archive.namelist() if n.startswith("ansible_collections/awx/awx/")])
    return CACHE


def test_awx_configure_passes_syntax_check_and_its_options_are_awx_awx_options(awx_collection):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=awx_collection + os.pathsep + os.environ["ANSIBLE_COLLECTIONS_PATH"])
    playbook = os.path.join(REPO, "playbooks", "awx_configure.yml")
    checked = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", playbook], env=env, capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with open(playbook) as handle:
        tasks = yaml.safe_load(handle)[0]["tasks"]
    uses = [(name, task[name]) for task in tasks for name in task if name.startswith("awx.awx.")]
    assert set(n for n, _ in uses) == set("awx.awx." + m for m in ("credential_type", "credential", "execution_environment", "project",
                                                                   "inventory", "inventory_source", "job_template",
                                                                   "workflow_job_template", "workflow_job_template_node"))
    doc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-j"] + sorted(set(n for n, _ in uses)), env=env, capture_output=True,
                         text=True, timeout=120)
    assert doc.returncode == 0, doc.stderr
    docs = dict((name, body["doc"]["options"]) for name, body in json.loads(doc.stdout).items())
    for module, args in uses:
        options = docs[module]
        known = set(options) | set(a for o in options.values() for a in o.get("aliases", []))
        assert set(args) <= known, (module, set(args) - known)
        for name, value in args.items():
            choices = options.get(name, {}).get("choices")
            if choices and isinstance(value, str) and "{{" not in value:
                assert value in choices, (module, name, value, choices)
        required = set(n for n, o in options.items() if o.get("required"))
        assert required <= set(args), (module, required - set(args))
    # The values the loops give to options with choices: job types and credential kinds.
    job_type = docs["awx.awx.job_template"]["job_type"]["choices"]
    assert all(t["job_type"] in job_type for t in JOB_TEMPLATES)
    assert all(t["kind"] in docs["awx.awx.credential_type"]["kind"]["choices"] for t in CREDENTIAL_TYPES)


def test_collections_requirements_declare_the_awx_awx_release_the_configure_playbook_is_checked_against(awx_collection):
    """AWX installs a project's collections/requirements.yml at sync: it must name awx.awx, in a range that holds the
    release whose documentation the test above checks awx_configure.yml's options against."""
    from ansible.utils.version import SemanticVersion  # pylint: disable=import-outside-toplevel
    with open(os.path.join(REPO, "collections", "requirements.yml")) as handle:
        (awx,) = [c for c in yaml.safe_load(handle)["collections"] if c["name"] == "awx.awx"]
    with open(os.path.join(awx_collection, "ansible_collections", "awx", "awx", "MANIFEST.json")) as handle:
        checked = SemanticVersion(json.load(handle)["collection_info"]["version"])
    for condition in awx["version"].split(","):
        operator, bound = re.match(r"\s*(>=|<)\s*(\S+)", condition).groups()
        assert checked >= SemanticVersion(bound) if operator == ">=" else checked < SemanticVersion(bound), (checked, condition)
