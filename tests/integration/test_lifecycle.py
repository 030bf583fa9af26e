# -*- coding: utf-8 -*-
"""The lifecycle the runbook leaves out, on the converged lab fleet: mailboxes that leave a CE tenant, CE tenants that leave
(playbooks/offboard.yml), the report files, a proof skipped on purpose, and a secret renewed into CE by site.yml alone.

One cold converge is shared by the module (lab_fleet.converged_fleet, as test_site_fleet.py has it); each test breaks
only what it is about, in the file's order, and the offboarding comes last (it takes CE tenants out of the fleet).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re

import pytest

from playbook_output import recap, summary
from lab_fleet import DIRECTORIES, REPO, SAVE_APPS, TENANTS, changed, converged_fleet, writes

@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return converged_fleet(lab, tmp_path_factory.mktemp("fleet"))


CONTOSO = DIRECTORIES["contoso"]
FABRIKAM = DIRECTORIES["fabrikam"]
SALES = "ce-sales@contoso.onmicrosoft.com"
SUPPORT = "ce-support@contoso.onmicrosoft.com"
REVOKE_TASK = "Take CE's FullAccess away from the mailboxes no CE tenant of the app lists any more"


def full_access(lab, name, mailbox):
    """{principal: explicit allowing rights} on one mailbox of a lab directory."""
    state = lab.exchange_state(name)
    found = next(m for m in state["mailboxes"] if m["PrimarySmtpAddress"].lower() == mailbox)
    return dict((p["User"], sorted(p["AccessRights"])) for p in found["permissions"] if not p["IsInherited"] and not p["Deny"])


def exchange_requests(lab, cmdlet):
    counters = lab.counters()["services"]["exchange"]
    return sum(n for kind in ("reads", "writes") for endpoint, n in counters[kind].items() if endpoint == "POST InvokeCommand " + cmdlet)


def test_a_mailbox_that_leaves_a_ce_tenants_list_loses_ces_fullaccess_and_only_that(fleet):
    """acme's inventory drops ce-sales (its CE email connection still lists it) and says its list is complete
    (ceops_revoke_mailboxes: true): the plan shows the revocation and writes nothing; without the switch nothing is revoked
    (an inventory may have forgotten a mailbox a connection made by hand reads); a converge removes exactly CE's FullAccess
    there, and another principal's right on the mailbox stays; a second run changes nothing."""
    lab, sp_id = fleet.lab, fleet.apps()[CONTOSO]["service_principal_id"]
    # The warm fleet: no mailbox left any list, so no Exchange request is spent on revocations.
    lab.reset_counters()
    warm = fleet.run("site.yml")
    assert warm.returncode == 0 and REVOKE_TASK not in warm.stdout, warm.output[-3000:]
    assert exchange_requests(lab, "Remove-MailboxPermission") == 0
    warm_reads = lab.counters()["directories"][CONTOSO]["exchange"]["requests"]

    lab.exchange_add_permission("contoso", SALES, SUPPORT)  # another principal: a colleague's FullAccess on the mailbox
    others = dict((u, r) for u, r in full_access(lab, "contoso", SALES).items() if u != sp_id)
    assert full_access(lab, "contoso", SALES)[sp_id] == ["FullAccess"] and SUPPORT in others
    acme = {"acme": {"ce_mailboxes": [SUPPORT], "ceops_revoke_mailboxes": True}}

    lab.reset_counters()
    plan = fleet.run("site.yml", "--check", "--diff", host_vars=acme)
    assert writes(lab) == {}, lab.counters()["services"]
    assert changed(plan.stdout) >= {(REVOKE_TASK, "acme")}, plan.output[-3000:]
    assert "FullAccess to be revoked on %s: no CE tenant of the directory lists it" % SALES in summary(plan.stdout)["acme"]

    # By default the inventory may be incomplete (a connection made by hand reads more): nothing is revoked.
    kept = fleet.run("site.yml", host_vars={"acme": {"ce_mailboxes": [SUPPORT]}})
    assert kept.returncode == 0 and REVOKE_TASK not in kept.stdout, kept.output[-3000:]
    assert full_access(lab, "contoso", SALES)[sp_id] == ["FullAccess"]

    lab.reset_counters()
    lab.reset_journal()
    revoked = fleet.run("site.yml", host_vars=acme)
    removals = [e for e in lab.journal(service="exchange") if e["endpoint"].endswith("Remove-MailboxPermission")]
    assert [(o["id"], o["action"]) for e in removals for o in e["objects"]] == [("%s|%s|Allow" % (SALES, sp_id), "deleted")], removals
    assert writes(lab) == {"exchange": 1}
    assert sp_id not in full_access(lab, "contoso", SALES) and dict(full_access(lab, "contoso", SALES)) == others
    assert full_access(lab, "contoso", SUPPORT)[sp_id] == ["FullAccess"]
    lines = summary(revoked.stdout)
    assert "FullAccess revoked on %s: no CE tenant of the directory lists it" % SALES in lines["acme"], lines["acme"]
    # acme's CE still reads ce-sales (its connection lists it): CE cannot any more, and the summary says what to do.
    assert re.match(r"acme\s+FAILED\s.*logins 1/2 ok$", lines["acme"][0]), lines["acme"]
    assert any(line.startswith("CE's email connection still reads %s, which no CE tenant of the directory lists" % SALES)
               for line in lines["acme"]), lines["acme"]
    assert all(re.search(r"\sok\s", lines[host][0]) for host in ("globex", "umbrella", "initech", "stark", "hooli")), lines
    # Only the app that had something to revoke did anything for it.
    assert recap(revoked.stdout)["acme"]["failed"] == 1 and revoked.returncode != 0

    lab.reset_counters()
    again = fleet.run("site.yml", host_vars=acme)
    assert all(h["changed"] == 0 for h in recap(again.stdout).values()), again.output[-3000:]
    assert writes(lab) == {}
    # While CE's connection still lists it, the revocation looks at it on each run (its permissions, and CE's principal), where
    # the grant no longer does: one Exchange request more than the warm run.
    assert lab.counters()["directories"][CONTOSO]["exchange"]["requests"] == warm_reads + 1
    assert "FullAccess revoked" not in " ".join(summary(again.stdout)["acme"])

    # Listed again: granted again.
    back = fleet.run("site.yml")
    assert back.returncode == 0 and full_access(lab, "contoso", SALES)[sp_id] == ["FullAccess"], back.output[-3000:]


def test_a_proof_skipped_on_purpose_says_so_and_the_summary_goes_to_the_report_files(fleet, tmp_path):
    """--skip-tags proof (and ceops_skip_proof) leave out the logins: the summary says "not checked (skipped)", nothing logs in,
    and the run is not failed for it. ceops_report_dir gets the summary as JSON and Markdown, with no secret in them."""
    lab = fleet.lab
    earlier = len(lab.mail_logins())
    reports = tmp_path / "reports"
    skipped = fleet.run("site.yml", "--skip-tags", "proof", "-e", "ceops_report_dir=%s" % reports,
                        "-e", "mailbox_oauth_verify_require_secret=true")
    assert skipped.returncode == 0, skipped.output[-3000:]
    lines = summary(skipped.stdout)
    assert all(re.match(r"%s\s+ok\s.*logins not checked \(skipped\)$" % host, lines[host][0]) for host in TENANTS), lines
    alone = fleet.run("verify.yml", "-e", "ceops_skip_proof=true")
    assert alone.returncode == 0 and all(line[0].endswith("logins not checked (skipped)") for line in summary(alone.stdout).values())
    assert len(lab.mail_logins()) == earlier  # no login was tried

    files = sorted(p.name for p in reports.iterdir())
    assert len(files) == 2 and re.match(r"^ceops-summary-\d{8}T\d{6}Z\.json$", files[0]) and files[1] == files[0][:-4] + "md", files
    report = json.loads((reports / files[0]).read_text())
    assert report["check_mode"] is False and report["counts"] == {"tenants": len(TENANTS), "ok": len(TENANTS), "failed": 0}
    assert sorted(r["host"] for r in report["records"]) == sorted(TENANTS)
    assert all(r["logins"] == {"checked": False, "skipped": True, "reason": "skipped"} for r in report["records"])
    markdown = (reports / files[1]).read_text()
    assert markdown.startswith("# ceops.exchange_oauth summary, ") and "| acme | ok | %s |" % CONTOSO in markdown
    texts = (reports / files[0]).read_text() + markdown
    for app in fleet.apps().values():
        assert all(secret not in texts for secret in list(app["client_secrets"].values()) + [app["client_secret"]])
    assert oct((reports / files[0]).stat().st_mode & 0o777) == "0o640"


def moment(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_site_alone_renews_a_secret_10_days_before_its_expiry_into_ce_and_retires_the_old_one_after_the_proof(fleet):
    """Time passes until fabrikam's secrets (initech's and stark's) are 10 days from their expiry: one site.yml run makes
    each a new secret, CE gets it and applies it, the proof logs in with it, and only then the old one goes (the journal
    orders the writes; the lab's oracle says CE logs in with a current secret of CE's app). The other directories' secrets
    are not touched; a second run changes nothing and writes nothing."""
    lab = fleet.lab
    fabrikam = fleet.apps()[FABRIKAM]
    before = dict((c["displayName"], c) for c in app_secrets(lab, "fabrikam", fabrikam["app_id"]))
    assert sorted(before) == ["CE mailbox access (initech)", "CE mailbox access (stark)"], before
    untouched = dict((name, app_secrets(lab, name, fleet.apps()[DIRECTORIES[name]]["app_id"])) for name in ("contoso", "northwind"))
    now = datetime.datetime.now(datetime.timezone.utc)
    days = min((moment(c["endDateTime"]) - now).total_seconds() / 86400.0 for c in before.values()) - 10
    lab.age_secrets("fabrikam", fabrikam["app_id"], days)

    # As ops run it: the new secrets go to Vault (SAVE_APPS writes the ones this run made), so the next run proves with them.
    renewed_file = fleet.work / "renewed_apps.json"
    wrapper = fleet.work / "renew-and-save.yml"
    wrapper.write_text(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", str(renewed_file)))
    lab.reset_counters()
    renewal = fleet.run(str(wrapper))
    assert renewal.returncode == 0, renewal.output[-4000:]
    lines = summary(renewal.stdout)
    for host in ("initech", "stark"):
        assert re.match(r"%s\s+ok\s.*logins 3/3 ok$" % host, lines[host][0]), lines[host]
        assert any("new client secret" in line and "CE holds it" in line for line in lines[host][1:]), lines[host]

    after = dict((c["displayName"], c) for c in app_secrets(lab, "fabrikam", fabrikam["app_id"]))
    assert sorted(after) == sorted(before), after  # one secret per CE tenant again: the old one is gone
    for name, secret in after.items():
        assert secret["keyId"] != before[name]["keyId"] and moment(secret["endDateTime"]) - now > datetime.timedelta(days=300), secret
    for deployment, host in (("emea", "initech"), ("us", "stark")):
        oracle = lab.ce_login_oracle(deployment, host)
        assert oracle["ok"] is True, oracle
        held = [o["key_id"] for c in oracle["connections"] for o in c["secret"]["owners"]]
        assert held == [after["CE mailbox access (%s)" % host]["keyId"]], (held, after)

    # No moment in which CE holds a removed secret: each old secret was removed after the batch update that gave CE the new
    # one had been applied.
    entries = lab.journal()
    removals = [e for e in entries if e["service"] == "graph" and e["endpoint"].endswith("/removePassword")]
    assert len(removals) == 2, [(e["service"], e["endpoint"]) for e in entries]
    for deployment in ("emea", "us"):
        applied = moment(lab.ce_state(deployment)["applied"]["applied_at"])
        started = [e["seq"] for e in entries if e["service"] == "ce" and e.get("deployment") == deployment and e["endpoint"].endswith("/server-updates")]
        assert started and all(e["seq"] > max(started) and moment(e["time"]) >= applied for e in removals), (started, removals)
    for name, secrets in untouched.items():
        assert app_secrets(lab, name, fleet.apps()[DIRECTORIES[name]]["app_id"]) == secrets, name

    renewed = json.loads(renewed_file.read_text())["ms_apps"]
    assert sorted(renewed) == [FABRIKAM], renewed
    apps = fleet.apps()
    apps[FABRIKAM] = renewed[FABRIKAM]
    with open(fleet.ms_apps_file, "w") as handle:
        json.dump({"ms_apps": apps}, handle)

    lab.reset_counters()
    again = fleet.run("site.yml")
    assert again.returncode == 0 and all(h["changed"] == 0 for h in recap(again.stdout).values()), again.output[-4000:]
    assert writes(lab) == {}, lab.counters()["services"]
    assert all(re.search(r"logins \d/\d ok$", lines[0]) for lines in summary(again.stdout).values()), again.stdout[-3000:]


def app_secrets(lab, directory, app_id):
    """The password credentials of one app of a lab directory as Graph lists them (never a secret)."""
    app = next(a for a in lab.state("graph")["directories"][directory]["applications"] if a["appId"] == app_id)
    return sorted(app["passwordCredentials"], key=lambda c: c["keyId"])


def journal_writes(lab):
    """[(service, endpoint, ce_tenant, object ids)] of every write the lab answered since the journal was reset."""
    return [(e["service"], e["endpoint"], e.get("ce_tenant"), [o["id"] for o in e["objects"]]) for e in lab.journal()]


def test_offboarding_one_ce_tenant_of_a_shared_directory_and_the_last_of_another(fleet):
    """acme leaves contoso (globex and umbrella stay), hooli leaves northwind (the last of it): check mode first shows it all and
    writes nothing; the offboarding removes acme's and hooli's OAuth settings, secrets and FullAccess, and with
    ceops_offboard_remove_app northwind's app and its Exchange service principal; globex and umbrella still log in; a second
    run changes nothing."""
    lab, apps = fleet.lab, fleet.apps()
    contoso, northwind = apps[CONTOSO], apps[DIRECTORIES["northwind"]]
    leaving = ("--limit", "acme,hooli", "-e", "ceops_offboard_remove_app=true")

    refused = fleet.run("offboard.yml")
    assert refused.returncode != 0 and "name the leaving CE tenants with --limit" in refused.stdout, refused.output[-3000:]

    lab.reset_counters()
    plan = fleet.run("offboard.yml", "--check", "--diff", *leaving)
    assert writes(lab) == {}, lab.counters()["services"]
    lines = summary(plan.stdout)
    assert plan.returncode == 0 and set(lines) == {"acme", "hooli"}, plan.output[-3000:]
    for host in ("acme", "hooli"):
        assert re.match(r"%s\s+to offboard\s" % host, lines[host][0]), lines[host]
        assert "email connection 'Exchange Online': OAuth to be turned off" in lines[host], lines[host]
        assert "OAuth settings 'Exchange Online OAuth': to be removed" in lines[host], lines[host]
    assert "FullAccess to be revoked on %s, %s: no CE tenant of the directory lists them" % (SUPPORT, SALES) in lines["acme"], lines["acme"]
    assert "CE's app stays: CE tenant(s) globex, umbrella of the directory stay" in lines["acme"]
    assert any(line.startswith("CE's app and its Exchange service principal: to be removed") for line in lines["hooli"]), lines["hooli"]

    lab.reset_counters()
    lab.reset_journal()
    done = fleet.run("offboard.yml", *leaving)
    assert done.returncode == 0, done.output[-4000:]
    lines = summary(done.stdout)
    assert re.match(r"acme\s+offboarded\s", lines["acme"][0]) and re.match(r"hooli\s+offboarded\s", lines["hooli"][0]), lines
    # Nothing of another CE tenant was written: CE writes only for acme and hooli, Graph only their own secrets (and
    # northwind's app), Exchange only the leaving CE tenants' mailboxes and northwind's service principal.
    ce_writes = [w for w in journal_writes(lab) if w[0] == "ce"]
    assert set(w[2] for w in ce_writes if w[2]) == {"acme", "hooli"}, ce_writes
    graph = lab.state("graph")["directories"]
    contoso_app = next(a for a in graph["contoso"]["applications"] if a["appId"] == contoso["app_id"])
    assert sorted(c["displayName"] for c in contoso_app["passwordCredentials"]) == ["CE mailbox access (globex)", "CE mailbox access (umbrella)"]
    assert not [a for a in graph["northwind"]["applications"] if a["appId"] == northwind["app_id"]]
    assert lab.exchange_state("northwind")["service_principals"] == []
    for mailbox in (SUPPORT, SALES):
        assert contoso["service_principal_id"] not in full_access(lab, "contoso", mailbox), mailbox
    for mailbox in ("ce-billing@contoso.onmicrosoft.com", "ce-info@contoso.onmicrosoft.com"):
        assert full_access(lab, "contoso", mailbox)[contoso["service_principal_id"]] == ["FullAccess"], mailbox
    for deployment, tenant in (("emea", "acme"), ("us", "hooli")):
        applied = lab.ce_state(deployment)["applied"]["tenants"][tenant]
        assert applied["oauth_settings"] == [] and not any(c["use_oauth_receive"] for c in applied["email_connections"]), applied
        assert lab.ce_login_oracle(deployment, tenant)["ok"] is False
    for deployment, tenant in (("emea", "globex"), ("us", "umbrella")):
        assert lab.ce_login_oracle(deployment, tenant)["ok"] is True, lab.ce_login_oracle(deployment, tenant)

    stayed = fleet.run("verify.yml", "--limit", "globex,umbrella")
    assert stayed.returncode == 0, stayed.output[-3000:]
    assert all(re.search(r"\sok\s.*logins 2/2 ok$", line[0]) for line in summary(stayed.stdout).values()), stayed.stdout[-2000:]

    # Again, as an operator would run it once northwind's app is gone: without ms_apps (the apps are found by their unique name;
    # an ms_apps[...].app_id of a removed app names an app that no longer exists, and the run says so).
    lab.reset_counters()
    again = fleet.run("offboard.yml", *leaving, apps=False)
    assert again.returncode == 0 and all(h["changed"] == 0 for h in recap(again.stdout).values()), again.output[-4000:]
    assert writes(lab) == {}
