"""What every emulated service is made of: the Request it sees, the Response it answers, and the Service base
class. server.py (the Lab that binds and dispatches) and every service module import this module; it imports
neither of them, so the service modules and server.py do not import each other.
"""

import json
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

from .counters import template_path

class Request:
    """What a service sees of an HTTP request."""

    def __init__(self, service, method, raw_path, headers, body, base_url):
        parts = urlsplit(raw_path)
        self.service = service
        self.method = method.upper()
        self.raw_path = parts.path
        self.path = unquote(parts.path)
        self.query_string = parts.query
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.base_url = base_url
        self.request_id = str(uuid.uuid4())
        self.client_request_id = headers.get("client-request-id")
        # Set by a service when it knows which directory the request belongs to (for counters).
        self.directory = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        """The JSON body; raises ValueError when it is not JSON."""
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def form(self):
        """An application/x-www-form-urlencoded body as {name: first value}."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


class Response:
    def __init__(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if body or status not in (204, 304):
            self.headers.setdefault("Content-Type", content_type)

    @classmethod
    def json(cls, status, obj, headers=None, content_type="application/json; charset=utf-8"):
        return cls(status, json.dumps(obj).encode("utf-8"), headers, content_type)

    @classmethod
    def empty(cls, status=204, headers=None):
        return cls(status, b"", headers)


class Service:
    """Base of an emulated service. Subclasses set `name` and implement handle()."""

    name = None
    # False for services that must stay reliable whatever a test injects (the admin API).
    faultable = True
    # Path segments whose following segment is an id even when it is not a GUID (counter templates).
    id_segments = ()
    # False for a service that speaks another protocol on its own loopback port (IMAP, SMTP): the Lab
    # then calls start() in bind() (which sets self.url) and stop() when it stops, instead of
    # binding an HTTPS server for it; lab.json lists it under "listeners", not "services".
    http = True
    # True for services whose write requests change the emulated world (Graph, Exchange, the CE Portal): Lab.dispatch
    # files each such request in the write journal (journal.py) with the objects the service noted.
    journaled = False

    def __init__(self, lab):
        self.lab = lab
        self.url = None

    def handle(self, request):
        raise NotImplementedError

    def endpoint(self, request):
        return "%s %s" % (request.method, template_path(request.raw_path, self.id_segments))

    def directory_of(self, request):
        """Tenant id the request belongs to, for per-directory counters; None if unknown."""
        return request.directory

    def journal_scope(self, directory):
        """Where a journaled request belongs, from directory_of(): {"directory": tenant id} (the CE Portal overrides)."""
        return {"directory": directory}

    def counted_method(self, request):
        """The method the counters classify a request by (GET/HEAD = read): RPC-style services
        (Exchange's InvokeCommand, WS-Management) count a POST that only reads as a read."""
        return request.method

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        return Response.json(status, {"error": "injected fault", "status": status}, headers)

    def error_response(self, request, exc):
        """An unexpected exception inside the service: a 500 in the service's own error shape."""
        return self.fault_response(request, 500, None)

    def snapshot(self):
        return {}

    def reset(self):
        """Back to the seed (POST /reset), for services that keep state outside lab.world."""

    def ansible_vars(self):
        """Variables this service contributes to lab-vars.yml."""
        return {}

    def env_vars(self):
        return {}

    def directory_vars(self, entry):
        """Variables this service adds to lab_directories.<name> (entry: the directory's seed entry)."""
        return {}

    def start(self):
        """Start listening (services with http = False); raise to abort the lab's start."""

    def stop(self):
        """Stop listening and end child processes (services with http = False)."""
