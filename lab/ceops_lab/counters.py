"""Request counters, so tests can assert "no writes in check mode" and "N calls per tenant".

Endpoints are counted by template (ids, GUIDs and quoted keys replaced by placeholders), split
into reads (GET/HEAD) and writes (everything else). Faulted requests count like any other
request and are also counted as faults.
"""

import re
import threading
from collections import defaultdict

READ_METHODS = ("GET", "HEAD")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_KEY = re.compile(r"\((\w+)=(?:'(?:[^']|'')*'|%27.*?%27)\)")


def template_path(path, id_after=()):
    """Replace variable parts of a path with placeholders.

    GUID segments become {id}; `name='value'` keys become `name={name}`; a segment that follows
    one of `id_after` (e.g. "appRoleAssignments", whose ids are not GUIDs) becomes {id} too.
    """
    path = path.split("?", 1)[0]
    segments = path.split("/")
    out = []
    for index, segment in enumerate(segments):
        segment = _KEY.sub(lambda m: "(%s={%s})" % (m.group(1), m.group(1)), segment)
        if _GUID.match(segment):
            segment = "{id}"
        elif index and segments[index - 1] in id_after and segment:
            segment = "{id}"
        out.append(segment)
    return "/".join(out)


def _service_bucket():
    return {"reads": defaultdict(int), "writes": defaultdict(int), "faults": defaultdict(int),
            "statuses": defaultdict(int)}


class Counters:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self._services = defaultdict(_service_bucket)
            self._tokens = defaultdict(int)
            self._directories = defaultdict(lambda: defaultdict(lambda: {"reads": 0, "writes": 0, "faults": 0}))

    def record(self, service, method, endpoint, status, directory=None, faulted=False):
        kind = "reads" if method.upper() in READ_METHODS else "writes"
        with self._lock:
            bucket = self._services[service]
            bucket[kind][endpoint] += 1
            bucket["statuses"][str(status)] += 1
            if faulted:
                bucket["faults"][endpoint] += 1
            if directory:
                per_directory = self._directories[directory][service]
                per_directory[kind] += 1
                if faulted:
                    per_directory["faults"] += 1

    def record_token(self, tenant_id, client_id, resource):
        with self._lock:
            self._tokens["%s|%s|%s" % (tenant_id, client_id, resource)] += 1

    def snapshot(self):
        with self._lock:
            services = {}
            for name, bucket in self._services.items():
                reads, writes, faults = dict(bucket["reads"]), dict(bucket["writes"]), dict(bucket["faults"])
                services[name] = {
                    "reads": reads,
                    "writes": writes,
                    "faults": faults,
                    "statuses": dict(bucket["statuses"]),
                    "totals": {"reads": sum(reads.values()), "writes": sum(writes.values()), "faults": sum(faults.values()),
                               "requests": sum(reads.values()) + sum(writes.values())},
                }
            directories = {tid: {svc: dict(v, requests=v["reads"] + v["writes"]) for svc, v in per.items()}
                           for tid, per in self._directories.items()}
            return {"services": services, "tokens": dict(self._tokens), "directories": directories}
