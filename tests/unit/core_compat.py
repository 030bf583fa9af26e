# -*- coding: utf-8 -*-
"""What the tests need to run a module the same way on every ansible-core the collection supports (meta/runtime.yml):
2.19's own helpers where it has them, and on 2.16 to 2.18 the same done the way those releases work."""
from __future__ import annotations

import contextlib
import importlib
import json

import pytest

from ansible.module_utils.common import warnings as module_warnings

try:
    from ansible.module_utils.testing import patch_module_args as _core_patch_module_args
except ImportError:  # ansible-core before 2.19 reads a unit test's module arguments from basic._ANSIBLE_ARGS
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def _core_patch_module_args(args=None):
        before = basic._ANSIBLE_ARGS  # pylint: disable=protected-access
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode("utf-8")  # pylint: disable=protected-access
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = before  # pylint: disable=protected-access


@contextlib.contextmanager
def patch_module_args(args=None):
    """A module run in the test process with ``args``, as a module process runs: not on the controller. Importing Ansible's
    controller code (a callback test imports ansible.executor) makes ansible.module_utils believe it runs on the controller
    (2.19: module_utils._internal.is_controller), and a module there hands its warnings to the controller's display instead
    of its result; a test process that imported both would lose the warnings the module tests look for."""
    internal = _module_utils_internal()
    before = getattr(internal, "is_controller", None)
    if before is not None:
        internal.is_controller = False
    try:
        with _core_patch_module_args(args):
            yield
    finally:
        if before is not None:
            internal.is_controller = before


def _module_utils_internal():
    try:
        from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel
    except ImportError:  # before 2.19
        return None
    return _internal


def warnings_of(result):
    """A module result's warnings as text: 2.19 returns each as a summary (a dict with the message in event.msg), older
    releases as the text itself."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def forget_warnings():
    """ansible-core keeps a module's warnings process-global (a dict in 2.19, a list before): without this they leak from
    one module run in a test process into the next."""
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    module_warnings._global_deprecations.clear()  # pylint: disable=protected-access


def run_module_main(capsys, name, args, check_mode=False, diff=True):
    """One of the collection's modules run in this process with ``args``, as a module process runs it: its result (the JSON
    it printed), with the printed text under "_raw"."""
    module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
    full = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    capsys.readouterr()
    forget_warnings()
    try:
        with patch_module_args(full):
            with pytest.raises(SystemExit):
                module.main()
    finally:
        forget_warnings()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_raw"] = out
    return result
