# -*- coding: utf-8 -*-
"""Reading ansible-playbook's output in the integration tests (one copy for every test file that runs a playbook)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re


def recap(output):
    """PLAY RECAP of the last play run: {host: {"ok": n, "changed": n, "failed": n, ...}}."""
    hosts = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            hosts[match.group(1)] = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2)))
    return hosts
