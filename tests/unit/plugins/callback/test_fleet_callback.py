# -*- coding: utf-8 -*-
"""The stdout callback ceops.exchange_oauth.fleet as Ansible loads and calls it (plugins/callback/fleet.py), with the task
results each ansible-core release of the range hands a callback (make test's cores stage runs this on each): what it prints
per play, that nothing hidden by no_log gets out, the running line on a terminal and in a log, the summary and the recap."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.executor.stats import AggregateStats
from ansible.executor.task_result import TaskResult
from ansible.inventory.host import Host
from ansible.playbook.play import Play
from ansible.playbook.task import Task
from ansible.plugins.loader import callback_loader

SECRET = "s3cr3t-Value~of.CE_app"
GATEWAY_401 = "CE deployment https://ce.example/us: HTTP 401 unauthorized; check ce_token"


class Captured:
    """Ansible's Display as the callback uses it: what it printed, in order; banners as 'BANNER <title>'."""

    verbosity = 0

    def __init__(self):
        self.calls = []

    def display(self, msg, color=None, stderr=False, screen_only=False, log_only=False, newline=True):
        self.calls.append({"msg": msg, "newline": newline, "screen_only": screen_only, "log_only": log_only})

    def banner(self, msg, color=None, cows=True):
        self.calls.append({"msg": "BANNER " + msg, "newline": True, "screen_only": False, "log_only": False})

    def lines(self):
        """What a log file gets: whole lines, no running line rewritten in place."""
        return [c["msg"] for c in self.calls if c["newline"] and not c["screen_only"]]

    @property
    def text(self):
        return "\n".join(c["msg"] for c in self.calls)


@pytest.fixture
def callback(monkeypatch):
    def make(interval=None, terminal=False):
        if interval is not None:
            monkeypatch.setenv("CEOPS_FLEET_PROGRESS_INTERVAL", str(interval))
        display = Captured()
        plugin = callback_loader.get("ceops.exchange_oauth.fleet", display=display)
        plugin.set_options()
        plugin.on_terminal = terminal
        return plugin, display
    return make


def task(name, **fields):
    """A task as it reaches a callback; an item's delegate_to is the one templated for that item."""
    return Task.load(dict(name=name, **fields))


def result(host, of_task, data):
    return TaskResult(Host(host), of_task, dict(data), {"name": of_task.name})


def elect(plugin):
    plugin.v2_playbook_on_play_start(Play.load(dict(name="The fleet - which CE tenant stands for each unit", hosts="ce_tenants",
                                                    gather_facts=False, tasks=[])))
    add_host = task("Elect the CE tenants that stand for each app and each CE deployment", add_host=dict(name="{{ item.name }}"))
    units = {"acme": (["acme", "globex"], ["acme", "globex"]), "hooli": (["hooli"], ["hooli", "stark"]), "stark": (["stark"], None)}
    for lead, (app, deployment) in units.items():
        host_vars = {"ceops_app_unit": {"key": lead, "members": app}}
        groups = ["ceops_app_leads"]
        if deployment:
            host_vars["ceops_deployment_unit"] = {"key": lead, "members": deployment}
            groups.append("ceops_deployment_leads")
        plugin.v2_runner_item_on_ok(result("acme", add_host, {"add_host": {"host_name": lead, "groups": groups, "host_vars": host_vars},
                                                              "changed": False, "item": {"name": lead}}))


def gateway_play(plugin):
    plugin.v2_playbook_on_play_start(Play.load(dict(name="CE - the Exchange Online gateway of every CE deployment",
                                                    hosts="ceops_deployment_leads", gather_facts=False, tasks=[])))
    gateway = task("Make sure the deployment's Exchange Online email gateway exists", action="ceops.exchange_oauth.ce_email_gateway")
    plugin.v2_runner_on_ok(result("acme", gateway, {"changed": True}))
    plugin.v2_runner_on_failed(result("hooli", gateway, {"msg": GATEWAY_401, "exception": "Traceback ..."}), ignore_errors=True)
    for lead, tenant, failures in (("acme", "acme", []), ("acme", "globex", []), ("hooli", "hooli", [{"part": "CE", "message": GATEWAY_401}]),
                                   ("hooli", "stark", [{"part": "CE", "message": GATEWAY_401}])):
        handoff = task("Hand each CE tenant of the deployment its gateway", set_fact=dict(ceops_failures="{{ item.failures }}"),
                       delegate_to=tenant, delegate_facts=True)
        plugin.v2_runner_item_on_ok(result(lead, handoff, {"ansible_facts": {"ceops_failures": failures}, "changed": False,
                                                           "item": {"host": tenant, "failures": failures}}))
    # The loop's own result: its delegate_to is the task's, not yet templated.
    loop = task("Hand each CE tenant of the deployment its gateway", set_fact=dict(a=1), delegate_to="{{ item.host }}", delegate_facts=True)
    plugin.v2_runner_on_ok(result("acme", loop, {"changed": False, "results": [{"changed": False}]}))


def test_a_play_s_line_its_failures_and_changes_and_nothing_per_task(callback):
    plugin, display = callback()
    elect(plugin)
    gateway_play(plugin)
    plugin.v2_playbook_on_stats(AggregateStats())
    lines = display.lines()
    assert lines[0] == "The fleet: 4 CE tenants, 3 apps, 2 CE deployments (0s)"
    assert lines[1] == "CE: 4/4 CE tenants done, 2 failed - the Exchange Online gateway of every CE deployment (0s)"
    assert lines[2] == "  FAILED hooli, stark: CE: " + GATEWAY_401
    assert lines[3] == "  changed on acme: Make sure the deployment's Exchange Online email gateway exists"
    assert lines[4].startswith("BANNER PLAY RECAP")
    assert "Traceback" not in display.text and "{{" not in display.text


def test_nothing_hidden_by_no_log_is_printed(callback):
    plugin, display = callback(interval=0)
    elect(plugin)
    plugin.v2_playbook_on_play_start(Play.load(dict(name="CE - a new client secret", hosts="ceops_app_leads", gather_facts=False, tasks=[])))
    make = task("Make a new client secret", action="ceops.exchange_oauth.azuread_app", no_log=True)
    plugin.v2_runner_on_failed(result("acme", make, {"msg": "refused " + SECRET, "diff": {"after": SECRET}}), ignore_errors=True)
    # A result whose module marked it no_log, a debug of a no_log task, a hand-off whose item carries a secret.
    proof = task("Prove the new secret", action="ceops.exchange_oauth.mailbox_oauth_check")
    plugin.v2_runner_on_failed(result("globex", proof, {"_ansible_no_log": True, "msg": "login with " + SECRET}))
    show = task("Show it", debug=dict(msg="x"), no_log=True, run_once=True)
    plugin.v2_runner_on_ok(result("acme", show, {"msg": SECRET}))
    handoff = task("Hand each CE tenant its new secret", set_fact=dict(a=1), delegate_to="globex", delegate_facts=True, no_log=True)
    plugin.v2_runner_item_on_ok(result("acme", handoff, {"ansible_facts": {"app": {"client_secret": SECRET}}, "item": {"secret": SECRET}}))
    plugin.v2_on_file_diff(result("acme", make, {"changed": True, "diff": {"before": "", "after": SECRET}}))
    plugin.v2_playbook_on_stats(AggregateStats())
    assert SECRET not in display.text
    assert "  acme: Make a new client secret failed, its output hidden (no_log); the summary says which CE tenants it failed" in display.lines()
    assert "  FAILED globex: Prove the new secret: output hidden (no_log)" in display.lines()
    assert "output hidden (no_log)" in display.lines()  # the debug


def test_the_summary_is_printed_as_the_playbook_gives_it(callback):
    plugin, display = callback()
    elect(plugin)
    plugin.v2_playbook_on_play_start(Play.load(dict(name="Summary per CE tenant", hosts="ce_tenants", gather_facts=False, tasks=[])))
    lines = ["acme       ok      directory 6f1c  app 71e0  CE Exchange Online  logins 2/2 ok",
             "hooli      FAILED  directory 8b3c  app -  CE -", "    CE: " + GATEWAY_401]
    plugin.v2_runner_on_ok(result("acme", task("Show what every CE tenant got, and why any failed", debug=dict(msg="x"), run_once=True),
                                  {"msg": lines, "_ansible_verbose_always": True}))
    plugin.v2_runner_on_ok(result("acme", task("Hand the summary to AWX", set_stats=dict(data=dict(a=1)), run_once=True),
                                  {"ansible_stats": {"data": {"ceops_summary": [{"host": "acme", "status": "ok"}, {"host": "hooli", "status": "FAILED"}]}}}))
    plugin.v2_runner_on_failed(result("hooli", task("Fail the CE tenants that failed", fail=dict(msg="x")),
                                      {"msg": "CE failed for hooli (see the summary above)"}))
    plugin.v2_runner_on_skipped(result("acme", task("Fail the CE tenants that failed", fail=dict(msg="x")), {"skip_reason": "Conditional result was False"}))
    stats = AggregateStats()
    stats.increment("ok", "acme")
    stats.increment("failures", "hooli")
    plugin.v2_playbook_on_stats(stats)
    out = display.lines()
    assert out[1:4] == lines
    assert out[4:6] == ["Summary per CE tenant: 2 CE tenants: 1 ok, 1 failed (0s)",
                        "  FAILED hooli: Fail the CE tenants that failed: CE failed for hooli (see the summary above)"]
    assert out[6].startswith("BANNER PLAY RECAP")
    recap = [line.split() for line in out[7:] if ":" in line]
    assert recap == [["acme", ":", "ok=1", "changed=0", "unreachable=0", "failed=0", "skipped=0", "rescued=0", "ignored=0"],
                     ["hooli", ":", "ok=0", "changed=0", "unreachable=0", "failed=1", "skipped=0", "rescued=0", "ignored=0"]]
    assert not any("skip" in line.lower() and "skipped=" not in line for line in out)


def test_in_a_log_a_running_line_comes_when_the_counts_change_at_most_every_interval(callback, monkeypatch):
    plugin, display = callback(interval=0)
    elect(plugin)
    gateway_play(plugin)
    running = [line for line in display.lines() if line.startswith("  ... ")]
    assert running == ["  ... CE: %d/4 CE tenants done, %d failed" % (done, failed) for done, failed in ((1, 0), (2, 0), (3, 1), (4, 2))]

    plugin, display = callback(interval=3600)
    elect(plugin)
    gateway_play(plugin)
    assert not [line for line in display.lines() if line.startswith("  ... ")]


def test_on_a_terminal_the_running_line_is_rewritten_in_place_and_cleared_before_other_output(callback):
    plugin, display = callback(terminal=True)
    elect(plugin)
    gateway_play(plugin)
    plugin.v2_playbook_on_stats(AggregateStats())
    in_place = [c for c in display.calls if not c["newline"]]
    assert in_place and all(c["screen_only"] for c in in_place)
    assert "\rCE: 4/4 CE tenants done, 2 failed\x1b[K" in [c["msg"] for c in in_place]
    # Every whole line printed after a running line first clears it.
    for before, after in zip(display.calls, display.calls[1:]):
        if before["msg"].startswith("\rCE:"):
            assert after["msg"] == "\r\x1b[K" or after["msg"].startswith("\rCE:")
    assert display.lines()[1] == "CE: 4/4 CE tenants done, 2 failed - the Exchange Online gateway of every CE deployment (0s)"


def test_diffs_are_shown_with_diff_and_name_the_task_and_host(callback):
    plugin, display = callback()
    elect(plugin)
    gateway_play(plugin)
    connection = task("Make sure the CE tenant's email connection uses them", action="ceops.exchange_oauth.ce_email_connection")
    diff = {"before": {"use_oauth_receive": False}, "after": {"use_oauth_receive": True}}
    plugin.v2_on_file_diff(result("globex", connection, {"changed": True, "diff": diff}))
    lines = display.lines()
    at = lines.index("  diff of Make sure the CE tenant's email connection uses them on globex:")
    assert '-    "use_oauth_receive": false' in lines[at + 1] and '+    "use_oauth_receive": true' in lines[at + 1]
