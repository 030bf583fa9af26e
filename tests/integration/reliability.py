# -*- coding: utf-8 -*-
"""Shared by the reliability tests (issue 8): a small lab fleet, site.yml runs that the lab can interrupt, and a
fingerprint of everything the collection manages that is independent of ids, so the state after a fault, an
interruption or a concurrent run can be compared with the state after one clean, uninterrupted run.

The fleet is a slice of the lab inventory (ceops_hosts, as docs/fleet.md slices a fleet): two CE tenants of the emea deployment over two directories
(acme: contoso, initech: fabrikam), small enough for many runs in the CI budget, large enough that every part runs
for more than one directory and more than one CE tenant.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import subprocess

from lab_fleet import BIN, FAST, REPO
from playbook_output import recap  # noqa: F401 - re-exported for the tests

SLICE = ("acme", "initech")
SLICE_DIRECTORIES = ("contoso", "fabrikam")
DEPLOYMENT = "emea"
CE_APP = "CE Email"


class Run:
    """One ansible-playbook of site.yml over the slice, held at a gate until go(): the test can first tell the lab
    which process to interrupt, so there is no race with the run. Its own session, so a kill never reaches pytest."""


    def __init__(self, lab, work, name, playbook="site.yml", extra=()):
        self.name = name
        # A module process killed mid-run leaves its AnsiballZ payload directory behind: in the test's own directory, not /tmp.
        temp = work / ("tmp-" + name)
        temp.mkdir(exist_ok=True)
        env = dict(os.environ, CEOPS_LAB_DIR=lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(work / ("tokens-" + name)),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", TMPDIR=str(temp))
        command = ["sh", "-c", 'read gate && exec "$@"', "gate", os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab",
                   os.path.join(REPO, "playbooks", playbook), "-e", "ceops_hosts=" + ":".join(SLICE)] + list(FAST) + list(extra)
        self.log = open(str(work / (name + ".log")), "w+")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=self.log,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.pid = self.process.pid  # the shell, then (exec) ansible-playbook: the root of the tree the lab kills
        self.returncode = None
        self.output = ""

    def go(self):
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        return self

    def wait(self, timeout=600):
        self.returncode = self.process.wait(timeout=timeout)
        self.log.seek(0)
        self.output = self.log.read()
        self.log.close()
        return self

    @property
    def hosts(self):
        return recap(self.output)


def site(lab, work, name, extra=()):
    """site.yml over the slice, to its end."""
    return Run(lab, work, name, extra=extra).go().wait()


_CLEAN = {}


def clean_cold_converge(lab, work):
    """One uninterrupted, unfaulted cold converge of the slice per lab (shared by the reliability tests, which
    compare with it): {"state": its fingerprint, "requests": {service: requests the lab counted}}."""
    if lab.state_dir not in _CLEAN:
        lab.reset()
        run = site(lab, work, "clean")
        assert run.returncode == 0, run.output[-4000:]
        services = lab.counters()["services"]
        _CLEAN[lab.state_dir] = {"state": fingerprint(lab),
                                 "requests": dict((name, b["totals"]["requests"]) for name, b in services.items())}
    return _CLEAN[lab.state_dir]


def _without(record, *names):
    return dict((k, v) for k, v in record.items() if k not in names)


def fingerprint(lab):
    """What the collection manages in the lab, with ids replaced by names and without timestamps: equal for two runs
    that left the same objects, and different as soon as anything is missing, extra (a duplicate) or set otherwise."""
    result = {}
    app_names = {}
    for name in SLICE_DIRECTORIES:
        state = lab.directory_state(name)
        for sp in state["servicePrincipals"]:
            app_names[sp["id"]] = sp["displayName"]
            app_names[sp["appId"]] = sp["displayName"]
        apps = collections.Counter(a["displayName"] for a in state["applications"])
        secrets = dict((a["displayName"], dict(collections.Counter(p["displayName"] for p in a["passwordCredentials"])))
                       for a in state["applications"])
        assignments = collections.Counter((a["principalDisplayName"], a["resourceDisplayName"], a["appRoleId"])
                                          for a in state["appRoleAssignments"])
        exchange = lab.exchange_state(name)
        exchange_sps = dict((sp["ObjectId"], sp["DisplayName"]) for sp in exchange["service_principals"])
        full_access = collections.Counter((m["PrimarySmtpAddress"].lower(), exchange_sps[p["User"]], tuple(p["AccessRights"]))
                                          for m in exchange["mailboxes"] for p in m["permissions"]
                                          if p["User"] in exchange_sps and not p["IsInherited"])
        result[name] = {
            "applications": dict(apps),
            "secrets": secrets,
            "service_principals": dict(collections.Counter(sp["displayName"] for sp in state["servicePrincipals"])),
            "app_role_assignments": sorted(assignments.items()),
            "exchange_service_principals": sorted(collections.Counter(exchange_sps.values()).items()),
            "exchange_full_access": sorted(full_access.items()),
        }
    ce = lab.ce_state(DEPLOYMENT)
    result["ce"] = {"configured": _ce_view(ce["configured"], app_names), "applied": _ce_view(ce["applied"], app_names),
                    "pending": ce["pending"]["pending"]}
    return result


def _ce_view(config, app_names):
    gateways = dict((g["id"], g["name"]) for g in config["email_gateways"])
    view = {"email_gateways": sorted((_without(g, "id", "revision") for g in config["email_gateways"]), key=repr), "tenants": {}}
    for tenant in SLICE:
        entry = config["tenants"].get(tenant, {})
        settings = dict((s["id"], s["name"]) for s in entry.get("oauth_settings", []))
        view["tenants"][tenant] = {
            "oauth_settings": sorted((dict(_without(s, "id", "revision", "client_secret_updated_at", "client_secret_sha256_8"),
                                           client_id=app_names.get(s["client_id"], s["client_id"]))
                                      for s in entry.get("oauth_settings", [])), key=repr),
            "email_connections": sorted((dict(_without(c, "id", "revision"), gateway_id=gateways.get(c["gateway_id"], c["gateway_id"]),
                                              oauth_settings_id=settings.get(c["oauth_settings_id"], c["oauth_settings_id"]))
                                         for c in entry.get("email_connections", [])), key=repr),
        }
    return view


def duplicates(print_):
    """[what] of every object that exists more than once (an app, a secret name, a service principal, a consent,
    an Exchange service principal or FullAccess entry, a CE object by name); [] when there is none."""
    found = []
    for name in SLICE_DIRECTORIES:
        part = print_[name]
        found += ["%s: app %s x%d" % (name, k, n) for k, n in part["applications"].items() if n > 1]
        found += ["%s: secret %r of %s x%d" % (name, s, app, n) for app, per in part["secrets"].items() for s, n in per.items() if n > 1]
        found += ["%s: service principal %s x%d" % (name, k, n) for k, n in part["service_principals"].items() if n > 1]
        found += ["%s: app role assignment %s x%d" % (name, k, n) for k, n in part["app_role_assignments"] if n > 1]
        found += ["%s: Exchange service principal %s x%d" % (name, k, n) for k, n in part["exchange_service_principals"] if n > 1]
        found += ["%s: FullAccess %s x%d" % (name, k, n) for k, n in part["exchange_full_access"] if n > 1]
    configured = print_["ce"]["configured"]
    names = collections.Counter(g["name"] for g in configured["email_gateways"])
    found += ["CE gateway %s x%d" % (k, n) for k, n in names.items() if n > 1]
    for tenant, entry in configured["tenants"].items():
        for kind in ("oauth_settings", "email_connections"):
            names = collections.Counter(o["name"] for o in entry[kind])
            found += ["CE %s %s %s x%d" % (tenant, kind, k, n) for k, n in names.items() if n > 1]
    return found
