# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
type: stdout
version_added: 0.2.0
author:
  - CE Ops automation team (@ceops)
short_description: A fleet run you can read - progress per part, errors, the summary and the recap
description:
  - >-
    A stdout callback for C(playbooks/site.yml) and the other playbooks of this collection over many CE tenants. Instead of a
    line per task and host, it shows one line per play as the play ends, naming the part (C(Azure AD), C(Exchange Online),
    C(CE), C(Verify)), how many of the play's CE tenants are done and how many failed, for example
    C(Exchange Online: 200/200 CE tenants done, 2 failed - register CE's app ...); below it each failure, with the CE tenants it
    failed and the message; then the summary of the run, as the playbook prints it, and the PLAY RECAP.
  - >-
    The counts follow the collection's fleet model (docs/fleet.md), not Ansible's failed hosts. The work of a Microsoft
    directory or a CE deployment runs on the CE tenant that stands for it, and a CE tenant is done when that work hands it its
    share. A CE tenant that fails is recorded (C(ceops_failures)) and skipped by the later parts until the summary fails it; such
    a CE tenant counts as C(failed) in the play that recorded it and as C(failed earlier) in the plays after it.
  - >-
    Skipped tasks and the results of bookkeeping (the hand-offs, the checks) are not shown. Tasks that changed something are
    listed once per play with the CE tenants they changed; with C(--diff) their diffs are shown. Warnings, the output of
    C(debug) tasks and every error Ansible itself reports (a task that failed and nothing recorded, an unreachable host) are
    shown. Nothing a task hides with C(no_log) is shown.
  - >-
    While a play runs, a running line gives its counts so far - rewritten in place on a terminal, else printed every
    O(progress_interval) seconds when the counts changed.
  - >-
    Turn it on with C(ANSIBLE_STDOUT_CALLBACK=ceops.exchange_oauth.fleet), or C(stdout_callback = ceops.exchange_oauth.fleet) in
    the C([defaults]) section of C(ansible.cfg). Ansible's default output stays available; use it, with C(-v), for everything
    each task returned.
requirements:
  - >-
    ansible-core 2.16 to 2.19, the releases this collection supports (meta/runtime.yml).
options:
  progress_interval:
    description:
      - >-
        Seconds between two running lines of a play when the output is not a terminal (a CI log, a file); a running line is
        printed only when the play's counts changed since the last one. V(0) prints one after every change.
      - >-
        On a terminal the running line is rewritten in place after every change, whatever this says.
    type: float
    default: 30
    env:
      - name: CEOPS_FLEET_PROGRESS_INTERVAL
    ini:
      - section: callback_ceops_fleet
        key: progress_interval
notes:
  - >-
    The playbook's summary (C(playbooks/plays/summary.yml)) names every CE tenant and why any failed; the lines per play name
    at most 10 CE tenants each.
  - >-
    A failure whose output a task hides with C(no_log) (making a new client secret) is shown as such; the summary says which
    CE tenants it failed.
"""

import json
import sys
import time

from ansible import constants as C
from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.utils.color import colorize, hostcolor

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.fleet_progress import HIDDEN, FleetRun, Result, short_action

COLORS = {"progress": C.COLOR_OK, "failed": C.COLOR_ERROR, "changed": C.COLOR_CHANGED}


def result_data(result):
    """The result dict a callback gets (ansible-core 2.19 calls it ``result``, older releases ``_result``)."""
    data = getattr(result, "result", None)
    return data if isinstance(data, dict) else result._result


def result_task(result):
    return getattr(result, "task", None) or result._task


def result_host(result):
    return (getattr(result, "host", None) or result._host).get_name()


def censored(data, task=None):
    return bool(data.get("_ansible_no_log") or "censored" in data or (task is not None and task.no_log is True))


def first_failed_item(data):
    for item in data.get("results") or []:
        if isinstance(item, dict) and item.get("failed") and not censored(item):
            return item
    return None


def to_result(result, status, ignored=False, is_item=False):
    """A Result of fleet_progress from Ansible's result: only what no_log leaves visible."""
    data = result_data(result)
    task = result_task(result)
    hidden = censored(data, task)
    # A loop's own result carries the delegate_to of the task as written ("{{ item.host }}"); its items name the CE tenant.
    handed_to = str(task.delegate_to) if task.delegate_to and task.delegate_facts and "results" not in data else None
    message = data.get("msg")
    if not is_item and status == "failed" and not hidden and "results" in data:
        failed_item = first_failed_item(data)
        message = (failed_item or {}).get("msg", message)
    stats = data.get("ansible_stats") or {}
    return Result(result_host(result), result.task_name or task.get_name(), status,
                  action=getattr(task, "resolved_action", None) or task.action, handed_to=handed_to, ignored=ignored,
                  censored=hidden, is_item=is_item, msg=None if hidden else message,
                  facts=None if hidden else data.get("ansible_facts"), add_host=None if hidden else data.get("add_host"),
                  stats=None if hidden else stats.get("data"))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "ceops.exchange_oauth.fleet"

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.run = FleetRun(check_mode=bool(context.CLIARGS.get("check")))
        self.on_terminal = sys.stdout.isatty()
        self.running_shown = False  # a running line is on the terminal's last line
        self.running_text = None
        self.last_running = 0.0

    # -- output -------------------------------------------------------------------------------------------------------
    def show(self, text, color=None, stderr=False):
        self.clear_running()
        self._display.display(text, color=color, stderr=stderr)

    def show_lines(self, lines):
        for kind, text in lines:
            self.show(text, COLORS.get(kind))

    def clear_running(self):
        if self.running_shown:
            self._display.display("\r\x1b[K", newline=False, screen_only=True)
            self.running_shown = False

    def show_running(self, changed):
        line = self.run.progress()
        if line is None:
            return
        if self.on_terminal:
            if line != self.running_text or not self.running_shown:
                self._display.display("\r%s\x1b[K" % line, newline=False, screen_only=True)
                self.running_shown, self.running_text = True, line
        elif changed and time.time() - self.last_running >= self.get_option("progress_interval"):
            self._display.display("  ... %s" % line)
            self.last_running = time.time()

    # -- plays --------------------------------------------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play):
        self.show_lines(self.run.start_play(play.get_name().strip(), play.hosts))
        self.last_running = time.time()

    def v2_playbook_on_no_hosts_matched(self):
        self.run.no_hosts()

    def v2_playbook_on_no_hosts_remaining(self):
        self.show("  no host left in this play: every one failed (see above)", C.COLOR_ERROR)

    def v2_playbook_on_stats(self, stats):
        self.show_lines(self.run.end_play())
        self.clear_running()
        self._display.banner("PLAY RECAP")
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            counts = (("ok", summary["ok"], C.COLOR_OK), ("changed", summary["changed"], C.COLOR_CHANGED),
                      ("unreachable", summary["unreachable"], C.COLOR_UNREACHABLE), ("failed", summary["failures"], C.COLOR_ERROR),
                      ("skipped", summary["skipped"], C.COLOR_SKIP), ("rescued", summary["rescued"], C.COLOR_OK),
                      ("ignored", summary["ignored"], C.COLOR_WARN))
            self._display.display("%s : %s" % (hostcolor(host, summary), " ".join(colorize(n, v, c) for n, v, c in counts)),
                                  screen_only=True)
            self._display.display("%s : %s" % (hostcolor(host, summary, False), " ".join(colorize(n, v, None) for n, v, _colour in counts)),
                                  log_only=True)
        self._display.display("", screen_only=True)

    # -- results ------------------------------------------------------------------------------------------------------
    def take(self, result, status, ignored=False, is_item=False):
        data = result_data(result)
        if data.get("warnings") or data.get("deprecations"):
            self.clear_running()
        self._handle_warnings(data)
        if self._display.verbosity >= 3 and status in ("failed", "unreachable"):
            self.clear_running()
            self._handle_exception(data)
        if not is_item and short_action(result_task(result).action) == "debug" and status != "skipped":
            self.show_debug(result, data)
        self.show_running(self.run.result(to_result(result, status, ignored, is_item)))

    def show_debug(self, result, data):
        """What a debug task prints is the playbook's word to the operator (the summary): as it is, a list line by line."""
        task = result_task(result)
        prefix = "" if task.run_once else "%s: " % result_host(result)
        if censored(data, task):
            self.show(prefix + HIDDEN)
            return
        if "msg" in data:
            lines = data["msg"] if isinstance(data["msg"], list) else str(data["msg"]).splitlines()
        else:
            lines = ["%s: %s" % (key, json.dumps(value, default=str)) for key, value in data.items()
                     if not key.startswith("_ansible") and key not in ("changed", "failed")]
        for line in lines:
            self.show(prefix + str(line))

    def v2_runner_on_ok(self, result):
        self.take(result, "changed" if result_data(result).get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.take(result, "failed", ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self.take(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self.take(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self.take(result, "changed" if result_data(result).get("changed") else "ok", is_item=True)

    def v2_runner_item_on_failed(self, result):
        self.take(result, "failed", is_item=True)

    def v2_runner_item_on_skipped(self, result):
        self.take(result, "skipped", is_item=True)

    def v2_on_file_diff(self, result):
        data = result_data(result)
        task = result_task(result)
        entries = data.get("results") if task.loop and "results" in data else [data]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("diff") and entry.get("changed") and not censored(entry, task):
                diff = self._get_diff(entry["diff"])
                if diff:
                    self.show("  diff of %s on %s:" % (result.task_name or task.get_name(), result_host(result)), C.COLOR_CHANGED)
                    self.show(diff.rstrip("\n"))
