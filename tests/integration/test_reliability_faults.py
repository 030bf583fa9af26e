# -*- coding: utf-8 -*-
"""Issue 8, faults: a cold converge of site.yml while the lab's Microsoft and CE services answer 10 % of requests
with 429 and 10 % with 503 (with Retry-After on Graph and the CE Portal, without it on the token endpoint, Exchange
and WinRM), add 0-50 ms latency jitter, and hide every new object from reads for 2 s (eventual consistency).

It must end with zero failed hosts and the state of a clean run (no duplicate app, secret, service principal,
consent, FullAccess entry or CE object), and the retries must stay bounded, which the lab's counters show: every
service sees at most twice the requests of a clean cold converge. Why twice: at a 20 % fault rate a request needs
1.25 attempts on average and a retry loop would cost up to 6 (5 retries); the consistency window adds one to a few
re-reads per new object. Twice the clean run leaves room for those and still fails on any retry storm.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from reliability import REPO, SLICE, Run, clean_cold_converge, duplicates, fingerprint
from test_site_fleet import SAVE_APPS

FAULTED = ("login", "graph", "exchange", "winrm", "ce")
WITH_RETRY_AFTER = ("graph", "ce")
BOUND = 2.0
SEED = 8


def requests_per_service(lab):
    services = lab.counters()["services"]
    return dict((name, services.get(name, {}).get("totals", {}).get("requests", 0)) for name in FAULTED)


@pytest.fixture(scope="module")
def clean(lab, tmp_path_factory):
    """A clean cold converge of the slice: its state and what each service saw."""
    reference = clean_cold_converge(lab, tmp_path_factory.mktemp("clean"))
    return {"state": reference["state"], "requests": dict((name, reference["requests"].get(name, 0)) for name in FAULTED)}


@pytest.fixture(scope="module")
def faulty(lab, clean, tmp_path_factory):
    """The same cold converge under faults; the run also keeps CE's app and secret (ms_apps), as ops keep it in Vault."""
    lab.reset()
    work = tmp_path_factory.mktemp("faults")
    apps_file = str(work / "ms_apps.json")
    wrapper = work / "site-and-save.yml"
    wrapper.write_text(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", apps_file))
    for service in FAULTED:
        retry_after = 1 if service in WITH_RETRY_AFTER else None
        lab.set_faults(service, rate_429=0.1, rate_503=0.1, seed=SEED, jitter_ms=50, retry_after=retry_after)
        # And the first two requests of each service for sure, so no service goes unfaulted by chance of the draw.
        lab.fail_next(service, 429, count=1, retry_after=retry_after)
        lab.fail_next(service, 503, count=1, retry_after=retry_after)
    lab.set_consistency_window(2)
    run = Run(lab, work, "faulty", playbook=str(wrapper)).go().wait()
    run.counters = lab.counters()["services"]
    run.requests = requests_per_service(lab)
    run.state = fingerprint(lab)
    lab.clear_faults()
    with open(apps_file) as handle:
        run.apps = json.load(handle)["ms_apps"]
    return run


def test_a_cold_converge_under_throttling_outages_jitter_and_replication_lag_has_no_failed_host(faulty):
    assert faulty.returncode == 0, faulty.output[-4000:]
    assert set(faulty.hosts) == set(SLICE) | {"localhost"} and all(h["failed"] == 0 for h in faulty.hosts.values()), faulty.hosts


def test_the_faults_really_happened_on_every_service_the_run_uses(faulty, clean):
    used = [service for service in FAULTED if clean["requests"][service]]
    assert {"login", "graph", "exchange", "ce"} <= set(used)
    for service in used:
        statuses = faulty.counters[service]["statuses"]
        assert statuses.get("429", 0) >= 1 and statuses.get("503", 0) >= 1, (service, statuses)


def test_nothing_is_duplicated_and_the_state_is_a_clean_runs(faulty, clean):
    assert duplicates(faulty.state) == []
    assert faulty.state == clean["state"]


def test_retries_stay_bounded(faulty, clean):
    for service in FAULTED:
        assert faulty.requests[service] <= BOUND * clean["requests"][service], (service, faulty.requests, clean["requests"])


@pytest.mark.xfail(strict=True, reason="mailbox_oauth_check (plugins/module_utils/mailbox_check.py) does not log in again after "
                                       "a temporary failure ([UNAVAILABLE] / 454 4.7.0) and explains it as a missing registration")
def test_the_proof_survives_a_temporary_imap_login_failure(lab, faulty, run_module):
    """Exchange Online answers a login it cannot serve right now with [UNAVAILABLE] (IMAP) or 454 4.7.0 (SMTP); the
    proof must log in again before it declares CE's access broken. Here the lab fails one IMAP login once."""
    tenant_id = lab.vars["lab_directories"]["contoso"]["tenant_id"]
    app = faulty.apps[tenant_id]
    lab.fail_next("imap", 503, count=1)
    result = run_module("mailbox_oauth_check", dict(
        tenant_id=tenant_id, client_id=app["app_id"], client_secret=app["client_secret"],
        token_endpoint_url="%s/%s/oauth2/v2.0/token" % (lab.vars["lab_authority_host"], tenant_id),
        mailboxes=["ce-support@contoso.onmicrosoft.com"], imap_host=lab.vars["lab_imap"]["host"], imap_port=lab.vars["lab_imap"]["port"],
        mail_ca_path=lab.vars["lab_ca_path"], fail_on_error=False))
    assert lab.mail_logins(service="imap", outcome="refused"), "the lab did not fail the login"
    assert result["failed_mailboxes"] == [], result["msg"]
