# -*- coding: utf-8 -*-
"""What the stdout callback ceops.exchange_oauth.fleet makes of a run (plugins/plugin_utils/fleet_progress.py): whom each
play works for, the counts per part, which CE tenants failed and why, and what stays hidden."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import fleet
from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.fleet_progress import FleetRun, Result

APPS = {"acme": ["acme", "globex", "umbrella"], "initech": ["initech", "stark"], "hooli": ["hooli"]}
DEPLOYMENTS = {"acme": ["acme", "globex", "initech"], "hooli": ["hooli", "stark", "umbrella"]}
GATEWAY_401 = "CE deployment https://ce.example/us, email gateway 'Exchange Online': reading the Portal's version: HTTP 401"
GONE = "CE tenant acme, directory contoso: 1 of 3 mailboxes could not be given access: ce-gone@contoso does not exist"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def elect_results():
    """The add_host items of the fleet play for the lab's fleet (plugin_utils/fleet.py, elect)."""
    results = []
    for lead in sorted(set(APPS) | set(DEPLOYMENTS)):
        host_vars, groups = {}, []
        if lead in APPS:
            groups.append(fleet.APP_GROUP)
            host_vars["ceops_app_unit"] = {"key": lead, "members": APPS[lead]}
        if lead in DEPLOYMENTS:
            groups.append(fleet.DEPLOYMENT_GROUP)
            host_vars["ceops_deployment_unit"] = {"key": lead, "url": lead, "members": DEPLOYMENTS[lead]}
        results.append(Result("acme", "Elect", "ok", "ansible.builtin.add_host", is_item=True,
                              add_host={"host_name": lead, "groups": groups, "host_vars": host_vars}))
    return results


def handoff(lead, tenant, failures=(), censored=False, task="Hand each CE tenant its share"):
    facts = None if censored else {"some_fact": {}, "ceops_failures": [dict(f) for f in failures]}
    return Result(lead, task, "ok", "ansible.builtin.set_fact", handed_to=tenant, is_item=True, censored=censored, facts=facts)


def failure(part, message):
    return {"part": part, "task": "", "message": message}


def elected_run(clock=None):
    run = FleetRun(clock=clock or Clock())
    run.start_play("The fleet - which CE tenant stands for each app and each CE deployment", ["ce_tenants"])
    run.result(Result("acme", "Check the version of ansible-core", "ok", "ansible.builtin.assert"))
    for result in elect_results():
        run.result(result)
    return run


def gateway_play(run):
    """hooli's deployment (us) refuses the Portal token: its three CE tenants fail in the CE part."""
    lines = run.start_play("CE - the Exchange Online gateway of every CE deployment", ["ceops_deployment_leads"])
    run.result(Result("acme", "Make sure the deployment's Exchange Online email gateway exists", "changed", "ceops.exchange_oauth.ce_email_gateway"))
    run.result(Result("hooli", "Make sure the deployment's Exchange Online email gateway exists", "failed",
                      "ceops.exchange_oauth.ce_email_gateway", ignored=True, msg=GATEWAY_401))
    for tenant in DEPLOYMENTS["acme"]:
        run.result(handoff("acme", tenant))
    for tenant in DEPLOYMENTS["hooli"]:
        run.result(handoff("hooli", tenant, [failure("CE", GATEWAY_401)]))
    return lines


def texts(lines):
    return [text for _kind, text in lines]


# -- the fleet and the units --------------------------------------------------------------------------------------------
def test_the_fleet_play_names_the_run_s_ce_tenants_apps_and_deployments():
    run = elected_run()
    assert run.tenants == ["acme", "globex", "hooli", "initech", "stark", "umbrella"]
    assert run.progress() is None  # no running line for the election
    lines = run.start_play("CE - the Exchange Online gateway of every CE deployment", ["ceops_deployment_leads"])
    assert texts(lines) == ["The fleet: 6 CE tenants, 3 apps, 2 CE deployments (0s)"]


def test_check_mode_is_said_on_the_fleet_line():
    run = FleetRun(check_mode=True, clock=Clock())
    run.start_play("The fleet - elect", ["ce_tenants"])
    for result in elect_results():
        run.result(result)
    assert texts(run.end_play()) == ["The fleet: 6 CE tenants, 3 apps, 2 CE deployments - check mode: nothing is written (0s)"]


def test_a_unit_play_works_for_the_members_of_its_units_each_done_when_handed_its_share():
    run = elected_run()
    run.start_play("CE - the Exchange Online gateway of every CE deployment", ["ceops_deployment_leads"])
    assert run.play.scope == ["acme", "globex", "initech", "hooli", "stark", "umbrella"]
    run.result(Result("acme", "Make sure the gateway exists", "ok", "ceops.exchange_oauth.ce_email_gateway"))
    assert run.progress() == "CE: 0/6 CE tenants done, 0 failed"  # the lead's own result is the unit's, not a CE tenant's
    assert run.result(handoff("acme", "acme")) is True
    assert run.result(handoff("acme", "globex")) is True
    assert run.progress() == "CE: 2/6 CE tenants done, 0 failed"


def test_a_failed_unit_fails_each_member_once_grouped_with_its_message():
    clock = Clock()
    run = elected_run(clock)
    gateway_play(run)
    clock.now += 3
    assert run.progress() == "CE: 6/6 CE tenants done, 3 failed"
    lines = run.start_play("Azure AD - register CE's app in every Microsoft directory", ["ceops_app_leads"])
    # The lead's ignored error is the message each member recorded: shown once, with the CE tenants it failed.
    assert lines == [
        ("failed", "CE: 6/6 CE tenants done, 3 failed - the Exchange Online gateway of every CE deployment (3s)"),
        ("failed", "  FAILED hooli, stark, umbrella: CE: " + GATEWAY_401),
        ("changed", "  changed on acme: Make sure the deployment's Exchange Online email gateway exists")]
    assert run.failures["stark"] == [("CE", GATEWAY_401)]


def test_later_parts_count_the_ce_tenants_that_failed_earlier_apart():
    run = elected_run()
    gateway_play(run)
    run.start_play("Exchange Online - register CE's app and give it access", ["ceops_app_leads"])
    assert run.play.scope == ["acme", "globex", "umbrella", "hooli", "initech", "stark"]
    run.result(handoff("acme", "acme", [failure("Exchange Online", GONE)]))
    assert run.progress() == "Exchange Online: 1/3 CE tenants done, 1 failed, 3 failed earlier"
    run.result(handoff("acme", "globex"))
    run.result(handoff("initech", "initech"))
    assert texts(run.end_play()) == [
        "Exchange Online: 3/3 CE tenants done, 1 failed, 3 failed earlier - register CE's app and give it access (0s)",
        "  FAILED acme: Exchange Online: " + GONE]


def test_a_hand_off_that_repeats_earlier_failures_adds_only_the_new_one():
    run = elected_run()
    gateway_play(run)
    run.start_play("CE - one batch update per CE deployment", ["ceops_deployment_leads"])
    run.result(handoff("hooli", "stark", [failure("CE", GATEWAY_401), failure("CE", "batch update failed")]))
    assert texts(run.end_play())[1:] == ["  FAILED stark: CE: batch update failed"]
    assert run.failures["stark"] == [("CE", GATEWAY_401), ("CE", "batch update failed")]


# -- plays on every CE tenant --------------------------------------------------------------------------------------------
def test_a_ce_tenant_play_counts_each_ce_tenant_at_its_first_result_of_work():
    run = elected_run()
    gateway_play(run)
    run.start_play("CE - the OAuth settings of every CE tenant", ["ce_tenants"])
    assert run.play.scope == run.tenants
    run.result(Result("globex", "Validating arguments against arg spec 'main'", "ok", "ansible.builtin.validate_argument_spec"))
    assert run.progress() == "CE: 0/3 CE tenants done, 0 failed, 3 failed earlier"
    run.result(Result("globex", "Make sure the OAuth settings hold CE's app", "changed", "ceops.exchange_oauth.ce_oauth_settings"))
    run.result(Result("acme", "Make sure the OAuth settings hold CE's app", "skipped", "ceops.exchange_oauth.ce_oauth_settings"))
    assert run.progress() == "CE: 2/3 CE tenants done, 0 failed, 3 failed earlier"


def test_a_rescued_failure_is_shown_once_as_the_ce_tenant_s_recorded_failure():
    run = elected_run()
    run.start_play("CE - the OAuth settings of every CE tenant", ["ce_tenants"])
    run.result(Result("initech", "Make sure the OAuth settings hold CE's app", "failed", "ceops.exchange_oauth.ce_oauth_settings",
                      msg="the Portal refused: HTTP 403"))
    run.result(Result("initech", "Record why this CE tenant failed", "ok", "ansible.builtin.set_fact",
                      facts={"ceops_failures": [failure("CE", "CE tenant initech: the Portal refused: HTTP 403")]}))
    assert texts(run.end_play()) == [
        "CE: 6/6 CE tenants done, 1 failed - the OAuth settings of every CE tenant (0s)",
        "  FAILED initech: CE: CE tenant initech: the Portal refused: HTTP 403"]


def test_ansible_s_own_failures_are_shown_with_host_task_and_message_and_counted():
    run = elected_run()
    run.start_play("Verify - CE logs in", ["ce_tenants"])
    run.result(Result("stark", "Log in to the mailboxes", "failed", "ceops.exchange_oauth.mailbox_oauth_check", msg="line one\nline two"))
    run.result(Result("hooli", "Log in to the mailboxes", "unreachable", "ceops.exchange_oauth.mailbox_oauth_check", msg="no route"))
    assert texts(run.end_play()) == ["Verify: 6/6 CE tenants done, 2 failed - CE logs in (0s)",
                                     "  FAILED stark: Log in to the mailboxes: line one line two",
                                     "  FAILED hooli: Log in to the mailboxes: no route"]


def test_a_play_on_a_group_the_run_made_works_for_that_group():
    run = elected_run()
    run.start_play("CE - a new client secret for each CE tenant whose CE needs one", ["ceops_app_leads"])
    for tenant in ("globex", "initech"):
        run.result(Result("acme", "The CE tenants whose CE gets a new secret", "ok", "add_host", is_item=True,
                          add_host={"host_name": tenant, "groups": ["ceops_new_secrets"], "host_vars": {}}))
    run.start_play("CE - the new secrets into CE", ["ceops_new_secrets"])
    assert run.play.scope == ["globex", "initech"]
    assert run.tenants == ["acme", "globex", "hooli", "initech", "stark", "umbrella"]  # an add_host is not an election


# -- what stays hidden, and what is not shown twice ----------------------------------------------------------------------
def test_a_failure_hidden_by_no_log_is_named_without_its_output():
    run = elected_run()
    run.start_play("CE - a new client secret for each CE tenant whose CE needs one", ["ceops_app_leads"])
    run.result(Result("acme", "Make a new client secret", "failed", "ceops.exchange_oauth.azuread_app", ignored=True, censored=True))
    run.result(handoff("acme", "globex", censored=True))
    lines = texts(run.end_play())
    assert lines[0].startswith("CE: 6/6 CE tenants done, 0 failed")
    assert lines[1] == ("  acme: Make a new client secret failed, its output hidden (no_log); the summary says which CE tenants "
                        "it failed")
    run.start_play("Verify - CE logs in", ["ce_tenants"])
    run.result(Result("acme", "Log in", "failed", "ceops.exchange_oauth.mailbox_oauth_check", censored=True))
    assert texts(run.end_play())[1] == "  FAILED acme: Log in: output hidden (no_log)"


def test_an_ignored_error_no_ce_tenant_recorded_is_shown():
    run = elected_run()
    run.start_play("Retire the client secrets CE no longer needs", ["ceops_app_leads"])
    run.result(Result("acme", "Remove the client secrets", "failed", "ceops.exchange_oauth.azuread_app", ignored=True,
                      msg="Graph refused removePassword: 403"))
    assert texts(run.end_play()) == [
        "Retire the client secrets CE no longer needs: 6/6 CE tenants done, 0 failed (0s)",
        "  error on acme (ignored): Remove the client secrets: Graph refused removePassword: 403"]


def test_changed_tasks_are_listed_once_per_play_with_at_most_ten_names():
    run = FleetRun(clock=Clock())
    run.start_play("CE - every CE tenant's email connection", ["ce_tenants"])
    hosts = ["tenant%02d" % n for n in range(12)]
    for host in hosts + ["tenant00"]:
        run.result(Result(host, "Make sure the email connection uses them", "changed", "ceops.exchange_oauth.ce_email_connection"))
    lines = texts(run.end_play())
    assert lines[0] == "CE: 12/12 CE tenants done, 0 failed - every CE tenant's email connection (0s)"
    assert lines[1] == "  changed on %s and 2 more: Make sure the email connection uses them" % ", ".join(hosts[:10])


def test_without_a_fleet_play_the_hosts_it_ran_on_count_and_no_running_line_guesses():
    run = FleetRun(clock=Clock())
    run.start_play("Take the credentials AWX injected, if any", ["ce_tenants"])
    run.result(Result("acme", "Read them", "ok", "ceops.exchange_oauth.ce_oauth_settings"))
    run.result(Result("globex", "Read them", "ok", "ceops.exchange_oauth.ce_oauth_settings"))
    assert run.progress() is None
    assert texts(run.end_play()) == ["Take the credentials AWX injected, if any: 2/2 CE tenants done, 0 failed (0s)"]


def test_plays_without_hosts_print_nothing():
    run = elected_run()
    run.start_play("CE - read the mailboxes of CE tenants that take them from the Portal", [])
    assert run.end_play() == []
    run.start_play("Take the credentials AWX injected, if any", ["!all"])
    run.no_hosts()
    assert run.end_play() == []


def test_the_summary_play_counts_the_summary_s_statuses():
    run = elected_run()
    run.start_play("Summary per CE tenant", ["ce_tenants"])
    records = [{"host": h, "status": s} for h, s in (("acme", "FAILED"), ("globex", "ok"), ("hooli", "not converged"),
                                                     ("initech", "ok"), ("stark", "done"), ("umbrella", "FAILED"))]
    run.result(Result("acme", "Hand the summary to AWX", "ok", "ansible.builtin.set_stats",
                      stats={"ceops_summary": records, "ceops_summary_counts": {"tenants": 6, "ok": 2, "failed": 2}}))
    assert run.progress() is None
    run.result(Result("acme", "Fail the CE tenants that failed", "failed", "ansible.builtin.fail", msg="Exchange Online failed for acme"))
    assert run.end_play() == [("failed", "Summary per CE tenant: 6 CE tenants: 2 ok, 1 todo, 1 done, 2 failed (0s)"),
                              ("failed", "  FAILED acme: Fail the CE tenants that failed: Exchange Online failed for acme")]


def test_inventory_problems_found_by_the_election_are_failures_of_the_fleet_play():
    run = FleetRun(clock=Clock())
    run.start_play("The fleet - elect", ["ce_tenants"])
    run.result(Result("acme", "Elect", "ok", "add_host", is_item=True, add_host={
        "host_name": "nowhere", "groups": [],
        "host_vars": {"ceops_failures": [failure("Inventory", "CE tenant nowhere: ce_url is not set")]}}))
    assert texts(run.end_play()) == ["The fleet: 1 CE tenant, 0 apps, 0 CE deployments (0s)",
                                     "  FAILED nowhere: Inventory: CE tenant nowhere: ce_url is not set"]


def test_a_play_that_ran_on_no_ce_tenant_says_where_it_ran():
    run = elected_run()
    run.start_play("Keep CE's app and its new secret per directory", ["localhost"])
    run.result(Result("localhost", "Write ms_apps", "changed", "ansible.builtin.copy", censored=True))
    assert run.progress() is None
    assert texts(run.end_play()) == ["Keep CE's app and its new secret per directory: done on localhost (0s)",
                                     "  changed on localhost: Write ms_apps"]
