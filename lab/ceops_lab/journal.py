"""The write journal: one entry per write request the lab answered (Graph, Exchange cmdlets that write over REST or
WinRM, CE Portal POST/PUT/DELETE), with the objects it addressed or changed and their provenance tag.

A service says what a request did to which object with note(kind, id, provenance, action) while it handles the
request; Lab.dispatch collects those notes per request (thread-local: each request runs in its own thread) and files
the entry once the answer is sent. note() outside a collecting request (seeding, admin shortcuts, a CE Portal state
machine used in-process by unit tests) does nothing.

Entry: {seq, time, service, directory (Microsoft tenant id) | deployment + ce_tenant (CE), method, endpoint (the
counter template, e.g. "POST /v1.0/applications/{id}/addPassword", "POST InvokeCommand Add-MailboxPermission",
"PUT /atlas/api/v1/tenants/{tenant}/oauth-settings/{id}"), status, faulted, request_id, objects}; each object is
{kind, id, provenance ("hand-made", "foreign" or null for objects created during the run), action ("addressed",
"created", "changed", "deleted"), fields?} where fields names (never values) what a change set. Objects a request
refused to change are still listed, as "addressed".
"""

import collections
import datetime
import threading

ACTIONS = ("addressed", "changed", "created", "deleted")  # weakest first: a later, stronger note wins
LIMIT = 50000  # entries kept (oldest dropped first; `dropped` says how many)

_local = threading.local()


def note(kind, object_id, provenance, action, fields=None, **details):
    """Record that the current request addressed or changed an object (no-op outside a collecting request)."""
    notes = getattr(_local, "notes", None)
    if notes is None:
        return
    key = (kind, str(object_id))
    current = notes.get(key)
    if current is None:
        current = dict(details, kind=kind, id=str(object_id), provenance=provenance, action=action)
        notes[key] = current
    elif ACTIONS.index(action) > ACTIONS.index(current["action"]):
        current["action"] = action
    if provenance is not None and current.get("provenance") is None:
        current["provenance"] = provenance
    if fields:
        current["fields"] = sorted(set(current.get("fields") or []) | set(fields))


def begin():
    """Start collecting notes for the request this thread handles."""
    _local.notes = {}


def end():
    """Stop collecting; the notes of the request, in the order their objects were first noted."""
    notes = getattr(_local, "notes", None)
    _local.notes = None
    return list((notes or {}).values())


def take():
    """The notes so far, and collect afresh (WinRM runs several cmdlets inside one WS-Management request); [] and no
    collecting outside a collecting request."""
    if getattr(_local, "notes", None) is None:
        return []
    notes = end()
    begin()
    return notes


class Journal:
    def __init__(self, limit=LIMIT):
        self._lock = threading.Lock()
        self._limit = limit
        self.reset()

    def reset(self):
        with self._lock:
            self._entries = collections.deque(maxlen=self._limit)
            self._seq = 0
            self._dropped = 0

    def record(self, service, method, endpoint, status, objects, directory=None, deployment=None, ce_tenant=None,
               faulted=False, request_id=None):
        with self._lock:
            self._seq += 1
            if len(self._entries) == self._limit:
                self._dropped += 1
            entry = {"seq": self._seq, "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                     "service": service, "directory": directory, "deployment": deployment, "ce_tenant": ce_tenant,
                     "method": method, "endpoint": endpoint, "status": status, "faulted": bool(faulted),
                     "request_id": request_id, "objects": [dict(o) for o in objects or []]}
            self._entries.append(entry)
            return entry

    def snapshot(self, since=0, service=None):
        with self._lock:
            entries = [dict(e, objects=[dict(o) for o in e["objects"]]) for e in self._entries
                       if e["seq"] > since and (service is None or e["service"] == service)]
            return {"entries": entries, "last_seq": self._seq, "dropped": self._dropped}
