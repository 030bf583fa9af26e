"""Cmdlets per second of exo_mailbox_permission over WinRM, 200 mailboxes, against the lab (docs/exchange-online.md).

Usage: .venv/bin/python bench/winrm_rate.py [--latency-ms 0,20] [--parallelism 8] [--repeat 3] [--json]

It starts a private lab, gives contoso 200 mailboxes, registers the automation identity's own service principal in
Exchange and runs the module in this process (as Ansible's in-process runner would) twice per setting: a converge
(Get-ServicePrincipal, then per mailbox Get-MailboxPermission + Add-MailboxPermission: 401 cmdlets) and a re-run that
changes nothing (201 cmdlets). The figure is cmdlets counted by the lab's WinRM endpoint divided by the module's wall
time (a run that fails is listed as failed, with its message, and not measured); the lab also counts the
WS-Management messages and the PowerShell processes (WS-Man Command messages) it took.
latency_ms is the lab's per-request latency on the WinRM service: every WS-Management message waits that long, as a
network round trip and the host's own handling would. The lab does not emulate what starting pwsh, Import-Module
ExchangeOnlineManagement and Connect-ExchangeOnline cost on a real host (seconds each): the number of processes and
connections is reported so that cost can be added by the reader.
"""

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAIN = "contoso.onmicrosoft.com"
MAILBOXES = ["ce-%s@%s" % (name, DOMAIN) for name in ("support", "sales", "billing", "returns", "info", "escalations")] + \
    ["ce-load-%03d@%s" % (n, DOMAIN) for n in range(194)]


def install_collection_finder():
    """Import this checkout as ansible_collections.ceops.exchange_oauth (as the root conftest.py does)."""
    base = tempfile.mkdtemp(prefix="ceops-bench-collections-")
    link = os.path.join(base, "ansible_collections", "ceops", "exchange_oauth")
    os.makedirs(os.path.dirname(link))
    os.symlink(REPO, link)
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[base])._install()
    return base


def run_module(name, args, check_mode=False):
    from ansible.module_utils.common import warnings as module_warnings
    from ansible.module_utils.testing import patch_module_args
    import contextlib
    import io
    module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
    full = dict((k, v) for k, v in args.items() if v is not None)
    full.update(_ansible_check_mode=check_mode, _ansible_diff=False)
    out = io.StringIO()
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    with patch_module_args(full), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    return json.loads(out.getvalue())


def winrm_counts(lab):
    bucket = lab.counters()["services"].get("winrm", {})
    cmdlets, messages, commands = 0, 0, 0
    for kind in ("reads", "writes"):
        for endpoint, number in bucket.get(kind, {}).items():
            if endpoint.startswith("CMDLET "):
                cmdlets += number
            elif endpoint.startswith("POST /wsman "):
                messages += number
                if endpoint.endswith(" Command"):
                    commands += number
    return cmdlets, messages, commands


def measure(lab, args, latency_ms, parallelism, repeat):
    rows = []
    for _ in range(repeat):
        lab.reset()
        lab.exchange_add_mailboxes("contoso", MAILBOXES)
        d = lab.vars["lab_directories"]["contoso"]
        lab.exchange_register_service_principal("contoso", d["automation_client_id"], d["automation_service_principal_id"], "automation")
        lab.set_faults("winrm", latency_ms=latency_ms)
        access = dict(args, user=d["automation_service_principal_id"], mailboxes=MAILBOXES, parallelism=parallelism)
        for run in ("converge", "re-run"):
            lab.reset_counters()
            started = time.monotonic()
            result = run_module("exo_mailbox_permission", access)
            wall = time.monotonic() - started
            if result.get("failed"):
                # Reported, not hidden: a rate is only measured over runs that did their work.
                rows.append({"run": run, "latency_ms": latency_ms, "parallelism": parallelism, "wall_s": round(wall, 3),
                             "failed": (result.get("msg") or "")[-300:]})
                break
            expected = "added" if run == "converge" else "unchanged"
            assert len(result["summary"][expected]) == len(MAILBOXES), result["summary"]
            cmdlets, messages, commands = winrm_counts(lab)
            rows.append({"run": run, "latency_ms": latency_ms, "parallelism": parallelism, "wall_s": round(wall, 3),
                         "cmdlets": cmdlets, "cmdlets_per_s": round(cmdlets / wall, 1), "wsman_messages": messages,
                         "powershell_processes": commands})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", default="0,20", help="comma-separated per-message latencies of the WinRM service")
    parser.add_argument("--parallelism", default="8", help="comma-separated values of the module's parallelism option")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    base = install_collection_finder()
    from ceops_lab.admin import LabAdmin
    from ceops_lab.cli import start_lab, stop_lab
    state_dir = tempfile.mkdtemp(prefix="ceops-bench-lab-")
    os.environ.setdefault("CEOPS_LAB_NO_IMAP", "1")  # no mailbox logins here: the lab needs no Dovecot
    start_lab(state_dir)
    try:
        lab = LabAdmin(state_dir)
        d = lab.vars["lab_directories"]["contoso"]
        w = lab.vars["lab_winrm"]
        os.environ["CEOPS_TOKEN_CACHE_DIR"] = os.path.join(state_dir, "tokens")
        args = dict(tenant_id=d["tenant_id"], client_id=d["automation_client_id"], transport="winrm",
                    winrm=dict(host=w["host"], port=w["port"], scheme=w["scheme"], path=w["path"], transport=w["transport"],
                               username=w["username"], password=w["password"], ca_path=lab.vars["lab_ca_path"],
                               certificate_thumbprint=w["certificate_thumbprints"]["contoso"]))
        rows = []
        for latency in [int(x) for x in options.latency_ms.split(",")]:
            for parallelism in [int(x) for x in options.parallelism.split(",")]:
                rows.extend(measure(lab, args, latency, parallelism, options.repeat))
    finally:
        stop_lab(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        os.unlink(os.path.join(base, "ansible_collections", "ceops", "exchange_oauth"))
        shutil.rmtree(base, ignore_errors=True)
    if options.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    print("%-9s %10s %11s %7s %7s %10s %13s %10s" % ("run", "latency_ms", "parallelism", "wall_s", "cmdlets", "cmdlets/s",
                                                     "wsman_msgs", "processes"))
    for row in rows:
        if "failed" in row:
            print("%-9s %10d %11d FAILED %s" % (row["run"], row["latency_ms"], row["parallelism"], row["failed"]))
            continue
        print("%-9s %10d %11d %7.2f %7d %10.1f %13d %10d" % (row["run"], row["latency_ms"], row["parallelism"], row["wall_s"],
                                                             row["cmdlets"], row["cmdlets_per_s"], row["wsman_messages"],
                                                             row["powershell_processes"]))


if __name__ == "__main__":
    main()
