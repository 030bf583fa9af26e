# -*- coding: utf-8 -*-
"""Issue 8, concurrency: two AWX jobs run site.yml on the same fleet at the same moment, and two writers of the same
CE object meet at the Portal.

Two runs from cold: each must end, each either succeeding or failing with a clear message (the summary names the CE
tenant, the part and the service's reason, never a traceback), and together they must leave one correct state with
no duplicate app, secret name, service principal, consent, FullAccess entry or CE object; a later plain run finds
nothing left to do but what a failed one did not finish.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import pytest

from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_portal import CePortal

from reliability import SLICE, SLICE_DIRECTORIES, Run, duplicates, fingerprint, site
from ce_support import HandEdits, ce_args, connection_named, settings_named
from playbook_output import summary

SECRET = "lab-secret~concurrency-0123456789"
CLIENT = "11111111-2222-4333-8444-555555555555"
TENANT = "6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51"


def assert_ended_clearly(run):
    assert run.returncode is not None and "Traceback" not in run.output, run.output[-4000:]
    if run.returncode == 0:
        assert all(h["failed"] == 0 for h in run.hosts.values()), run.hosts
        return
    lines = summary(run.output)
    for host, result in run.hosts.items():
        if result["failed"]:
            assert re.match(r"%s\s+FAILED\s" % host, lines[host][0]) and len(lines[host]) > 1, lines.get(host)
            assert re.match(r"(Azure AD|Exchange Online|CE|Verify)\b", lines[host][1]), lines[host]


@pytest.fixture(scope="module")
def two_jobs(lab, tmp_path_factory):
    """Two site.yml runs from cold at once, then the next night's plain run."""
    lab.reset()
    work = tmp_path_factory.mktemp("two-jobs")
    # Both jobs look up CE's app in both directories at the same moment (the lab holds the four lookups until all
    # have arrived), so both find it missing and both go on to create it: the race two AWX jobs really can have.
    lab.barrier(r"^GET /v1.0/applications\(uniqueName=", parties=2 * len(SLICE_DIRECTORIES), timeout=120)
    jobs = [Run(lab, work, "job-1"), Run(lab, work, "job-2")]
    for job in jobs:
        job.go()
    for job in jobs:
        job.wait()
    met = lab.faults()["*"]["barrier"][0]["met"]
    lab.clear_faults()
    after_jobs = fingerprint(lab)
    key_ids = tenant_secret_key_ids(lab)
    next_night = site(lab, work, "next-night")
    return {"jobs": jobs, "met": met, "after_jobs": after_jobs, "key_ids": key_ids, "next_night": next_night, "final": fingerprint(lab)}


def tenant_secret_key_ids(lab):
    """Key ids of each CE tenant's own secret ("CE mailbox access (<tenant>)") in CE's app of its directory."""
    found = {}
    for tenant, directory in zip(SLICE, SLICE_DIRECTORIES):
        for app in lab.directory_state(directory)["applications"]:
            if app["displayName"] == "CE Email":
                found[tenant] = [c["keyId"] for c in app["passwordCredentials"] if c["displayName"] == "CE mailbox access (%s)" % tenant]
    return found


def outside_azure_ad_secrets(found):
    return [d for d in found if " secret " not in d]


def test_two_site_runs_at_once_end_clearly_and_leave_one_correct_state(two_jobs):
    assert two_jobs["met"] is True, "the two runs never were at the same step"
    for job in two_jobs["jobs"]:
        assert_ended_clearly(job)
    assert outside_azure_ad_secrets(duplicates(two_jobs["after_jobs"])) == []

    after = two_jobs["next_night"]
    assert after.returncode == 0, after.output[-4000:]
    state = two_jobs["final"]
    assert outside_azure_ad_secrets(duplicates(state)) == []
    assert state["ce"]["pending"] is False and state["ce"]["applied"] == state["ce"]["configured"]
    for tenant in SLICE:
        assert [c["use_oauth_receive"] for c in state["ce"]["configured"]["tenants"][tenant]["email_connections"]] == [True]
    for name in SLICE_DIRECTORIES:
        assert state[name]["applications"]["CE Email"] == 1 and state[name]["service_principals"]["CE Email"] == 1
    if all(job.returncode == 0 for job in two_jobs["jobs"]):
        assert all(h["changed"] == 0 for h in after.hosts.values()), after.hosts


def test_two_site_runs_at_once_leave_one_secret_per_managed_name(two_jobs):
    """Where both runs made a CE tenant's secret, the one CE did not take is removed by key id: by the run that made it
    ("another run gave CE's OAuth settings ... a secret"), or by the other run's recovery when that run found CE's
    settings needing a secret it did not hold. No live secret nobody holds is left. (The lab holds both runs at the app
    lookup; which of these happens depends on timing, so the secrets made and removed are read from the runs' reports.)"""
    assert duplicates(two_jobs["after_jobs"]) == []
    assert duplicates(two_jobs["final"]) == []
    reports = [summary(job.output) for job in two_jobs["jobs"]]
    for tenant in SLICE:
        lines = [line for report in reports for line in report.get(tenant, [])]
        made = [key_id for line in lines for key_id in re.findall(r"^new client secret ([0-9a-f-]{36}) for this CE tenant", line)]
        removed = set(key_id for line in lines if line.startswith("retired secret(s) ") for key_id in re.findall(r"[0-9a-f-]{36}", line))
        assert len(made) - len(removed) == 1, (tenant, made, removed, lines)
        assert len(two_jobs["key_ids"][tenant]) == 1 and two_jobs["key_ids"][tenant][0] not in removed, (two_jobs["key_ids"], removed)


def test_two_jobs_repairing_the_same_connection_write_it_once(fresh_lab, run_module, monkeypatch):
    """Both jobs read the drifted email connection; job 2 saves its repair first. Job 1's PUT carries the revision it
    read (If-Match), so the Portal refuses it (412, nothing changed) instead of overwriting job 2's save; job 1 reads
    again, finds the connection right, and writes nothing."""
    lab = fresh_lab
    assert not run_module("ce_email_gateway", ce_args(lab, name="Exchange Online")).get("failed")
    assert not run_module("ce_oauth_settings", ce_args(lab, ce_tenant="acme", name="Exchange Online OAuth", client_id=CLIENT,
                                                       client_secret=SECRET, tenant_id=TENANT)).get("failed")
    args = ce_args(lab, ce_tenant="acme", name="Exchange Online", gateway="Exchange Online", oauth_settings="Exchange Online OAuth")
    assert run_module("ce_email_connection", args)["changed"] is True
    connection = connection_named(lab, "acme", "Exchange Online")
    path = "/tenants/acme/email-connections/" + connection["id"]
    HandEdits(lab).edit(path, use_oauth_receive=False)  # the drift both jobs set out to repair

    original = CePortal.find_connection
    job_2 = []

    def read_then_job_2_saves(self, tenant, name):
        found = original(self, tenant, name)
        if not job_2:
            job_2.append(HandEdits(lab).edit(path, use_oauth_receive=True))
        return found
    monkeypatch.setattr(CePortal, "find_connection", read_then_job_2_saves)
    lab.reset_counters()
    job_1 = run_module("ce_email_connection", args)

    assert not job_1.get("failed") and job_1["changed"] is False, job_1
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in job_1.get("warnings", [])]
    assert any("changed in the Portal while this task ran (revision_mismatch)" in w for w in warnings), warnings
    ce = lab.counters()["services"]["ce"]
    assert ce["statuses"].get("412") == 1  # job 1's stale PUT, refused
    assert lab.count("ce", "PUT", kind="writes") == 2  # job 2's save and job 1's refused PUT; no third write
    stored = connection_named(lab, "acme", "Exchange Online")
    assert stored["use_oauth_receive"] is True and stored["revision"] == job_2[0]["revision"]
    assert settings_named(lab, "acme", "Exchange Online OAuth")["client_secret_set"] is True
