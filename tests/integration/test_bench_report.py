# -*- coding: utf-8 -*-
"""Issue 18.7: the benchmark's picture answers the questions (bench/report.py). From hand-made results, as make bench
writes them (bench.json): seconds per CE tenant of the cold and warm runs against fleet size with the target band of
issue 16 ("linear: warm seconds per CE tenant at fleet-500 within 15 % of fleet-50"), requests per CE tenant with writes
apart from reads and token requests; for three fleets of `--phases cold,warm`, for one fleet, and for the whole benchmark.
It asserts the figures drawn and that the picture is written, not pixels."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from bench import report

# fleet size -> (cold wall s, warm wall s, cold requests per CE tenant, warm requests per CE tenant) as reads, writes, tokens
RUNS = {50: (100.0, 50.0, (20.0, 12.0, 1.5), (14.0, 0.0, 1.2)),
        200: (380.0, 210.0, (19.5, 12.0, 1.3), (13.8, 0.0, 1.1)),
        500: (940.0, 560.0, (19.4, 12.0, 1.2), (13.7, 0.0, 1.05))}


def phase(tenants, wall, per_tenant, **extra):
    reads, writes, tokens = per_tenant
    done = {"rc": 0, "wall_s": wall, "cpu_s": wall / 2, "peak_pss_mb": 300.0, "max_process_rss_mb": 90.0,
            "invocations": {"total": 3 * tenants, "max_per_ce_tenant": 3, "max_per_directory": 3, "per_module": {"azuread_app": tenants // 5},
                            "per_host": {}},
            "requests": {"total": {"reads": reads * tenants, "writes": writes * tenants, "tokens": tokens * tenants},
                         "per_ce_tenant": {"reads": reads, "writes": writes, "tokens": tokens}, "per_directory_microsoft": 9.0,
                         "services": {"graph": {"reads": reads * tenants, "writes": writes * tenants, "tokens": 0},
                                      "login": {"reads": 0, "writes": 0, "tokens": tokens * tenants}},
                         "token_requests": {"max_per_key": 1, "automation_max_per_key": 1}},
            "tasks": {"module_tasks": 8, "module_tasks_s": wall / 2, "other_tasks": 5, "other_tasks_s": wall / 2, "host_tasks": 9 * tenants},
            "module_processes": {"count": 0, "cpu_s": 0.0, "per_module": {}}, "slowest": []}
    done.update(extra)
    return done


def fleet(tenants, phases=("cold", "warm")):
    cold_wall, warm_wall, cold_requests, warm_requests = RUNS[tenants]
    runs = {"cold": phase(tenants, cold_wall, cold_requests), "warm": phase(tenants, warm_wall, warm_requests)}
    return {"shape": {"tenants": tenants, "directories": tenants // 5, "deployments": 4, "mailboxes": 3}, "forks": 50,
            "latency_ms": {"login": 150}, "total_s": cold_wall + warm_wall, "phases": dict((name, runs[name]) for name in phases)}


def results(*fleets):
    done = {"started": "2026-12-07T12:00:00Z", "cpus": 2, "fleets": dict((str(f["shape"]["tenants"]), f) for f in fleets)}
    done["targets"] = report.targets(done)
    return done


def lines_of(axes):
    return dict((line.get_label(), (list(line.get_xdata()), [round(y, 3) for y in line.get_ydata()])) for line in axes.get_lines())


def test_seconds_and_requests_per_ce_tenant_of_three_fleets_of_cold_and_warm_runs(tmp_path):
    """make bench ARGS='--tenants 50,200,500 --phases cold,warm'."""
    measured = results(fleet(500), fleet(50), fleet(200))
    drawn = report.series(measured)
    assert drawn["sizes"] == [50, 200, 500]
    assert drawn["seconds_per_tenant"] == {"cold": [2.0, 1.9, 1.88], "warm": [1.0, 1.05, 1.12]}
    assert drawn["band"] == (1.0, 1.15) and drawn["band_from"] == 50
    assert drawn["requests_per_tenant"]["warm"] == {"reads": [14.0, 13.8, 13.7], "writes": [0.0, 0.0, 0.0], "tokens": [1.2, 1.1, 1.05]}
    assert drawn["requests_per_tenant"]["cold"]["writes"] == [12.0, 12.0, 12.0]

    picture = report.figure(measured)
    seconds, requests = picture.axes
    assert lines_of(seconds) == {"cold run": ([50, 200, 500], [2.0, 1.9, 1.88]), "warm run": ([50, 200, 500], [1.0, 1.05, 1.12])}
    (band,) = seconds.patches  # the target band: from fleet-50's warm figure to 15 % above it
    # A Polygon before matplotlib 3.9, a Rectangle since: its corners in data coordinates either way.
    corners = band.get_patch_transform().transform(band.get_path().vertices)
    y_low, y_high = sorted(set(round(float(y), 3) for _, y in corners))
    assert (y_low, y_high) == (1.0, 1.15) and "15 % of fleet-50" in band.get_label()
    drawn_requests = lines_of(requests)
    assert sorted(drawn_requests) == sorted("%s run: %s" % (p, k) for p in ("cold", "warm") for k in ("reads", "writes", "token requests"))
    assert drawn_requests["warm run: writes"] == ([50, 200, 500], [0.0, 0.0, 0.0])
    assert drawn_requests["cold run: writes"] == ([50, 200, 500], [12.0, 12.0, 12.0])
    assert [tick for tick in seconds.get_xticks()] == [50, 200, 500]

    path = tmp_path / "bench.png"
    assert report.plot(measured, str(path)) is True
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10000


def test_the_linear_target_is_the_band_the_picture_draws():
    measured = results(fleet(50), fleet(200), fleet(500))
    (linear,) = [t for t in measured["targets"] if t["target"].startswith("linear")]
    assert linear["fleet"] == "50->500" and linear["value"] == 1.12 and linear["limit"] == report.LINEAR_LIMIT and linear["ok"]
    drawn = report.series(measured)
    assert drawn["band"][0] <= drawn["seconds_per_tenant"]["warm"][-1] <= drawn["band"][1]


def test_fewer_phases_leave_targets_missing_and_the_report_says_which_did_not_run(tmp_path):
    measured = results(fleet(50), fleet(500))
    by_name = dict((t["target"], t) for t in measured["targets"] if t["fleet"] == "50")
    assert by_name["warm re-run <= 1.3 x floor (wall)"]["value"] == "missing (floor not run)"
    assert by_name["check mode sends zero writes"]["value"] == "missing (check not run)" and not by_name["check mode sends zero writes"]["ok"]
    assert by_name["warm re-run sends zero writes"]["value"] == 0 and by_name["warm re-run sends zero writes"]["ok"]
    assert by_name["cold converge <= 2 x warm (wall)"]["value"] == 2.0 and by_name["cold converge <= 2 x warm (wall)"]["ok"]
    text = report.markdown(measured)
    assert "## fleet-50: 50 CE tenants" in text and "Phases not run: check, verify, floor." in text
    assert "| warm | 50.0 | 25.0 | - |" in text
    paths = report.write_all(measured, str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["bench.json", "bench.md", "bench.png"]
    assert json.loads((tmp_path / "bench.json").read_text())["fleets"]["500"]["shape"]["tenants"] == 500
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_one_fleet_is_drawn_as_points_with_its_band():
    measured = results(fleet(200))
    drawn = report.series(measured)
    assert drawn["sizes"] == [200] and drawn["seconds_per_tenant"]["warm"] == [1.05] and drawn["band"] == (1.05, 1.208)
    seconds, requests = report.figure(measured).axes
    assert lines_of(seconds)["warm run"] == ([200], [1.05])
    assert lines_of(requests)["warm run: token requests"] == ([200], [1.1])
    assert not [t for t in measured["targets"] if t["target"].startswith("linear")]  # one size: nothing to compare


def test_a_fleet_that_ran_only_cold_has_no_band_and_gaps_where_warm_did_not_run():
    measured = results(fleet(50, ("cold",)), fleet(200))
    drawn = report.series(measured)
    assert drawn["seconds_per_tenant"]["warm"] == [None, 1.05] and drawn["band"] == (1.05, 1.208) and drawn["band_from"] == 200
    assert lines_of(report.figure(measured).axes[0])["warm run"] == ([200], [1.05])
    alone = results(fleet(50, ("cold",)))
    assert report.series(alone)["band"] is None and not report.figure(alone).axes[0].patches


def test_nothing_to_draw_writes_no_picture(tmp_path):
    stopped = fleet(50, ())
    stopped["error"] = "the lab did not start"
    measured = results(stopped)
    assert report.series(measured)["sizes"] == [] and report.plot(measured, str(tmp_path / "bench.png")) is False
    assert not (tmp_path / "bench.png").exists()
    assert "## fleet-50: no phase ran (the lab did not start)" in report.markdown(measured)
    assert {"fleet": "50", "target": "every phase asked for ran", "value": "stopped: the lab did not start", "limit": "-", "ok": False,
            "unit": ""} in measured["targets"]


@pytest.mark.parametrize("name", report.PHASES)
def test_the_whole_benchmark_still_reports_every_phase(name):
    """The default make bench: every phase in the tables, every target measured."""
    full = fleet(200)
    for extra in ("check", "verify", "floor"):
        full["phases"][extra] = phase(200, 60.0, (13.0, 0.0, 1.0), drift=[], changed=[])
    full["phases"]["profile"] = {}
    measured = results(full)
    assert not [t for t in measured["targets"] if "missing" in str(t["value"])]
    assert "\n| %s | " % name in report.markdown(measured)
