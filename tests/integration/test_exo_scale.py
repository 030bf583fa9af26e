# -*- coding: utf-8 -*-
"""exo_mailbox_permission on 200 mailboxes at 300 ms of Exchange latency: how many cmdlets it costs
(asserted) and how long it takes (printed; a sequential loop needs 200 x 0.3 s = 60 s per pass)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest

DOMAIN = "contoso.onmicrosoft.com"
# Six seeded mailboxes plus 194 created for this test: 200 real mailboxes.
MAILBOXES = ["ce-%s@%s" % (name, DOMAIN) for name in ("support", "sales", "billing", "returns", "info", "escalations")] + \
    ["ce-load-%03d@%s" % (n, DOMAIN) for n in range(194)]
LATENCY_MS = 300


def cmdlets(lab):
    bucket = lab.counters()["services"].get("exchange", {})
    counted = {}
    for kind in ("reads", "writes"):
        for endpoint, number in bucket.get(kind, {}).items():
            if endpoint.startswith("POST InvokeCommand "):
                counted[endpoint[len("POST InvokeCommand "):]] = number
    return counted


@pytest.mark.parametrize("parallelism", [8, 16])
def test_200_mailboxes_cost_one_read_each_and_a_fraction_of_the_sequential_time(fresh_lab, run_module, directory_auth, parallelism):
    fresh_lab.exchange_add_mailboxes("contoso", MAILBOXES)
    app = run_module("azuread_app", directory_auth(fresh_lab, display_name="CE Email", unique_name="ce-email"))
    args = directory_auth(fresh_lab, exchange_endpoint=fresh_lab.vars["lab_exchange_endpoint"])
    assert run_module("exo_service_principal", dict(args, app_id=app["app_id"], object_id=app["service_principal_id"]))["changed"] is True
    fresh_lab.set_faults("exchange", latency_ms=LATENCY_MS)
    fresh_lab.reset_counters()
    access = dict(args, user=app["service_principal_id"], mailboxes=MAILBOXES, parallelism=parallelism)

    timings = {}
    for name, check_mode in (("converge", False), ("re-check", False), ("check mode", True)):
        started = time.monotonic()
        result = run_module("exo_mailbox_permission", access, check_mode=check_mode)
        timings[name] = time.monotonic() - started
        counted = cmdlets(fresh_lab)
        fresh_lab.reset_counters()
        assert counted["Get-ServicePrincipal"] == 1 and counted["Get-MailboxPermission"] == 200, counted
        assert not result["summary"]["failed"], result["summary"]["failed"][:3]
        if name == "converge":
            assert counted.get("Add-MailboxPermission") == 200 and sorted(result["summary"]["added"]) == sorted(MAILBOXES)
        else:
            assert "Add-MailboxPermission" not in counted and sorted(result["summary"]["unchanged"]) == sorted(MAILBOXES)

    sequential = 200 * LATENCY_MS / 1000.0
    print("\n200 mailboxes, %d ms Exchange latency, parallelism %d: %s (a sequential loop: >= %.0f s per pass)"
          % (LATENCY_MS, parallelism, ", ".join("%s %.1f s" % item for item in timings.items()), sequential))
