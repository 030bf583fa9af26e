"""The benchmark's targets (issue 7) and its three outputs: bench.json, bench.md (tables + closing note), bench.png."""

import json
import os

PHASES = ("cold", "warm", "check", "verify", "floor")
# Module processes of the benchmark's own play on localhost (keeping the cold run's secrets): no fleet host's invocation.
BENCH_ONLY_MODULES = ("copy", "stat")


def _target(fleet, name, value, limit, ok, unit=""):
    return {"fleet": fleet, "target": name, "value": value, "limit": limit, "ok": bool(ok), "unit": unit}


def ratio(a, b):
    return round(a / b, 2) if b else None


def targets(results):
    """Every target of issue 7 with the figure measured in this run."""
    found = []
    for size, fleet in results["fleets"].items():
        p = fleet["phases"]
        if not all(name in p for name in PHASES):
            found.append(_target(size, "every phase ran", ", ".join(n for n in PHASES if n not in p) + " missing: " + fleet.get("error", ""),
                                 "-", False))
            continue
        warm, cold, check, floor = p["warm"], p["cold"], p["check"], p["floor"]
        found.append(_target(size, "warm re-run <= 1.3 x floor (wall)", ratio(warm["wall_s"], floor["wall_s"]), 1.3,
                             ratio(warm["wall_s"], floor["wall_s"]) <= 1.3, "x"))
        found.append(_target(size, "cold converge <= 2 x warm (wall)", ratio(cold["wall_s"], warm["wall_s"]), 2.0,
                             ratio(cold["wall_s"], warm["wall_s"]) <= 2.0, "x"))
        found.append(_target(size, "check-mode drift report <= 1.2 x warm (wall)", ratio(check["wall_s"], warm["wall_s"]), 1.2,
                             ratio(check["wall_s"], warm["wall_s"]) <= 1.2, "x"))
        found.append(_target(size, "warm re-run sends zero writes", warm["requests"]["total"]["writes"], 0,
                             warm["requests"]["total"]["writes"] == 0))
        found.append(_target(size, "check mode sends zero writes", check["requests"]["total"]["writes"], 0,
                             check["requests"]["total"]["writes"] == 0))
        tokens = warm["requests"]["token_requests"]
        found.append(_target(size, "warm: token requests per (directory, client, resource) <= 1", tokens["max_per_key"], 1,
                             tokens["max_per_key"] <= 1))
        # With a client secret per CE tenant, CE's app asks once per secret; the automation identities must still ask once.
        found.append(_target(size, "warm: automation identities' token requests per (directory, resource) <= 1",
                             tokens.get("automation_max_per_key"), 1, tokens.get("automation_max_per_key", 0) <= 1))
        found.append(_target(size, "warm: module invocations per CE tenant <= 3", warm["invocations"]["max_per_ce_tenant"], 3,
                             warm["invocations"]["max_per_ce_tenant"] <= 3))
        found.append(_target(size, "warm: module invocations per Microsoft tenant <= 3", warm["invocations"]["max_per_directory"], 3,
                             warm["invocations"]["max_per_directory"] <= 3))
        # Issue 16: what the controller spends follows the host-tasks (every one forks a worker, skipped or not).
        per_tenant = round(warm["tasks"]["host_tasks"] / float(fleet["shape"]["tenants"]), 1)
        found.append(_target(size, "warm: host-tasks per CE tenant <= 10", per_tenant, 10, per_tenant <= 10))
    sizes = sorted(int(s) for s, fleet in results["fleets"].items() if "warm" in fleet["phases"])
    if len(sizes) > 1:
        small, large = results["fleets"][str(sizes[0])], results["fleets"][str(sizes[-1])]
        per_small = small["phases"]["warm"]["wall_s"] / sizes[0]
        per_large = large["phases"]["warm"]["wall_s"] / sizes[-1]
        found.append(_target("%d->%d" % (sizes[0], sizes[-1]), "linear: warm time per CE tenant within 15 %",
                             round(per_large / per_small, 2), 1.15, per_large / per_small <= 1.15, "x"))
    return found


def markdown(results):
    lines = ["# Fleet benchmark", "",
             "Started %s on %s CPUs. Times are wall seconds; CPU is the controller's (ansible-playbook and every process it ran); "
             "memory is the peak summed PSS of the ansible-playbook process tree (sampled) / the largest single process's RSS." % (
                 results["started"], results["cpus"]), ""]
    for size, fleet in results["fleets"].items():
        shape = fleet["shape"]
        if not all(name in fleet["phases"] for name in PHASES):
            lines += ["## fleet-%s: stopped (%s); see bench.json for the phases it ran" % (size, fleet.get("error", "")), ""]
            continue
        lines += ["## fleet-%s: %d CE tenants on %d CE deployments over %d Microsoft directories, %d mailboxes each" % (
            size, shape["tenants"], shape["deployments"], shape["directories"], shape["mailboxes"]), "",
            "forks %d, lab latency per request %s; whole fleet %.0f s." % (
                fleet["forks"], ", ".join("%s %d ms" % kv for kv in fleet["latency_ms"].items()) or "none", fleet["total_s"]), "",
            "| phase | wall s | CPU s | x floor | peak MB (tree PSS / process RSS) | module invocations | per CE tenant (max) | per directory (max) "
            "| reads | writes | tokens | requests per CE tenant | per directory (Microsoft) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        floor_wall = fleet["phases"]["floor"]["wall_s"]
        for name in PHASES:
            p = fleet["phases"][name]
            inv, req = p["invocations"], p["requests"]
            trivial = name == "floor"  # the floor's pings work for no CE tenant or directory
            lines.append("| %s | %.1f | %.1f | %s | %.0f / %.0f | %d | %s | %s | %d | %d | %d | %.1f | %.1f |" % (
                name, p["wall_s"], p["cpu_s"], ratio(p["wall_s"], floor_wall), p["peak_pss_mb"], p["max_process_rss_mb"], inv["total"],
                "-" if trivial else inv["max_per_ce_tenant"], "-" if trivial else inv["max_per_directory"], req["total"]["reads"],
                req["total"]["writes"], req["total"]["tokens"], sum(req["per_ce_tenant"].values()), req["per_directory_microsoft"]))
        if all(fleet["phases"][name].get("module_processes") is not None for name in PHASES):
            lines += ["", "Where the CPU went: module processes (GNU time, each process's own user + system) and the rest: Ansible's "
                      "controller (the ansible-playbook process and its forked workers), with the collection's modules where they ran "
                      "in a worker process (on a local connection, plugins/plugin_utils/in_process.py):", "",
                      "| phase | module invocations in a worker | module processes | their CPU s | CPU s per process | the rest, CPU s "
                      "| per module: processes, CPU s each |",
                      "|---|---|---|---|---|---|---|"]
            for name in PHASES:
                p = fleet["phases"][name]
                mp = p["module_processes"]
                lines.append("| %s | %d | %d | %.1f | %.3f | %.1f | %s |" % (
                    name, p["invocations"]["total"] - sum(n for m, (n, _) in mp["per_module"].items() if m not in BENCH_ONLY_MODULES),
                    mp["count"], mp["cpu_s"],
                    mp["cpu_s"] / mp["count"] if mp["count"] else 0, p["cpu_s"] - mp["cpu_s"],
                    ", ".join("%s %d x %.3f" % (m, n, c / n) for m, (n, c) in sorted(mp["per_module"].items())) or "-"))
        lines += ["", "Where the wall time of each run went: tasks that ran a module on some host / tasks that ran none "
                  "(controller-side or skipped everywhere; each still costs every host a worker process):", "",
                  "| phase | module tasks | their wall s | other tasks | their wall s | host-tasks in all |", "|---|---|---|---|---|---|"]
        for name in PHASES:
            t = fleet["phases"][name]["tasks"]
            lines.append("| %s | %d | %.1f | %d | %.1f | %d |" % (name, t["module_tasks"], t["module_tasks_s"], t["other_tasks"],
                                                                 t["other_tasks_s"], t["host_tasks"]))
        lines += ["", "Requests per service (reads / writes / token requests):", ""]
        services = sorted(set(s for name in PHASES for s in fleet["phases"][name]["requests"]["services"]))
        lines += ["| phase | " + " | ".join(services) + " |", "|---|" + "---|" * len(services)]
        for name in PHASES:
            svc = fleet["phases"][name]["requests"]["services"]
            lines.append("| %s | " % name + " | ".join("%d / %d / %d" % (svc[s]["reads"], svc[s]["writes"], svc[s]["tokens"]) if s in svc else "-"
                                                       for s in services) + " |")
        warm = fleet["phases"]["warm"]
        lines += ["", "Module invocations of the warm run by module: " + ", ".join(
            "%s %d" % kv for kv in sorted(warm["invocations"]["per_module"].items())) + ".", "",
            "Slowest module invocations of the warm run: " + "; ".join(
                "%s on %s %.2f s" % (s["module"].rsplit(".", 1)[-1], s["host"], s["seconds"]) for s in warm["slowest"]) + ".", ""]
        tokens = warm["requests"]["token_requests"]
        if "ce_app_total" in tokens:
            lines += ["Token requests of the warm run: %d by the automation identities (at most %d per directory and resource), %d by "
                      "CE's app for the proof (at most %d per directory: one per client secret it proves)." % (
                          tokens["automation_total"], tokens["automation_max_per_key"], tokens["ce_app_total"], tokens["ce_app_max_per_key"]), ""]
        check = fleet["phases"]["check"]
        lines += ["Drift made by hand before `--check --diff`: %d CE tenants (%s); the check reported %d changed task results: %s; "
                  "CE tenants whose proof failed: %s." % (
                      len(check["drift"]), "; ".join(d["drift"] for d in check["drift"]), len(check["changed"]),
                      "; ".join("%s (%s)" % (c["task"], c["host"]) for c in check["changed"]), ", ".join(check.get("failed_hosts") or []) or "none"), ""]
        profile = fleet["phases"]["profile"]
        if profile.get("profile"):
            prof = profile["profile"]
            lines += ["Where time goes in a module: the slowest module process of a profiled warm run of %s (modules as processes) was %s, "
                      "%.2f s under cProfile "
                      "(cProfile slows it down), of which %.2f s importing. Top functions by cumulative time, wrappers left out:" % (
                          profile["hosts"], prof["process"], prof["profiled_seconds"], prof["import_seconds"]), "",
                      "| cumulative s | own s | calls | function |", "|---|---|---|---|"]
            lines += ["| %.3f | %.3f | %d | `%s` |" % (r["cumulative_s"], r["own_s"], r["calls"], r["function"]) for r in prof["top_cumulative"]]
            lines.append("")
    lines += ["## Targets", "", "| fleet | target | measured | limit | |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        lines.append("| %s | %s | %s%s | %s%s | %s |" % (t["fleet"], t["target"], t["value"], t["unit"], t["limit"], t["unit"],
                                                        "ok" if t["ok"] else "MISSED"))
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s for s, fleet in results["fleets"].items() if all(name in fleet["phases"] for name in PHASES)]
    if not sizes:
        return
    figure, (times, requests) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(PHASES)
    for index, name in enumerate(PHASES):
        values = [results["fleets"][s]["phases"][name]["wall_s"] for s in sizes]
        times.bar([i + index * width for i in range(len(sizes))], values, width, label=name)
    times.set_xticks([i + width * (len(PHASES) - 1) / 2 for i in range(len(sizes))], ["fleet-%s" % s for s in sizes])
    times.set_ylabel("wall seconds")
    times.set_title("Wall time per phase (floor = Ansible alone)")
    times.legend()
    last = results["fleets"][sizes[-1]]["phases"]
    services = sorted(set(s for name in ("cold", "warm", "check", "verify") for s in last[name]["requests"]["services"]))
    for index, name in enumerate(("cold", "warm", "check", "verify")):
        svc = last[name]["requests"]["services"]
        values = [sum(svc[s][k] for k in ("reads", "writes", "tokens")) if s in svc else 0 for s in services]
        requests.bar([i + index * 0.2 for i in range(len(services))], values, 0.2, label=name)
    requests.set_xticks([i + 0.3 for i in range(len(services))], [s.replace("login", "token") for s in services])
    requests.set_ylabel("requests")
    requests.set_title("Requests per service, fleet-%s" % sizes[-1])
    requests.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_json(results, out):
    path = os.path.join(out, "bench.json")
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1)
    return path


def write_all(results, out):
    paths = [write_json(results, out)] + [os.path.join(out, name) for name in ("bench.md", "bench.png")]
    with open(paths[1], "w") as handle:
        handle.write(markdown(results))
    plot(results, paths[2])
    return paths
