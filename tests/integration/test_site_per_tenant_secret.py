# -*- coding: utf-8 -*-
"""Each CE tenant has its own client secret in its directory's one app, so a run never needs a secret another run made.

A CE tenant added to a directory that already has CE's app, in a later run (a separate ansible-playbook process, as a
later AWX job: nothing of the first run is in memory), ends configured with working logins: one app, one secret per CE
tenant. (Job slices running at the same time: tests/integration/test_awx_runner.py; two azuread_app runs racing on one
directory: test_azuread_concurrent.py.)
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from lab_fleet import DIRECTORIES, TENANTS, Fleet
from playbook_output import summary

CONTOSO = DIRECTORIES["contoso"]
ADD_PASSWORD = "POST /v1.0/applications/{id}/addPassword"


def contoso_app(lab):
    apps = [a for a in lab.state("graph")["directories"]["contoso"]["applications"] if a.get("displayName") == "CE Email"]
    assert len(apps) == 1, apps
    return apps[0]


def secrets_by_name(app):
    return dict((c["displayName"], c["keyId"]) for c in app["passwordCredentials"])


def assert_logins_ok(result, tenant):
    n = len(TENANTS[tenant]["ce_mailboxes"])
    line = summary(result.stdout)[tenant][0]
    assert re.match(r"%s\s+ok\s.*FullAccess %d/%d .*logins %d/%d ok$" % (tenant, n, n, n, n), line), line


def test_a_ce_tenant_added_in_a_later_run_gets_its_own_secret_and_passes_the_login_proof(fresh_lab, tmp_path):
    fleet = Fleet(fresh_lab, tmp_path)
    first = fleet.run("site.yml", "-e", "ceops_hosts=acme", apps=False)
    assert first.returncode == 0, first.output[-4000:]
    assert_logins_ok(first, "acme")
    before = secrets_by_name(contoso_app(fresh_lab))
    assert list(before) == ["CE mailbox access (acme)"]

    # Later, globex (same directory) joins: its own run creates its own secret in the existing app, configures its CE
    # tenant with it and proves the logins; acme's secret, not in this run, is left as it was.
    fresh_lab.reset_counters()
    second = fleet.run("site.yml", "-e", "ceops_hosts=globex", apps=False)
    assert second.returncode == 0, second.output[-4000:]
    assert_logins_ok(second, "globex")
    after = secrets_by_name(contoso_app(fresh_lab))
    assert set(after) == {"CE mailbox access (acme)", "CE mailbox access (globex)"}
    assert after["CE mailbox access (acme)"] == before["CE mailbox access (acme)"]
    graph_writes = fresh_lab.counters()["directories"][CONTOSO]["graph"]
    assert graph_writes["writes"] == 1, graph_writes  # the new secret, nothing else of the app
    assert fresh_lab.counters()["services"]["graph"]["writes"][ADD_PASSWORD] == 1
    settings = fresh_lab.ce_state("emea")["applied"]["tenants"]["globex"]["oauth_settings"]
    assert [s["client_id"] for s in settings] == [contoso_app(fresh_lab)["appId"]]

