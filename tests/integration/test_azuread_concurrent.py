# -*- coding: utf-8 -*-
"""Two runs of azuread_app for the same directory at the same time (two AWX jobs, or job slices running together).

Each run is its own process, as two ansible-playbook jobs are. Barriers hold both at each write until both have done
the read before it, so the race the fleet can hit (both see "no app", both create) happens on every run of the test.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import multiprocessing
import sys

from ansible_collections.ceops.exchange_oauth.tests.unit.core_compat import patch_module_args

from ansible_collections.ceops.exchange_oauth.plugins.module_utils import graph as graph_module
from ansible_collections.ceops.exchange_oauth.plugins.modules import azuread_app

RACED_WRITES = ("create_application", "create_service_principal", "add_app_role_assignment")


def run_in_child(args, barrier, token_dir, results):
    """One run: every raced Graph write waits until the other run is about to make it too."""
    import os
    os.environ["CEOPS_TOKEN_CACHE_DIR"] = token_dir
    for name in RACED_WRITES:
        real = getattr(graph_module.GraphClient, name)

        def raced(self, *a, _real=real, **kw):
            barrier.wait()
            return _real(self, *a, **kw)
        setattr(graph_module.GraphClient, name, raced)
    sys.stdout = io.StringIO()
    try:
        with patch_module_args(dict(args, _ansible_check_mode=False, _ansible_diff=False)):
            azuread_app.main()
    except SystemExit:
        pass
    except Exception as error:  # pylint: disable=broad-except
        results.put({"failed": True, "msg": "child crashed: %r" % error})
        return
    results.put(json.loads(sys.stdout.getvalue()))


def test_two_runs_at_once_make_one_app_one_service_principal_and_one_consent_per_role(fresh_lab, directory_auth, tmp_path):
    # New objects stay invisible to reads for a moment, as in Entra: the run that loses each race must cope with that too.
    fresh_lab.set_consistency_window(1, directory="contoso")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2, timeout=60), context.Queue()
    runs = []
    for tenant in ("acme", "globex"):
        args = dict(directory_auth(fresh_lab), display_name="CE Email", unique_name="ce-email",
                    app_secrets=[{"name": "CE mailbox access (%s)" % tenant, "lifetime_days": 180}])
        runs.append(context.Process(target=run_in_child, args=(args, barrier, str(tmp_path / tenant), results)))
    for run in runs:
        run.start()
    outcomes = [results.get(timeout=120) for _ in runs]
    for run in runs:
        run.join(timeout=30)

    assert not any(o.get("failed") for o in outcomes), [o.get("msg") for o in outcomes]
    app_ids = set(o["app_id"] for o in outcomes)
    assert len(app_ids) == 1 and len(set(o["service_principal_id"] for o in outcomes)) == 1
    # Exactly one run lost each race, and says so instead of claiming the write.
    actions = [a for o in outcomes for a in o["actions"]]
    assert sum("created by another run" in a for a in actions) == 1, actions
    assert sum(a.startswith("create the service principal") and "already done by another run" in a for a in actions) == 1, actions
    assert sum(a.startswith("grant admin consent") and "already done by another run" in a for a in actions) == 2, actions

    directory = fresh_lab.state("graph")["directories"]["contoso"]
    apps = [a for a in directory["applications"] if a.get("uniqueName") == "ce-email"]
    assert len(apps) == 1 and apps[0]["appId"] in app_ids
    assert len([a for a in directory["applications"] if a.get("displayName") == "CE Email"]) == 1
    service_principals = [sp for sp in directory["servicePrincipals"] if sp.get("appId") == apps[0]["appId"]]
    assert len(service_principals) == 1
    roles = sorted(a["appRoleId"] for a in directory["appRoleAssignments"] if a["principalId"] == service_principals[0]["id"])
    assert roles == sorted(["5e5addcd-3e8d-4e90-baf5-964efab2b20a", "cb842b43-da6e-4506-86fe-bb12199c656d"])
    # Each run made its own named secret in the one app.
    assert sorted(c["displayName"] for c in apps[0]["passwordCredentials"]) == ["CE mailbox access (acme)", "CE mailbox access (globex)"]
