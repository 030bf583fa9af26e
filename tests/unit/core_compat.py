# -*- coding: utf-8 -*-
"""What the tests need to run a module the same way on every ansible-core the collection supports (meta/runtime.yml):
2.19's own helpers where it has them, and on 2.16 to 2.18 the same done the way those releases work."""
from __future__ import annotations

import contextlib
import json

from ansible.module_utils.common import warnings as module_warnings

try:
    from ansible.module_utils.testing import patch_module_args  # noqa: F401  pylint: disable=unused-import
except ImportError:  # ansible-core before 2.19 reads a unit test's module arguments from basic._ANSIBLE_ARGS
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        before = basic._ANSIBLE_ARGS  # pylint: disable=protected-access
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode("utf-8")  # pylint: disable=protected-access
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = before  # pylint: disable=protected-access


def warnings_of(result):
    """A module result's warnings as text: 2.19 returns each as a summary (a dict with the message in event.msg), older
    releases as the text itself."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def forget_warnings():
    """ansible-core keeps a module's warnings process-global (a dict in 2.19, a list before): without this they leak from
    one module run in a test process into the next."""
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    module_warnings._global_deprecations.clear()  # pylint: disable=protected-access
