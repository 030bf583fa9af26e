"""The benchmark's targets (issues 7 and 16) and its three outputs: bench.json, bench.md (tables + closing note), bench.png
(seconds and requests per CE tenant against fleet size)."""

import json
import os

PHASES = ("cold", "warm", "check", "verify", "floor")
# Module processes of the benchmark's own play on localhost (keeping the cold run's secrets): no fleet host's invocation.
BENCH_ONLY_MODULES = ("copy", "stat")
# Issue 16's "linear" target: warm seconds per CE tenant at the largest fleet within 15 % of the smallest fleet's.
LINEAR_LIMIT = 1.15
# What bench.png draws against fleet size: these runs, and their requests split by kind (the lab's counters).
PICTURE_PHASES = ("cold", "warm")
REQUEST_KINDS = (("reads", "reads"), ("writes", "writes"), ("tokens", "token requests"))


def _target(fleet, name, value, limit, ok, unit=""):
    return {"fleet": fleet, "target": name, "value": value, "limit": limit, "ok": bool(ok), "unit": unit}


def ratio(a, b):
    return round(a / b, 2) if b else None


def seconds_per_tenant(fleet, phase):
    return fleet["phases"][phase]["wall_s"] / float(fleet["shape"]["tenants"])


def targets(results):
    """Every target of issue 7 (and issue 16's) with the figure measured in this run; a target whose phases did not run
    (make bench ARGS='--phases ...') is reported missing."""
    found = []
    for size, fleet in results["fleets"].items():
        p = fleet["phases"]
        if fleet.get("error"):
            found.append(_target(size, "every phase asked for ran", "stopped: " + fleet["error"], "-", False))

        def add(name, needs, value, limit, unit=""):
            missing = [phase for phase in needs if phase not in p]
            if missing:
                found.append(_target(size, name, "missing (%s not run)" % ", ".join(missing), limit, False))
            else:
                measured = value()
                found.append(_target(size, name, measured, limit, measured is not None and measured <= limit, unit))

        add("warm re-run <= 1.3 x floor (wall)", ("warm", "floor"), lambda: ratio(p["warm"]["wall_s"], p["floor"]["wall_s"]), 1.3, "x")
        add("cold converge <= 2 x warm (wall)", ("cold", "warm"), lambda: ratio(p["cold"]["wall_s"], p["warm"]["wall_s"]), 2.0, "x")
        add("check-mode drift report <= 1.2 x warm (wall)", ("check", "warm"), lambda: ratio(p["check"]["wall_s"], p["warm"]["wall_s"]), 1.2, "x")
        add("warm re-run sends zero writes", ("warm",), lambda: p["warm"]["requests"]["total"]["writes"], 0)
        add("check mode sends zero writes", ("check",), lambda: p["check"]["requests"]["total"]["writes"], 0)
        add("warm: token requests per (directory, client, resource) <= 1", ("warm",),
            lambda: p["warm"]["requests"]["token_requests"]["max_per_key"], 1)
        # With a client secret per CE tenant, CE's app asks once per secret; the automation identities must still ask once.
        add("warm: automation identities' token requests per (directory, resource) <= 1", ("warm",),
            lambda: p["warm"]["requests"]["token_requests"].get("automation_max_per_key", 0), 1)
        add("warm: module invocations per CE tenant <= 3", ("warm",), lambda: p["warm"]["invocations"]["max_per_ce_tenant"], 3)
        add("warm: module invocations per Microsoft tenant <= 3", ("warm",), lambda: p["warm"]["invocations"]["max_per_directory"], 3)
        # Issue 16: what the controller spends follows the host-tasks (every one forks a worker, skipped or not).
        add("warm: host-tasks per CE tenant <= 10", ("warm",),
            lambda: round(p["warm"]["tasks"]["host_tasks"] / float(fleet["shape"]["tenants"]), 1), 10)
    warm = sorted(((fleet["shape"]["tenants"], fleet) for fleet in results["fleets"].values() if "warm" in fleet["phases"]),
                  key=lambda pair: pair[0])
    if len(warm) > 1:
        (small, small_fleet), (large, large_fleet) = warm[0], warm[-1]
        growth = seconds_per_tenant(large_fleet, "warm") / seconds_per_tenant(small_fleet, "warm")
        found.append(_target("%d->%d" % (small, large), "linear: warm time per CE tenant within 15 %", round(growth, 2), LINEAR_LIMIT,
                             growth <= LINEAR_LIMIT, "x"))
    return found


def markdown(results):
    lines = ["# Fleet benchmark", "",
             "Started %s on %s CPUs. Times are wall seconds; CPU is the controller's (ansible-playbook and every process it ran); "
             "memory is the peak summed PSS of the ansible-playbook process tree (sampled) / the largest single process's RSS." % (
                 results["started"], results["cpus"]), ""]
    for size, fleet in results["fleets"].items():
        shape = fleet["shape"]
        ran = [name for name in PHASES if name in fleet["phases"]]
        if not ran:
            lines += ["## fleet-%s: no phase ran (%s)" % (size, fleet.get("error", "")), ""]
            continue
        lines += ["## fleet-%s: %d CE tenants on %d CE deployments over %d Microsoft directories, %d mailboxes each" % (
            size, shape["tenants"], shape["deployments"], shape["directories"], shape["mailboxes"]), "",
            "forks %d, lab latency per request %s; whole fleet %.0f s.%s%s" % (
                fleet["forks"], ", ".join("%s %d ms" % kv for kv in fleet["latency_ms"].items()) or "none", fleet["total_s"],
                " Stopped: %s." % fleet["error"] if fleet.get("error") else "",
                " Phases not run: %s." % ", ".join(n for n in PHASES if n not in ran) if len(ran) < len(PHASES) else ""), "",
            "| phase | wall s | CPU s | x floor | peak MB (tree PSS / process RSS) | module invocations | per CE tenant (max) | per directory (max) "
            "| reads | writes | tokens | requests per CE tenant | per directory (Microsoft) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        floor_wall = fleet["phases"]["floor"]["wall_s"] if "floor" in ran else None
        for name in ran:
            p = fleet["phases"][name]
            inv, req = p["invocations"], p["requests"]
            trivial = name == "floor"  # the floor's pings work for no CE tenant or directory
            lines.append("| %s | %.1f | %.1f | %s | %.0f / %.0f | %d | %s | %s | %d | %d | %d | %.1f | %.1f |" % (
                name, p["wall_s"], p["cpu_s"], ratio(p["wall_s"], floor_wall) if floor_wall else "-", p["peak_pss_mb"], p["max_process_rss_mb"], inv["total"],
                "-" if trivial else inv["max_per_ce_tenant"], "-" if trivial else inv["max_per_directory"], req["total"]["reads"],
                req["total"]["writes"], req["total"]["tokens"], sum(req["per_ce_tenant"].values()), req["per_directory_microsoft"]))
        if all(fleet["phases"][name].get("module_processes") is not None for name in ran):
            lines += ["", "Where the CPU went: module processes (GNU time, each process's own user + system) and the rest: Ansible's "
                      "controller (the ansible-playbook process and its forked workers), with the collection's modules where they ran "
                      "in a worker process (on a local connection, plugins/plugin_utils/in_process.py):", "",
                      "| phase | module invocations in a worker | module processes | their CPU s | CPU s per process | the rest, CPU s "
                      "| per module: processes, CPU s each |",
                      "|---|---|---|---|---|---|---|"]
            for name in ran:
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
        for name in ran:
            t = fleet["phases"][name]["tasks"]
            lines.append("| %s | %d | %.1f | %d | %.1f | %d |" % (name, t["module_tasks"], t["module_tasks_s"], t["other_tasks"],
                                                                 t["other_tasks_s"], t["host_tasks"]))
        lines += ["", "Requests per service (reads / writes / token requests):", ""]
        services = sorted(set(s for name in ran for s in fleet["phases"][name]["requests"]["services"]))
        lines += ["| phase | " + " | ".join(services) + " |", "|---|" + "---|" * len(services)]
        for name in ran:
            svc = fleet["phases"][name]["requests"]["services"]
            lines.append("| %s | " % name + " | ".join("%d / %d / %d" % (svc[s]["reads"], svc[s]["writes"], svc[s]["tokens"]) if s in svc else "-"
                                                       for s in services) + " |")
        lines.append("")
        warm = fleet["phases"].get("warm")
        if warm:
            lines += ["Module invocations of the warm run by module: " + ", ".join(
                "%s %d" % kv for kv in sorted(warm["invocations"]["per_module"].items())) + ".", "",
                "Slowest module invocations of the warm run: " + "; ".join(
                    "%s on %s %.2f s" % (s["module"].rsplit(".", 1)[-1], s["host"], s["seconds"]) for s in warm["slowest"]) + ".", ""]
        tokens = (warm or {}).get("requests", {}).get("token_requests", {})
        if "ce_app_total" in tokens:
            lines += ["Token requests of the warm run: %d by the automation identities (at most %d per directory and resource), %d by "
                      "CE's app for the proof (at most %d per directory: one per client secret it proves)." % (
                          tokens["automation_total"], tokens["automation_max_per_key"], tokens["ce_app_total"], tokens["ce_app_max_per_key"]), ""]
        check = fleet["phases"].get("check")
        if check:
            lines += ["Drift made by hand before `--check --diff`: %d CE tenants (%s); the check reported %d changed task results: %s; "
                      "CE tenants whose proof failed: %s." % (
                          len(check["drift"]), "; ".join(d["drift"] for d in check["drift"]), len(check["changed"]),
                          "; ".join("%s (%s)" % (c["task"], c["host"]) for c in check["changed"]),
                          ", ".join(check.get("failed_hosts") or []) or "none"), ""]
        profile = fleet["phases"].get("profile") or {}
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


def series(results):
    """What bench.png draws, per fleet size (CE tenants, ascending) from the phases that ran (None where a fleet did not
    run one): wall seconds per CE tenant of the cold and warm runs; the warm run's target band, from the smallest fleet's
    figure to 15 % above it (flat lines inside it are linear); and requests per CE tenant of each run, writes apart from
    reads and token requests."""
    fleets = sorted(((fleet["shape"]["tenants"], fleet) for fleet in results["fleets"].values()
                     if any(phase in fleet["phases"] for phase in PICTURE_PHASES)), key=lambda pair: pair[0])
    drawn = {"sizes": [size for size, _ in fleets], "seconds_per_tenant": {}, "requests_per_tenant": {}, "band": None, "band_from": None}
    for phase in PICTURE_PHASES:
        if not any(phase in fleet["phases"] for _, fleet in fleets):
            continue
        drawn["seconds_per_tenant"][phase] = [round(seconds_per_tenant(fleet, phase), 3) if phase in fleet["phases"] else None
                                              for _, fleet in fleets]
        drawn["requests_per_tenant"][phase] = dict(
            (kind, [fleet["phases"][phase]["requests"]["per_ce_tenant"][kind] if phase in fleet["phases"] else None for _, fleet in fleets])
            for kind, _ in REQUEST_KINDS)
    warm = [(size, value) for size, value in zip(drawn["sizes"], drawn["seconds_per_tenant"].get("warm", [])) if value is not None]
    if warm:
        drawn["band_from"], low = warm[0]
        drawn["band"] = (low, round(low * LINEAR_LIMIT, 3))
    return drawn


def figure(results):
    """The matplotlib figure of bench.png (None when no fleet ran a cold or warm run): seconds per CE tenant against fleet
    size with the target band, and requests per CE tenant by kind."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = series(results)
    sizes = drawn["sizes"]
    if not sizes:
        return None
    picture, (seconds, requests) = plt.subplots(1, 2, figsize=(13, 5))
    if drawn["band"]:
        low, high = drawn["band"]
        seconds.axhspan(low, high, color="tab:green", alpha=0.15,
                        label="target: warm within %d %% of fleet-%d" % (round((LINEAR_LIMIT - 1) * 100), drawn["band_from"]))
    markers = {"cold": "s", "warm": "o"}
    for phase, values in drawn["seconds_per_tenant"].items():
        points = [(size, value) for size, value in zip(sizes, values) if value is not None]
        seconds.plot([x for x, _ in points], [y for _, y in points], marker=markers[phase], label="%s run" % phase)
        for x, y in points:
            seconds.annotate("%.2f" % y, (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    seconds.set_title("Wall seconds per CE tenant (flat = linear)")
    seconds.set_ylabel("seconds per CE tenant")
    colours = {"reads": "tab:blue", "writes": "tab:red", "tokens": "tab:gray"}
    for phase, kinds in drawn["requests_per_tenant"].items():
        for kind, label in REQUEST_KINDS:
            points = [(size, value) for size, value in zip(sizes, kinds[kind]) if value is not None]
            requests.plot([x for x, _ in points], [y for _, y in points], marker=markers[phase], color=colours[kind],
                          linestyle="-" if phase == "warm" else "--", label="%s run: %s" % (phase, label))
    requests.set_title("Requests per CE tenant: reads, writes, token requests")
    requests.set_ylabel("requests per CE tenant")
    for axes in (seconds, requests):
        axes.set_xlabel("CE tenants in the fleet")
        axes.set_xticks(sizes)
        # Room above the highest point for its label, and below zero so that a line at zero (warm writes) shows.
        top = max([y for line in axes.get_lines() for y in line.get_ydata()] + [(drawn["band"] or (0, 0))[1] if axes is seconds else 0]) or 1
        axes.set_ylim(-0.03 * top, 1.15 * top)
        axes.legend(fontsize=8)
    picture.tight_layout()
    return picture


def plot(results, path):
    """Write bench.png; False when there is nothing to draw."""
    picture = figure(results)
    if picture is None:
        return False
    import matplotlib.pyplot as plt

    picture.savefig(path, dpi=100)
    plt.close(picture)
    return True


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
