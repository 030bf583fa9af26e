# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One HTTP transport for every remote API the collection talks to.

Timeouts on every request, retries with backoff on throttling (429/503/504, honouring
Retry-After), TLS via ca_path / validate_certs, and one error type that carries what a
person needs to act on a failure: status, the service's error code and message, and its
request id. Service clients pass an error parser because each service nests its error
text differently.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import email.utils
import json
import random
import re
import time
import uuid
from urllib.parse import quote, urlsplit

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._scrub import escape_controls


def _requests(service):
    """The requests library, imported on first use: a module process that sends nothing (the login proof with a cached
    token, in every warm run) spares its import, ~0.06 s of CPU per process (docs/benchmark.md)."""
    try:
        import requests  # pylint: disable=import-outside-toplevel
    except ImportError as exc:  # pragma: no cover - reported by the module
        raise ServiceError(service, "the Python library 'requests' is required: %s" % exc)
    return requests


RETRY_STATUSES = frozenset((429, 503, 504))
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
REQUEST_ID_HEADERS = ("request-id", "x-ms-request-id", "x-request-id", "client-request-id")


class ServiceError(Exception):
    """A remote service refused a request or could not be reached.

    ``status`` is None when no HTTP answer arrived (DNS, refused connection, TLS, timeout).
    """

    def __init__(self, service, message, status=None, code=None, request_id=None,
                 details=None, method=None, url=None, hint=None):
        super(ServiceError, self).__init__(message)
        self.service = service
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details or []
        self.method = method
        self.url = url
        self.hint = hint

    def describe(self):
        """One line for a person: what answered, what it said, its request id, what to do."""
        parts = []
        where = "%s %s" % (self.method, self.url) if self.method and self.url else self.service
        if self.status is not None:
            head = "%s answered HTTP %s" % (where, self.status)
            if self.code:
                head += " %s" % self.code
            parts.append(head + ": %s" % self.message)
        else:
            parts.append("%s failed: %s" % (where, self.message))
        if self.request_id:
            parts.append("request id %s" % self.request_id)
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)

    def __str__(self):
        return self.describe()


# How much of a service's text a message quotes: an error message is short, a page or a body of unknown shape is
# described, never pasted (it may be a whole HTML page, or echo the request with its credentials).
MESSAGE_LIMIT = 1000
QUOTE_LIMIT = 300
LINE_LIMIT = 160
# Text that is not a message: NUL and the other C0 controls but tab, line feed and carriage return.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def cap(text, limit):
    """``text`` cut to ``limit`` characters at a space (never inside a word, which could be part of a secret), saying
    how much was left out."""
    text = (text or "").strip()
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit + 1)
    kept = text[:space].rstrip() if space > 0 else ""
    return "%s[... %d more characters]" % (kept + " " if kept else "", len(text) - len(kept))


def _body_bytes(response):
    content = getattr(response, "content", None)
    if isinstance(content, bytes):
        return content
    return (getattr(response, "text", None) or "").encode("utf-8")


def describe_body(response):
    """An answer that is not the JSON expected, in a few words: its content type, size and first line."""
    content = _body_bytes(response)
    content_type = ((getattr(response, "headers", None) or {}).get("Content-Type") or "no content type").split(";")[0].strip()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.strip():
        return "empty body"
    if text is None or _BINARY.search(text):
        return "binary body of %d bytes (%s)" % (len(content), content_type)
    first_line = next(line for line in text.splitlines() if line.strip())
    return "%s body of %d bytes, first line: %s" % (content_type, len(content), cap(first_line, LINE_LIMIT))


def quote_json(body):
    """A JSON body of unexpected shape, capped."""
    return cap(json.dumps(body), QUOTE_LIMIT)


def default_error_parser(response):
    """Return (code, message, request_id, details) from a JSON error body of unknown shape."""
    try:
        body = response.json()
    except ValueError:
        return None, describe_body(response), None, []
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("code"), error.get("message", ""), None, error.get("details") or []
    if isinstance(error, str):
        return error, body.get("error_description", error), None, []
    return None, quote_json(body), None, []


# -- URLs we are given, and links we are handed ----------------------------------------------------------------------
DEFAULT_PORTS = {"https": 443, "http": 80}
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f]")
_CONTROL_IN_VALUE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def error_object(response):
    """(the error object, None) of a JSON body {"error": {...}} (Graph's and Exchange's shape), else (None, what an error
    parser answers for a body without one: its description)."""
    try:
        body = response.json()
    except ValueError:
        return None, (None, describe_body(response), None, [])
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, (None, quote_json(body), None, [])
    return error, None


def shown_url(url):
    """``url`` as a message may show it: without query, fragment, or what stands before an @ in its authority (a user
    name and password), even when it is not a well-formed URL."""
    text = _UNSAFE_IN_URL.sub("?", re.split(r"[?#]", url or "", maxsplit=1)[0])
    scheme, slashes, rest = text.partition("//")
    if not slashes:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "<credentials>@" + authority.rpartition("@")[2]
    return scheme + slashes + authority + slash + path


def url_problem(option, url, allow_http=False, plain_http_hint=None):
    """Why ``url`` cannot be the base URL in ``option``, or None. Never repeats a user name or password it holds.

    Refused: control characters or spaces; a user name or password (user:password@host), which requests would send as
    Basic authentication instead of ours and every message would print; a query string or fragment, which would end up
    in the middle of every URL built on it; anything but https, unless ``allow_http``.
    """
    if not url:
        return None
    if _UNSAFE_IN_URL.search(url):
        return "%s contains spaces or control characters: give the URL alone, such as https://host.example.com" % option
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "%s %s is not a URL (its host or port cannot be read)" % (option, shown_url(url))
    shown = shown_url(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return "%s %s is not a URL such as https://host.example.com" % (option, shown)
    if "@" in parts.netloc:
        return ("%s %s carries a user name or password before the host (user:password@), which is never used and never shown: "
                "give the credentials in their own options, and the URL without them" % (option, shown))
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        return ("%s %s has a query string or fragment (?... or #...), which would end up in the middle of every request's URL: "
                "give the base URL only" % (option, shown))
    if scheme == "http" and not allow_http:
        return "%s %s is not https: %s" % (option, shown, plain_http_hint or "use the https URL")
    if port == 0:
        return "%s %s has port 0: give a port between 1 and 65535, or none" % (option, shown)
    return None


def path_segment(value, service, keep=""):
    """``value`` for one segment of a URL path: percent-encoded, so that / ? # % in it cannot address another object or
    end the path, and refused (no request is sent) when it holds control characters, which no object name holds.
    ``keep`` lists characters the segment's own syntax needs as they are (the quotes of an OData key)."""
    text = str(value)
    if _CONTROL_IN_VALUE.search(text):
        raise ServiceError(service, "%s contains control characters, which no object name holds: nothing was sent" % ascii(text))
    return quote(text, safe=keep)


# Seconds to wait for one HTTP answer (the timeout option of every module): 0 or less cannot work, and a peer silent
# for more than 10 minutes is gone; long work (a batch update) is polled, never awaited in one request.
TIMEOUT_RANGE = (1, 600)


def range_problem(option, value, low, high, unit=""):
    """Why ``value`` of ``option`` is outside [low, high], naming the range, or None (None values are not given)."""
    if value is None or low <= value <= high:
        return None
    return "%s must be between %s and %s%s, not %s" % (option, low, high, (" " + unit) if unit else "", value)


def name_value_problem(what, value):
    """Why ``value`` cannot name an object, or None: nothing but spaces, spaces around it (a second object that looks like
    the first), or control characters. ``what`` names it in the message, e.g. "the email gateway name"."""
    if not value.strip():
        return "%s %r is empty or only spaces: give a name a person can tell apart" % (what, value)
    if value != value.strip():
        return "%s %r begins or ends with spaces, which would be kept: remove them" % (what, value)
    if _CONTROL_IN_VALUE.search(value):
        return "%s %s contains control characters" % (what, ascii(value))
    return None


def timeout_problem(timeout):
    return range_problem("timeout", timeout, TIMEOUT_RANGE[0], TIMEOUT_RANGE[1], "seconds (the wait for each HTTP answer)")


def origin(url):
    """(scheme, host, port) of an absolute URL, the port made explicit; None for a relative one."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def foreign_link_problem(link, endpoint, what):
    """Why a link a service handed us (a next page) must not be followed with our credentials, or None: only a link to
    the configured endpoint's scheme, host and port is; a relative one is joined to the endpoint."""
    try:
        found, expected = origin(link), origin(endpoint)
    except ValueError:
        return "%s is not a URL that can be read" % what
    if found is None or found == expected:
        return None
    return ("%s points to %s://%s:%s, not to the configured endpoint %s://%s:%s: it is not followed, since the request would "
            "carry our token there" % ((what,) + found + expected))


def retry_after_seconds(value, now=None):
    """Parse Retry-After (delta-seconds or an HTTP date); None when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def backoff_delay(attempt, retry_after=None, base=0.5, cap=30.0, rand=random.random):
    """Seconds to wait before retry number ``attempt`` (1-based).

    The server's Retry-After wins (capped, so a broken header cannot stall a run for hours);
    otherwise exponential backoff with full jitter, so parallel forks do not retry in lockstep.
    """
    if retry_after is not None:
        return min(cap, retry_after)
    return min(cap, base * (2 ** (attempt - 1))) * (0.5 + rand() / 2)


def retry_while(transient, call, delays, sleep):
    """``call()``, repeated after each of ``delays`` (seconds) while it raises a ServiceError that ``transient`` says is
    the service catching up (eventual consistency: an object created moments ago not found yet), then once more."""
    for delay in delays:
        try:
            return call()
        except ServiceError as error:
            if not transient(error):
                raise
        sleep(delay)
    return call()


class Transport:
    """A requests session bound to one service, with the retry and TLS policy above."""

    def __init__(self, service, base_url=None, ca_path=None, validate_certs=True, timeout=30,
                 max_retries=5, connect_retries=2, backoff_cap=30.0, error_parser=None, user_agent=None, sleep=time.sleep):
        self.service = service
        self.base_url = base_url.rstrip("/") if base_url else None
        # Passing verify on each request keeps a private CA in force: requests lets
        # REQUESTS_CA_BUNDLE override a Session-level verify, but not a per-request one.
        self.verify = ca_path if ca_path else bool(validate_certs)
        self.timeout = (min(10.0, float(timeout)), float(timeout))
        self.max_retries = max_retries
        # A refused or dropped connection is usually a wrong URL or a host that is down: a couple
        # of quick retries cover a blip without making the operator wait a minute for the verdict.
        self.connect_retries = connect_retries
        self.backoff_cap = backoff_cap
        self.error_parser = error_parser or default_error_parser
        self.sleep = sleep
        self.user_agent = user_agent or "ceops.exchange_oauth"
        self._session = None
        self.stats = {"requests": 0, "retries": 0}

    @property
    def session(self):
        if self._session is None:
            self._session = _requests(self.service).Session()
            self._session.headers["User-Agent"] = self.user_agent
        return self._session

    @session.setter
    def session(self, value):
        self._session = value

    def close(self):
        if self._session is not None:
            self._session.close()

    def url(self, path_or_url):
        if path_or_url.startswith("https://") or path_or_url.startswith("http://"):
            return path_or_url
        return "%s/%s" % (self.base_url, path_or_url.lstrip("/"))

    def send(self, method, path_or_url, **kwargs):
        """Send with retries; return the final response whatever its status."""
        method = method.upper()
        url = self.url(path_or_url)
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("client-request-id", str(uuid.uuid4()))
        kwargs.setdefault("timeout", self.timeout)
        kwargs["verify"] = self.verify
        session = self.session
        requests = _requests(self.service)
        attempt = 0
        connect_failures = 0
        while True:
            attempt += 1
            self.stats["requests"] += 1
            try:
                response = session.request(method, url, headers=headers, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise ServiceError(self.service, "TLS verification failed: %s" % _first_line(exc), method=method, url=url,
                                   hint="check ca_path (the CA that signed this endpoint's certificate) or the endpoint URL")
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                # A POST that may have reached the server is not repeated: it could create twice.
                safe = method in IDEMPOTENT_METHODS or isinstance(exc, requests.exceptions.ConnectTimeout)
                connect_failures += 1
                if safe and connect_failures <= self.connect_retries:
                    self.stats["retries"] += 1
                    self.sleep(backoff_delay(connect_failures, cap=self.backoff_cap))
                    continue
                raise ServiceError(self.service, "no answer: %s" % _first_line(exc), method=method, url=url,
                                   hint="check that the endpoint URL is right and reachable from this host (timeout %ss)" % self.timeout[1])
            if self.should_retry(method, response.status_code) and attempt <= self.max_retries:
                self.stats["retries"] += 1
                self.sleep(backoff_delay(attempt, retry_after_seconds(response.headers.get("Retry-After")), cap=self.backoff_cap))
                continue
            return response

    @staticmethod
    def should_retry(method, status):
        """429 and 503 mean the service turned the request away before doing it: any method may be sent again.
        A 504 is a gateway that gave up waiting, while the service may still have done the work: only a request
        that cannot do it twice (an idempotent method) is repeated; a POST that creates would risk a duplicate."""
        if status == 504:
            return method in IDEMPOTENT_METHODS
        return status in RETRY_STATUSES

    def request(self, method, path_or_url, expected=(200, 201, 202, 204), **kwargs):
        """Send with retries; raise ServiceError unless the status is expected."""
        response = self.send(method, path_or_url, **kwargs)
        if response.status_code not in expected:
            raise self.error_from(response)
        return response

    def error_from(self, response):
        code, message, request_id, details = self.error_parser(response)
        if not request_id:
            request_id = next((response.headers.get(h) for h in REQUEST_ID_HEADERS if response.headers.get(h)), None)
        hint = None
        method = response.request.method if response.request else None
        if response.status_code == 504 and method not in IDEMPOTENT_METHODS:
            hint = ("the gateway timed out and the service may have done it all the same, so it was not sent again; "
                    "run again: the task reads what exists before it creates anything")
        elif response.status_code in RETRY_STATUSES:
            hint = "the service kept throttling after %d retries; run again later or with fewer forks" % self.max_retries
        if message is not None and not isinstance(message, str):
            message = json.dumps(message)
        # What a service says goes into messages and logs: capped, and never with control characters in it.
        message = escape_controls(cap(message, MESSAGE_LIMIT))
        return ServiceError(self.service, message or response.reason or "error", status=response.status_code, code=code,
                            request_id=request_id, details=details, method=response.request.method if response.request else None,
                            url=_strip_query(response.url), hint=hint)


def _first_line(exc):
    text = str(exc)
    return text.splitlines()[0] if text else exc.__class__.__name__


def _strip_query(url):
    # Query strings can carry filters with customer names; the path is enough to locate the call.
    return url.split("?", 1)[0] if url else url
