"""Fault injection: throttling (429), unavailability (503), latency, forced paging and a
consistency window, per service or for all ("*"), plus deterministic one-shot answers (fail_next: matched by method,
path and body, answering any status with any JSON body, 200 included), and
interruptions of the client (kill_client): when the Nth request matching an endpoint has been
answered, the lab signals the client's process tree, as if the AWX job's pod died right there. The service's state is untouched: the request was fully handled and answered.
echo_request makes a service quote the request it answers with an error in that error's message: method, path and
query, every header as the client sent it (Authorization included) and the body as sent (form or JSON). Some services
and proxies do this; a client must not pass the echo on with the credentials in it.
A barrier holds the first `parties` requests matching an endpoint until all of them have arrived (or a
timeout passed), so two clients are at the same step at the same time: latency, nothing else.

Random faults draw from a random.Random seeded per service, so a test that sets `seed` gets the
same sequence of faults for the same sequence of requests.
"""

import base64
import random
import re
import threading

OPTIONS = ("rate_429", "rate_503", "seed", "retry_after", "latency_ms", "jitter_ms", "consistency_window", "page_size", "fail_next",
           "kill_client", "barrier", "echo_request")
# Signals a kill_client rule may send: an AWX cancel (TERM), Ctrl-C (INT), a lost pod or host (KILL).
KILL_SIGNALS = {"TERM": 15, "INT": 2, "KILL": 9}
_UNSET = object()


class FaultError(ValueError):
    """An invalid fault setting; the message names it."""


def _check(options):
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise FaultError("unknown fault option(s): %s (known: %s)" % (", ".join(unknown), ", ".join(OPTIONS)))
    for name in ("rate_429", "rate_503"):
        if name in options and options[name] is not None and not 0.0 <= float(options[name]) <= 1.0:
            raise FaultError("%s must be a probability between 0 and 1" % name)
    for name in ("latency_ms", "jitter_ms", "consistency_window", "retry_after"):
        if name in options and options[name] is not None and float(options[name]) < 0:
            raise FaultError("%s must not be negative" % name)
    if options.get("page_size") is not None and int(options["page_size"]) < 1:
        raise FaultError("page_size must be at least 1")
    if options.get("echo_request") is not None and not isinstance(options["echo_request"], bool):
        raise FaultError("echo_request must be true or false")
    rules = options.get("fail_next")
    if rules is not None:
        if not isinstance(rules, list):
            raise FaultError("fail_next must be a list of rules")
        for rule in rules:
            if not isinstance(rule, dict) or "status" not in rule:
                raise FaultError("each fail_next rule needs at least a status")
            _check_fail_next_rule(rule)
    if options.get("barrier") is not None:
        _check_barriers(options["barrier"])
    kills = options.get("kill_client")
    if kills is not None:
        if not isinstance(kills, list):
            raise FaultError("kill_client must be a list of rules")
        for rule in kills:
            if not isinstance(rule, dict) or not isinstance(rule.get("pid"), int) or rule["pid"] <= 1:
                raise FaultError("each kill_client rule needs pid, the process id of the client to interrupt (> 1)")
            if str(rule.get("signal", "KILL")).upper() not in KILL_SIGNALS:
                raise FaultError("kill_client signal must be one of %s" % ", ".join(KILL_SIGNALS))
            if int(rule.get("after", 1)) < 1:
                raise FaultError("kill_client after must be at least 1")
            try:
                re.compile(rule.get("endpoint_regex") or "")
            except re.error as exc:
                raise FaultError("bad endpoint_regex %r: %s" % (rule.get("endpoint_regex"), exc)) from exc


def _check_fail_next_rule(rule):
    """A fail_next rule: path_regex and body_regex must compile; status is any HTTP status, 200 included (an answer
    instead of a failure: a lookup that returns an unexpected object), and body, when given, is the JSON to answer."""
    for name in ("path_regex", "body_regex"):
        try:
            re.compile(rule.get(name) or "")
        except re.error as exc:
            raise FaultError("bad %s %r: %s" % (name, rule.get(name), exc)) from exc
    if "body_base64" in rule:
        try:
            base64.b64decode(rule["body_base64"], validate=True)
        except (TypeError, ValueError) as exc:
            raise FaultError("body_base64 is not base64: %s" % exc) from exc
    try:
        status = int(rule["status"])
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        raise FaultError("fail_next status must be an HTTP status between 100 and 599, not %r" % rule["status"])


def _rule_matches(rule, method, path, body):
    wanted_method = (rule.get("method") or "*").upper()
    if wanted_method not in ("*", method.upper()) or not re.search(rule.get("path_regex") or "", path):
        return False
    # body_regex is searched in the raw request body (bytes as UTF-8, undecodable bytes replaced), so a rule can pick
    # one Exchange InvokeCommand by its cmdlet and parameters: '"CmdletName":\\s*"Get-ServicePrincipal"'.
    return not rule.get("body_regex") or re.search(rule["body_regex"], (body or b"").decode("utf-8", "replace")) is not None


def _check_barriers(rules):
    if not isinstance(rules, list):
        raise FaultError("barrier must be a list of rules")
    for rule in rules:
        if not isinstance(rule, dict) or int(rule.get("parties", 2)) < 2:
            raise FaultError("each barrier rule needs parties >= 2")
        if not 0 < float(rule.get("timeout", 60)) <= 600:
            raise FaultError("barrier timeout must be between 0 and 600 seconds")
        try:
            re.compile(rule.get("endpoint_regex") or "")
        except re.error as exc:
            raise FaultError("bad endpoint_regex %r: %s" % (rule.get("endpoint_regex"), exc)) from exc


class Faults:
    """Per-service fault settings. `defaults` are the start options (--latency-ms,
    --consistency-window): clear() returns to them, not to zero."""

    def __init__(self, defaults=None):
        self._lock = threading.Lock()
        self._defaults = dict(defaults or {})
        self._settings = {}
        self._random = {}
        self._barrier_changed = threading.Condition(self._lock)
        self.clear()

    def clear(self, service=None):
        with self._lock:
            if service in (None, "*"):
                self._settings = {"*": dict(self._defaults)}
                self._random = {}
            else:
                self._settings.pop(service, None)
                self._random.pop(service, None)

    def set(self, service, **options):
        """Merge options into a service's settings; returns that service's settings."""
        _check(options)
        with self._lock:
            current = self._settings.setdefault(service, {})
            for name, value in options.items():
                if name == "fail_next":
                    rules = [dict(rule, count=int(rule.get("count", 1))) for rule in value or []]
                    current["fail_next"] = current.get("fail_next", []) + rules
                elif name == "barrier":
                    rules = [{"endpoint_regex": rule.get("endpoint_regex") or "", "parties": int(rule.get("parties", 2)),
                              "timeout": float(rule.get("timeout", 60)), "arrived": 0, "met": None} for rule in value or []]
                    current["barrier"] = current.get("barrier", []) + rules
                elif name == "kill_client":
                    rules = [dict(rule, after=int(rule.get("after", 1)), seen=0, signal=str(rule.get("signal", "KILL")).upper())
                             for rule in value or []]
                    current["kill_client"] = current.get("kill_client", []) + rules
                else:
                    current[name] = value
            if "seed" in options or service not in self._random:
                self._random[service] = random.Random(current.get("seed"))
            return dict(current)

    def snapshot(self):
        with self._lock:
            return {service: dict(settings) for service, settings in self._settings.items()}

    def option(self, service, name, default=None):
        """A service's setting, falling back to "*" and then to `default`."""
        with self._lock:
            for key in (service, "*"):
                settings = self._settings.get(key, {})
                if settings.get(name) is not None:
                    return settings[name]
            return default

    def _has(self, service, name):
        settings = self._settings.get(service, {})
        return name in settings

    def retry_after(self, service):
        """Seconds for Retry-After, or None when a test asked for no header (retry_after: null)."""
        with self._lock:
            for key in (service, "*"):
                if self._has(key, "retry_after"):
                    return self._settings[key]["retry_after"]
        return 1

    def latency_seconds(self, service):
        latency = float(self.option(service, "latency_ms", 0) or 0)
        jitter = float(self.option(service, "jitter_ms", 0) or 0)
        if jitter:
            with self._lock:
                rng = self._random.setdefault(service, random.Random(None))
                latency += rng.uniform(0, jitter)
        return latency / 1000.0

    def pick(self, service, method, path, body=b""):
        """The fault for this request, if any: {"status", "retry_after", "body"?} or None.
        One-shot rules (fail_next) come first, then the random rates. A rule with a status below 400 answers instead of
        failing; it gets a Retry-After header only when the rule sets retry_after."""
        with self._lock:
            for key in (service, "*"):
                rules = self._settings.get(key, {}).get("fail_next") or []
                for rule in rules:
                    if not _rule_matches(rule, method, path, body):
                        continue
                    rule["count"] -= 1
                    if rule["count"] <= 0:
                        rules.remove(rule)
                    fault = {"status": int(rule["status"])}
                    fault["retry_after"] = rule["retry_after"] if "retry_after" in rule else (_UNSET if fault["status"] >= 400 else None)
                    if "body" in rule:
                        fault["body"] = rule["body"]
                    if "body_base64" in rule:
                        # Bytes as they are (a proxy's binary error page, NUL bytes): not JSON.
                        fault["raw_body"] = base64.b64decode(rule["body_base64"])
                        fault["content_type"] = rule.get("content_type") or "application/octet-stream"
                    return fault
            rate_429 = rate_503 = 0.0
            for key in ("*", service):  # the service's own rate wins over "*"
                settings = self._settings.get(key, {})
                if settings.get("rate_429") is not None:
                    rate_429 = float(settings["rate_429"])
                if settings.get("rate_503") is not None:
                    rate_503 = float(settings["rate_503"])
            if not rate_429 and not rate_503:
                return None
            seed = self._settings.get(service, {}).get("seed", self._settings.get("*", {}).get("seed"))
            rng = self._random.setdefault(service, random.Random(seed))
            draw = rng.random()
        if draw < rate_429:
            return {"status": 429, "retry_after": _UNSET}
        if draw < rate_429 + rate_503:
            return {"status": 503, "retry_after": _UNSET}
        return None

    def kill_due(self, service, endpoint):
        """[(pid, signal number)] of kill_client rules whose Nth matching request this one was.

        `endpoint` is the request's counter template ("POST /v1.0/servicePrincipals",
        "POST InvokeCommand Add-MailboxPermission"), so cmdlets are matched by name. A rule fires once;
        it is then kept, marked fired, so a test can see where its client was stopped."""
        due = []
        with self._lock:
            for key in (service, "*"):
                for rule in self._settings.get(key, {}).get("kill_client") or []:
                    if rule.get("fired") or not re.search(rule.get("endpoint_regex") or "", endpoint):
                        continue
                    rule["seen"] += 1
                    if rule["seen"] >= rule["after"]:
                        rule["fired"] = "%s %s" % (service, endpoint)
                        due.append((rule["pid"], KILL_SIGNALS[rule["signal"]]))
        return due

    def has_open_barrier(self):
        with self._lock:
            return any(rule["met"] is None for settings in self._settings.values() for rule in settings.get("barrier") or [])

    def wait_at_barrier(self, service, endpoint):
        """Hold this request while a barrier it matches waits for more parties; True when one held it."""
        with self._lock:
            rule = next((r for key in (service, "*") for r in self._settings.get(key, {}).get("barrier") or []
                         if r["met"] is None and re.search(r["endpoint_regex"], endpoint)), None)
            if rule is None:
                return False
            rule["arrived"] += 1
            if rule["arrived"] >= rule["parties"]:
                rule["met"] = True
                self._barrier_changed.notify_all()
                return True
            condition = self._barrier_changed
            if not condition.wait_for(lambda: rule["met"] is not None, timeout=rule["timeout"]):
                rule["met"] = False  # the others never came: let every held request go, and say so
                condition.notify_all()
            return True

    def echo(self, service, request, message):
        """An error ``message`` as the service words it, followed by the request when echo_request is set for it."""
        if not self.option(service, "echo_request"):
            return message
        headers = "; ".join("%s: %s" % (name, value) for name, value in request.headers.items())
        query = "?" + request.query_string if request.query_string else ""
        return "%s (request was: %s %s%s; headers: %s; body: %s)" % (
            message, request.method, request.raw_path, query, headers, request.body.decode("utf-8", "replace"))

    def resolve_retry_after(self, service, fault):
        value = fault.get("retry_after", _UNSET)
        if value is _UNSET:
            return self.retry_after(service)
        return value
