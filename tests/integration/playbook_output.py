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


def summary(output):
    """{CE tenant: the summary's lines for it (the first its status line, the others indented details)} from the summary at
    the end of a run (playbooks/plays/summary.yml)."""
    import json
    block = output.split("Show what every CE tenant got, and why any failed]")[-1].split("PLAY RECAP")[0]
    lines = json.loads(block[block.index("=> ") + 3:block.index("\n}\n") + 2])["msg"]
    tenants, current = {}, None
    for line in lines:
        if not line.startswith(" "):
            current = line.split()[0]
            tenants[current] = [line]
        else:
            tenants[current].append(line.strip())
    return tenants
