# -*- coding: utf-8 -*-
"""site.yml on the brownfield world: directories where the runbook was walked by hand (right and wrong), other applications'
objects beside CE's, a CE release too old for OAuth, a policy that caps secret lifetimes (lab/README.md, "The brownfield
world", says what a correct converge must and must not do there).

The tests run in the file's order on one lab: a plan of the untouched world, a converge, a second converge; then the operator
picks corvid's app; then the world again from its seed with eastwind's policy readable. What they assert comes from the lab
(its write journal, the foreign objects, the oracle that says whether CE's mail servers would log in), never from the
collection's own results alone.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re

import pytest

from brownfield import DIRECTORIES, TENANTS, World, failed, messages, status

# What the world's README says a correct converge gives each CE tenant.
CONVERGES = ["alpine", "birch", "cobalt", "fjord", "glade"]
FAILS = {
    "dune": "ms_apps['%s'].app_id" % DIRECTORIES["corvid"],
    "ember": "ms_apps['%s'].app_id" % DIRECTORIES["corvid"],
    "harbor": "azuread_app_registration_secret_lifetime_days",
    "islet": "Exchange Administrator",
    "jasper": "upgrade the deployment",
}
# A plan cannot see a secret lifetime policy the automation identity may not read (Policy.Read.All): harbor's failure shows
# only when Graph refuses the secret. With the policy readable, the converge applies its limit and harbor converges.
PLAN_CANNOT_SEE = {"harbor"}
CE_APPS_BEFORE = {"adatum": 1, "bellows": 1, "corvid": 2, "dunmore": 1, "eastwind": 0, "fenwick": 0}


@pytest.fixture(scope="module")
def world(brownfield_lab, tmp_path_factory):
    brownfield_lab.reset()
    world = World(brownfield_lab, tmp_path_factory.mktemp("brownfield"))
    world.foreign_before = brownfield_lab.foreign_state()
    world.secrets_before = dict((name, secret_names(world, name)) for name in DIRECTORIES)
    return world


def secret_names(world, directory):
    return sorted(p["displayName"] for a in world.applications(directory) for p in a["passwordCredentials"])


def test_a_plan_of_the_untouched_world_writes_nothing_and_names_what_the_converge_will_fail(world):
    plan = world.plan = world.run("site.yml", "--check")
    assert world.lab.journal() == [], "a plan wrote"
    assert failed(plan) == sorted(set(FAILS) - PLAN_CANNOT_SEE), plan.output[-4000:]
    for host in set(FAILS) - PLAN_CANNOT_SEE:
        assert FAILS[host] in messages(plan, host)
    # islet: a cold plan reads Exchange with the automation identity, which fails as the converge's write would.
    assert "Exchange Online" in messages(plan, "islet") and "HTTP 401" in messages(plan, "islet")
    assert all(status(plan)[host] == "todo" for host in CONVERGES + sorted(PLAN_CANNOT_SEE))


def test_a_converge_adopts_what_the_runbook_made_and_touches_nothing_foreign(world):
    converge = world.converge = world.run("site.yml")
    assert world.lab.foreign_writes() == [], "a write addressed a foreign object"
    assert world.lab.foreign_state() == world.foreign_before
    # One "CE Email" per directory: the one made by hand adopted (corvid's two left as they are), one made where there was none.
    counts = dict((name, len(world.applications(name))) for name in DIRECTORIES)
    assert counts == dict(CE_APPS_BEFORE, eastwind=1, fenwick=1)
    assert sorted(set(failed(converge))) == sorted(FAILS)
    assert set(failed(world.plan)) == set(failed(converge)) - PLAN_CANNOT_SEE
    for host in CONVERGES:
        assert status(converge)[host] == "ok", converge.summary[host]
    for host in ("alpine", "birch", "cobalt"):
        assert "adopted CE's app made by hand" in messages(converge, host)


def test_ok_means_ce_can_log_in_with_what_it_holds(world):
    for host in CONVERGES:
        oracle = world.oracle(host)
        assert oracle["ok"], (host, oracle["causes"])
        exchange = [c for c in oracle["connections"] if c["exchange_online"]]
        assert len(exchange) == 1
        owners = exchange[0]["secret"]["owners"]
        # CE holds the secret this collection made for this CE tenant, and it is current.
        assert [(o["display_name"], o["current"], o["provenance"]) for o in owners] == [("CE mailbox access (%s)" % host, True, None)]
        assert "logins %d/%d ok" % ((len(TENANTS[host]["ce_mailboxes"]),) * 2) in world.converge.summary[host][0]


def test_a_ce_tenant_that_fails_names_its_fix_and_gets_no_secret(world):
    for host, fix in FAILS.items():
        assert fix in messages(world.converge, host), (host, world.converge.summary[host])
    # What is known is shown for a CE tenant that failed: the app (and service principal) its directory has.
    for host in ("harbor", "islet", "jasper"):
        assert re.search(r"\sapp [0-9a-f-]{36}\s+sp [0-9a-f-]{36}\s", world.converge.summary[host][0]), world.converge.summary[host]
    # No secret for a failing CE tenant: none in eastwind's or fenwick's new app, none added in corvid, none for jasper.
    assert secret_names(world, "eastwind") == [] and secret_names(world, "fenwick") == []
    assert secret_names(world, "corvid") == world.secrets_before["corvid"]
    assert secret_names(world, "adatum") == sorted(world.secrets_before["adatum"] + ["CE mailbox access (%s)" % h for h in ("alpine", "birch", "glade")])
    # jasper (CE 7.4.3) got nothing in Exchange either (adatum's CE app holds no right on its mailbox), and relic saw no write.
    sp_id = world.oracle("alpine")["connections"][0]["app"]["service_principal_id"]
    legacy = next(m for m in world.lab.exchange_state("adatum")["mailboxes"] if m["PrimarySmtpAddress"] == "ce-legacy@adatum.onmicrosoft.com")
    assert [p for p in legacy["permissions"] if p["User"] == sp_id] == []
    assert [e for e in world.lab.journal() if e.get("deployment") == "relic"] == []


def test_every_write_of_a_client_id_to_ce_carries_a_secret_of_it(world):
    changes = [o for e in world.lab.journal() if e["service"] == "ce" for o in e["objects"]
               if o["kind"] == "ce_oauth_settings" and o["action"] in ("changed", "created")]
    assert changes, "no OAuth settings were written"
    for change in changes:
        if change["action"] == "changed" and "client_id" in change["fields"]:
            assert "client_secret" in change["fields"], change


def test_the_object_id_mistake_is_repaired_with_its_grants_and_said(world):
    app = world.applications("bellows")[0]
    sp_id = world.oracle("cobalt")["connections"][0]["app"]["service_principal_id"]
    registered = [s for s in world.lab.exchange_state("bellows")["service_principals"] if s["AppId"] == app["appId"]]
    assert [s["ObjectId"] for s in registered] == [sp_id]
    for address in TENANTS["cobalt"]["ce_mailboxes"]:
        mailbox = next(m for m in world.lab.exchange_state("bellows")["mailboxes"] if m["PrimarySmtpAddress"] == address)
        assert any(p["User"] == sp_id and "FullAccess" in p["AccessRights"] for p in mailbox["permissions"])
        assert not any(p["User"] == app["id"] for p in mailbox["permissions"])
    assert "repaired Exchange's service principal, registered with object id %s" % app["id"] in messages(world.converge, "cobalt")


def test_a_second_converge_changes_nothing_and_writes_nothing(world):
    mark = len(world.lab.journal())
    again = world.run("site.yml")
    assert all(counts["changed"] == 0 for counts in again.recap.values()), again.recap
    assert world.accepted_writes(mark) == []
    # The only write sent is harbor's secret, which Graph refuses again until the inventory sets its lifetime.
    refused = world.lab.journal(mark)
    assert [(e["service"], e["endpoint"], e["status"], e["directory"]) for e in refused] == [
        ("graph", "POST /v1.0/applications/{id}/addPassword", 400, DIRECTORIES["eastwind"])]
    assert sorted(failed(again)) == sorted(FAILS)
    assert all(status(again)[host] == "ok" for host in CONVERGES)


def test_picking_corvids_app_by_id_converges_its_ce_tenants_and_leaves_the_other(world):
    first, second = sorted(world.applications("corvid"), key=lambda a: a["createdDateTime"])
    mark = len(world.lab.journal())
    picked = world.run("site.yml", extra_vars={"ms_apps": {DIRECTORIES["corvid"]: {"app_id": first["appId"]}}})
    assert status(picked)["dune"] == "ok" and status(picked)["ember"] == "ok", (picked.summary["dune"], picked.summary["ember"])
    assert world.oracle("dune")["ok"] and world.oracle("ember")["ok"]
    assert len(world.applications("corvid")) == 2
    touched = set(o["id"] for e in world.lab.journal(mark) for o in e["objects"])
    assert second["id"] not in touched and second["appId"] not in touched
    assert world.lab.foreign_writes(mark) == []


def test_offboarding_in_the_brownfield_world_removes_what_is_ours_and_nothing_beside_it(world):
    """glade leaves adatum (alpine and birch stay; glade's CE holds a foreign connection 'Partner inbox' too) and fjord leaves
    dunmore, the last CE tenant there, with ceops_offboard_remove_app: the plan writes nothing; the offboarding writes no
    foreign object and leaves every one as it was (adatum's and dunmore's other apps, their Exchange rights, glade's other
    connection). dunmore's "CE Email" was made by hand and holds the delegated User.Read the Entra admin center adds: it is
    not provably only CE's, so it stays with its Exchange service principal and the summary says why and what to do; the
    leaving CE tenants' secrets go. alpine and birch still log in; a second run writes nothing."""
    leaving = ("--limit", "glade,fjord", "-e", "ceops_offboard_remove_app=true")
    adatum_app = world.applications("adatum")[0]["appId"]
    mark = len(world.lab.journal())
    plan = world.run("offboard.yml", "--check", *leaving)
    assert plan.returncode == 0 and world.lab.journal(mark) == [], plan.output[-3000:]
    assert status(plan) == {"glade": "to", "fjord": "to"}, plan.summary  # "to offboard"

    done = world.run("offboard.yml", *leaving)
    assert done.returncode == 0 and status(done) == {"glade": "offboarded", "fjord": "offboarded"}, done.output[-4000:]
    assert world.lab.foreign_writes(mark) == [], json.dumps(world.lab.foreign_writes(mark))
    assert world.lab.foreign_state() == world.foreign_before
    assert [a["appId"] for a in world.applications("adatum")] == [adatum_app]
    dunmore_app = world.applications("dunmore")[0]
    assert [p["displayName"] for p in dunmore_app["passwordCredentials"]] == []
    assert not [p for p in world.applications("adatum")[0]["passwordCredentials"] if p["displayName"] == "CE mailbox access (glade)"]
    assert [s["AppId"] for s in world.lab.exchange_state("dunmore")["service_principals"]].count(dunmore_app["appId"]) == 1
    stays = [line for line in done.summary["fjord"] if "CE's app stays" in line]
    assert stays and "delegated permission e1fe6dd8-ba31-4d61-89e7-88639da4683d of Microsoft Graph" in stays[0], done.summary["fjord"]
    for host in ("glade", "fjord"):
        assert not world.oracle(host)["ok"], host
    for host in ("alpine", "birch"):
        assert world.oracle(host)["ok"], (host, world.oracle(host)["causes"])

    mark = len(world.lab.journal())
    again = world.run("offboard.yml", *leaving)
    assert again.returncode == 0 and all(counts["changed"] == 0 for counts in again.recap.values()), again.output[-3000:]
    assert world.accepted_writes(mark) == []


def test_with_the_policy_readable_the_plan_and_the_converge_agree_on_every_ce_tenant(world):
    world.lab.reset()
    world.lab.grant_app_roles("eastwind", "Policy.Read.All")
    plan = world.run("site.yml", "--check")
    converge = world.run("site.yml")
    assert failed(plan) == failed(converge) == sorted(set(FAILS) - {"harbor"})
    assert status(converge)["harbor"] == "ok" and world.oracle("harbor")["ok"]
    secret = next(p for p in world.applications("eastwind")[0]["passwordCredentials"] if p["displayName"] == "CE mailbox access (harbor)")
    lifetime = (datetime.datetime.fromisoformat(secret["endDateTime"].replace("Z", "+00:00"))
                - datetime.datetime.fromisoformat(secret["startDateTime"].replace("Z", "+00:00")))
    assert lifetime <= datetime.timedelta(days=180)
    assert "180 days" in converge.output  # the warning that says the policy's limit was applied
