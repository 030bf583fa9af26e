# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The CE Portal administration API (docs/ce-portal-api.yaml), and nothing of it anywhere else.

Paths, field names, status and error codes, paging, revisions, version and capability rules of
the contract live here. Callers speak in records: plain dicts with the keys listed in the
*_FIELDS constants below, which this client maps to and from the Portal's JSON. A Portal release
that names things differently is a change in this file only.

Every failure is an http.ServiceError carrying the Portal's error code, message (with the
offending fields), details, X-Request-Id and a hint saying what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import (
    ServiceError, Transport, describe_body, name_value_problem, path_segment, quote_json, url_problem)

SERVICE = "CE Portal"
API_PREFIX = "/api/v1"
PAGE_LIMIT = 200  # the contract's maximum: fewer round trips on big tenants

# OAuth for receiving mail exists from CE 7.4 CU4 on; sending needs a release with this capability.
OAUTH_MIN_VERSION = (7, 4, 4)
OAUTH_MIN_VERSION_TEXT = "CE 7.4 CU4 (7.4.4)"
CAPABILITY_OAUTH_SEND = "oauth_send_smtp"
# POP3 never supports OAuth in CE.
INBOUND_PROTOCOLS = ("imap", "pop3")
OAUTH_INBOUND_PROTOCOLS = ("imap",)
ENDPOINT_SECURITY = ("ssl", "starttls", "none")
ACTIVE_UPDATE_STATUSES = ("queued", "running")
SUCCEEDED_UPDATE_STATUS = "succeeded"

# Used with fullmatch: "$" would also match before a trailing newline.
TENANT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NAME_MAX_LENGTH = 128

# The keys of the records callers get and give.
ENDPOINT_FIELDS = ("host", "port", "security")
GATEWAY_FIELDS = ("id", "revision", "name", "description", "inbound", "outbound")
OAUTH_SETTINGS_FIELDS = ("id", "revision", "name", "client_id", "scopes", "token_endpoint_url", "client_secret_set",
                         "client_secret_updated_at")
CONNECTION_FIELDS = ("id", "revision", "name", "gateway_id", "oauth_settings_id", "use_oauth_receive", "use_oauth_send")
UPDATE_FIELDS = ("id", "status", "requested_at", "finished_at", "errors")

HINTS_BY_CODE = {
    "name_conflict": "another object in the same scope already has this name (gateways per deployment, OAuth settings and "
                     "email connections per tenant): pick another name or manage the existing object",
    "revision_mismatch": "it was changed in the Portal at the same moment, twice in a row: run the task again",
    "in_use": "an email connection still uses it: remove that connection or point it elsewhere first",
    "tenant_not_found": "the deployment has no tenant of that name: check ce_tenant (the tenant's short code in the Portal)",
    "oauth_not_supported": "CE supports OAuth only on IMAP gateways, and OAuth for sending only from CE 7.6 on",
    "update_in_progress": "another batch update is running: wait for it, then start one again",
}
HINTS_BY_STATUS = {
    400: "fix the value the Portal names",
    401: "the Portal refused the credentials: check ce_token, or ce_username and ce_password, for this deployment",
    403: "the credential may not do this: email gateways need a deployment administrator, and a tenant administrator "
         "may act only on its own tenant",
    404: "not found: check ce_url (the Portal's base URL; /api/v1 is added) and the object's name",
}


# -- pure helpers ---------------------------------------------------------------------------------
PLAIN_HTTP_HINT = ("the Portal token or password, and the OAuth client secret sent to the Portal, would cross the network "
                   "unencrypted: use the Portal's https URL (ce_allow_plain_http=true accepts http, for a lab only)")


def ce_url_problem(ce_url, allow_plain_http=False):
    """Why ``ce_url`` cannot be used, found before any request; None when it can."""
    return url_problem("ce_url", ce_url, allow_http=allow_plain_http, plain_http_hint=PLAIN_HTTP_HINT)


def api_base_url(ce_url):
    """The API root for a Portal base URL; a URL that already ends in /api/v1 is taken as it is."""
    if not ce_url:
        raise ValueError("ce_url is not set")
    problem = ce_url_problem(ce_url, allow_plain_http=True)  # plain http is the module's decision (ce_allow_plain_http)
    if problem:
        raise ValueError(problem)
    base = ce_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX


def parse_version(text):
    """(7, 4, 4) from "7.4.4" or "7.4.4.1234-hotfix"; None when there is no leading number."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text or ""))
    if not match:
        return None
    numbers = tuple(int(part) for part in match.group(1).split("."))
    return (numbers + (0, 0, 0))[:max(3, len(numbers))]


def oauth_problem(info):
    """Why this Portal cannot use OAuth at all, or None."""
    version = parse_version(info.get("version"))
    if version is None or version < OAUTH_MIN_VERSION:
        return ("OAuth requires CE 7.4 CU4 or later (version 7.4.4); this Portal runs CE %s: upgrade the deployment, "
                "or keep basic authentication" % info.get("version"))
    return None


def oauth_send_problem(info):
    """Why this Portal cannot send with OAuth, or None."""
    problem = oauth_problem(info)
    if problem:
        return problem
    if CAPABILITY_OAUTH_SEND not in info.get("capabilities", []):
        return ("sending with OAuth needs a CE release with the capability %s (CE 7.6 or later); this Portal runs CE %s "
                "(capabilities: %s): set use_oauth_send=false, or upgrade the deployment"
                % (CAPABILITY_OAUTH_SEND, info.get("version"), ", ".join(info.get("capabilities") or []) or "none"))
    return None


def protocol_supports_oauth(protocol):
    return protocol in OAUTH_INBOUND_PROTOCOLS


def tenant_name_problem(name):
    if name and TENANT_NAME_RE.fullmatch(name):
        return None
    return ("ce_tenant %r is not a Portal tenant name (the tenant's short code: lowercase letters, digits and '-', "
            "at most 63 characters)" % (name,))


def name_problem(name, what):
    """Why ``name`` cannot name a Portal object, or None; the Portal stores a blank name, or one with spaces around it
    that looks like another object's, as it is given."""
    if not name or len(name) > NAME_MAX_LENGTH:
        return "the %s name must have 1 to %d characters" % (what, NAME_MAX_LENGTH)
    return name_value_problem("the %s name" % what, name)


def oauth_settings_problems(record, client_secret=None, creating=False):
    """What the Portal would refuse in these OAuth settings, found before any request."""
    problems = []
    problem = name_problem(record.get("name"), "OAuth settings")
    if problem:
        problems.append(problem)
    if not GUID_RE.fullmatch(record.get("client_id") or ""):
        problems.append("client_id %r is not a GUID: use the app's Application (client) ID" % (record.get("client_id"),))
    if not record.get("scopes") or not all(record["scopes"]):
        problems.append("scopes must name at least one scope")
    token_url = record.get("token_endpoint_url") or ""
    problem = url_problem("token_endpoint_url", token_url, plain_http_hint="CE sends its client secret there, so it must be an https URL")
    if problem or not token_url:
        problems.append(problem or "token_endpoint_url must be an https URL")
    if creating and not client_secret:
        problems.append("client_secret is required to create OAuth settings (the Portal never returns a stored secret, "
                        "so it cannot be copied from anywhere later)")
    return problems


def gateway_problems(record):
    problems = []
    problem = name_problem(record.get("name"), "email gateway")
    if problem:
        problems.append(problem)
    for side in ("inbound", "outbound"):
        endpoint = record.get(side) or {}
        if not endpoint.get("host"):
            problems.append("%s.host must be set" % side)
        if not 1 <= int(endpoint.get("port") or 0) <= 65535:
            problems.append("%s.port %r must be between 1 and 65535" % (side, endpoint.get("port")))
    return problems


def update_is_active(update):
    return bool(update) and update.get("status") in ACTIVE_UPDATE_STATUSES


def update_succeeded(update):
    return bool(update) and update.get("status") == SUCCEEDED_UPDATE_STATUS


def is_stale_revision(error):
    return isinstance(error, ServiceError) and error.status == 412


def is_name_conflict(error):
    return isinstance(error, ServiceError) and error.status == 409 and error.code == "name_conflict"


def portal_error_parser(response):
    """(code, message, request id, details) of the contract's {"error": {code, message, details}} body.

    The details name the offending fields; they go into the message because that is what a person reads.
    """
    request_id = response.headers.get("X-Request-Id")
    try:
        body = response.json()
    except ValueError:
        return None, describe_body(response), request_id, []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, quote_json(body), request_id, []
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    message = error.get("message") or ""
    if details and error.get("code") != "update_in_progress":
        message += " (%s)" % "; ".join("%s: %s" % (d.get("field"), d.get("message")) for d in details)
    return error.get("code"), message, request_id, details


def _pick(body, fields):
    return dict((name, body.get(name)) for name in fields)


def _endpoint_record(body, with_protocol=False):
    body = body or {}
    record = _pick(body, ENDPOINT_FIELDS)
    if with_protocol:
        record["protocol"] = body.get("protocol")
    return record


def gateway_record(body):
    record = _pick(body, GATEWAY_FIELDS)
    record["inbound"] = _endpoint_record(body.get("inbound"), with_protocol=True)
    record["outbound"] = _endpoint_record(body.get("outbound"))
    return record


def _gateway_body(record):
    body = {"name": record["name"],
            "inbound": dict(_pick(record["inbound"], ENDPOINT_FIELDS), protocol=record["inbound"]["protocol"]),
            "outbound": _pick(record["outbound"], ENDPOINT_FIELDS)}
    if record.get("description") is not None:
        body["description"] = record["description"]
    return body


def oauth_settings_record(body):
    record = _pick(body, OAUTH_SETTINGS_FIELDS)
    record["client_secret_set"] = bool(record["client_secret_set"])
    record["scopes"] = list(record["scopes"] or [])
    return record


def _oauth_settings_body(record, client_secret):
    body = dict((name, record[name]) for name in ("name", "client_id", "scopes", "token_endpoint_url"))
    if client_secret:  # omitted keeps the stored secret
        body["client_secret"] = client_secret
    return body


def connection_record(body):
    record = _pick(body, CONNECTION_FIELDS)
    record["use_oauth_receive"] = bool(record["use_oauth_receive"])
    record["use_oauth_send"] = bool(record["use_oauth_send"])
    return record


def _connection_body(record):
    return dict((name, record.get(name)) for name in ("name", "gateway_id", "oauth_settings_id", "use_oauth_receive", "use_oauth_send"))


def update_record(body):
    record = _pick(body, UPDATE_FIELDS)
    record["errors"] = list(record["errors"] or [])
    return record


def _if_match(record):
    return {"If-Match": '"%s"' % record["revision"]}


def _segment(value):
    return path_segment(value, SERVICE)


# -- the client -----------------------------------------------------------------------------------
class CePortal:
    """One CE deployment's Portal, authenticated with an API token or a Portal administrator's login."""

    def __init__(self, ce_url, token=None, username=None, password=None, ca_path=None, validate_certs=True, timeout=30,
                 transport=None, sleep=time.sleep, clock=time.monotonic):
        self.ce_url = ce_url
        self.base_url = api_base_url(ce_url)
        self.token = token
        self.basic_auth = (username, password) if username and not token else None
        self.transport = transport or Transport(SERVICE, base_url=self.base_url, ca_path=ca_path, validate_certs=validate_certs,
                                                timeout=timeout, error_parser=portal_error_parser)
        self.sleep = sleep
        self.clock = clock
        self._info = None

    # -- plumbing -------------------------------------------------------------------------------
    def _call(self, method, path, expected=(200, 201, 202, 204), **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Accept"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        else:
            kwargs["auth"] = self.basic_auth
        try:
            response = self.transport.request(method, path, expected=expected, headers=headers, **kwargs)
        except ServiceError as error:
            error.service = SERVICE
            error.hint = error.hint or HINTS_BY_CODE.get(error.code) or HINTS_BY_STATUS.get(error.status)
            raise
        if response.status_code == 204 or not response.content:
            return response, None
        try:
            return response, response.json()
        except ValueError:
            raise ServiceError(SERVICE, "the answer is not JSON (%s)" % describe_body(response), status=response.status_code,
                               method=method, url=self.transport.url(path),
                               hint="ce_url must be the CE Portal's base URL, for example https://ce-portal.example.com")

    def _get(self, path, params=None):
        return self._call("GET", path, params=params)[1]

    def _list(self, path, params=None):
        """Every item of a paged list, following next_cursor until it is null."""
        params = dict(params or {}, limit=PAGE_LIMIT)
        items, cursors = [], set()
        while True:
            page = self._get(path, params) or {}
            items.extend(page.get("items") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return items
            if cursor in cursors:  # a Portal bug must not turn into an endless run
                raise ServiceError(SERVICE, "paging of %s repeats cursor %r" % (path, cursor), method="GET", url=self.transport.url(path))
            cursors.add(cursor)
            params = dict(params, cursor=cursor)

    def _find_by_name(self, path, name, to_record):
        # The ?name= filter narrows the list; the exact comparison decides (a filter may match loosely).
        matches = [to_record(item) for item in self._list(path, {"name": name}) if item.get("name") == name]
        return matches[0] if matches else None

    # -- /info ------------------------------------------------------------------------------------
    def info(self):
        """{"version", "capabilities"} of this Portal, read once per client."""
        if self._info is None:
            try:
                body = self._get("info")
            except ServiceError as error:
                if error.status == 404:
                    error.hint = "no CE Portal API at this address: ce_url must be the Portal's base URL (the client adds /api/v1)"
                raise
            if not isinstance(body, dict) or body.get("product") != "CE" or not body.get("version"):
                raise ServiceError(SERVICE, "GET /info did not answer as a CE Portal does", method="GET", url=self.transport.url("info"),
                                   hint="ce_url must be the CE Portal's base URL, for example https://ce-portal.example.com")
            self._info = {"version": str(body["version"]), "capabilities": list(body.get("capabilities") or [])}
        return self._info

    def tenants(self):
        return [item.get("name") for item in self._list("tenants")]

    # -- email gateways (per deployment) ---------------------------------------------------------------
    def find_gateway(self, name):
        return self._find_by_name("email-gateways", name, gateway_record)

    def gateways(self):
        return [gateway_record(item) for item in self._list("email-gateways")]

    def get_gateway(self, gateway_id):
        return gateway_record(self._get("email-gateways/%s" % _segment(gateway_id)))

    def create_gateway(self, record):
        return gateway_record(self._call("POST", "email-gateways", expected=(201,), json=_gateway_body(record))[1])

    def update_gateway(self, current, record):
        return gateway_record(self._call("PUT", "email-gateways/%s" % _segment(current["id"]), expected=(200,),
                                         json=_gateway_body(record), headers=_if_match(current))[1])

    def delete_gateway(self, current):
        self._call("DELETE", "email-gateways/%s" % _segment(current["id"]), expected=(204,), headers=_if_match(current))

    # -- OAuth settings (per tenant) -------------------------------------------------------------------
    def _settings_path(self, tenant, settings_id=None):
        path = "tenants/%s/oauth-settings" % _segment(tenant)
        return path + "/%s" % _segment(settings_id) if settings_id else path

    def find_oauth_settings(self, tenant, name):
        return self._find_by_name(self._settings_path(tenant), name, oauth_settings_record)

    def get_oauth_settings(self, tenant, settings_id):
        return oauth_settings_record(self._get(self._settings_path(tenant, settings_id)))

    def create_oauth_settings(self, tenant, record, client_secret):
        return oauth_settings_record(self._call("POST", self._settings_path(tenant), expected=(201,),
                                                json=_oauth_settings_body(record, client_secret))[1])

    def update_oauth_settings(self, tenant, current, record, client_secret=None):
        """PUT the settings; without client_secret the stored secret is kept."""
        return oauth_settings_record(self._call("PUT", self._settings_path(tenant, current["id"]), expected=(200,),
                                                json=_oauth_settings_body(record, client_secret), headers=_if_match(current))[1])

    def delete_oauth_settings(self, tenant, current):
        self._call("DELETE", self._settings_path(tenant, current["id"]), expected=(204,), headers=_if_match(current))

    # -- email connections (per tenant) ----------------------------------------------------------------
    def _connection_path(self, tenant, connection_id=None):
        path = "tenants/%s/email-connections" % _segment(tenant)
        return path + "/%s" % _segment(connection_id) if connection_id else path

    def find_connection(self, tenant, name):
        return self._find_by_name(self._connection_path(tenant), name, connection_record)

    def connections(self, tenant, gateway_id=None):
        """The tenant's email connections, those on one gateway when ``gateway_id`` is given (checked here too: a filter may
        match loosely)."""
        params = {"gateway_id": gateway_id} if gateway_id else None
        records = [connection_record(item) for item in self._list(self._connection_path(tenant), params)]
        return [r for r in records if not gateway_id or r.get("gateway_id") == gateway_id]

    def get_connection(self, tenant, connection_id):
        return connection_record(self._get(self._connection_path(tenant, connection_id)))

    def create_connection(self, tenant, record):
        return connection_record(self._call("POST", self._connection_path(tenant), expected=(201,), json=_connection_body(record))[1])

    def update_connection(self, tenant, current, record):
        return connection_record(self._call("PUT", self._connection_path(tenant, current["id"]), expected=(200,),
                                            json=_connection_body(record), headers=_if_match(current))[1])

    def delete_connection(self, tenant, current):
        self._call("DELETE", self._connection_path(tenant, current["id"]), expected=(204,), headers=_if_match(current))

    def connection_mailboxes(self, tenant, connection_id):
        """Addresses of the mailboxes CE reads through a connection."""
        return [item.get("address") for item in self._list(self._connection_path(tenant, connection_id) + "/mailboxes")]

    # -- batch updates (per deployment) ----------------------------------------------------------------
    def pending_changes(self):
        """(pending, changes): whether configuration changed since the last successful batch update, and what."""
        body = self._get("server-updates/pending") or {}
        changes = [dict((k, c.get(k)) for k in ("tenant", "kind", "id", "changed_at")) for c in body.get("changes") or []]
        return bool(body.get("pending")), changes

    def active_update(self):
        """The queued or running batch update, or None (the list is newest first; one runs at a time)."""
        page = self._get("server-updates", {"limit": 1}) or {}
        items = page.get("items") or []
        newest = update_record(items[0]) if items else None
        return newest if update_is_active(newest) else None

    def get_update(self, update_id):
        return update_record(self._get("server-updates/%s" % _segment(update_id)))

    def start_update(self):
        """(update, None) when started; (None, id of the running update) when one is already queued or running."""
        try:
            return update_record(self._call("POST", "server-updates", expected=(202,))[1]), None
        except ServiceError as error:
            if error.status == 409 and error.code == "update_in_progress":
                running = next((d.get("message") for d in error.details if d.get("field") == "id"), None)
                if running:
                    return None, running
            raise

    def wait_for_update(self, update_id, deadline, interval=5.0):
        """Poll until the update is finished; return it. Past ``deadline`` (clock value) return it unfinished."""
        while True:
            update = self.get_update(update_id)
            if not update_is_active(update):
                return update
            remaining = deadline - self.clock()
            if remaining <= 0:
                return update
            self.sleep(min(interval, remaining))
