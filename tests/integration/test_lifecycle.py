# -*- coding: utf-8 -*-
"""The lifecycle the runbook leaves out, on the converged lab fleet: mailboxes that leave a CE tenant, CE tenants that leave
(playbooks/offboard.yml), the report files, a proof skipped on purpose, and a secret renewed into CE by site.yml alone.

One cold converge is shared by the module (the fixture of test_site_fleet.py, run again for this module); each test breaks
only what it is about, in the file's order, and the offboarding comes last (it takes CE tenants out of the fleet).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from playbook_output import recap, summary
from test_site_fleet import DIRECTORIES, TENANTS, changed, fleet, writes  # noqa: F401 pylint: disable=unused-import

CONTOSO = DIRECTORIES["contoso"]
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
    """acme's inventory drops ce-sales (its CE email connection still lists it): the plan shows the revocation and writes
    nothing; with ceops_revoke_mailboxes: false nothing is revoked; a converge removes exactly CE's FullAccess there, and
    another principal's right on the mailbox stays; a second run changes nothing."""
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
    acme = {"acme": {"ce_mailboxes": [SUPPORT]}}

    lab.reset_counters()
    plan = fleet.run("site.yml", "--check", "--diff", host_vars=acme)
    assert writes(lab) == {}, lab.counters()["services"]
    assert changed(plan.stdout) >= {(REVOKE_TASK, "acme")}, plan.output[-3000:]
    assert "FullAccess to be revoked on %s: no CE tenant of the directory lists it" % SALES in summary(plan.stdout)["acme"]

    kept = fleet.run("site.yml", "-e", "ceops_revoke_mailboxes=false", host_vars=acme)
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
