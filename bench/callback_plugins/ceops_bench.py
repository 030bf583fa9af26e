# -*- coding: utf-8 -*-
"""Benchmark callback (not shipped): one record per task and host that ran, written as JSON when the play ends.

A record is a module invocation when its action runs a module on the host; controller-side actions (set_fact, debug,
assert, group_by, fail, includes, meta, ...) cost milliseconds and are recorded but not counted as invocations.
Enable with ANSIBLE_CALLBACK_PLUGINS=<this dir> ANSIBLE_CALLBACKS_ENABLED=ceops_bench CEOPS_BENCH_EVENTS=<file>.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
name: ceops_bench
type: aggregate
short_description: Record per task and host what ran, for the fleet benchmark
description: Writes one JSON record per task result (action, host, status, seconds) to $CEOPS_BENCH_EVENTS.
requirements: [enable in configuration]
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only (no module process on the host).
CONTROLLER_ACTIONS = frozenset(
    "ansible.builtin." + name for name in (
        "set_fact", "debug", "assert", "group_by", "fail", "meta", "include_tasks", "import_tasks", "include_role",
        "import_role", "include_vars", "add_host", "set_stats", "pause", "validate_argument_spec", "import_playbook",
        "noop"))


def _fqcn(task):
    action = getattr(task, "resolved_action", None) or task.action
    return action if "." in action else "ansible.builtin." + action


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ceops_bench"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get("CEOPS_BENCH_EVENTS")
        self.started = {}
        self.records = []
        self.origin = time.time()

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, status):
        host, task = result._host.get_name(), result._task
        begun = self.started.pop((host, task._uuid), None)
        now = time.time()
        action = _fqcn(task)
        self.records.append({
            "host": host, "task": task.get_name(), "task_uuid": task._uuid, "action": action, "status": status,
            "module": status != "skipped" and action not in CONTROLLER_ACTIONS,
            "changed": bool(result._result.get("changed")),
            "start": round((begun or now) - self.origin, 4), "seconds": round(now - (begun or now), 4)})

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not self.path:
            return
        with open(self.path, "w") as handle:
            json.dump({"records": self.records}, handle)
