"""The fleet benchmark (docs/benchmark.md): `make bench ARGS='--tenants 50,200'`.

For each fleet size: generate a lab fleet (ceops_lab.fleet), start a lab of its own with Microsoft-like latencies, and
run, each with its own token cache as separate nightly jobs would: a cold converge of site.yml, a warm re-run, verify.yml,
the floor (as many invocations of a trivial module on the same hosts with the same settings as the warm run made), a
profiled warm run of one directory's CE tenants, and last `site.yml --check --diff` after drift made by hand in 5 % of
the CE tenants. Results go to <out>/bench.json, bench.md and bench.png.
"""

import argparse
import json
import os
import pstats
import re
import shutil
import sys
import tempfile
import time

from ceops_lab import fleet as lab_fleet
from ceops_lab.admin import LabAdmin
from ceops_lab.cli import start_lab, stop_lab

try:
    from . import measure, report
except ImportError:  # run as a script: python bench/fleet_bench.py
    import measure
    import report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Issue 7: lab latency per request (ms). "login" is the token endpoint.
LATENCY_MS = {"login": 150, "graph": 120, "exchange": 400, "ce": 60}
EXCHANGE = "https://outlook.office365.com"
# Which object a module invocation works for; every other module works for one CE tenant.
MODULE_SCOPE = {"azuread_app": "directory", "exo_service_principal": "directory", "exo_mailbox_permission": "directory",
                "ce_email_gateway": "deployment", "ce_batch_update": "deployment"}
NOT_STATE = ("login", "admin", "managed_identity")  # token services: their POSTs change nothing
ALL_PHASES = ("cold", "warm", "verify", "floor", "profile", "check")

SAVE_APPS = """---
- name: The whole fleet
  ansible.builtin.import_playbook: @REPO@/playbooks/site.yml

# Benchmark only: keep CE's app and the new secrets per directory, as ops keep them in Ansible Vault (docs/verify.md), so
# later runs can prove the logins: each CE tenant's own secret (client_secrets) and, for collections that make one
# secret per directory, that one (client_secret). A 0600 file in the benchmark's work directory, removed with it.
- name: Keep CE's app and its new secret per directory
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write ms_apps
      ansible.builtin.copy:
        dest: @PATH@
        mode: "0600"
        content: >-
          {%- set apps = {} -%}
          {%- for host in groups['ce_tenants'] -%}
          {%-   set app = hostvars[host].azuread_app_registration_app | default({}) -%}
          {%-   if app.client_secret | default('') -%}
          {%-     set directory = hostvars[host].ms_tenant_id -%}
          {%-     set known = (apps[directory] | default({})).client_secrets | default({}) -%}
          {%-     set _ = apps.update({directory: {'app_id': app.app_id, 'service_principal_id': app.service_principal_id,
                      'client_secret': app.client_secret, 'client_secrets': known | combine({host: app.client_secret})}}) -%}
          {%-   endif -%}
          {%- endfor -%}
          {{ {'ms_apps': apps} | to_json }}
      no_log: true
"""

FLOOR_HEAD = """---
# The floor: what Ansible alone costs for the module invocations of the warm run. Same inventory, forks and callbacks;
# each CE tenant runs ansible.builtin.ping as many times as it ran a module in the warm run.
- name: Floor
  hosts: ce_tenants
  connection: local
  gather_facts: false
  tasks:
"""

# GNU time (Debian package "time"): when present, every module process's own wall and CPU time is recorded, so the
# controller's share of the run's CPU is known too. Without it those figures are left out.
TIME = "/usr/bin/time"
TIMED_PYTHON = """#!/bin/sh
# Benchmark only: run the module process under GNU time, one line per process: name, wall s, user s, system s.
exec "@TIME@" -a -o "@FILE@" -f "$(basename "$1" .py) %e %U %S" "@PYTHON@" "$@"
"""

PROFILE_PYTHON = """#!/bin/sh
# Benchmark only: run each module process under cProfile, one stats file per process. Not `python -m cProfile`:
# AnsiballZ drops the directory of __main__.__file__ from sys.path, which would then be the standard library's.
exec "@PYTHON@" -c '
import cProfile, runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
profiler = cProfile.Profile()
try:
    profiler.runcall(runpy.run_path, sys.argv[0], run_name="__main__")
finally:
    profiler.dump_stats(out)
' "@DIR@/$(basename "$1" .py)-$$.prof" "$@"
"""


def fleet_shape(tenants):
    """Issue 7's fleet-200 shape scaled: 5 CE tenants per Microsoft directory, 4 CE deployments."""
    return {"tenants": tenants, "directories": max(1, tenants // 5), "deployments": min(4, tenants), "mailboxes": 3}


# ----- inventory ---------------------------------------------------------------------------------------
def write_inventory(path, description, lab_vars):
    """One host per CE tenant, a group per CE deployment, literal values as a real (vaulted) inventory holds them."""
    directories = lab_vars["lab_directories"]
    groups = {}
    for tenant in description["tenants"]:
        group = groups.setdefault("ce_deployment_" + tenant["deployment"], {"hosts": {}, "vars": {}})
        group["hosts"][tenant["name"]] = {"ce_tenant": tenant["name"], "ms_tenant_id": directories[tenant["directory"]]["tenant_id"],
                                          "ce_mailboxes": tenant["mailboxes"]}
        deployment = lab_vars["lab_ce_deployments"][tenant["deployment"]]
        group["vars"] = {"ce_url": deployment["url"], "ce_token": deployment["admin_token"], "ce_ca_path": lab_vars["lab_ca_path"]}
    inventory = {"all": {
        "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "ms_endpoints": {"authority_host": lab_vars["lab_authority_host"], "graph_endpoint": lab_vars["lab_graph_endpoint"],
                             "exchange_endpoint": lab_vars["lab_exchange_endpoint"], "ca_path": lab_vars["lab_ca_path"],
                             "imap_host": lab_vars["lab_imap"]["host"], "imap_port": lab_vars["lab_imap"]["port"],
                             "smtp_host": lab_vars["lab_smtp"]["host"], "smtp_port": lab_vars["lab_smtp"]["port"]},
            "ms_credentials": dict((d["tenant_id"], {"client_id": d["automation_client_id"], "client_secret": d["automation_client_secret"]})
                                   for d in directories.values())},
        "children": {"ce_tenants": {"children": groups}}}}
    with open(path, "w") as handle:
        json.dump(inventory, handle, indent=1)  # JSON is YAML: the yaml inventory plugin reads it


# ----- drift by hand, through the services' own APIs -----------------------------------------------------
def make_drift(lab, description, ms_apps, share=0.05):
    """Break share of the CE tenants, alternating: the CE email connection stops using OAuth to receive (an admin in the
    CE Portal), or CE's app loses FullAccess on the tenant's first mailbox (an admin in Exchange). Returns what was broken."""
    lab_vars = lab.vars
    tenants = description["tenants"]
    step = max(1, int(round(1 / share)))
    broken = []
    for number, tenant in enumerate(tenants[::step]):
        if number % 2 == 0:
            deployment = lab_vars["lab_ce_deployments"][tenant["deployment"]]
            base = "%s/api/v1/tenants/%s/email-connections" % (deployment["url"], tenant["name"])
            headers = {"Authorization": "Bearer " + deployment["admin_token"]}
            _, _, page = lab.request("GET", base + "?name=Exchange%20Online", headers=headers)
            connection = page["items"][0]
            body = dict((k, connection[k]) for k in ("name", "gateway_id", "oauth_settings_id", "use_oauth_send"))
            status, _, answer = lab.request("PUT", "%s/%s" % (base, connection["id"]), body=dict(body, use_oauth_receive=False), headers=headers)
            what = "email connection of %s no longer uses OAuth to receive" % tenant["name"]
        else:
            directory = lab_vars["lab_directories"][tenant["directory"]]
            app = ms_apps[directory["tenant_id"]]
            url = "%s/adminapi/beta/%s/InvokeCommand" % (lab_vars["lab_exchange_endpoint"], directory["tenant_id"])
            cmdlet = {"CmdletInput": {"CmdletName": "Remove-MailboxPermission", "Parameters": {
                "Identity": tenant["mailboxes"][0], "User": app["service_principal_id"], "AccessRights": ["FullAccess"], "Confirm": False}}}
            status, _, answer = lab.request("POST", url, body=cmdlet, headers={"Authorization": "Bearer " + lab.token(tenant["directory"], resource=EXCHANGE)})
            what = "FullAccess of CE's app on %s removed (its proof fails: a drift report shows that)" % tenant["mailboxes"][0]
        if status >= 300:
            raise RuntimeError("could not make drift (%s): HTTP %s %s" % (what, status, answer))
        broken.append({"tenant": tenant["name"], "drift": what, "proof_fails": number % 2 == 1})
    return broken


# ----- what a run did ------------------------------------------------------------------------------------
def invocations(records, description):
    """Module invocations: total, per module, and per CE tenant / Microsoft directory / CE deployment by scope."""
    host_of = dict((t["name"], t) for t in description["tenants"])
    per_host, per_module = {}, {}
    per_scope = {"tenant": dict((t["name"], 0) for t in description["tenants"]),
                 "directory": dict((d, 0) for d in description["directories"]),
                 "deployment": dict((d, 0) for d in description["deployments"])}
    for record in records:
        if not record["module"]:
            continue
        module = record["action"].rsplit(".", 1)[-1]
        per_module[module] = per_module.get(module, 0) + 1
        per_host[record["host"]] = per_host.get(record["host"], 0) + 1
        tenant = host_of.get(record["host"])
        if tenant is None:
            continue  # localhost: the benchmark's own bookkeeping
        scope = MODULE_SCOPE.get(module, "tenant")
        key = {"tenant": tenant["name"], "directory": tenant["directory"], "deployment": tenant["deployment"]}[scope]
        per_scope[scope][key] += 1
    fleet_hosts = sum(n for h, n in per_host.items() if h in host_of)
    return {"total": fleet_hosts, "bench_only": sum(n for h, n in per_host.items() if h not in host_of),
            "per_module": per_module, "per_host": per_host,
            "max_per_ce_tenant": max(per_scope["tenant"].values()), "max_per_directory": max(per_scope["directory"].values()),
            "max_per_deployment": max(per_scope["deployment"].values())}


def requests_seen(lab, description):
    counters = lab.counters()
    services = {}
    for name, bucket in counters["services"].items():
        if name == "admin":
            continue
        totals = bucket["totals"]
        token = name in NOT_STATE
        services[name] = {"reads": totals["reads"], "writes": 0 if token else totals["writes"],
                          "tokens": totals["writes"] if token else 0,
                          "endpoints": dict(("%s %s" % (kind, endpoint), n) for kind in ("reads", "writes") for endpoint, n in bucket[kind].items())}
    tokens = counters["tokens"]
    tenant_count, directory_count = len(description["tenants"]), len(description["directories"])
    total = dict((k, sum(s[k] for s in services.values())) for k in ("reads", "writes", "tokens"))
    per_directory = [sum(v["requests"] for svc, v in per.items() if svc not in ("ce", "admin")) for per in counters["directories"].values()]
    ce = lab.ce_counters()
    return {
        "services": services, "total": total,
        "per_ce_tenant": dict((k, round(v / tenant_count, 2)) for k, v in total.items()),
        "per_directory_microsoft": round(sum(per_directory) / directory_count, 2),
        "max_directory_microsoft": max(per_directory or [0]),
        "ce_per_tenant": round(sum(d["requests"] for d in ce.values()) / tenant_count, 2),
        "batch_updates": sum(d.get("batch_updates", 0) for d in ce.values()),
        "token_requests": token_summary(tokens, lab.vars["lab_directories"]),
    }


def module_processes(times):
    """{count, wall_s, cpu_s, per_module: {name: [count, cpu_s]}} of the module processes GNU time recorded; None without."""
    if not os.path.exists(TIME):
        return None
    summary = {"count": 0, "wall_s": 0.0, "cpu_s": 0.0, "per_module": {}}
    if not os.path.exists(times):
        return summary  # every module ran in Ansible's worker processes (plugins/plugin_utils/in_process.py)
    with open(times) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) != 4 or not fields[0].startswith("AnsiballZ_"):
                continue  # "Command exited with non-zero status N" lines
            name, wall, cpu = fields[0][len("AnsiballZ_"):], float(fields[1]), float(fields[2]) + float(fields[3])
            summary["count"] += 1
            summary["wall_s"] += wall
            summary["cpu_s"] += cpu
            entry = summary["per_module"].setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] = round(entry[1] + cpu, 2)
    summary["wall_s"], summary["cpu_s"] = round(summary["wall_s"], 2), round(summary["cpu_s"], 2)
    return summary


def where_time_goes(records):
    """Wall seconds of the run's tasks (first start to last end of each task over all hosts), split between tasks
    that ran a module somewhere and tasks that did not (controller-side work and skips: every task costs each host a
    worker process in Ansible's linear strategy, even when its `when` skips it)."""
    spans = {}
    for record in records:
        key = record["task_uuid"]
        first, last, module, count = spans.get(key, (record["start"], record["start"] + record["seconds"], False, 0))
        spans[key] = (min(first, record["start"]), max(last, record["start"] + record["seconds"]), module or record["module"], count + 1)
    result = {"module_tasks_s": 0.0, "other_tasks_s": 0.0, "module_tasks": 0, "other_tasks": 0, "host_tasks": len(records)}
    for first, last, module, _ in spans.values():
        kind = "module" if module else "other"
        result[kind + "_tasks_s"] = round(result[kind + "_tasks_s"] + last - first, 2)
        result[kind + "_tasks"] += 1
    return result


def token_summary(tokens, directories):
    """Token requests per (directory, client, resource) of the lab's counters, in all and split between the
    automation identities (Graph and Exchange administration) and CE's app (the proof's logins)."""
    automation = set(d["automation_client_id"].lower() for d in directories.values())
    split = {"automation": [], "ce_app": []}
    for key, count in tokens.items():
        client = key.split("|")[1].lower()
        split["automation" if client in automation else "ce_app"].append(count)
    return {"total": sum(tokens.values()), "keys": len(tokens), "max_per_key": max(tokens.values() or [0]),
            "automation_total": sum(split["automation"]), "automation_max_per_key": max(split["automation"] or [0]),
            "ce_app_total": sum(split["ce_app"]), "ce_app_max_per_key": max(split["ce_app"] or [0])}


def changed_hosts(records):
    return sorted(set((r["task"], r["host"]) for r in records if r["changed"]))


def slowest(records, count=5):
    modules = sorted((r for r in records if r["module"]), key=lambda r: -r["seconds"])[:count]
    return [{"task": r["task"], "host": r["host"], "module": r["action"], "seconds": r["seconds"]} for r in modules]


# Frames every module process has around the module's own work: left out of the profile's top list.
WRAPPER_FRAMES = ("<frozen runpy>", "<built-in method builtins.exec>", "AnsiballZ_", "_ansiballz/_loader.py", "<frozen importlib")


def profile_summary(profile_dir, top=15):
    """The slowest profiled module process: its total time, the time it spent importing, and its top functions by
    cumulative time (without the wrapper frames)."""
    best = None
    for name in os.listdir(profile_dir):
        stats = pstats.Stats(os.path.join(profile_dir, name))
        if best is None or stats.total_tt > best[1].total_tt:
            best = (name, stats)
    if best is None:
        return None
    name, stats = best
    rows, imports = [], 0.0
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        # Module code runs from the AnsiballZ payload zip: name it by its path inside the zip.
        label = "%s:%d(%s)" % (re.sub(r"^.*_payload\.zip/", "", filename.replace(REPO + "/", "")), line, function)
        if filename == "<frozen importlib._bootstrap>" and function == "_find_and_load":
            imports = max(imports, cumulative)  # recursive: cProfile's cumulative counts the outermost calls only
        if not any(frame in label for frame in WRAPPER_FRAMES):
            rows.append((cumulative, own, calls, label))
    rows.sort(reverse=True)
    return {"process": name.rsplit("-", 1)[0], "profiled_seconds": round(stats.total_tt, 3), "import_seconds": round(imports, 3),
            "top_cumulative": [{"cumulative_s": round(c, 3), "own_s": round(o, 3), "calls": n, "function": f} for c, o, n, f in rows[:top]]}


# ----- one fleet -------------------------------------------------------------------------------------------
class FleetRun:
    def __init__(self, tenants, work, forks, latency=True, log=print, extra_args=()):
        self.shape = fleet_shape(tenants)
        self.extra_args = list(extra_args)
        self.done = {}  # phase -> results, filled as the phases finish
        self.work = os.path.join(work, "fleet-%d" % tenants)
        self.forks = forks
        self.latency = latency
        self.log = log
        self.runs = 0
        os.makedirs(self.work, exist_ok=True)
        self.lab_dir = os.path.join(self.work, "lab")
        self.inventory = os.path.join(self.work, "inventory.yml")
        self.ms_apps_file = os.path.join(self.work, "ms_apps.json")

    def start(self):
        self.description = lab_fleet.write(os.path.join(self.work, "seeds"), tenants=self.shape["tenants"], deployments=self.shape["deployments"],
                                           directories=self.shape["directories"], mailboxes=self.shape["mailboxes"])
        start_lab(self.lab_dir, fleet_dir=os.path.join(self.work, "seeds"), timeout=120)
        self.lab = LabAdmin(self.lab_dir, timeout=60)
        if self.latency:
            for service, milliseconds in LATENCY_MS.items():
                self.lab.set_faults(service, latency_ms=milliseconds)
        write_inventory(self.inventory, self.description, self.lab.vars)

    def stop(self):
        stop_lab(self.lab_dir)

    def playbook(self, name, *args, extra_inventory=None, env=None, may_fail=()):
        """ansible-playbook over the fleet; returns (measurements, callback records). may_fail: hosts whose failure is
        expected (rc 2 is then accepted when no other host failed)."""
        self.runs += 1
        label = "%02d-%s" % (self.runs, name)
        environment = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="ceops_bench",
                           ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                           CEOPS_TOKEN_CACHE_DIR=os.path.join(self.work, "tokens-" + label))
        environment.update(env or {})
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", self.inventory, "-f", str(self.forks)]
        times = os.path.join(self.work, label + ".modules.txt")
        if os.path.exists(TIME):
            command += ["-e", "ansible_python_interpreter=" + self.timed_python(times)]
        if extra_inventory:
            command += ["-i", extra_inventory]
        command += list(args) + self.extra_args
        self.lab.reset_counters()
        self.log("  %-28s ..." % label)
        result, records = measure.run_playbook(command, environment, REPO, os.path.join(self.work, label + ".log"),
                                               os.path.join(self.work, label + ".events.json"))
        result["module_processes"] = module_processes(times)
        self.log("  %-28s rc=%d wall %.1f s, cpu %.1f s" % (label, result["rc"], result["wall_s"], result["cpu_s"]))
        result["failed_hosts"] = sorted(set(r["host"] for r in records if r["status"] in ("failed", "unreachable")))
        expected = result["rc"] == 2 and result["failed_hosts"] and set(result["failed_hosts"]) <= set(may_fail)
        if result["rc"] != 0 and not expected:
            raise RuntimeError("%s failed (rc %d, failed hosts %s); see %s" % (label, result["rc"], ", ".join(result["failed_hosts"]) or "-",
                                                                          result["log"]))
        return result, records

    def phase(self, name, *args, **kwargs):
        result, records = self.playbook(name, *args, **kwargs)
        result["invocations"] = invocations(records, self.description)
        result["requests"] = requests_seen(self.lab, self.description)
        result["slowest"] = slowest(records)
        result["tasks"] = where_time_goes(records)
        return result, records

    def run(self, phases=ALL_PHASES):
        """The phases asked for, in this order (warm needs cold; floor and check need warm)."""
        site = os.path.join(REPO, "playbooks", "site.yml")
        apps = "@" + self.ms_apps_file
        done = self.done
        wrapper = os.path.join(self.work, "site-and-save.yml")
        with open(wrapper, "w") as handle:
            handle.write(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", self.ms_apps_file))
        done["cold"], _ = self.phase("cold", wrapper)
        with open(self.ms_apps_file) as handle:
            ms_apps = json.load(handle)["ms_apps"]
        if "warm" in phases:
            done["warm"], _ = self.phase("warm", site, "-e", apps)
        if "verify" in phases:
            done["verify"], _ = self.phase("verify", os.path.join(REPO, "playbooks", "verify.yml"), "-e", apps)
        if "floor" in phases:
            floor_playbook, floor_counts = self.floor(done["warm"]["invocations"]["per_host"])
            done["floor"], _ = self.phase("floor", floor_playbook, extra_inventory=floor_counts)
        if "profile" in phases:
            done["profile"] = self.profile(apps)
        if "check" in phases:
            drift = make_drift(self.lab, self.description, ms_apps)
            done["check"], check_records = self.phase("check", site, "--check", "--diff", "-e", apps,
                                                      may_fail=[d["tenant"] for d in drift if d["proof_fails"]])
            done["check"]["drift"] = drift
            done["check"]["changed"] = [{"task": t, "host": h} for t, h in changed_hosts(check_records)]
        return {"shape": self.shape, "forks": self.forks, "latency_ms": LATENCY_MS if self.latency else {}, "phases": done}

    def timed_python(self, times):
        """An interpreter for the modules that records each module process's wall and CPU time (GNU time, ~1 ms)."""
        path = times + ".sh"
        with open(path, "w") as handle:
            handle.write(TIMED_PYTHON.replace("@TIME@", TIME).replace("@FILE@", times).replace("@PYTHON@", sys.executable))
        os.chmod(path, 0o755)
        return path

    def floor(self, per_host):
        path = os.path.join(self.work, "floor.yml")
        most = max(per_host.values())
        with open(path, "w") as handle:
            handle.write(FLOOR_HEAD)
            for number in range(1, most + 1):
                handle.write("    - name: Trivial module %d\n      ansible.builtin.ping:\n      when: bench_floor_invocations | int >= %d\n" % (number, number))
        counts = os.path.join(self.work, "floor-hosts.yml")
        with open(counts, "w") as handle:
            json.dump({"all": {"hosts": dict((h, {"bench_floor_invocations": n}) for h, n in per_host.items() if h != "localhost")}}, handle)
        return path, counts

    def profile(self, apps):
        """A warm run of the first directory's CE tenants with every module process under cProfile. The modules run as
        processes here (ceops_modules_in_process=false), so each one's own time can be profiled apart from Ansible's."""
        profile_dir = os.path.join(self.work, "profiles")
        os.makedirs(profile_dir, exist_ok=True)
        wrapper = os.path.join(self.work, "profile-python")
        with open(wrapper, "w") as handle:
            handle.write(PROFILE_PYTHON.replace("@PYTHON@", sys.executable).replace("@DIR@", profile_dir))
        os.chmod(wrapper, 0o755)
        first = self.description["tenants"][0]["directory"]
        hosts = ",".join(t["name"] for t in self.description["tenants"] if t["directory"] == first)
        result, records = self.playbook("profile", os.path.join(REPO, "playbooks", "site.yml"), "-e", apps, "--limit", hosts,
                                        "-e", "ansible_python_interpreter=" + wrapper, "-e", "ceops_modules_in_process=false")
        return {"hosts": hosts, "wall_s": result["wall_s"], "slowest": slowest(records, 3), "profile": profile_summary(profile_dir)}


def run_fleet(tenants, work, forks, latency=True, log=print, phases=ALL_PHASES, extra_args=()):
    """Generate, start, run the phases on and stop one fleet; returns its results. extra_args go to every ansible-playbook."""
    fleet = FleetRun(tenants, work, forks, latency=latency, log=log, extra_args=extra_args)
    log("fleet-%d: %s, forks %d" % (tenants, json.dumps(fleet.shape), forks))
    began = time.monotonic()
    fleet.start()
    try:
        return dict(fleet.run(phases), total_s=round(time.monotonic() - began, 1))
    except Exception as exc:  # noqa: BLE001 - keep the phases measured so far, say what stopped the rest
        if not fleet.done:
            raise
        log("fleet-%d stopped: %s" % (tenants, exc))
        return {"shape": fleet.shape, "forks": forks, "latency_ms": LATENCY_MS if latency else {}, "phases": fleet.done,
                "error": str(exc), "total_s": round(time.monotonic() - began, 1)}
    finally:
        fleet.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make bench ARGS=...", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", default="200", help="CE tenants per fleet, comma-separated (default 200; e.g. 50,200,500)")
    parser.add_argument("--forks", type=int, default=50, help="ansible-playbook forks (default 50)")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"), help="where bench.json, bench.md, bench.png go")
    parser.add_argument("--no-latency", action="store_true", help="no lab latency (counts only, e.g. in CI)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, inventories, profiles)")
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help="phases to run, comma-separated (default all: %s; warm needs cold, floor and check need warm)"
                        % ",".join(ALL_PHASES))
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = sorted(set(phases) - set(ALL_PHASES))
    if unknown:
        parser.error("unknown phases %s; the phases are %s" % (", ".join(unknown), ", ".join(ALL_PHASES)))
    sizes = [int(n) for n in args.tenants.split(",") if n.strip()]
    work = tempfile.mkdtemp(prefix="ceops-bench-")
    os.makedirs(args.out, exist_ok=True)
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(), "fleets": {}}
    try:
        for size in sizes:
            results["fleets"][str(size)] = run_fleet(size, work, args.forks, latency=not args.no_latency, phases=phases)
            report.write_json(results, args.out)  # what is measured is kept, whatever happens next
    finally:
        if args.keep:
            print("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["targets"] = report.targets(results)
    paths = report.write_all(results, args.out)
    print(report.markdown(results))
    print("written: %s" % ", ".join(paths))
    return 0 if all(t["ok"] for t in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
