# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online cmdlets over WinRM: PowerShell 7 with ExchangeOnlineManagement on a Windows management host, through
pywinrm; the host connects app-only with a certificate from its own store.

One PowerShell session per module invocation (exo_powershell.py): starting pwsh, Import-Module ExchangeOnlineManagement
and Connect-ExchangeOnline cost seconds on a real host, so they happen once, not once per cmdlet. The reconcilers still
call ``invoke`` from many threads (a mailbox per thread); each call becomes one request line on the session's stdin and
waits for its own answer. One pump thread owns pywinrm's Protocol (its HTTP session and NTLM / Kerberos context are not
meant to be shared): it sends whatever requests are queued in one WS-Man Send and receives the answers, so the host always
has the next requests waiting while it runs a cmdlet, and the threads' requests cost no round trip of their own."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import threading
import time

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import range_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import ExchangeError
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_powershell import (
    CONNECT_ANSWER, answer_result, build_session_script, encode_command, encode_request, process_failure, read_answer)
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.msauth import is_guid

WINRM_AUTH = ("ntlm", "kerberos", "credssp", "basic")
# A WS-Man envelope holds at most 500 KB (MaxEnvelopeSizekb); base64 makes stdin a third bigger.
MAX_SEND_BYTES = 64 * 1024
# Requests waiting and nothing at all from the host for this long: it hangs; fail them rather than wait forever.
SILENCE_LIMIT = 900
# How long closing may wait for Disconnect-ExchangeOnline and the process to end before the shell is closed anyway.
CLOSE_LIMIT = 60


class WinRMRunner:
    """The ``winrm`` transport: one PowerShellSession, opened at the first cmdlet and closed by ``close()``."""

    name = "winrm"
    # Threads only keep the one session's queue full; the cap is the reconciler's own (exo_permissions.MAX_PARALLELISM).
    max_parallelism = 32

    def __init__(self, options, tenant, app_id, cloud="public", timeout=30, protocol_factory=None, clock=time.monotonic,
                 silence_limit=SILENCE_LIMIT):
        self.options = options
        self.organization = options.get("organization") or tenant
        self.app_id = app_id
        self.cloud = cloud
        self.timeout = timeout
        scheme = options.get("scheme") or "https"
        port = options.get("port") or (5986 if scheme == "https" else 5985)
        path = "/" + (options.get("path") or "/wsman").lstrip("/")
        self.endpoint = "%s://%s:%s%s" % (scheme, options["host"], port, path)
        self.where = "WinRM %s" % self.endpoint
        self._factory = protocol_factory or self._protocol
        self._clock = clock
        self._silence_limit = silence_limit
        self._session = None
        self._lock = threading.Lock()

    def problems(self):
        """Configuration mistakes found before anything is sent."""
        problems = []
        if not is_guid(self.app_id):
            problems.append("client_id %r is not a GUID: over WinRM it is the AppId that Connect-ExchangeOnline uses" % (self.app_id,))
        thumbprint = self.options.get("certificate_thumbprint") or ""
        if not re.fullmatch(r"[0-9A-Fa-f]{40}", thumbprint):
            problems.append("winrm.certificate_thumbprint %r is not a SHA-1 thumbprint (40 hex digits) of the automation identity's "
                            "certificate in the WinRM user's certificate store" % (thumbprint,))
        port_problem = range_problem("winrm.port", self.options.get("port"), 1, 65535)
        if port_problem:
            problems.append(port_problem)
        if not self.options.get("username") and self.options.get("transport") != "kerberos":
            problems.append("winrm.username is required for winrm.transport %s" % self.options.get("transport"))
        return problems

    def _protocol(self):
        try:
            from winrm.protocol import Protocol
        except ImportError as exc:
            raise ExchangeError("the Python library 'pywinrm' is required for transport winrm: %s" % exc, fatal=True,
                                hint="install the collection's requirements.txt into the Python that runs the modules")
        options = self.options
        validate = options.get("validate_certs", True)
        # An explicit CA path (or none) keeps REQUESTS_CA_BUNDLE from silently replacing the CA we were given.
        ca_path = options.get("ca_path") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        read_timeout = max(30, int(self.timeout) + 10)
        protocol = Protocol(self.endpoint, transport=options.get("transport") or "ntlm", username=options.get("username"),
                            password=options.get("password"), server_cert_validation="validate" if validate else "ignore",
                            ca_trust_path=ca_path if validate else None, read_timeout_sec=read_timeout,
                            operation_timeout_sec=read_timeout - 10, proxy=None)
        return protocol

    def invoke(self, cmdlet, parameters):
        with self._lock:
            if self._session is None:
                settings = {"organization": self.organization, "app_id": self.app_id,
                            "certificate_thumbprint": self.options.get("certificate_thumbprint")}
                self._session = PowerShellSession(self._factory, build_session_script(settings, self.cloud), self.where,
                                                  self._transport_error, clock=self._clock, silence_limit=self._silence_limit)
            session = self._session
        return session.call(cmdlet, parameters)

    def close(self):
        """End the session (Disconnect-ExchangeOnline, the process, the shell); a later cmdlet opens a new one."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def _transport_error(self, cmdlet, exc):
        kind = exc.__class__.__name__
        text = str(exc).splitlines()[0] if str(exc) else kind
        # urllib3 wraps the one useful phrase ("[Errno 111] Connection refused") in two layers of repr.
        match = re.search(r"(\[Errno -?\d+\][^'\"()]*)", text)
        if match:
            text = match.group(1).strip()
        if kind in ("InvalidCredentialsError", "AuthenticationError", "BasicAuthDisabledError"):
            return ExchangeError("the WinRM host refused the credentials of %r (%s): %s" % (self.options.get("username"), kind, text),
                                 cmdlet=cmdlet, fatal=True, status=401, where=self.where,
                                 hint="check winrm.username (DOMAIN\\user or user@domain), winrm.password and winrm.transport "
                                      "(the host must allow that authentication)")
        if "SSLError" in kind or "CERTIFICATE_VERIFY_FAILED" in text:
            return ExchangeError("TLS verification of the WinRM host failed: %s" % text, cmdlet=cmdlet, fatal=True, where=self.where,
                                 hint="set winrm.ca_path to the CA that signed the host's certificate")
        if kind in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "WinRMOperationTimeoutError", "NewConnectionError"):
            return ExchangeError("the WinRM host did not answer: %s" % text, cmdlet=cmdlet, fatal=True, where=self.where,
                                 hint="check winrm.host, winrm.port and winrm.scheme, and that the host is reachable and runs WinRM")
        if "is not installed" in text:
            # pywinrm: "requested auth method is kerberos, but pykerberos is not installed" (or requests-credssp).
            return ExchangeError("WinRM failed (%s): %s" % (kind, text), cmdlet=cmdlet, fatal=True, where=self.where,
                                 hint="install pywinrm[%s] into the Python that runs the modules (docs/exchange-online.md, Kerberos and "
                                      "CredSSP)" % self.options.get("transport"))
        return ExchangeError("WinRM failed (%s): %s" % (kind, text), cmdlet=cmdlet, fatal=True, where=self.where,
                             hint="check the WinRM configuration of the management host")


class _Request:
    def __init__(self, request_id, cmdlet, line):
        self.id = request_id
        self.cmdlet = cmdlet
        self.line = line
        self.done = threading.Event()
        self.document = None
        self.failure = None  # cmdlet -> ExchangeError, when the session could not answer


class PowerShellSession:
    """One pwsh process running SESSION_SCRIPT, fed by any number of threads; see the module docstring."""

    def __init__(self, protocol_factory, script, where, transport_error, clock=time.monotonic, silence_limit=SILENCE_LIMIT):
        self._factory = protocol_factory
        self._script = script
        self._where = where
        self._transport_error = transport_error
        self._clock = clock
        self._silence_limit = silence_limit
        self._cond = threading.Condition()
        self._queue = []  # requests not sent yet
        self._waiting = {}  # id -> request sent (or queued) and not answered
        self._next_id = CONNECT_ANSWER
        self._failure = None  # once set, every request fails with it
        self._closing = False
        self._pump = None
        self.protocol = self.shell_id = self.command_id = None
        self._connected = False
        self._ended = False
        self._stdout = b""
        self._stderr = b""
        self._chatter = b""  # the last bytes of non-answer output, for the message when the process ends
        self._heard = clock()
        self.sends = 0  # WS-Man Send messages, for tests

    # -- callers' side
    def call(self, cmdlet, parameters):
        with self._cond:
            if self._failure is not None:
                raise self._failure(cmdlet)
            if self._closing:
                raise ExchangeError("the PowerShell session is closed", cmdlet=cmdlet, fatal=True, where=self._where)
            self._next_id += 1
            request = _Request(self._next_id, cmdlet, encode_request(self._next_id, cmdlet, parameters))
            self._waiting[request.id] = request
            self._queue.append(request)
            if self._pump is None:
                self._pump = threading.Thread(target=self._run, name="winrm-session", daemon=True)
                self._pump.start()
            self._cond.notify_all()
        request.done.wait()
        if request.failure is not None:
            raise request.failure(cmdlet)
        return answer_result(request.document, cmdlet, self._where)

    def close(self):
        with self._cond:
            self._closing = True
            pump = self._pump
            self._cond.notify_all()
        if pump is not None:
            pump.join()

    # -- the pump thread
    def _run(self):
        try:
            self._start()
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._waiting or self._closing)
                    if self._closing and not self._waiting:
                        break
                    batch = []
                    if self._connected:
                        size = 0
                        while self._queue and (not batch or size + len(self._queue[0].line) <= MAX_SEND_BYTES):
                            batch.append(self._queue.pop(0))
                            size += len(batch[-1].line)
                if batch:
                    self.protocol.send_command_input(self.shell_id, self.command_id, b"".join(r.line for r in batch))
                    self.sends += 1
                else:
                    self._receive()
                if self._ended:
                    break
        except ExchangeError as error:
            self._fail(lambda cmdlet, error=error: error)
        except Exception as exc:  # pylint: disable=broad-except
            # pywinrm raises its own errors and requests' errors; all mean "the host did not run it".
            self._fail(lambda cmdlet, exc=exc: self._transport_error(cmdlet, exc))
        finally:
            self._fail(lambda cmdlet: ExchangeError("the PowerShell session is closed", cmdlet=cmdlet, fatal=True, where=self._where))
            self._stop()

    def _start(self):
        self.protocol = self._factory()
        self.shell_id = self.protocol.open_shell()
        # console_mode_stdin=False: stdin is a pipe that Send feeds, as Ansible's own winrm connection does it.
        self.command_id = self.protocol.run_command(self.shell_id, "pwsh", ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand",
                                                                            encode_command(self._script)], console_mode_stdin=False)
        self._heard = self._clock()

    def _receive(self):
        try:
            stdout, stderr, exit_code, done = self.protocol.get_command_output_raw(self.shell_id, self.command_id)
        except Exception as exc:  # pylint: disable=broad-except
            if exc.__class__.__name__ != "WinRMOperationTimeoutError":
                raise
            # The host had nothing to say within the operation timeout: a cmdlet is still running.
            if self._clock() - self._heard > self._silence_limit:
                limit = self._silence_limit
                self._fail(lambda cmdlet: ExchangeError("the management host answered nothing for %d seconds" % limit, cmdlet=cmdlet,
                                                        fatal=True, where=self._where,
                                                        hint="check the management host: its PowerShell session hangs"))
                self._ended = True
            return
        if stdout or stderr:
            self._heard = self._clock()
        self._stderr += stderr
        lines = (self._stdout + stdout).split(b"\n")
        self._stdout = lines.pop()
        for line in lines:
            self._dispatch(line)
        if done:
            self._ended = True
            tail, errors = self._chatter + self._stdout, self._stderr
            self._fail(lambda cmdlet: process_failure(tail, errors, exit_code, cmdlet, self._where))

    def _dispatch(self, line):
        document = read_answer(line)
        if document is None:
            self._chatter = (self._chatter + line + b"\n")[-500:]
            return
        if not self._connected:
            if document.get("id") == CONNECT_ANSWER and document.get("ok"):
                with self._cond:
                    self._connected = True
                    self._cond.notify_all()
            else:
                # Connect-ExchangeOnline failed: every cmdlet gets its words, as it would have on its own connection.
                self._fail(lambda cmdlet: self._raise_answer(document, cmdlet))
            return
        with self._cond:
            request = self._waiting.pop(document.get("id"), None)
        if request is None:
            text = ((document.get("error") or {}).get("message") or "")[:300]
            self._fail(lambda cmdlet: ExchangeError("the management host answered a request this session did not send: %s" % text,
                                                    cmdlet=cmdlet, fatal=True, where=self._where,
                                                    hint="the session's PowerShell script and the client disagree; report it"))
            return
        request.document = document
        request.done.set()

    def _raise_answer(self, document, cmdlet):
        try:
            answer_result(document, cmdlet, self._where)
        except ExchangeError as error:
            return error
        return ExchangeError("Connect-ExchangeOnline did not answer as expected", cmdlet=cmdlet, fatal=True, where=self._where)

    def _fail(self, failure):
        """Every waiting and later request fails with ``failure(cmdlet)`` (the first failure wins)."""
        with self._cond:
            if self._failure is None:
                self._failure = failure
            waiting, self._waiting, self._queue = self._waiting, {}, []
            self._cond.notify_all()
        for request in waiting.values():
            request.failure = self._failure
            request.done.set()

    def _stop(self):
        """Close stdin (the script disconnects and ends), wait a bounded time for the process, close the shell. Best
        effort: a host that cannot be reached now drops the idle shell itself (WinRM's IdleTimeout)."""
        if self.shell_id is None:
            return
        try:
            if self.command_id is not None and not self._ended:
                self.protocol.send_command_input(self.shell_id, self.command_id, b"", end=True)
                deadline = self._clock() + CLOSE_LIMIT
                while not self._ended and self._clock() < deadline:
                    self._receive()
            if self.command_id is not None:
                self.protocol.cleanup_command(self.shell_id, self.command_id)
        except Exception:  # pylint: disable=broad-except
            pass
        try:
            self.protocol.close_shell(self.shell_id)
        except Exception:  # pylint: disable=broad-except
            pass
