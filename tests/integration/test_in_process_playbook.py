# -*- coding: utf-8 -*-
"""On a local connection the collection's modules run in Ansible's worker process (plugins/plugin_utils/in_process.py):
what a playbook gets from them, and what the services see, must be what it gets from a module process."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    gateway: &gateway
      ce_url: "{{ lab_ce_deployments.emea.url }}"
      ce_token: "{{ lab_ce_deployments.emea.admin_token }}"
      ca_path: "{{ lab_ca_path }}"
      name: Exchange Online
  tasks:
    - name: Plan the gateway
      ceops.exchange_oauth.ce_email_gateway: *gateway
      check_mode: true
      diff: true
      register: planned
    - name: Make the gateway
      ceops.exchange_oauth.ce_email_gateway: *gateway
      register: made
    - name: Again
      ceops.exchange_oauth.ce_email_gateway: *gateway
      register: again
    - name: With a token the Portal refuses
      ceops.exchange_oauth.ce_email_gateway:
        <<: *gateway
        ce_token: not-the-token-0123
      register: refused
      ignore_errors: true
    - name: Keep what the tasks returned
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'planned': planned, 'made': made, 'again': again, 'refused': refused} | to_json }}"
        mode: "0600"
"""


def ansible_playbook(lab, tmp_path, playbook, *extra):
    """ansible-playbook -vvv on localhost with the lab's variables; its output, after checking it succeeded."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"))
    result = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-vvv", str(playbook),
                             "-e", "@" + os.path.join(lab.state_dir, "lab-vars.json")] + list(extra),
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout


def run(lab, tmp_path, name, *extra):
    playbook = tmp_path / "in_process.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / (name + ".json")
    output = ansible_playbook(lab, tmp_path, playbook, "-e", "out=" + str(out), *extra)
    return json.loads(out.read_text()), output


def comparable(results):
    """What a playbook relies on, without what differs between any two runs (ids, request ids, the lab's times)."""
    text = json.dumps(results, sort_keys=True)
    text = re.sub(r"egw_[0-9a-f]+", "<id>", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<request id>", text)
    return json.loads(text)


def test_a_module_in_process_returns_and_does_what_its_process_would(fresh_lab, tmp_path):
    in_process, output = run(fresh_lab, tmp_path, "in-process")
    assert "AnsiballZ_ce_email_gateway" not in output  # no module process was started for it
    assert re.search(r"Running module file \S+/ceops/exchange_oauth/plugins/modules/ce_email_gateway.py in the worker process", output)
    writes_in_process = fresh_lab.counters()["services"]["ce"]["totals"]["writes"]

    fresh_lab.reset()
    as_process, output = run(fresh_lab, tmp_path, "process", "-e", "ceops_modules_in_process=false")
    assert "AnsiballZ_ce_email_gateway" in output
    assert fresh_lab.counters()["services"]["ce"]["totals"]["writes"] == writes_in_process

    assert comparable(in_process) == comparable(as_process)
    # What the comparison covers: check mode and diff, a write, idempotence, a failure with the Portal's own words.
    assert in_process["planned"]["changed"] is True and in_process["planned"]["diff"]["before"] == {"state": "absent"}
    assert in_process["made"]["changed"] is True and in_process["again"]["changed"] is False
    assert in_process["refused"]["failed"] is True and "The credentials are not valid for this Portal" in in_process["refused"]["msg"]
    assert "not-the-token-0123" not in json.dumps(in_process) and fresh_lab.vars["lab_ce_deployments"]["emea"]["admin_token"] not in json.dumps(in_process)


@pytest.mark.parametrize("keyword", ["environment", "become"])
def test_a_task_that_needs_a_process_of_its_own_gets_one(fresh_lab, tmp_path, keyword):
    extra = {"environment": "  environment:\n    CEOPS_EXAMPLE: set\n", "become": "  become: true\n  become_method: su\n"}[keyword]
    playbook = tmp_path / "needs_process.yml"
    playbook.write_text(PLAYBOOK.split("  tasks:")[0].replace("  gather_facts: false\n", "  gather_facts: false\n" + extra) + """  tasks:
    - name: Make the gateway
      ceops.exchange_oauth.ce_email_gateway: *gateway
""")
    assert "AnsiballZ_ce_email_gateway" in ansible_playbook(fresh_lab, tmp_path, playbook)
