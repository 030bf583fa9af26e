"""Run ansible-playbook once and measure it: wall time, controller CPU, peak memory, what the lab saw.

CPU is the user + system time of the ansible-playbook process and every process it waited for (its forks and the
module processes they ran), from os.wait4 on that one child: the lab, a separate process, is never in it.
Memory is reported two ways: `peak_pss_mb` is the peak of the summed proportional set size (PSS: shared pages split
between the processes sharing them, so forked workers are not counted many times over) of the whole ansible-playbook
process tree, sampled from /proc every 0.5 s (what the machine must hold); `max_process_rss_mb` is wait4's
ru_maxrss, the largest single process of the tree (exact, not sampled).
"""

import json
import os
import subprocess
import threading
import time


def _children_map():
    """{ppid: [pid]} of every process visible in /proc."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _pss(pid):
    """Proportional set size of one process in bytes (0 when it is gone)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_pss(root):
    """Summed PSS in bytes of `root` and all its descendants."""
    tree, total, todo = _children_map(), 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, ()))
        total += _pss(pid)
    return total


class MemorySampler(threading.Thread):
    def __init__(self, pid, interval=0.5):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            self.peak = max(self.peak, tree_pss(self.pid))


def run_playbook(command, env, cwd, log_path, events_path):
    """Run one ansible-playbook command; returns the measurements and the callback's records."""
    env = dict(env, CEOPS_BENCH_EVENTS=events_path)
    if os.path.exists(events_path):
        os.remove(events_path)
    with open(log_path, "w") as log:
        began = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = MemorySampler(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - began
        sampler.done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    records = []
    if os.path.exists(events_path):
        with open(events_path) as handle:
            records = json.load(handle)["records"]
    return {
        "rc": process.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_user_s": round(usage.ru_utime, 2),
        "cpu_system_s": round(usage.ru_stime, 2),
        "peak_pss_mb": round(sampler.peak / 2 ** 20, 1),
        "max_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "log": log_path,
    }, records
