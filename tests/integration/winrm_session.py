# -*- coding: utf-8 -*-
"""Drive a PowerShell script on the lab's management host through real pywinrm, with raw stdin lines: what a client
that bypassed the collection's own checks would send."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json


def protocol(lab):
    from winrm.protocol import Protocol
    w = lab.vars["lab_winrm"]
    return Protocol(w["endpoint"], transport="basic", username=w["username"], password=w["password"], server_cert_validation="validate",
                    ca_trust_path=lab.vars["lab_ca_path"], read_timeout_sec=40, operation_timeout_sec=30)


def run_session(lab, script, lines):
    """Run ``script`` with ``lines`` (bytes or JSON-able requests) on its stdin, then its end: (answers, stdout, stderr,
    exit code), answers being the JSON lines of its stdout."""
    shell = protocol(lab)
    shell_id = shell.open_shell()
    try:
        command_id = shell.run_command(shell_id, "pwsh", ["-NoProfile", "-NonInteractive", "-EncodedCommand",
                                                          base64.b64encode(script.encode("utf-16-le")).decode()], console_mode_stdin=False)
        data = b"".join(line if isinstance(line, bytes) else (json.dumps(line) + "\n").encode("ascii") for line in lines)
        shell.send_command_input(shell_id, command_id, data, end=True)
        stdout, stderr, code = shell.get_command_output(shell_id, command_id)
        shell.cleanup_command(shell_id, command_id)
    finally:
        shell.close_shell(shell_id)
    answers = []
    for line in stdout.decode("utf-8").splitlines():
        if line.startswith("{"):
            answers.append(json.loads(line))
    return answers, stdout, stderr, code
