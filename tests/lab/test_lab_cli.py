"""`python -m ceops_lab`: start / stop / status messages and exit codes, admin commands, and the
clean-up of a stale pid file. Uses its own state dir (not the session lab)."""

import json
import os
import subprocess
import sys

import ceops_lab
import pytest

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(ceops_lab.__file__)))


def cli(*args, state_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    env.pop("CEOPS_LAB_DIR", None)
    result = subprocess.run([sys.executable, "-m", "ceops_lab", *args, "--state-dir", str(state_dir)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.fixture
def state_dir(tmp_path):
    directory = tmp_path / "lab"
    yield directory
    cli("stop", state_dir=directory)  # never leave a lab behind, whatever the test did


def test_start_stop_status_lifecycle(state_dir):
    code, out = cli("status", state_dir=state_dir)
    assert (code, out) == (3, "lab is not running in %s" % state_dir)

    code, out = cli("start", "--consistency-window", "0", "--latency-ms", "0", state_dir=state_dir)
    assert code == 0, out
    info = json.loads((state_dir / "lab.json").read_text())
    pid = info["pid"]
    assert out.splitlines()[0] == "lab started (pid %d) in %s" % (pid, state_dir)
    assert all(info["services"][name]["url"] in out for name in ("login", "graph", "admin"))
    for name in ("ca.pem", "lab-vars.yml", "lab-vars.json", "lab.env", "lab.log", "automation-contoso.pem"):
        assert (state_dir / name).exists(), name

    code, out = cli("start", state_dir=state_dir)
    assert (code, out) == (1, "lab already running (pid %d) in %s" % (pid, state_dir))

    code, out = cli("status", state_dir=state_dir)
    assert code == 0 and out.splitlines()[0] == "lab running (pid %d) in %s" % (pid, state_dir)

    code, out = cli("fault", "graph", "--rate-429", "0.5", "--seed", "3", "--no-retry-after", "--page-size", "5", state_dir=state_dir)
    assert code == 0
    settings = json.loads(out)["settings"]
    assert settings == {"rate_429": 0.5, "seed": 3, "retry_after": None, "page_size": 5}
    code, out = cli("fault", "nosuch", "--rate-429", "0.5", state_dir=state_dir)
    assert code == 1 and "faults apply to one of" in out
    code, out = cli("fault", "--clear", state_dir=state_dir)
    assert code == 0 and json.loads(out) == {"*": {}}

    code, out = cli("counters", state_dir=state_dir)
    assert code == 0 and "admin" in json.loads(out)["services"]
    code, out = cli("state", "graph", state_dir=state_dir)
    assert code == 0 and set(json.loads(out)["directories"]) == {"contoso", "fabrikam", "northwind"}
    code, out = cli("reset", state_dir=state_dir)
    assert code == 0 and out.startswith("lab reset to seed")

    code, out = cli("stop", state_dir=state_dir)
    assert (code, out) == (0, "lab stopped (pid %d) in %s" % (pid, state_dir))
    assert not (state_dir / "lab.pid").exists() and not (state_dir / "lab.json").exists()
    code, out = cli("stop", state_dir=state_dir)
    assert (code, out) == (0, "lab is not running in %s" % state_dir)
    code, out = cli("counters", state_dir=state_dir)
    assert (code, out) == (3, "lab is not running in %s" % state_dir)


def test_stale_pid_file_is_cleaned_up(state_dir):
    state_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state_dir / "lab.pid").write_text("%d\n" % dead.pid)
    (state_dir / "lab.json").write_text(json.dumps({"pid": dead.pid, "services": {}}))
    code, out = cli("status", state_dir=state_dir)
    assert code == 3
    code, out = cli("start", state_dir=state_dir)
    assert code == 0, out
    assert json.loads((state_dir / "lab.json").read_text())["pid"] != dead.pid
    # The CA survives a restart of the same state dir, so clients that loaded it keep working.
    ca_before = (state_dir / "ca.pem").read_text()
    assert cli("stop", state_dir=state_dir)[0] == 0
    assert cli("start", state_dir=state_dir)[0] == 0
    assert (state_dir / "ca.pem").read_text() == ca_before


def test_bad_state_dir_is_one_line_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out = cli("start", state_dir=blocker / "lab")
    assert code == 1 and out.startswith("error:") and len(out.splitlines()) == 1
