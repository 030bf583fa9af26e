# -*- coding: utf-8 -*-
"""The Azure AD playbook and role as ops run them: ansible-playbook over the lab inventory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest
from playbook_output import recap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
CE_TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
FABRIKAM = "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62"


def ansible(lab, tmp_path, *args):
    env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def playbook(lab, tmp_path, *extra, **kwargs):
    """Run playbooks/<names> as one playbook, as site.yml imports them (separate CLI playbooks stop at a failure)."""
    wrapper = tmp_path / "run.yml"
    wrapper.write_text("".join("- ansible.builtin.import_playbook: %s/playbooks/%s\n" % (REPO, n) for n in kwargs.get("names", ["azuread.yml"])))
    return ansible(lab, tmp_path, "ansible-playbook", "-i", "inventories/lab", str(wrapper), *extra)


def test_ansible_doc_renders_the_module_docs(lab, tmp_path):
    result = ansible(lab, tmp_path, "ansible-doc", "ceops.exchange_oauth.azuread_app")
    assert result.returncode == 0, result.stderr
    for section in ("OPTIONS", "ATTRIBUTES", "EXAMPLES", "RETURN VALUES", "exchange_permissions", "service_principal_id",
                    "group/ceops.exchange_oauth.microsoft"):
        assert section in result.stdout, section


def test_check_mode_on_an_empty_lab_plans_everything_and_writes_nothing(fresh_lab, tmp_path):
    result = playbook(fresh_lab, tmp_path, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(host["failed"] == 0 for host in recap(result.stdout).values())
    assert fresh_lab.counters()["services"]["graph"]["totals"]["writes"] == 0
    # The plan shows the app it would create as a diff (the Azure AD drift is visible, never a secret).
    assert re.search(r'^-\s+"state": "absent"', result.stdout, re.M) and re.search(r'^\+\s+"state": "present"', result.stdout, re.M)
    assert '"consented_permissions": [' in result.stdout


def test_work_runs_once_per_directory_and_every_tenant_gets_the_ids(fresh_lab, tmp_path):
    result = playbook(fresh_lab, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    counters = fresh_lab.counters()
    # Three directories, one app each, whatever the number of CE tenants reading from them. No secret: one is made by the
    # CE part, when CE needs one (a secret nobody gives CE would only lie around).
    creates = counters["services"]["graph"]["writes"]
    assert sum(n for endpoint, n in creates.items() if "uniqueName" in endpoint and endpoint.startswith("PATCH")) == 3
    assert sum(n for endpoint, n in creates.items() if endpoint.endswith("/addPassword")) == 0
    assert len(counters["tokens"]) == 3 and sum(counters["tokens"].values()) == 3
    summary = result.stdout.split("Show what every CE tenant got")[-1]
    for tenant in CE_TENANTS:
        assert re.search(r"%s\s+done\s+directory [0-9a-f-]{36}\s+app [0-9a-f-]{36}\s+sp [0-9a-f-]{36}" % tenant, summary), tenant
    assert "the CE part did not run" in summary

    again = playbook(fresh_lab, tmp_path)
    assert all(host["changed"] == 0 and host["failed"] == 0 for host in recap(again.stdout).values()), again.stdout[-2000:]


def test_a_directory_with_a_wrong_secret_fails_only_its_ce_tenants(fresh_lab, tmp_path):
    credentials = {
        "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51": _lab_credentials(fresh_lab, "contoso"),
        FABRIKAM: dict(_lab_credentials(fresh_lab, "fabrikam"), client_secret="not-the-secret"),
        "8b3c4d5e-3c4d-4e5f-8a1b-2c3d4e5f6a73": _lab_credentials(fresh_lab, "northwind"),
    }
    extra = tmp_path / "credentials.json"
    extra.write_text(json.dumps({"ms_credentials": credentials}))
    result = playbook(fresh_lab, tmp_path, "-e", "@%s" % extra)
    hosts = recap(result.stdout)
    assert result.returncode != 0
    assert {h for h, r in hosts.items() if r["failed"]} == {"initech", "stark"}
    # The summary names each failed CE tenant with the part that failed and the directory's own error.
    summary = result.stdout.split("Show what every CE tenant got")[-1]
    for tenant in ("initech", "stark"):
        assert re.search(r"%s\s+FAILED" % tenant, summary), summary
    for tenant in ("acme", "globex", "umbrella", "hooli"):
        assert re.search(r"%s\s+done\s" % tenant, summary), summary
    assert re.search(r"Azure AD: .*AADSTS7000215", summary), summary
    assert "AADSTS7000215" in result.stdout and FABRIKAM in result.stdout
    assert "not-the-secret" not in result.stdout + result.stderr
    # The other directories were done all the same.
    state = fresh_lab.state("graph")["directories"]
    assert [a for a in state["contoso"]["applications"] if a.get("uniqueName") == "ce-email"]
    assert not [a for a in state["fabrikam"]["applications"] if a.get("uniqueName") == "ce-email"]


def _lab_credentials(lab, name):
    d = lab.vars["lab_directories"][name]
    return {"client_id": d["automation_client_id"], "client_secret": d["automation_client_secret"]}


@pytest.mark.parametrize("verbosity", ["-vvv"])
def test_secrets_stay_out_of_verbose_output(fresh_lab, tmp_path, verbosity):
    # site.yml: the Azure AD part makes the secrets CE needs in the CE part.
    result = playbook(fresh_lab, tmp_path, verbosity, names=["site.yml"])
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    for d in fresh_lab.vars["lab_directories"].values():
        assert d["automation_client_secret"] not in output
    # The secrets azuread_app created never show, even at -vvv: the task that makes them hides its output, and every other
    # shows a secret option masked.
    assert "secretText" not in output
    shown = set(re.findall(r'"client_secret": "([^"]*)"', output))
    assert shown <= {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", ""}, shown
    made = [c for app in fresh_lab.state("graph")["directories"].values() for a in app["applications"] if a.get("uniqueName") == "ce-email"
            for c in a["passwordCredentials"]]
    assert len(made) == len(CE_TENANTS) and "the output has been hidden" in output
