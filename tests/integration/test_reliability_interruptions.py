# -*- coding: utf-8 -*-
"""Issue 8, interruptions: a cold converge of site.yml killed at ten points (SIGKILL to the whole process group, as a
lost AWX pod or a cancelled job that did not get to clean up), then a plain re-run. The lab kills the run right after
it has answered the chosen request (kill_client), so the point is exact and the service kept what it did.

Each re-run must succeed and leave what one uninterrupted run leaves: the same apps, one secret per managed name,
the same service principals, consents, FullAccess entries, CE gateway / OAuth settings / email connections, and the
pending configuration applied; no duplicates. The re-run ends with the login proof, so CE's secret really works.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from reliability import Run, clean_cold_converge, duplicates, fingerprint, site

# A secret's value exists only in the memory of the run that creates it (Entra never shows it again), and CE's OAuth
# settings are written later in the same run: a run killed in between leaves a secret nobody has. The re-run finds CE's
# settings without a secret, makes a new secret for that CE tenant, removes the lost one and gives CE the new one.


def point(name, endpoint, after=1, *marks):
    """(the lab's counter endpoint to match, the how-manyth such request is the last one the run sees)."""
    return pytest.param(endpoint, after, id=name, marks=marks)


POINTS = [
    point("after-app-create", r"^PATCH /v1.0/applications\(uniqueName="),
    point("after-service-principal-create", r"^POST /v1.0/servicePrincipals$"),
    point("after-first-consent", r"^POST /v1.0/servicePrincipals/\{id\}/appRoleAssignedTo$"),
    point("after-secret-create", r"/addPassword$"),
    point("after-exchange-service-principal", r"^POST InvokeCommand New-ServicePrincipal$"),
    point("mid-mailbox-permissions", r"^POST InvokeCommand Add-MailboxPermission$", 2),
    point("after-gateway-create", r"^POST /emea/api/v1/email-gateways$"),
    point("between-tenants-oauth-settings", r"^POST /emea/api/v1/tenants/\{tenant\}/oauth-settings$"),
    point("after-email-connection-create", r"^POST /emea/api/v1/tenants/\{tenant\}/email-connections$"),
    point("mid-batch-update", r"^POST /emea/api/v1/server-updates$"),
]


@pytest.fixture(scope="module")
def reference(lab, tmp_path_factory):
    """The state one uninterrupted cold converge of the slice leaves."""
    state = clean_cold_converge(lab, tmp_path_factory.mktemp("uninterrupted"))["state"]
    assert duplicates(state) == []
    return state


@pytest.mark.parametrize("endpoint, after", POINTS)
def test_a_killed_cold_converge_is_finished_by_a_plain_re_run(lab, reference, tmp_path, endpoint, after):
    lab.reset()
    killed = Run(lab, tmp_path, "killed")
    lab.kill_client(killed.pid, endpoint, after=after)
    killed.go().wait()
    fired = [rule.get("fired") for rule in lab.faults()["*"]["kill_client"]]
    assert fired and fired[0], "the run ended before it reached %s: %s" % (endpoint, killed.output[-3000:])
    assert killed.returncode == -9, killed.output[-3000:]
    lab.clear_faults()

    rerun = site(lab, tmp_path, "rerun")
    assert rerun.returncode == 0, rerun.output[-4000:]
    assert all(h["failed"] == 0 for h in rerun.hosts.values()), rerun.hosts
    state = fingerprint(lab)
    assert duplicates(state) == []
    assert state == reference
