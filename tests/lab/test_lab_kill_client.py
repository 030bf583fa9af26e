"""kill_client: the lab interrupts a client's whole process tree right after answering its Nth matching request;
barrier: the lab holds requests until several clients are at the same step."""

import os
import subprocess
import sys
import time

import pytest
from ceops_lab.admin import LabError

# A client like ansible-playbook: a parent and a child in a session of its own (as Ansible's forks are).
CLIENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return True


def wait_until(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met within %ss" % timeout
        time.sleep(0.05)


def test_the_nth_matching_answered_request_kills_the_client_and_its_descendants(graph, fresh_lab):
    client = subprocess.Popen([sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(client.stdout.readline())
        fresh_lab.kill_client(client.pid, r"^GET /v1.0/applications$", after=2)

        assert graph.get("/servicePrincipals").status_code == 200  # another endpoint: not counted by the rule
        assert graph.get("/applications").status_code == 200
        assert client.poll() is None and not gone(child)

        # The request that fires the rule is answered in full before the client dies: the service did its work.
        assert graph.get("/applications").status_code == 200
        assert client.wait(timeout=10) == -9
        wait_until(lambda: gone(child))
        rule = fresh_lab.faults()["*"]["kill_client"][0]
        assert rule["fired"] == "graph GET /v1.0/applications" and rule["seen"] == 2
        # A rule fires once.
        assert graph.get("/applications").status_code == 200
        assert fresh_lab.faults()["*"]["kill_client"][0]["seen"] == 2
    finally:
        if client.poll() is None:
            client.kill()
        client.wait()


def test_kill_client_rules_are_checked(fresh_lab):
    for rule in ({"endpoint_regex": "x"}, {"pid": 1, "endpoint_regex": "x"}, {"pid": os.getpid(), "signal": "HUP"},
                 {"pid": os.getpid(), "endpoint_regex": "("}, {"pid": os.getpid(), "after": 0}):
        with pytest.raises(LabError):
            fresh_lab.set_faults("*", kill_client=[rule])
    assert "kill_client" not in fresh_lab.faults().get("*", {})


def test_a_barrier_holds_requests_until_all_parties_have_arrived(graph, fresh_lab):
    """Two clients at the same step at the same moment: the first matching request waits for the second."""
    import threading

    fresh_lab.barrier(r"^GET /v1.0/applications$", parties=2, timeout=30)
    first = {}
    waiting = threading.Thread(target=lambda: first.update(status=graph.get("/applications").status_code))
    waiting.start()
    wait_until(lambda: fresh_lab.faults()["*"]["barrier"][0]["arrived"] == 1)
    assert graph.get("/servicePrincipals").status_code == 200  # other requests are not held
    assert waiting.is_alive() and "status" not in first
    assert graph.get("/applications").status_code == 200  # the second party releases both
    waiting.join(10)
    assert first == {"status": 200} and fresh_lab.faults()["*"]["barrier"][0]["met"] is True


def test_a_barrier_that_is_never_met_lets_go_and_says_so(graph, fresh_lab):
    fresh_lab.barrier(r"^GET /v1.0/applications$", parties=2, timeout=0.5)
    assert graph.get("/applications").status_code == 200
    assert fresh_lab.faults()["*"]["barrier"][0]["met"] is False
    with pytest.raises(LabError):
        fresh_lab.barrier("x", parties=1)
