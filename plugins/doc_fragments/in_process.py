# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The action attribute of every module: how it runs (plugins/plugin_utils/in_process.py, one action plugin per module).
    DOCUMENTATION = r'''
attributes:
  action:
    description:
      - With a local connection, the way this collection runs, the module runs inside the Ansible process that handles the task
        instead of starting a Python process of its own, from ansible-core 2.19 on. It is the same module with the same result,
        in about half the time per task on a large fleet.
      - That process runs Ansible's own Python, so install the collection's C(requirements.txt) there (an execution environment
        built from this collection has them).
      - The module runs as a process of its own, as other modules do, with another connection, C(become), C(async) or
        C(environment), on ansible-core before 2.19, when Ansible's Python lacks a library the module needs, or when
        C(ceops_modules_in_process) is V(false) (for example to run it with C(ansible_python_interpreter)). See docs/fleet.md.
    support: full
'''
