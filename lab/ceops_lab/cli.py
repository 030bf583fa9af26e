"""`python -m ceops_lab COMMAND --state-dir DIR`: start, stop, status, reset, counters, state,
fault, and serve (the foreground server that `start` spawns).

Every expected failure (already running, not running, bad option) is one clear line and an exit
code, never a traceback.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from . import worlds
from .admin import LabAdmin, LabError, LabNotRunning, default_state_dir

EXIT_NOT_RUNNING = 3  # like `systemctl status` / LSB: program is not running
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Processes this Python process started (e.g. the pytest fixture), so stop can reap them.
_CHILDREN = {}


class CliError(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


# ----- process bookkeeping ---------------------------------------------------------------------------
def _pid_file(state_dir):
    return os.path.join(state_dir, "lab.pid")


def read_pid(state_dir):
    try:
        with open(_pid_file(state_dir), encoding="utf-8") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _reap(pid):
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False


def is_lab_process(pid):
    """Alive, not a zombie, and a ceops lab (a recycled pid must not count as a running lab)."""
    if not pid:
        return False
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"ceops_lab" in handle.read()
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)


def running_pid(state_dir):
    pid = read_pid(state_dir)
    return pid if is_lab_process(pid) else None


def _remove(*paths):
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _cleanup(state_dir):
    _remove(_pid_file(state_dir), os.path.join(state_dir, "lab.json"))


def _log_tail(state_dir, lines=15):
    try:
        with open(os.path.join(state_dir, "lab.log"), encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


# ----- start / stop -------------------------------------------------------------------------------------
def start_lab(state_dir, consistency_window=None, latency_ms=None, timeout=START_TIMEOUT, fleet_dir=None, world=None):
    """Spawn a detached lab server and wait until its admin API answers; returns lab.json.
    fleet_dir: a generated fleet (ceops_lab.fleet) to seed the lab with instead of the shipped seeds;
    world: a named world (ceops_lab.worlds, e.g. "brownfield") instead of the shipped seeds."""
    state_dir = os.path.abspath(state_dir)
    if fleet_dir is not None and world not in (None, worlds.DEFAULT):
        raise CliError("give either --fleet or --world, not both", 2)
    if world is not None and world not in worlds.names():
        raise CliError("no lab world %r (worlds: %s)" % (world, ", ".join(worlds.names())), 2)
    pid = running_pid(state_dir)
    if pid:
        raise CliError("lab already running (pid %d) in %s" % (pid, state_dir))
    os.makedirs(state_dir, exist_ok=True)
    _cleanup(state_dir)  # stale pid / lab.json of a lab that died
    command = [sys.executable, "-m", "ceops_lab", "serve", "--state-dir", state_dir]
    if consistency_window is not None:
        command += ["--consistency-window", str(consistency_window)]
    if latency_ms is not None:
        command += ["--latency-ms", str(latency_ms)]
    if fleet_dir is not None:
        command += ["--fleet", os.path.abspath(fleet_dir)]
    if world is not None:
        command += ["--world", world]
    env = dict(os.environ)
    # The child must import this very package, installed or not.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open(os.path.join(state_dir, "lab.log"), "ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True, env=env, cwd=state_dir)
    _CHILDREN[child.pid] = child
    admin = LabAdmin(state_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _CHILDREN.pop(child.pid, None)
            _cleanup(state_dir)
            tail = _log_tail(state_dir)
            raise CliError("lab exited during start (exit code %s); last lines of %s/lab.log:\n%s"
                           % (child.returncode, state_dir, tail))
        try:
            info = admin.info
            if info.get("pid") == child.pid and admin.health().get("pid") == child.pid:
                return info
        except (LabError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    _kill(child.pid, wait=5.0)
    _cleanup(state_dir)
    raise CliError("lab did not answer on its admin API within %g s, so it was stopped; see %s/lab.log:\n%s"
                   % (timeout, state_dir, _log_tail(state_dir)))


def _kill(pid, wait=STOP_TIMEOUT):
    """SIGTERM, wait, then SIGKILL; True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not is_lab_process(pid):
            return False
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    for _ in range(100):
        if not is_lab_process(pid):
            break
        time.sleep(0.05)
    return True


def stop_lab(state_dir, timeout=STOP_TIMEOUT):
    """Stop the lab; returns the pid it stopped, or None when none was running."""
    state_dir = os.path.abspath(state_dir)
    pid = running_pid(state_dir)
    if pid is None:
        _cleanup(state_dir)
        return None
    _kill(pid, wait=timeout)
    _cleanup(state_dir)
    return pid


# ----- command line ---------------------------------------------------------------------------------------
def _parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=None,
                        help="lab state directory (default: $CEOPS_LAB_DIR or ./.lab)")
    parser = argparse.ArgumentParser(prog="python -m ceops_lab", description="Local emulators of Entra ID and Microsoft Graph.",
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ("start", "serve"):
        cmd = sub.add_parser(name, parents=[common], help="start the lab in the background" if name == "start"
                             else "run the lab in the foreground (what start spawns)")
        cmd.add_argument("--consistency-window", type=float, default=None, metavar="S",
                         help="seconds new objects stay invisible to reads (default 0)")
        cmd.add_argument("--latency-ms", type=int, default=None, metavar="N", help="latency added to every request")
        cmd.add_argument("--fleet", default=None, metavar="DIR", help="seed the lab with a generated fleet (see the fleet command)")
        cmd.add_argument("--world", default=None, metavar="NAME",
                         help="seed the lab with a named world instead of the shipped seeds: %s" % ", ".join(worlds.names()))
        if name == "start":
            cmd.add_argument("--timeout", type=float, default=START_TIMEOUT, help=argparse.SUPPRESS)
    fleet = sub.add_parser("fleet", parents=[common], help="write a generated fleet's seeds into a directory (start --fleet DIR)")
    fleet.add_argument("--out", required=True, metavar="DIR")
    fleet.add_argument("--tenants", type=int, default=200, help="CE tenants (default 200)")
    fleet.add_argument("--deployments", type=int, default=4, help="CE deployments (default 4)")
    fleet.add_argument("--directories", type=int, default=40, help="Microsoft directories (default 40)")
    fleet.add_argument("--mailboxes", type=int, default=3, help="mailboxes per CE tenant (default 3)")
    fleet.add_argument("--fleet-seed", type=int, default=1, help="seed of the generated ids and secrets (default 1)")
    sub.add_parser("stop", parents=[common], help="stop the lab")
    sub.add_parser("status", parents=[common], help="exit 0 when running, 3 when not")
    sub.add_parser("reset", parents=[common], help="state back to the seed; counters and faults cleared")
    counters = sub.add_parser("counters", parents=[common], help="request counters as JSON")
    counters.add_argument("--reset", action="store_true", help="print, then reset the counters")
    state = sub.add_parser("state", parents=[common], help="state as JSON (no secrets)")
    state.add_argument("service", nargs="?", default=None)
    fault = sub.add_parser("fault", parents=[common], help="inject faults into a service (login, graph or '*')")
    fault.add_argument("service", nargs="?", default=None)
    fault.add_argument("--clear", action="store_true", help="clear faults (of SERVICE, or all)")
    fault.add_argument("--rate-429", type=float, metavar="P")
    fault.add_argument("--rate-503", type=float, metavar="P")
    fault.add_argument("--seed", type=int)
    fault.add_argument("--retry-after", type=float, metavar="S")
    fault.add_argument("--no-retry-after", action="store_true", help="send 429/503 without a Retry-After header")
    fault.add_argument("--latency-ms", type=int, metavar="N")
    fault.add_argument("--jitter-ms", type=int, metavar="N")
    fault.add_argument("--consistency-window", type=float, metavar="S")
    fault.add_argument("--page-size", type=int, metavar="N")
    return parser


def _print_json(data):
    print(json.dumps(data, indent=2, sort_keys=True))


def _admin(state_dir):
    pid = running_pid(state_dir)
    if pid is None:
        raise CliError("lab is not running in %s" % state_dir, EXIT_NOT_RUNNING)
    return LabAdmin(state_dir)


def _run(args):
    state_dir = os.path.abspath(args.state_dir or default_state_dir())
    if args.command == "serve":
        pid = running_pid(state_dir)
        if pid and pid != os.getpid():
            raise CliError("lab already running (pid %d) in %s" % (pid, state_dir))
        if args.fleet and args.world not in (None, worlds.DEFAULT):
            raise CliError("give either --fleet or --world, not both", 2)
        if args.world is not None:
            if args.world not in worlds.names():
                raise CliError("no lab world %r (worlds: %s)" % (args.world, ", ".join(worlds.names())), 2)
            worlds.install(args.world)
        if args.fleet:
            from .fleet import install
            install(args.fleet)
        from .server import run
        return run(state_dir, consistency_window=args.consistency_window or 0, latency_ms=args.latency_ms or 0)
    if args.command == "start":
        info = start_lab(state_dir, args.consistency_window, args.latency_ms, timeout=args.timeout, fleet_dir=args.fleet, world=args.world)
        print("lab started (pid %d) in %s" % (info["pid"], state_dir))
        for name, service in info["services"].items():
            print("  %-8s %s" % (name, service["url"]))
        print("vars: %s/lab-vars.yml  env: %s/lab.env  CA: %s" % (state_dir, state_dir, info["ca_file"]))
        print("world: %s" % info.get("world", worlds.DEFAULT))
        return 0
    if args.command == "fleet":
        from .fleet import write
        try:
            description = write(args.out, tenants=args.tenants, deployments=args.deployments, directories=args.directories,
                                mailboxes=args.mailboxes, seed=args.fleet_seed)
        except ValueError as exc:
            raise CliError("fleet: %s" % exc, 2) from None
        print("fleet of %d CE tenants on %d CE deployments over %d directories written to %s"
              % (len(description["tenants"]), len(description["deployments"]), len(description["directories"]), os.path.abspath(args.out)))
        return 0
    if args.command == "stop":
        pid = stop_lab(state_dir)
        print("lab stopped (pid %d) in %s" % (pid, state_dir) if pid else "lab is not running in %s" % state_dir)
        return 0
    if args.command == "status":
        pid = running_pid(state_dir)
        if pid is None:
            print("lab is not running in %s" % state_dir)
            return EXIT_NOT_RUNNING
        print("lab running (pid %d) in %s" % (pid, state_dir))
        try:
            for name, service in LabAdmin(state_dir).info["services"].items():
                print("  %-8s %s" % (name, service["url"]))
        except LabError:
            pass
        return 0
    admin = _admin(state_dir)
    if args.command == "reset":
        admin.reset()
        print("lab reset to seed in %s (counters and faults cleared)" % state_dir)
        return 0
    if args.command == "counters":
        _print_json(admin.counters())
        if args.reset:
            admin.reset_counters()
        return 0
    if args.command == "state":
        _print_json(admin.state(args.service))
        return 0
    if args.command == "fault":
        return _fault(admin, args)
    raise CliError("unknown command %s" % args.command)


def _fault(admin, args):
    if args.clear:
        _print_json(admin.clear_faults(args.service))
        return 0
    if not args.service:
        raise CliError("fault needs a SERVICE (login, graph or '*') or --clear", 2)
    options = {}
    for name in ("rate_429", "rate_503", "seed", "retry_after", "latency_ms", "jitter_ms", "consistency_window", "page_size"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_retry_after:
        options["retry_after"] = None
    if not options:
        raise CliError("fault %s: give at least one option (e.g. --rate-429 0.2), or --clear" % args.service, 2)
    _print_json(admin.set_faults(args.service, **options))
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CliError as exc:
        print(str(exc), file=sys.stderr if exc.code not in (EXIT_NOT_RUNNING,) else sys.stdout)
        return exc.code
    except LabNotRunning as exc:
        print(str(exc))
        return EXIT_NOT_RUNNING
    except LabError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
