# -*- coding: utf-8 -*-
"""Running the collection's playbooks on the lab's brownfield world (lab/README.md, "The brownfield world") and reading
what the lab says of it afterwards: the write journal, the foreign objects, and whether CE can log in (the oracle).

The world's facts used here come from the lab's seeds and inventories/brownfield, not from the collection."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import yaml

from playbook_output import recap, summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
INVENTORY = os.path.join(REPO, "inventories", "brownfield")
DIRECTORIES = {"adatum": "424e360f-f065-5a3d-ba3d-2d6e437cff49", "bellows": "b3e21421-50fa-5d6a-9637-a3fae7591612",
               "corvid": "21154614-6415-54a6-a19c-17ca9e9cf2c1", "dunmore": "ba29cd9c-711f-5df9-8202-78624d922493",
               "eastwind": "d9b7d608-abbe-5f9a-8953-303222874b90", "fenwick": "82c00851-3714-584f-97f1-376ec9ef5c53"}
CE_APP_NAME = "CE Email"


def inventory_tenants():
    """{host: {"deployment", "ce_tenant", "ms_tenant_id", "ce_mailboxes"}} from inventories/brownfield."""
    with open(os.path.join(INVENTORY, "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    tenants = {}
    for group, body in inventory["all"]["children"]["ce_tenants"]["children"].items():
        for host, host_vars in body["hosts"].items():
            tenants[host] = dict(host_vars, deployment=group[len("ce_deployment_"):])
    return tenants


TENANTS = inventory_tenants()


class World:
    """The brownfield lab and how to run playbooks on it, each run with its own token cache (as separate AWX jobs)."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.runs = 0

    def run(self, playbook="site.yml", *args, extra_vars=None):
        self.runs += 1
        env = dict(os.environ, CEOPS_LAB_DIR=self.lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(self.work / ("tokens-%d" % self.runs)),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
        command = [os.path.join(BIN, "ansible-playbook"), "-i", INVENTORY, os.path.join(REPO, "playbooks", playbook),
                   "-e", "ce_email_oauth_batch_update_poll_interval=0.5", "-f", "10"]
        if extra_vars:
            path = self.work / ("extra-vars-%d.json" % self.runs)
            path.write_text(json.dumps(extra_vars))
            command += ["-e", "@%s" % path]
        result = subprocess.run(command + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        result.output = result.stdout + result.stderr
        result.recap = recap(result.output)
        result.summary = summary(result.output) if "Show what every CE tenant got" in result.output else {}
        return result

    # ----- what the lab says -----------------------------------------------------------------------------------------
    def applications(self, directory, display_name=CE_APP_NAME):
        apps = self.lab.directory_state(directory)["applications"]
        apps = apps.values() if isinstance(apps, dict) else apps
        return [a for a in apps if a.get("displayName") == display_name]

    def oracle(self, host):
        return self.lab.ce_login_oracle(TENANTS[host]["deployment"], TENANTS[host]["ce_tenant"])

    def accepted_writes(self, since=0):
        """Journal entries of writes a service accepted (a refused write changed nothing)."""
        return [e for e in self.lab.journal(since) if e["status"] < 300]


def status(result):
    """{host: the summary's status word} of a run."""
    return dict((host, lines[0].split()[1]) for host, lines in result.summary.items())


def failed(result):
    return sorted(host for host, word in status(result).items() if word == "FAILED")


def messages(result, host):
    return "\n".join(result.summary[host][1:])
