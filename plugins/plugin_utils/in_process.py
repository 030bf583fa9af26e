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

That entry point and what goes with it are ansible-core internals, not an API: ansible-core 2.19 has them, older
releases do not, and a later one may change them. Every one of them is reached through ``load_internals()`` only,
imported when a task asks, and checked (names and parameters) before the module starts. Where anything is missing or
different the module runs as a process, as it would without this plugin: an internal API that moved never fails a
task. Nothing is retried after the module has started, because a module that ran must not run twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import os
import pkgutil

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# Our modules declare no serialization profile: Ansible gives them this one (module_common's default).
PROFILE = "legacy"
# What every module imports to run; without it on the controller's Python the module runs in its own process (with
# ansible_python_interpreter, which may have it).
REQUIRED_LIBRARIES = ("requests",)
# Tokens of a certificate or a managed identity come from msal; a certificate is read with cryptography (msauth.py).
CERTIFICATE_LIBRARIES = ("msal", "cryptography")
MANAGED_IDENTITY_LIBRARIES = ("msal",)
# transport=winrm runs the cmdlets through pywinrm; its kerberos and credssp transports need a library more each.
WINRM_LIBRARIES = ("winrm",)
WINRM_TRANSPORT_LIBRARIES = {"kerberos": ("requests_kerberos",), "credssp": ("requests_credssp",)}
# Set to false on a host (or group, or the run) to run the modules as separate processes.
SWITCH = "ceops_modules_in_process"

# The parameters of the internals we call, as ansible-core 2.19 has them.
ENTRY_POINT_PARAMETERS = {"json_params", "profile", "module_fqn", "modlib_path", "extensions"}
UPDATE_ARGS_PARAMETERS = {"module_name", "module_args", "task_vars"}
PARSE_PARAMETERS = {"res", "profile"}


class Internals:
    """The ansible-core internals a module needs to run in this process, found and checked by load_internals()."""

    def __init__(self, run_module, module_utils_internal, encoder, remove_internal_keys):
        self.run_module = run_module
        self.module_utils_internal = module_utils_internal
        self.encoder = encoder
        self.remove_internal_keys = remove_internal_keys


def _parameters(function):
    return set(inspect.signature(function).parameters)


def load_internals():
    """The one way in to ansible-core's internals, or None where this ansible-core lacks one or has changed it.

    Imported here, not at the top of this file, so that an older ansible-core (2.16 to 2.18) loads the action plugins
    and runs the modules as processes."""
    # pylint: disable=import-outside-toplevel
    try:
        from ansible.module_utils import _internal as module_utils_internal
        from ansible.module_utils._internal._ansiballz import _loader
        from ansible.module_utils.common.json import Direction, get_module_encoder
        from ansible.vars.clean import remove_internal_keys
        if not isinstance(module_utils_internal.is_controller, bool):
            return None
        if not ENTRY_POINT_PARAMETERS <= _parameters(_loader.run_module):
            return None
        if not UPDATE_ARGS_PARAMETERS <= _parameters(ActionBase._update_module_args):  # pylint: disable=protected-access
            return None
        if not PARSE_PARAMETERS <= _parameters(ActionBase._parse_returned_data):  # pylint: disable=protected-access
            return None
        encoder = get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return Internals(_loader.run_module, module_utils_internal, encoder, remove_internal_keys)


def _importable(names):
    return all(importlib.util.find_spec(name) is not None for name in names)


# What preload() imports: the collection's action plugins and module_utils (and, through them, requests, imaplib, smtplib, ...).
PRELOADED_PACKAGES = ("ansible_collections.ceops.exchange_oauth.plugins.action",
                      "ansible_collections.ceops.exchange_oauth.plugins.module_utils")
_preloaded = []


def preload():
    """Import, in the controller process and once per run, what the collection's action plugins and in-process modules import.

    Every task runs in a worker process forked from the controller; a library the controller has not imported is imported
    again by each worker that needs it (our module_utils, requests, ...): about a third of a CE tenant's controller CPU in a
    warm site.yml (docs/benchmark.md). Imported once here, before the workers are forked, every worker inherits it. Where
    this ansible-core runs no module in-process, nothing is imported. A library that cannot be imported (msal or winrm not
    installed, say) is left out: the task that needs it decides then (InProcessAction.runs_in_process)."""
    if _preloaded or load_internals() is None:
        return
    _preloaded.append(True)
    for package_name in PRELOADED_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for found in pkgutil.iter_modules(package.__path__):
            try:
                importlib.import_module("%s.%s" % (package_name, found.name))
            except Exception:  # pylint: disable=broad-except  # an optional library missing: the module itself reports it
                continue


class InProcessAction(ActionBase):
    """The action of every module of this collection: the module itself, in-process where that is the same thing."""

    _supports_check_mode = True
    _supports_async = True
    # Whether the module signs in as the automation identity (certificate, managed identity: msal). The action plugins
    # of azuread_app and the exo modules say so.
    uses_automation_identity = False

    def run(self, tmp=None, task_vars=None):
        result = super(InProcessAction, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        if self.runs_in_process(task_vars):
            prepared = self.prepare_in_process(task_vars)
            if prepared is not None:
                result.update(self.execute_in_process(*prepared))
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
        return _importable(self.libraries(self._task.args, os.environ))

    def libraries(self, args, environ):
        """Every library the module will import for these arguments, on this machine's environment (the module process
        would inherit it, and read AZURE_CLIENT_CERTIFICATE_PATH from it when client_certificate_path is not given)."""
        needed = list(REQUIRED_LIBRARIES)
        if self.uses_automation_identity:
            if boolean(args.get("managed_identity") or False, strict=False):
                needed += MANAGED_IDENTITY_LIBRARIES
            elif args.get("client_certificate_path") or ("client_certificate_path" not in args and environ.get("AZURE_CLIENT_CERTIFICATE_PATH")):
                needed += CERTIFICATE_LIBRARIES
        if args.get("transport") == "winrm":
            needed += WINRM_LIBRARIES
            winrm = args.get("winrm")
            needed += WINRM_TRANSPORT_LIBRARIES.get(winrm.get("transport") if isinstance(winrm, dict) else None, ())
        return tuple(needed)

    def prepare_in_process(self, task_vars):
        """(the internals, the module's import name, its encoded arguments), or None: run a module process.

        Everything that can fail because of ansible-core happens here, before the module starts."""
        internals = load_internals()
        if internals is None:
            display.vvv("This ansible-core lacks the internals %s needs: the module runs as a process" % __name__,
                        host=self._play_context.remote_addr)
            return None
        module_name = self._task.resolved_action
        namespace, collection, name = module_name.split(".")
        module_fqn = "ansible_collections.%s.%s.plugins.modules.%s" % (namespace, collection, name)
        module_args = dict(self._task.args)
        try:
            self._update_module_args(module_name, module_args, task_vars)
            params = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=internals.encoder)
            origin = importlib.util.find_spec(module_fqn).origin
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            # What the module process path then makes of it (an argument it cannot serialize, say) is Ansible's to report.
            display.vvv("The module runs as a process: %s" % exc, host=self._play_context.remote_addr)
            return None
        display.vvv("Running module file %s in the worker process (%s=false runs it as a process)" % (origin, SWITCH),
                    host=self._play_context.remote_addr)
        return internals, module_fqn, params

    def execute_in_process(self, internals, module_fqn, params):
        stdout, stderr, returncode = io.StringIO(), io.StringIO(), 0
        # ansible.module_utils asks whether it runs on the controller to decide where a module's warnings go and how its
        # result is encoded: for the module's run, the answer a module process gets, so warnings and deprecations come back
        # in the result, as from a module process.
        module_utils_internal = internals.module_utils_internal
        controller = module_utils_internal.is_controller
        module_utils_internal.is_controller = False
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                internals.run_module(json_params=params.encode("utf-8"), profile=PROFILE, module_fqn=module_fqn, modlib_path="",
                                     extensions={})
        except SystemExit as exit_:  # a module ends with sys.exit, as its process would
            returncode = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            module_utils_internal.is_controller = controller
        data = self._parse_returned_data({"rc": returncode, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}, PROFILE)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        internals.remove_internal_keys(data)
        return data
