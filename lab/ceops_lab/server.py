"""The Lab that runs the emulated services.

Each service is a service.Service subclass in its own module, listed in services.SERVICE_CLASSES; the Lab
binds one HTTPS server per service on 127.0.0.1 (a free port each), and every request goes
through Lab.dispatch: request ids, fault injection, counting and the one-line request log are
done here once, so a service only answers requests.
"""

import datetime
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import journal, worlds
from .ca import CertificateAuthority, SelfSignedIdentity
from .counters import READ_METHODS, Counters
from .faults import Faults
from .seeding import seed_directory
from .service import Request, Response
from .services import SERVICE_CLASSES
from .state import World, load_seed

LOG = logging.getLogger("ceops_lab")
BIND_HOST = "127.0.0.1"  # never anything else: the lab has no authentication on its admin API


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect from Microsoft's endpoints
    server_version = "ceops-lab"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection must not hold a thread forever

    def _dispatch(self):
        self.server.lab.dispatch(self.server.service, self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def setup(self):
        super().setup()
        # Headers and body go out as separate TLS records; without NODELAY, Nagle plus delayed ACKs
        # add ~40 ms to every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass  # Lab.dispatch writes its own one-line log without query values or bodies


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, lab, service, tls):
        self.lab = lab
        self.service = service
        super().__init__((BIND_HOST, 0), _Handler)
        # Handshake in the request thread, not in accept(): one stuck client must not block others.
        self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, TimeoutError)):
            LOG.debug("%s connection error: %s", self.service.name, exc)
            return
        LOG.exception("%s: unhandled error", self.service.name)


def _log_path(request):
    """The path and only the names of query parameters: values may identify people or carry secrets."""
    if not request.query:
        return request.raw_path
    return request.raw_path + "?" + "&".join(sorted(request.query))


class Lab:
    """A running lab: key material, the world, faults, counters and one server per service."""

    def __init__(self, state_dir, consistency_window=0.0, latency_ms=0):
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.started_at = datetime.datetime.now(datetime.timezone.utc)
        self.ca = CertificateAuthority.load_or_create(self.state_dir)
        self.ca_file = os.path.join(self.state_dir, "ca.pem")
        self.server_cert, self.server_key = self.ca.issue_server_cert(self.state_dir)
        # The token signing key, published in the JWKS. Kept across restarts of the same state dir
        # (like Entra's keys, which outlive any one server), so cached tokens stay valid.
        self.signing = SelfSignedIdentity.load_or_create(os.path.join(self.state_dir, "signing-key.pem"), "ceops lab token signing")
        self.seed = load_seed()
        self.automation_certificates = {}
        self.automation_certificate_paths = {}
        for entry in self.seed["directories"]:
            identity = SelfSignedIdentity.create("ceops automation %s" % entry["name"])
            path = os.path.join(self.state_dir, "automation-%s.pem" % entry["name"])
            identity.write_pem(path)
            self.automation_certificates[entry["name"]] = identity
            self.automation_certificate_paths[entry["name"]] = path
        self.world = World(self.seed, self.automation_certificates, seeders=[seed_directory])
        self.default_consistency_window = float(consistency_window or 0)
        self.default_latency_ms = int(latency_ms or 0)
        self.faults = Faults(self._fault_defaults())
        self.counters = Counters()
        self.journal = journal.Journal()
        self.services = {}
        for service_class in SERVICE_CLASSES:
            self.services[service_class.name] = service_class(self)
        self._servers = []
        self._stop = threading.Event()

    def _fault_defaults(self):
        defaults = {}
        if self.default_latency_ms:
            defaults["latency_ms"] = self.default_latency_ms
        if self.default_consistency_window:
            defaults["consistency_window"] = self.default_consistency_window
        return defaults

    # ----- behaviour shared by services ----------------------------------------------------------
    def consistency_window(self, directory, service):
        """Seconds a new object stays invisible to reads: the directory's own setting first, then
        the service's or global fault setting, then the start option."""
        if directory is not None and directory.consistency_window is not None:
            return float(directory.consistency_window)
        return float(self.faults.option(service, "consistency_window", self.default_consistency_window) or 0)

    def is_fresh(self, obj, directory, service):
        """True while `obj` is inside the eventual-consistency window (monotonic clock)."""
        window = self.consistency_window(directory, service)
        return window > 0 and time.monotonic() - obj.get("_created", 0.0) < window

    def reset(self):
        self.world.reset()
        for service in self.services.values():
            service.reset()
        self.counters.reset()
        self.journal.reset()
        self.faults = Faults(self._fault_defaults())

    def url(self, service):
        return self.services[service].url

    # ----- request path -------------------------------------------------------------------------
    def dispatch(self, service, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        request = Request(service, handler.command, handler.path, handler.headers, body, service.url)
        faulted = False
        response = None
        if service.faultable:
            if self.faults.has_open_barrier():
                self._barrier(service, request)
            delay = self.faults.latency_seconds(service.name)
            if delay:
                time.sleep(delay)
            fault = self.faults.pick(service.name, request.method, request.raw_path, request.body)
            if fault is not None:
                faulted = True
                retry_after = self.faults.resolve_retry_after(service.name, fault)
                if "raw_body" in fault:
                    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
                    response = Response(fault["status"], fault["raw_body"], headers, fault["content_type"])
                else:
                    response = service.fault_response(request, fault["status"], retry_after, fault.get("body"))
        if response is None:
            journal.begin()
            try:
                response = service.handle(request)
            except Exception as exc:  # noqa: BLE001 - a lab bug must answer 500, not drop the connection
                LOG.exception("%s %s %s failed", service.name, request.method, request.raw_path)
                response = service.error_response(request, exc)
            finally:
                notes = journal.end()
        else:
            notes = []
        response.headers.setdefault("request-id", request.request_id)
        response.headers.setdefault("client-request-id", request.client_request_id or request.request_id)
        directory = None
        try:
            directory = service.directory_of(request)
        except Exception:  # noqa: BLE001 - counting must never break a response
            LOG.debug("directory_of failed", exc_info=True)
        try:
            counted_method = service.counted_method(request)
        except Exception:  # noqa: BLE001 - counting must never break a response
            counted_method = request.method
        endpoint = service.endpoint(request)
        # Counted and journaled before the answer leaves, so a client that reads them right after sees its request.
        self.counters.record(service.name, counted_method, endpoint, response.status, directory=directory, faulted=faulted)
        if service.journaled and counted_method.upper() not in READ_METHODS:
            self.journal.record(service.name, request.method, endpoint, response.status, notes, faulted=faulted,
                                request_id=request.request_id, **service.journal_scope(directory))
        self._write(handler, request, response)
        LOG.info("%s %s %s %s request-id=%s%s", service.name, request.method, _log_path(request), response.status,
                 request.request_id, " (fault)" if faulted else "")
        if service.faultable:
            self._kill_clients(service, endpoint)

    def _barrier(self, service, request):
        try:
            endpoint = service.endpoint(request)
        except Exception:  # noqa: BLE001 - a request the service cannot name is for the service to answer, not to hold
            LOG.debug("endpoint failed", exc_info=True)
            return
        self.faults.wait_at_barrier(service.name, endpoint)

    def _kill_clients(self, service, endpoint):
        """Interrupt a client after its request was answered and counted (kill_client rules): the process and all
        its descendants, wherever they are. Ansible puts each fork in a session of its own, so signalling the
        playbook's process group would leave a running module to finish its work, which no lost pod does."""
        for pid, signum in self.faults.kill_due(service.name, endpoint):
            tree = [pid] + _descendants(pid)
            LOG.info("kill_client: signal %d to %d process(es) of %d after %s %s", signum, len(tree), pid, service.name, endpoint)
            for member in tree:
                try:
                    os.kill(member, signum)
                except OSError:  # already gone: nothing left to interrupt
                    pass

    def _write(self, handler, request, response):
        handler.send_response(response.status)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if request.method != "HEAD" and response.body:
            handler.wfile.write(response.body)

    # ----- lifecycle ------------------------------------------------------------------------------
    def bind(self):
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(self.server_cert, self.server_key)
        for service in self.services.values():
            if not service.http:
                service.start()
                continue
            server = _Server(self, service, tls)
            host, port = server.server_address[:2]
            service.url = "https://%s:%d" % (host, port)
            self._servers.append(server)

    def serve(self):
        threads = []
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, name="lab-" + server.service.name, daemon=True)
            thread.start()
            threads.append(thread)
        self._stop.wait()
        # Services with their own listeners (a Dovecot takes ~1 s to exit) stop alongside the HTTP servers.
        stoppers = [threading.Thread(target=service.stop, name="stop-" + service.name)
                    for service in self.services.values() if not service.http]
        for thread in stoppers:
            thread.start()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in stoppers:
            thread.join()

    def stop(self):
        self._stop.set()

    # ----- what clients and inventories read ------------------------------------------------------
    def info(self):
        return {
            "pid": os.getpid(),
            "state_dir": self.state_dir,
            "ca_file": self.ca_file,
            "log_file": os.path.join(self.state_dir, "lab.log"),
            "started_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "world": worlds.current(),
            "vars_file": os.path.join(self.state_dir, "lab-vars.yml"),
            "services": {name: {"url": service.url} for name, service in self.services.items() if service.http},
            "listeners": {name: {"url": service.url} for name, service in self.services.items() if not service.http},
        }

    def ansible_vars(self):
        result = {"lab_ca_path": self.ca_file, "lab_world": worlds.current()}
        for service in self.services.values():
            result.update(service.ansible_vars())
        directories = {}
        for entry in self.seed["directories"]:
            automation = entry["automation"]
            directories[entry["name"]] = {
                "tenant_id": entry["tenant_id"],
                "domain": entry["domain"],
                "automation_client_id": automation["app_id"],
                "automation_client_secret": automation["client_secret"]["secretText"],
                "automation_certificate_path": self.automation_certificate_paths[entry["name"]],
                "automation_certificate_thumbprint": self.automation_certificates[entry["name"]].thumbprints["sha1_hex"],
                "automation_service_principal_id": automation["service_principal_id"],
                "mailboxes": list(entry.get("mailboxes") or []),
            }
            for service in self.services.values():
                directories[entry["name"]].update(service.directory_vars(entry))
        result["lab_directories"] = directories
        return result

    def write_files(self):
        """lab.json, lab-vars.yml / .json and lab.env, each replaced atomically."""
        variables = self.ansible_vars()
        _atomic_write(os.path.join(self.state_dir, "lab-vars.json"), json.dumps(variables, indent=2) + "\n")
        _atomic_write(os.path.join(self.state_dir, "lab-vars.yml"), to_yaml(variables))
        env = {"CEOPS_LAB_DIR": self.state_dir, "CEOPS_LAB_CA_PATH": self.ca_file}
        for service in self.services.values():
            env["CEOPS_LAB_%s_URL" % service.name.upper()] = service.url
            env.update(service.env_vars())
        lines = ["# ceops lab environment; source this file (values change at every start)"]
        lines += ["export %s=%s" % (k, _shell_quote(v)) for k, v in env.items()]
        _atomic_write(os.path.join(self.state_dir, "lab.env"), "\n".join(lines) + "\n")
        # lab.json last: `start` waits for it, so everything else is in place when it appears.
        _atomic_write(os.path.join(self.state_dir, "lab.json"), json.dumps(self.info(), indent=2) + "\n")


def _descendants(pid):
    """Process ids of every descendant of `pid` (from /proc: the lab runs on Linux), children before grandchildren."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: the parent pid is the 2nd field after its ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def _shell_quote(value):
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def _atomic_write(path, text, mode=0o644):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def to_yaml(value, indent=0):
    """A tiny YAML writer for the vars file: mappings, lists and scalars. Strings are written as
    JSON strings, which YAML reads back verbatim (no surprises with ':' or leading zeros)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = "---\n" if indent == 0 else ""
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out += "%s%s:\n%s" % (pad, key, to_yaml(item, indent + 1))
            else:
                out += "%s%s: %s\n" % (pad, key, _yaml_scalar(item))
        return out
    if isinstance(value, list):
        return "".join("%s- %s\n" % (pad, _yaml_scalar(item)) for item in value)
    return pad + _yaml_scalar(value) + "\n"


def _yaml_scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return json.dumps(str(value))


def run(state_dir, consistency_window=0.0, latency_ms=0):
    """`python -m ceops_lab serve`: run in the foreground until SIGTERM / SIGINT."""
    lab = Lab(state_dir, consistency_window=consistency_window, latency_ms=latency_ms)
    handler = logging.FileHandler(os.path.join(lab.state_dir, "lab.log"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    if sys.stderr.isatty():
        LOG.addHandler(logging.StreamHandler())
    lab.bind()
    pid_file = os.path.join(lab.state_dir, "lab.pid")
    _atomic_write(pid_file, "%d\n" % os.getpid())
    lab.write_files()

    def _terminate(signum, frame):
        lab.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    LOG.info("lab serving (pid %d): %s", os.getpid(), ", ".join("%s %s" % (n, s.url) for n, s in lab.services.items()))
    try:
        lab.serve()
    finally:
        # Leave no pid / lab.json behind that points at this (now gone) process.
        for name in ("lab.pid", "lab.json"):
            path = os.path.join(lab.state_dir, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                if (name == "lab.pid" and text.strip() == str(os.getpid())) or (name == "lab.json" and json.loads(text).get("pid") == os.getpid()):
                    os.remove(path)
            except (OSError, ValueError):
                pass
        LOG.info("lab stopped (pid %d)", os.getpid())
    return 0
