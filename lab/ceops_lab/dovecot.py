"""A private Dovecot 2.3 (Debian's dovecot-imapd) as the lab's IMAP server, and the small dict
server through which it asks the lab whether a login may pass.

Why this shape: the lab must decide each login on its LIVE state (Exchange service principals,
FullAccess entries), per mailbox. Dovecot 2.3's oauth2 passdb cannot pass the login user to an
introspection URL, and its checkpassword passdb refuses user+password over 512 bytes (an Entra
token is larger). A dict passdb over a "proxy" socket can: with the XOAUTH2 mechanism Dovecot 2.3
hands the token to the passdb as the plaintext password, so the lookup key
`login/imap/<user>/<session>/<token>` (%u/%{session}/%w) carries both to the lab. The lab answers
  ok:      {"nopassword": "y"}                                    -> OK Logged in
  refused: {"nopassword": "y", "nologin": "y", "reason": "AUTHENTICATE failed."}
           -> "<tag> NO [CONTACTADMIN] AUTHENTICATE failed." at once (no SASL error
              continuation, no failure delay), the nearest Dovecot gets to Exchange's
              "<tag> NO AUTHENTICATE failed." (Dovecot always puts a response code there).
  fault:   F<error> -> "NO [UNAVAILABLE] Temporary authentication failure."

The instance: `dovecot -F -c <state>/dovecot/dovecot.conf` as a child of the lab process (with a
parent-death signal, so it never outlives the lab), implicit TLS with the lab's server
certificate on a free 127.0.0.1 port, every other listener off, base_dir / state / logs under the
lab state dir, auth_failure_delay = 0 and no anvil auth penalty. Run as root (the usual container
case) the mail processes run as `nobody` chrooted into the mail root (Dovecot refuses mail access
as root, and `nobody` may not traverse a private state dir); run as another user, everything runs
as that user.
"""

import ctypes
import grp
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

LOG = logging.getLogger("ceops_lab")
INSTALL_HINT = "dovecot not installed: run scripts/ensure-system-packages.sh dovecot-imapd (or start the lab with CEOPS_LAB_NO_IMAP=1)"
DICT_SOCKET = "ceops-lab-auth"
START_TIMEOUT = 15.0
_MAX_BASE_DIR = 80  # unix socket paths are limited to 108 bytes; Dovecot adds up to ~25

CONFIG = """\
# Written by the ceops lab at every start; do not edit. See lab/ceops_lab/dovecot.py.
base_dir = {base_dir}
state_dir = {state_dir}
instance_name = {instance_name}
listen = 127.0.0.1
protocols = imap
log_path = {log_file}
info_log_path = {log_file}
debug_log_path = {log_file}
login_greeting = The Microsoft Exchange IMAP4 service is ready.
ssl = required
ssl_cert = <{cert_file}
ssl_key = <{key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = xoauth2
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes
mail_location = maildir:~/Maildir
first_valid_uid = {mail_uid}
last_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
{user_settings}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
{no_chroot}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{no_chroot}
}}
passdb {{
  driver = dict
  args = {dict_conf}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={home_template} allow_all_users=yes
}}
"""

DICT_CONF = """\
# The lab answers this lookup (see lab/ceops_lab/dovecot.py): %u is the XOAUTH2 user, %w the token.
uri = proxy:{socket}:ceops-lab
password_key = login/imap/%u/%{{session}}/%w
"""


class DovecotError(RuntimeError):
    """Dovecot is missing, of the wrong version, or did not come up; the message says what to do."""


def find_binary():
    path = os.pathsep.join(p for p in (os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin") if p)
    return shutil.which("dovecot", path=path)


def version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    return (out.stdout or out.stderr).strip()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _parent_death_signal():
    """preexec_fn: SIGTERM to the child when the lab process (its parent thread) dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class DictServer:
    """Dovecot's dict protocol (2.3) on a unix socket, lookups only: `H...` hello (no reply),
    `L<key>[\\t<user>]` -> `O<json>` | `N` | `F<error>`. `answer(key)` returns the JSON object, None
    for not found, or raises DictFailure."""

    def __init__(self, path, answer):
        self.path = path
        self.answer = answer
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    line = raw.rstrip(b"\n").decode("utf-8", "replace")
                    if not line:
                        continue
                    command, rest = line[0], line[1:]
                    if command == "H":
                        continue
                    if command != "L":
                        self.wfile.write(b"F" + _escape("unsupported dict command %r" % command).encode() + b"\n")
                        continue
                    key = _unescape(rest.split("\t", 1)[0])
                    try:
                        value = server.answer(key)
                        reply = "N" if value is None else "O" + _escape(json.dumps(value))
                    except DictFailure as exc:
                        reply = "F" + _escape(str(exc))
                    except Exception:  # noqa: BLE001 - a lab bug must not hang Dovecot's auth
                        LOG.exception("imap: dict lookup failed")
                        reply = "Finternal error in the lab"
                    self.wfile.write(reply.encode("utf-8") + b"\n")
                    self.wfile.flush()

        class Server(socketserver.ThreadingUnixStreamServer):
            daemon_threads = True

        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._server = Server(path, Handler)
        os.chmod(path, 0o600)  # Dovecot's auth-worker runs as root or as the lab's own user
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-imap-dict", daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class DictFailure(Exception):
    pass


def _escape(text):
    # Dovecot's dict protocol escapes \001, \t, \n (and \r) with a \001 prefix.
    return text.replace("\x01", "\x011").replace("\t", "\x01t").replace("\n", "\x01n").replace("\r", "\x01r")


def _unescape(text):
    if "\x01" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\x01" and i + 1 < len(text):
            out.append({"1": "\x01", "t": "\t", "n": "\n", "r": "\r"}.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


class Dovecot:
    """One private Dovecot instance under `<state_dir>/dovecot`."""

    def __init__(self, state_dir, cert_file, key_file, answer):
        self.root = os.path.join(state_dir, "dovecot")
        self.cert_file = cert_file
        self.key_file = key_file
        self.answer = answer
        self.process = None
        self.port = None
        self.dict_server = None
        self._temp_base = None
        self.as_root = os.geteuid() == 0
        if self.as_root:
            user = pwd.getpwnam("nobody")
            self.mail_uid, self.mail_gid = user.pw_uid, user.pw_gid
        else:
            self.mail_uid, self.mail_gid = os.geteuid(), os.getegid()
        self.mail_root = os.path.join(self.root, "mail")
        self.log_file = os.path.join(self.root, "dovecot.log")

    # ----- mail homes (the lab delivers SMTP messages into them) ---------------------------------
    def home(self, address):
        local, _, domain = address.lower().partition("@")
        return os.path.join(self.mail_root, domain, local)

    def prepare_home(self, address):
        """Create <mail root>/<domain>/<local>/Maildir/{cur,new,tmp} owned by the mail user."""
        home = self.home(address)
        for path in (os.path.dirname(home), home, os.path.join(home, "Maildir")) + tuple(
                os.path.join(home, "Maildir", sub) for sub in ("cur", "new", "tmp")):
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self._own(path)
        return home

    def deliver(self, address, content):
        """Put a message into a mailbox's Maildir/new (as an MTA would); returns the file name."""
        maildir = os.path.join(self.prepare_home(address), "Maildir")
        name = "%d.M%dP%d.ceops-lab" % (time.time(), time.monotonic_ns() % 1000000000, os.getpid())
        tmp = os.path.join(maildir, "tmp", name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.replace(b"\r\n", b"\n"))
        self._own(tmp)
        os.rename(tmp, os.path.join(maildir, "new", name))
        return name

    def clear_mail(self):
        """Remove every message (reset); indexes stay and see the messages as expunged."""
        if not os.path.isdir(self.mail_root):
            return
        for top, dirs, files in os.walk(self.mail_root):
            if os.path.basename(top) in ("cur", "new", "tmp") and os.path.basename(os.path.dirname(top)) == "Maildir":
                for name in files:
                    try:
                        os.remove(os.path.join(top, name))
                    except FileNotFoundError:
                        pass

    def _own(self, path):
        if self.as_root:
            os.chown(path, self.mail_uid, self.mail_gid)

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self, mailboxes):
        binary = find_binary()
        if binary is None:
            raise DovecotError(INSTALL_HINT)
        found = version(binary)
        if not found.startswith("2.3."):
            raise DovecotError("the lab needs Dovecot 2.3 (Debian 12's dovecot-imapd); %s is version %s" % (binary, found or "unknown"))
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        run_dir = os.path.join(self.root, "run")
        if len(run_dir) > _MAX_BASE_DIR:
            self._temp_base = tempfile.mkdtemp(prefix="ceops-lab-dovecot-")
            run_dir = self._temp_base
        os.makedirs(run_dir, exist_ok=True)
        os.makedirs(os.path.join(self.root, "state"), exist_ok=True)
        if not os.path.isdir(self.mail_root):
            os.mkdir(self.mail_root, 0o700)
        self._own(self.mail_root)
        for address in mailboxes:
            self.prepare_home(address)
        self.dict_server = DictServer(os.path.join(run_dir, DICT_SOCKET), self.answer)
        last_error = None
        for _ in range(3):  # a free port can be taken between probing and Dovecot's bind
            self.port = free_port()
            self._write_config(run_dir)
            try:
                self._spawn(binary)
                return self.port
            except DovecotError as exc:
                last_error = exc
                self.stop(keep_dict=True)
                if "in use" not in str(exc):
                    break
        self.stop()
        raise last_error

    def _write_config(self, run_dir):
        dict_conf = os.path.join(self.root, "dovecot-dict-auth.conf.ext")
        with open(dict_conf, "w", encoding="utf-8") as handle:
            handle.write(DICT_CONF.format(socket=os.path.join(run_dir, DICT_SOCKET)))
        if self.as_root:
            user_settings = "valid_chroot_dirs = %s" % self.mail_root
            home_template = "%s/./%%d/%%n" % self.mail_root
            no_chroot = ""
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            user_settings = "\n".join(("default_internal_user = %s" % me, "default_internal_group = %s" % group,
                                       "default_login_user = %s" % me))
            home_template = "%s/%%d/%%n" % self.mail_root
            no_chroot = "  chroot ="  # only root may chroot
        text = CONFIG.format(base_dir=run_dir, state_dir=os.path.join(self.root, "state"),
                             instance_name="ceops-lab-%d" % os.getpid(), log_file=self.log_file, cert_file=self.cert_file,
                             key_file=self.key_file, mail_uid=self.mail_uid, mail_gid=self.mail_gid, user_settings=user_settings,
                             port=self.port, no_chroot=no_chroot, dict_conf=dict_conf, home_template=home_template)
        self.config_file = os.path.join(self.root, "dovecot.conf")
        with open(self.config_file, "w", encoding="utf-8") as handle:
            handle.write(text)

    def _spawn(self, binary):
        stderr_path = os.path.join(self.root, "dovecot.stderr")
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen([binary, "-F", "-c", self.config_file], stdin=subprocess.DEVNULL, stdout=stderr,
                                            stderr=subprocess.STDOUT, close_fds=True, preexec_fn=_parent_death_signal)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DovecotError("dovecot exited during start (code %s): %s" % (self.process.returncode, self._failure_text(stderr_path)))
            try:
                # An accepted connection is enough (the TLS listener says nothing before a handshake).
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.03)
        raise DovecotError("dovecot did not listen on 127.0.0.1:%d within %g s: %s" % (self.port, START_TIMEOUT, self._failure_text(stderr_path)))

    def _failure_text(self, stderr_path):
        lines = []
        for path in (stderr_path, self.log_file):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    lines += [line.rstrip() for line in handle.readlines()[-5:] if "Fatal" in line or "Error" in line]
            except OSError:
                pass
        return " | ".join(lines[-4:]) or "see %s" % self.log_file

    def stop(self, keep_dict=False):
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if not keep_dict:
            if self.dict_server is not None:
                self.dict_server.close()
                self.dict_server = None
            if self._temp_base:
                shutil.rmtree(self._temp_base, ignore_errors=True)
                self._temp_base = None
