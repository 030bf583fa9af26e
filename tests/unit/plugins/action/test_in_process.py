# -*- coding: utf-8 -*-
"""The action plugin that runs this collection's modules in Ansible's worker process on a local connection, and runs
them as processes wherever that is not the same thing, or this ansible-core lacks the internals it needs."""
from __future__ import annotations

import importlib
import sys
from unittest import mock

import pytest
from ansible.module_utils.ansible_release import __version__ as ansible_version

in_process = None  # plugins/plugin_utils/in_process.py, imported by the fixture below
# ansible-core 2.19 is the first with the module entry point the in-process path calls; older ones run module processes.
CORE = tuple(int(part) for part in ansible_version.split(".")[:2])
HAS_INTERNALS = CORE >= (2, 19)
needs_internals = pytest.mark.skipif(not HAS_INTERNALS, reason="ansible-core %s runs modules as processes" % ansible_version)


@pytest.fixture(autouse=True)
def controller():
    """The action plugin is controller code: importing Ansible's controller switches ansible.module_utils, process-wide,
    to where module warnings go to the controller's display rather than into the result. The module tests that share this
    pytest process run modules as a module process would, so the switch is put back after each test here (and the import
    is not made while pytest collects)."""
    global in_process  # pylint: disable=global-statement
    internal = sys.modules.get("ansible.module_utils._internal")
    before = getattr(internal, "is_controller", None)
    in_process = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.in_process")
    try:
        yield
    finally:
        if before is not None:
            internal.is_controller = before


@pytest.fixture(autouse=True)
def module_not_yet_imported(monkeypatch):
    """In a worker process the module is first imported when it runs (runpy warns when it was imported before, as the
    module tests sharing this pytest process do)."""
    monkeypatch.delitem(sys.modules, "ansible_collections.ceops.exchange_oauth.plugins.modules.ce_email_gateway", raising=False)


def action(args=None, transport="local", become=False, async_val=0, environment=None, check_mode=False, identity=False):
    task = mock.MagicMock()
    task.args = dict(args or {})
    task.async_val = async_val
    task.environment = [{}] if environment is None else environment
    task.check_mode = check_mode
    task.diff = True
    task.no_log = False
    task.resolved_action = "ceops.exchange_oauth.ce_email_gateway"
    connection = mock.MagicMock(transport=transport, socket_path=None, has_native_async=False)
    connection._shell.tmpdir = None
    connection.become = None
    connection._shell.get_option.return_value = "~/.ansible/tmp"
    from ansible.playbook.play_context import PlayContext  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar  # pylint: disable=import-outside-toplevel
    play_context = PlayContext()
    play_context.become = become
    loader = mock.MagicMock()
    plugin = in_process.InProcessAction(task, connection, play_context, loader, Templar(loader=loader), None)
    plugin.uses_automation_identity = identity
    return plugin


def run_task(plugin, monkeypatch):
    """The action's run() with the module-process path recorded instead of started: 'process' or 'in-process'."""
    monkeypatch.setattr(plugin, "_execute_module", lambda **kwargs: {"changed": False, "path": "process"})
    monkeypatch.setattr(plugin, "_remove_tmp_path", lambda path: None)
    result = plugin.run(task_vars={})
    return result.get("path", "in-process"), result


def test_the_in_process_path_exists_from_ansible_core_2_19_on():
    """On this machine's ansible-core: 2.19 has the internals, 2.16 to 2.18 do not (make test runs each)."""
    assert (in_process.load_internals() is not None) is HAS_INTERNALS


@needs_internals
def test_a_local_connection_runs_the_module_in_process():
    assert action().runs_in_process({}) is True
    assert action().prepare_in_process({}) is not None


@pytest.mark.parametrize("why", [
    dict(transport="ssh"),  # delegated to another machine: the module has to run there
    dict(become=True),  # as another user: only a process can
    dict(async_val=60),  # async_wrapper needs a process to leave running
    dict(environment=[{"HTTPS_PROXY": "http://proxy:3128"}]),  # environment: is for the module's process
])
def test_anything_a_process_would_do_differently_runs_a_process(why):
    assert action(**why).runs_in_process({}) is False


@pytest.mark.parametrize("switch", [False, "false", "no", 0])
def test_the_switch_turns_it_off(switch):
    assert action().runs_in_process({in_process.SWITCH: switch, "answer": 2}) is False


def test_a_switch_that_is_no_boolean_is_an_error():
    from ansible.errors import AnsibleActionFail  # pylint: disable=import-outside-toplevel
    with pytest.raises(AnsibleActionFail, match="ceops_modules_in_process must be true or false"):
        action().runs_in_process({in_process.SWITCH: "sometimes"})


def test_without_the_libraries_on_ansibles_python_the_module_runs_with_its_interpreter(monkeypatch):
    monkeypatch.setattr(in_process, "REQUIRED_LIBRARIES", ("requests", "no_such_library_here"))
    assert action().runs_in_process({}) is False


@pytest.mark.parametrize("args, environ, identity, needed", [
    ({}, {}, False, ("requests",)),
    ({"client_secret": "x"}, {}, True, ("requests",)),
    # A certificate or a managed identity gets its token through msal (and the certificate is read with cryptography).
    ({"client_certificate_path": "/etc/ceops/identity.pem"}, {}, True, ("requests", "msal", "cryptography")),
    ({}, {"AZURE_CLIENT_CERTIFICATE_PATH": "/etc/ceops/identity.pem"}, True, ("requests", "msal", "cryptography")),
    ({"client_certificate_path": ""}, {"AZURE_CLIENT_CERTIFICATE_PATH": "/etc/ceops/identity.pem"}, True, ("requests",)),
    ({"managed_identity": "yes"}, {}, True, ("requests", "msal")),
    # A module that does not sign in as the automation identity (CE's modules, the login proof) never imports msal.
    ({"client_certificate_path": "/etc/ceops/identity.pem"}, {}, False, ("requests",)),
    ({"transport": "winrm", "winrm": {"host": "mgmt"}}, {}, True, ("requests", "winrm")),
    ({"transport": "winrm", "winrm": {"host": "mgmt", "transport": "kerberos"}}, {}, True, ("requests", "winrm", "requests_kerberos")),
    ({"transport": "winrm", "winrm": {"host": "mgmt", "transport": "credssp"}}, {}, True, ("requests", "winrm", "requests_credssp")),
])
def test_every_library_the_module_will_import_is_checked(args, environ, identity, needed):
    assert action(args, identity=identity).libraries(args, environ) == needed


def test_a_certificate_without_msal_on_ansibles_python_runs_a_process(monkeypatch):
    monkeypatch.setattr(in_process, "CERTIFICATE_LIBRARIES", ("no_such_msal_here",))
    assert action({"client_certificate_path": "/etc/ceops/identity.pem"}, identity=True).runs_in_process({}) is False
    assert action({"client_secret": "x"}, identity=True).runs_in_process({}) is True


def test_the_winrm_transport_needs_pywinrm_on_ansibles_python(monkeypatch):
    monkeypatch.setattr(in_process, "WINRM_LIBRARIES", ("no_such_winrm_here",))
    assert action(args={"transport": "winrm"}).runs_in_process({}) is False
    assert action(args={"transport": "rest"}).runs_in_process({}) is True


def _no_module(name):
    """An ansible-core without that module: its import raises ImportError."""
    def remove(monkeypatch):
        monkeypatch.setitem(sys.modules, name, None)
        parent, child = name.rsplit(".", 1)
        if parent in sys.modules:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)
    return remove


def _changed_entry_point(monkeypatch):
    loader = importlib.import_module("ansible.module_utils._internal._ansiballz._loader")

    def run_module(json_params, profile, module_fqn):  # a later release that renamed or dropped a parameter
        raise AssertionError("never called")

    monkeypatch.setattr(loader, "run_module", run_module)


def _no_is_controller(monkeypatch):
    monkeypatch.delattr(importlib.import_module("ansible.module_utils._internal"), "is_controller")


def _encoder_refuses(monkeypatch):
    json_utils = importlib.import_module("ansible.module_utils.common.json")

    def get_module_encoder(profile, direction):
        raise TypeError("unknown profile %r" % profile)

    monkeypatch.setattr(json_utils, "get_module_encoder", get_module_encoder)


def _old_parse_returned_data(monkeypatch):
    def _parse_returned_data(self, res):  # ansible-core 2.18's signature
        raise AssertionError("never called")

    monkeypatch.setattr(in_process.ActionBase, "_parse_returned_data", _parse_returned_data)


@pytest.mark.parametrize("break_core", [
    pytest.param(_no_module("ansible.module_utils._internal._ansiballz"), id="no-ansiballz-loader"),  # ImportError: 2.16 to 2.18
    pytest.param(_no_module("ansible.module_utils._internal"), id="no-internal-package"),
    pytest.param(_changed_entry_point, id="entry-point-changed", marks=needs_internals),  # its parameters changed
    pytest.param(_no_is_controller, id="no-is_controller", marks=needs_internals),  # AttributeError
    pytest.param(_encoder_refuses, id="encoder-typeerror", marks=needs_internals),  # TypeError
    pytest.param(_old_parse_returned_data, id="parse-returned-data-changed"),  # the result parser of another release
])
def test_an_ansible_core_whose_internals_are_missing_or_different_runs_module_processes(monkeypatch, break_core):
    break_core(monkeypatch)
    assert in_process.load_internals() is None
    path, result = run_task(action({"name": "Exchange Online"}), monkeypatch)
    assert path == "process" and not result.get("failed"), result


@needs_internals
def test_module_arguments_that_ansible_cannot_prepare_here_go_to_a_module_process(monkeypatch):
    plugin = action({"name": "Exchange Online"})

    def update_module_args(module_name, module_args, task_vars):
        raise TypeError("a changed _update_module_args")

    monkeypatch.setattr(plugin, "_update_module_args", update_module_args)
    path, result = run_task(plugin, monkeypatch)
    assert path == "process" and not result.get("failed"), result


@needs_internals
def test_the_module_gets_its_arguments_and_flags_and_its_failure_comes_back_as_from_a_process(capsys, monkeypatch):
    internal = importlib.import_module("ansible.module_utils._internal")
    internal.is_controller = True  # as in Ansible's worker process
    path, result = run_task(action(args={"name": "Exchange Online", "bogus": 1}, check_mode=True), monkeypatch)
    assert path == "in-process"
    assert result["failed"] is True
    assert "Unsupported parameters for (ceops.exchange_oauth.ce_email_gateway) module: bogus" in result["msg"]
    assert internal.is_controller is True  # restored for the rest of the worker
    assert capsys.readouterr().out == ""  # the module's output is the result, not the worker's stdout


@needs_internals
def test_a_module_failure_names_the_object_and_reports_its_warning(monkeypatch):
    monkeypatch.delenv("CE_PORTAL_URL", raising=False)
    monkeypatch.delenv("CE_PORTAL_TOKEN", raising=False)
    # As in Ansible's worker process: the module's warning still comes back in the result.
    importlib.import_module("ansible.module_utils._internal").is_controller = True
    path, result = run_task(action(args={"name": "Exchange Online", "ce_url": "https://127.0.0.1:9/emea", "ce_token": "t0ken-value",
                                         "validate_certs": False, "timeout": 2}), monkeypatch)
    assert path == "in-process"
    assert result["failed"] is True and "email gateway 'Exchange Online'" in result["msg"]
    assert "t0ken-value" not in repr(result)
    assert any("validate_certs is false" in repr(warning) for warning in result.get("warnings", [])), result


@needs_internals
def test_a_module_that_raises_fails_its_task_with_the_exception_as_a_process_would(monkeypatch):
    loader = importlib.import_module("ansible.module_utils._internal._ansiballz._loader")

    def crash(**kwargs):
        raise RuntimeError("the module broke: 42")

    monkeypatch.setattr(loader.runpy, "run_module", crash)
    internal = importlib.import_module("ansible.module_utils._internal")
    internal.is_controller = True
    path, result = run_task(action(args={"name": "Exchange Online"}), monkeypatch)
    # What the AnsiballZ wrapper prints for a module process that raised; Ansible makes the task's message of it. A module
    # that started is never run a second time as a process.
    assert path == "in-process"
    assert result["failed"] is True and result["exception"].event.msg == "the module broke: 42"
    assert internal.is_controller is True


@pytest.mark.skipif(not HAS_INTERNALS, reason="this ansible-core runs every module as a process")
def test_preload_imports_the_action_plugins_and_module_utils_once_for_the_workers_to_inherit(monkeypatch):
    monkeypatch.setattr(in_process, "_preloaded", [])
    gone = ["ansible_collections.ceops.exchange_oauth.plugins.action.mailbox_oauth_check",
            "ansible_collections.ceops.exchange_oauth.plugins.module_utils.mail_login"]
    for name in gone:
        monkeypatch.delitem(sys.modules, name, raising=False)
    in_process.preload()
    assert all(name in sys.modules for name in gone)
    imported = mock.Mock(side_effect=importlib.import_module)
    monkeypatch.setattr(in_process.importlib, "import_module", imported)
    in_process.preload()
    assert imported.call_count == 0  # once per run


def test_preload_imports_nothing_where_modules_run_as_processes(monkeypatch):
    monkeypatch.setattr(in_process, "_preloaded", [])
    monkeypatch.setattr(in_process, "load_internals", lambda: None)
    imported = mock.Mock()
    monkeypatch.setattr(in_process.importlib, "import_module", imported)
    in_process.preload()
    assert imported.call_count == 0 and in_process._preloaded == []


def test_the_fleet_play_pattern_passes_through_and_preloads(monkeypatch):
    from ansible_collections.ceops.exchange_oauth.plugins.filter import fleet as fleet_filter
    called = []
    monkeypatch.setattr(in_process, "preload", lambda: called.append(True))
    assert fleet_filter.fleet_rule("ce_tenants:&emea", "hosts") == "ce_tenants:&emea" and called == [True]
