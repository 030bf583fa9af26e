# -*- coding: utf-8 -*-
"""The lab fleet of inventories/lab (six CE tenants on two CE deployments over three Microsoft directories) and how the
integration tests run playbooks on it: the directories, deployments and CE tenants of the inventory, Fleet (a converged
fleet, its playbook runs and edits by hand) and playbook() (one ansible-playbook run over the lab inventory)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import yaml

from bench import fleet_bench

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
DIRECTORIES = {"contoso": "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51", "fabrikam": "7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62",
               "northwind": "8b3c4d5e-3c4d-4e5f-8a1b-2c3d4e5f6a73"}
DEPLOYMENTS = {"emea": ["acme", "globex", "initech"], "us": ["umbrella", "hooli", "stark"]}
GRAPH, EXCHANGE = "https://graph.microsoft.com", "https://outlook.office365.com"
# Shorter polls of the lab's one-second batch updates; more forks than CE tenants, so no task runs in two rounds.
FAST = ("-e", "ce_email_oauth_batch_update_poll_interval=0.5", "-f", "10")

# What ops do with the new secrets: keep them in Ansible Vault as ms_apps (docs/verify.md), each CE tenant's own under
# client_secrets. The benchmark keeps them the same way; one template serves both.
SAVE_APPS = fleet_bench.SAVE_APPS

# Token requests are POSTs the lab counts as writes; they change nothing. Every other service must see no write.
NOT_STATE = ("login", "admin")


def tasks(output):
    """[(task name without the role prefix, the task's output)] in the order they ran."""
    found = []
    for chunk in re.split(r"\n(?=TASK \[|PLAY \[|PLAY RECAP)", output):
        match = re.match(r"TASK \[(?:[\w.]+ : )?(.*?)\] \*+", chunk)
        if match:
            found.append((match.group(1), chunk))
    return found


def changed(output):
    """{(task, host)} of every result reported as changed."""
    return set((name, host) for name, body in tasks(output) for host in re.findall(r"^changed: \[([^\]]+)\]", body, re.M))


def task_output(output, name):
    return "\n".join(body for task, body in tasks(output) if task == name)


def writes(lab):
    """{service: writes} of every service that saw any, but token requests (which change nothing)."""
    services = lab.counters()["services"]
    return dict((name, b["totals"]["writes"]) for name, b in services.items() if name not in NOT_STATE and b["totals"]["writes"])


def inventory_tenants():
    with open(os.path.join(REPO, "inventories", "lab", "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    tenants = {}
    for group in inventory["all"]["children"]["ce_tenants"]["children"].values():
        tenants.update(group["hosts"])
    return tenants


TENANTS = inventory_tenants()


def directory_mailboxes(tenant_id):
    return sorted(set(m.lower() for t in TENANTS.values() if t["ms_tenant_id"] == tenant_id for m in t["ce_mailboxes"]))


def playbook(lab, tmp_path, *args):
    env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(tmp_path / "tokens"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab"] + list(args), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


class Fleet:
    """The converged lab fleet of a test module and how to run playbooks on it."""

    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.runs = 0
        self.ms_apps_file = str(work / "ms_apps.json")

    def run(self, playbook, *args, host_vars=None, group_vars=None, apps=True, environment=None):
        """ansible-playbook over the lab inventory, with its own token cache. host_vars / group_vars ({name: vars}) go
        into a second inventory source, as host_vars/ and group_vars/ files of a real inventory would; environment adds to
        (or overrides) the environment, e.g. another stdout callback."""
        self.runs += 1
        env = dict(os.environ, CEOPS_LAB_DIR=self.lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(self.work / ("tokens-%d" % self.runs)),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default")
        env.update(environment or {})
        command = [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab"]
        if host_vars or group_vars:
            extra = self.work / ("inventory-%d" % self.runs)
            for kind, entries in (("host_vars", host_vars), ("group_vars", group_vars)):
                (extra / kind).mkdir(parents=True)
                for name, values in (entries or {}).items():
                    (extra / kind / (name + ".yml")).write_text(yaml.safe_dump(values))
            (extra / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": dict((h, None) for h in host_vars or {})}}))
            command += ["-i", str(extra)]
        if apps:
            command += ["-e", "@" + self.ms_apps_file]
        path = playbook if os.path.isabs(playbook) else os.path.join(REPO, "playbooks", playbook)
        result = subprocess.run(command + [path] + list(FAST) + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        result.output = result.stdout + result.stderr
        return result

    def parts(self, *names):
        """One playbook importing playbooks/<names> (separate CLI playbooks would stop at the first failed host)."""
        path = self.work / ("-".join(n.replace(".yml", "") for n in names) + ".yml")
        path.write_text("---\n" + "".join("- name: %s\n  ansible.builtin.import_playbook: %s/playbooks/%s\n" % (n, REPO, n) for n in names))
        return str(path)

    def apps(self):
        with open(self.ms_apps_file) as handle:
            return json.load(handle)["ms_apps"]

    # ----- breaking things by hand, as an admin in a portal would ---------------------------------------------------
    def call(self, method, url, token, body=None):
        status, _, payload = self.lab.request(method, url, body=body, headers={"Authorization": "Bearer " + token})
        assert status < 300, (method, url, status, payload)
        return payload

    def graph(self, name, method, path, body=None):
        return self.call(method, self.lab.graph_url + "/v1.0" + path, self.lab.token(name), body)

    def cmdlet(self, name, cmdlet, **parameters):
        url = "%s/adminapi/beta/%s/InvokeCommand" % (self.lab.vars["lab_exchange_endpoint"], DIRECTORIES[name])
        return self.call("POST", url, self.lab.token(name, resource=EXCHANGE), {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})

    def portal(self, deployment, method, path, body=None):
        d = self.lab.vars["lab_ce_deployments"][deployment]
        return self.call(method, d["url"] + "/api/v1" + path, d["admin_token"], body)

    def revoke_consent(self, name, permission):
        """Delete the app role assignment of `permission` to CE's app in Graph (what "Revoke admin consent" does)."""
        sp_id = self.apps()[DIRECTORIES[name]]["service_principal_id"]
        exchange_sp = self.graph(name, "GET", "/servicePrincipals(appId='00000002-0000-0ff1-ce00-000000000000')")
        role_id = next(r["id"] for r in exchange_sp["appRoles"] if r["value"] == permission)
        assignment = next(a for a in self.graph(name, "GET", "/servicePrincipals/%s/appRoleAssignments" % sp_id)["value"]
                          if a["appRoleId"] == role_id)
        self.graph(name, "DELETE", "/servicePrincipals/%s/appRoleAssignments/%s" % (sp_id, assignment["id"]))

    def remove_full_access(self, name, mailbox):
        sp_id = self.apps()[DIRECTORIES[name]]["service_principal_id"]
        self.cmdlet(name, "Remove-MailboxPermission", Identity=mailbox, User=sp_id, AccessRights=["FullAccess"], Confirm=False)

    def connection(self, deployment, tenant):
        page = self.portal(deployment, "GET", "/tenants/%s/email-connections?name=Exchange%%20Online" % tenant)
        return page["items"][0]


def converged_fleet(lab, work):
    """The fleet after one cold converge of site.yml from the lab's seed (CE's new secrets kept as ms_apps, SAVE_APPS);
    the counters, CE counters and logins as the cold run left them."""
    lab.reset()
    fleet = Fleet(lab, work)
    wrapper = fleet.work / "site-and-save.yml"
    wrapper.write_text(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", fleet.ms_apps_file))
    fleet.cold = fleet.run(str(wrapper), apps=False)
    fleet.cold_counters = lab.counters()
    fleet.cold_ce = lab.ce_counters()
    fleet.cold_logins = lab.mail_logins()
    return fleet
