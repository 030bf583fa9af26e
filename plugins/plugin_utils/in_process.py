# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ceops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run this collection's modules inside Ansible's worker process on a local connection (docs/fleet.md).

A module task normally costs a new Python process that unpacks the AnsiballZ payload and compiles
ansible.module_utils from it: ~0.25 CPU-s before the module does anything, ~0.4 with requests, about half
of what a warm fleet run cost (docs/benchmark.md). On a local connection the module would run on this machine
anyway, so the action plugin runs it in the worker process Ansible has already forked for the task (a
throwaway copy of the controller: nothing a module does there outlives the task), with Ansible's own entry
point for modules (the one the AnsiballZ wrapper calls) and the same arguments, check/diff/no_log flags and
result parsing as a module process. Everything else runs the module as usual.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

display = Display()

# Our modules declare no serialization profile: Ansible gives them this one (module_common's default).
PROFILE = "legacy"
# What the modules import on the controller's Python to run there; without them the module runs in its own process
# (with ansible_python_interpreter, which may have them).
REQUIRED_LIBRARIES = ("requests",)
WINRM_LIBRARIES = ("winrm",)
# Set to false on a host (or group, or the run) to run the modules as separate processes.
SWITCH = "ceops_modules_in_process"


def _importable(names):
    return all(importlib.util.find_spec(name) is not None for name in names)


ENTRY_POINT_PARAMETERS = {"json_params", "profile", "module_fqn", "modlib_path", "extensions"}


def module_entry_point():
    """Ansible's own entry point for running a module in a Python process (the AnsiballZ wrapper's), or None where this
    ansible-core has none we know: an internal API, so a release that changes it gets module processes, not a failure."""
    try:
        from ansible.module_utils._internal._ansiballz import _loader  # pylint: disable=import-outside-toplevel
        parameters = set(inspect.signature(_loader.run_module).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return _loader.run_module if ENTRY_POINT_PARAMETERS <= parameters else None


class InProcessAction(ActionBase):
    """The action of every module of this collection: the module itself, in-process where that is the same thing."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(InProcessAction, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        if self.runs_in_process(task_vars):
            result.update(self.execute_in_process(task_vars))
            return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def runs_in_process(self, task_vars):
        """Only where a module process would run on this machine, as this user, with nothing but its arguments."""
        switch = self._templar.template(task_vars.get(SWITCH, True))
        try:
            if not boolean(switch, strict=True):
                return False
        except TypeError:
            raise AnsibleActionFail("%s must be true or false, not %r." % (SWITCH, switch))
        if self._connection.transport != "local" or self._task.async_val:
            return False
        if self._play_context.become or getattr(self._connection, "become", None) is not None:
            return False
        # The task's or play's environment: keyword would set variables for a module process; no entry, or only empty ones.
        if any(self._task.environment or ()):
            return False
        libraries = REQUIRED_LIBRARIES + (WINRM_LIBRARIES if self._task.args.get("transport") == "winrm" else ())
        return _importable(libraries) and module_entry_point() is not None

    def execute_in_process(self, task_vars):
        run_module = module_entry_point()
        module_name = self._task.resolved_action
        namespace, collection, name = module_name.split(".")
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        try:
            params = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE))
        except TypeError as exc:
            raise AnsibleActionFail("Failed to serialize arguments for the %r module." % module_name) from exc
        module_fqn = "ansible_collections.%s.%s.plugins.modules.%s" % (namespace, collection, name)
        display.vvv("Running module file %s in the worker process (%s=false runs it as a process)"
                    % (importlib.util.find_spec(module_fqn).origin, SWITCH), host=self._play_context.remote_addr)
        stdout, stderr, returncode = io.StringIO(), io.StringIO(), 0
        # ansible.module_utils asks whether it runs on the controller to decide where a module's warnings go and how its
        # result is encoded: for the module's run, the answer a module process gets, so warnings and deprecations come back
        # in the result, as from a module process.
        controller = module_utils_internal.is_controller
        module_utils_internal.is_controller = False
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                run_module(json_params=params.encode("utf-8"), profile=PROFILE, module_fqn=module_fqn, modlib_path="", extensions={})
        except SystemExit as exit_:  # a module ends with sys.exit, as its process would
            returncode = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            module_utils_internal.is_controller = controller
        data = self._parse_returned_data({"rc": returncode, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}, PROFILE)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(data)
        return data
