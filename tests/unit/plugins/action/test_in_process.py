# -*- coding: utf-8 -*-
"""The action plugin that runs this collection's modules in Ansible's worker process on a local connection."""
from __future__ import annotations

import importlib
import sys
from unittest import mock

import pytest
from ansible.module_utils import _internal as module_utils_internal

in_process = None  # plugins/plugin_utils/in_process.py, imported by the fixture below


@pytest.fixture(autouse=True)
def controller():
    """The action plugin is controller code: importing Ansible's controller switches ansible.module_utils, process-wide,
    to where module warnings go to the controller's display rather than into the result. The module tests that share this
    pytest process run modules as a module process would, so the switch is put back after each test here (and the import
    is not made while pytest collects)."""
    global in_process  # pylint: disable=global-statement
    before = module_utils_internal.is_controller
    in_process = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.in_process")
    try:
        yield
    finally:
        module_utils_internal.is_controller = before


@pytest.fixture(autouse=True)
def module_not_yet_imported(monkeypatch):
    """In a worker process the module is first imported when it runs (runpy warns when it was imported before, as the
    module tests sharing this pytest process do)."""
    monkeypatch.delitem(sys.modules, "ansible_collections.ceops.exchange_oauth.plugins.modules.ce_email_gateway", raising=False)


def action(args=None, transport="local", become=False, async_val=0, environment=None, check_mode=False):
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
    return in_process.InProcessAction(task, connection, play_context, loader, Templar(loader=loader), None)


def test_a_local_connection_runs_the_module_in_process():
    assert action().runs_in_process({}) is True


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


def test_an_ansible_core_without_the_entry_point_we_know_runs_module_processes(monkeypatch):
    from ansible.module_utils._internal._ansiballz import _loader  # pylint: disable=import-outside-toplevel
    assert in_process.module_entry_point() is _loader.run_module  # this ansible-core's

    def changed(json_params, profile, module_fqn):  # a later release that renamed or dropped a parameter
        raise AssertionError("never called")

    monkeypatch.setattr(_loader, "run_module", changed)
    assert in_process.module_entry_point() is None
    assert action().runs_in_process({}) is False


def test_the_winrm_transport_needs_pywinrm_on_ansibles_python(monkeypatch):
    monkeypatch.setattr(in_process, "WINRM_LIBRARIES", ("no_such_winrm_here",))
    assert action(args={"transport": "winrm"}).runs_in_process({}) is False
    assert action(args={"transport": "rest"}).runs_in_process({}) is True


def test_the_module_gets_its_arguments_and_flags_and_its_failure_comes_back_as_from_a_process(capsys):
    module_utils_internal.is_controller = True  # as in Ansible's worker process
    result = action(args={"name": "Exchange Online", "bogus": 1}, check_mode=True).execute_in_process({})
    assert result["failed"] is True
    assert "Unsupported parameters for (ceops.exchange_oauth.ce_email_gateway) module: bogus" in result["msg"]
    assert module_utils_internal.is_controller is True  # restored for the rest of the worker
    assert capsys.readouterr().out == ""  # the module's output is the result, not the worker's stdout


def test_a_module_failure_names_the_object_and_reports_its_warning(monkeypatch):
    monkeypatch.delenv("CE_PORTAL_URL", raising=False)
    monkeypatch.delenv("CE_PORTAL_TOKEN", raising=False)
    module_utils_internal.is_controller = True  # as in Ansible's worker process: the module's warning still comes back in the result
    result = action(args={"name": "Exchange Online", "ce_url": "https://127.0.0.1:9/emea", "ce_token": "t0ken-value",
                          "validate_certs": False, "timeout": 2}).execute_in_process({})
    assert result["failed"] is True and "email gateway 'Exchange Online'" in result["msg"]
    assert "t0ken-value" not in repr(result)
    assert any("validate_certs is false" in repr(warning) for warning in result.get("warnings", [])), result


def test_a_module_that_raises_fails_its_task_with_the_exception_as_a_process_would(monkeypatch):
    from ansible.module_utils._internal._ansiballz import _loader  # pylint: disable=import-outside-toplevel

    def crash(**kwargs):
        raise RuntimeError("the module broke: 42")

    monkeypatch.setattr(_loader.runpy, "run_module", crash)
    module_utils_internal.is_controller = True
    result = action(args={"name": "Exchange Online"}).execute_in_process({})
    # What the AnsiballZ wrapper prints for a module process that raised; Ansible makes the task's message of it.
    assert result["failed"] is True and result["exception"].event.msg == "the module broke: 42"
    assert module_utils_internal.is_controller is True
