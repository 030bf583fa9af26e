"""CE Portal administration API ("ce"), after reference/ce-portal-api.yaml: one HTTPS server hosts
several CE deployments by path prefix, https://127.0.0.1:<port>/<deployment>/api/v1/...

Authentication is a bearer API token or HTTP Basic, per deployment: the deployment administrator
may do everything in its deployment, a tenant administrator reads the deployment-wide lists
(info, its own tenant, email gateways, server updates), writes only its own tenant and may start
batch updates. Every write becomes pending configuration that a batch update applies after
`update_seconds` (per-deployment lab setting); /state/ce shows both the configured and the
applied configuration. Errors always have the contract's {"error": {code, message, details}} body
and every response carries X-Request-Id.

Lab-only extras live under the admin API, /services/ce/... (see admin()).
"""

import base64
import binascii
import copy
import hmac
import re
import threading
from urllib.parse import quote

from .ce_portal_state import (KNOWN_CAPABILITIES, SETTING_DEFAULTS, TENANT_NAME, Deployment, PortalError, capabilities_for, load_ce_seed,
                              make_credentials, not_found, paginate, parse_version, resolve_secret_refs, validation_failed)
from .service import Response, Service

PREFIX = re.compile(r"^/(?P<deployment>[^/]+)/api/v1(?P<rest>/.*)?$")
# (pattern of the path below /api/v1, counter template, {method: handler name})
ROUTES = [
    (r"/info", "/info", {"GET": "get_info"}),
    (r"/tenants", "/tenants", {"GET": "list_tenants"}),
    (r"/email-gateways", "/email-gateways", {"GET": "list_gateways", "POST": "create_gateway"}),
    (r"/email-gateways/(?P<id>[^/]+)", "/email-gateways/{id}", {"GET": "get_gateway", "PUT": "put_gateway", "DELETE": "delete_gateway"}),
    (r"/tenants/(?P<tenant>[^/]+)/oauth-settings", "/tenants/{tenant}/oauth-settings", {"GET": "list_oauth", "POST": "create_oauth"}),
    (r"/tenants/(?P<tenant>[^/]+)/oauth-settings/(?P<id>[^/]+)", "/tenants/{tenant}/oauth-settings/{id}",
     {"GET": "get_oauth", "PUT": "put_oauth", "DELETE": "delete_oauth"}),
    (r"/tenants/(?P<tenant>[^/]+)/email-connections", "/tenants/{tenant}/email-connections", {"GET": "list_connections", "POST": "create_connection"}),
    (r"/tenants/(?P<tenant>[^/]+)/email-connections/(?P<id>[^/]+)", "/tenants/{tenant}/email-connections/{id}",
     {"GET": "get_connection", "PUT": "put_connection", "DELETE": "delete_connection"}),
    (r"/tenants/(?P<tenant>[^/]+)/email-connections/(?P<id>[^/]+)/mailboxes", "/tenants/{tenant}/email-connections/{id}/mailboxes",
     {"GET": "list_mailboxes"}),
    (r"/server-updates", "/server-updates", {"GET": "list_updates", "POST": "start_update"}),
    (r"/server-updates/pending", "/server-updates/pending", {"GET": "get_pending"}),
    (r"/server-updates/(?P<id>[^/]+)", "/server-updates/{id}", {"GET": "get_update"}),
]
ROUTES = [(re.compile("^%s/?$" % pattern), template, methods) for pattern, template, methods in ROUTES]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="CE Portal", Basic realm="CE Portal"'}
FAULTS = {429: ("too_many_requests", "Too many requests; retry later."), 503: ("service_unavailable", "The Portal is temporarily unavailable."),
          500: ("internal_error", "Internal server error."), 502: ("bad_gateway", "Bad gateway."), 504: ("gateway_timeout", "Gateway timeout.")}


class Principal:
    def __init__(self, tenant=None):
        self.tenant = tenant  # None: the deployment administrator

    @property
    def is_deployment_admin(self):
        return self.tenant is None


def _match(rest):
    for pattern, template, methods in ROUTES:
        match = pattern.match(rest)
        if match:
            return match, template, methods
    return None, None, None


class CePortalService(Service):
    name = "ce"
    journaled = True

    def __init__(self, lab, seed=None, credentials=None, clock=None, id_factory=None):
        """The Lab builds it from ce_seed.json. Unit tests of the collection's CE client run the same Portal in-process
        (no Lab, no server: `lab` then only needs `faults`) with their own seed, credentials, a virtual clock and
        predictable ids."""
        super().__init__(lab)
        self.lock = threading.RLock()
        # Seeded OAuth settings may name their client secret by reference to a secret of the Microsoft seed.
        self.seed = resolve_secret_refs(seed if seed is not None else load_ce_seed(), getattr(lab, "seed", None) or {})
        self.credentials = credentials or make_credentials(self.seed)
        self._deployment_options = {k: v for k, v in (("clock", clock), ("id_factory", id_factory)) if v is not None}
        self.deployments = {}
        self.reset()

    def reset(self):
        """Back to the seed (POST /reset): objects, pending changes, updates and lab settings;
        credentials stay (they are in the lab-vars file)."""
        with self.lock:
            default = self.seed.get("default_provenance")
            self.deployments = {e["name"]: Deployment(e, self.credentials[e["name"]], default_provenance=default, **self._deployment_options)
                                for e in self.seed["deployments"]}

    def deployment_url(self, name):
        return "%s/%s" % (self.url, name)

    # ----- what inventories and tests read --------------------------------------------------------------------
    def ansible_vars(self):
        with self.lock:
            deployments = {}
            for name, deployment in self.deployments.items():
                creds = self.credentials[name]
                deployments[name] = {
                    "url": self.deployment_url(name), "version": deployment.version,
                    "admin_token": creds["admin"]["token"], "admin_username": creds["admin"]["username"],
                    "admin_password": creds["admin"]["password"],
                    "tenants": {t: {"admin_token": c["token"], "admin_username": c["username"], "admin_password": c["password"],
                                    "mailboxes": [m["address"] for m in deployment.tenants[t].mailboxes]}
                                for t, c in creds["tenants"].items()},
                }
            return {"lab_ce_url": self.url, "lab_ce_deployments": deployments}

    def snapshot(self):
        """GET /state/ce: per deployment settings, configured and applied configuration, pending
        changes and updates. Client secrets appear only as client_secret_set and a sha256 prefix."""
        with self.lock:
            for deployment in self.deployments.values():
                deployment.advance()
            return {"deployments": {name: d.state_view(self.deployment_url(name)) for name, d in self.deployments.items()}}

    # ----- internal accessors for other emulators (never exposed over HTTP) -----------------------------------
    def applied(self, deployment):
        """The configuration the deployment's mail servers run, secrets included: {"email_gateways":
        {id: gateway}, "tenants": {name: {"oauth_settings": {id: settings with "_secret"},
        "email_connections": {id: connection}, "mailboxes": [...]}}}. A deep copy."""
        with self.lock:
            current = self.deployments[deployment]
            current.advance()
            config = copy.deepcopy(current.applied)
            for name, tenant in current.tenants.items():
                config["tenants"][name]["mailboxes"] = [dict(m) for m in tenant.mailboxes]
            return config

    def oauth_client_secret(self, deployment, tenant, settings_id, applied=True):
        """The client secret CE uses (applied=True) or has stored (applied=False) for these OAuth
        settings; None when unknown."""
        with self.lock:
            current = self.deployments[deployment]
            current.advance()
            if applied:
                settings = current.applied["tenants"].get(tenant, {}).get("oauth_settings", {}).get(settings_id)
            else:
                owner = current.tenants.get(tenant)
                settings = owner.oauth_settings.get(settings_id) if owner else None
            return settings.get("_secret") if settings else None

    # ----- plumbing ----------------------------------------------------------------------------------------
    @staticmethod
    def _split(request):
        match = PREFIX.match(request.path)
        if not match:
            return None, None
        return match.group("deployment"), match.group("rest") or ""

    def endpoint(self, request):
        deployment, rest = self._split(request)
        if deployment is not None:
            _, template, _ = _match(rest)
            if template is not None:
                return "%s /%s/api/v1%s" % (request.method, deployment, template)
        return super().endpoint(request)

    def directory_of(self, request):
        """Counter key: "<deployment>/<tenant>" for tenant paths, "<deployment>" for the rest."""
        deployment, rest = self._split(request)
        if deployment is None or deployment not in self.deployments:
            return None
        match, _, _ = _match(rest)
        if match is not None and match.groupdict().get("tenant"):
            return "%s/%s" % (deployment, match.group("tenant"))
        return deployment

    def journal_scope(self, directory):
        deployment, _, tenant = (directory or "").partition("/")
        return {"deployment": deployment or None, "ce_tenant": tenant or None}

    def _error(self, request, exc):
        headers = dict(exc.headers)
        headers["X-Request-Id"] = request.request_id
        body = exc.body()
        body["error"]["message"] = self.lab.faults.echo(self.name, request, body["error"]["message"])
        return Response.json(exc.status, body, headers)

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"X-Request-Id": request.request_id}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        if body is not None:
            return Response.json(status, body, headers)
        code, message = FAULTS.get(status, ("injected_fault", "Injected fault (HTTP %d)." % status))
        return Response.json(status, {"error": {"code": code, "message": self.lab.faults.echo(self.name, request, message), "details": []}},
                             headers)

    def error_response(self, request, exc):
        return self.fault_response(request, 500, None)

    # ----- entry ---------------------------------------------------------------------------------------------
    def handle(self, request):
        try:
            with self.lock:
                response = self._handle(request)
        except PortalError as exc:
            return self._error(request, exc)
        response.headers["X-Request-Id"] = request.request_id
        return response

    def _handle(self, request):
        name, rest = self._split(request)
        deployment = self.deployments.get(name) if name is not None else None
        if deployment is None:
            raise PortalError(404, "not_found", "No CE Portal API at %s (deployments: %s)." % (request.path, ", ".join(self.deployments)))
        deployment.advance()
        principal = self._authenticate(deployment, request)
        match, _, methods = _match(rest)
        if match is None:
            raise PortalError(404, "not_found", "No such endpoint: %s." % request.path)
        handler = methods.get(request.method)
        if handler is None:
            raise PortalError(405, "method_not_allowed", "%s is not allowed here (allowed: %s)." % (request.method, ", ".join(methods)),
                              headers={"Allow": ", ".join(methods)})
        args = match.groupdict()
        tenant = None
        if "tenant" in args:
            tenant = self._tenant(deployment, principal, args["tenant"])
        return getattr(self, "_" + handler)(request, deployment, principal, tenant, args.get("id"))

    def _authenticate(self, deployment, request):
        header = request.header("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        creds = self.credentials[deployment.name]
        candidates = [(None, creds["admin"])] + list(creds["tenants"].items())
        found = None
        if scheme.lower() == "bearer" and value:
            for tenant, cred in candidates:
                if hmac.compare_digest(cred["token"].encode(), value.encode()):
                    found = Principal(tenant)
        elif scheme.lower() == "basic" and value:
            try:
                username, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                username, password = None, None
            for tenant, cred in candidates:
                if username == cred["username"] and hmac.compare_digest(cred["password"].encode(), (password or "").encode()):
                    found = Principal(tenant)
        if found is None:
            message = "Authentication required: send a Portal API token (Bearer) or Portal administrator credentials (Basic)."
            if header:
                message = "The credentials are not valid for this Portal."
            raise PortalError(401, "unauthorized", message, headers=CHALLENGE)
        return found

    def _tenant(self, deployment, principal, name):
        if not principal.is_deployment_admin and principal.tenant != name:
            raise PortalError(403, "forbidden", "A tenant administrator of %s may not act on tenant %r." % (principal.tenant, name))
        tenant = deployment.tenant(name) if TENANT_NAME.match(name) else None
        if tenant is None:
            raise PortalError(404, "tenant_not_found", "Tenant %r does not exist in this deployment." % name)
        return tenant

    @staticmethod
    def _body(request):
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise validation_failed([("body", "must be a JSON object")]) from None
        if not isinstance(body, dict):
            raise validation_failed([("body", "must be a JSON object")])
        return body

    @staticmethod
    def _resource(status, view, location=None):
        headers = {"ETag": '"%d"' % view["revision"]}
        if location:
            headers["Location"] = location
        return Response.json(status, view, headers)

    def _page(self, request, deployment, list_key, filters, select, view, newest_first=False):
        page_cap = deployment.settings.get("page_size") or self.lab.faults.option(self.name, "page_size")
        # Cursors name their deployment and list: one issued for another list is refused.
        page = paginate(request.arg, "%s:%s" % (deployment.name, list_key), filters, select, page_cap=page_cap, newest_first=newest_first)
        return Response.json(200, {"items": [view(o) for o in page["items"]], "next_cursor": page["next_cursor"]})

    def _location(self, deployment, path):
        return "%s/api/v1%s" % (self.deployment_url(deployment.name), path)

    # ----- /info, /tenants ----------------------------------------------------------------------------------
    def _get_info(self, request, deployment, principal, tenant, _):
        return Response.json(200, {"product": "CE", "version": deployment.version, "capabilities": list(deployment.capabilities)})

    def _list_tenants(self, request, deployment, principal, tenant, _):
        def select(filters):
            return [{"name": t.name, "display_name": t.display_name, "_seq": index}
                    for index, t in enumerate(deployment.tenants.values())
                    if principal.is_deployment_admin or t.name == principal.tenant]
        return self._page(request, deployment, "tenants", (), select, lambda o: {"name": o["name"], "display_name": o["display_name"]})

    # ----- email gateways -----------------------------------------------------------------------------------
    def _list_gateways(self, request, deployment, principal, tenant, _):
        def select(filters):
            return [g for g in deployment.gateways.values() if "name" not in filters or g["name"] == filters["name"]]
        return self._page(request, deployment, "email-gateways", ("name",), select, deployment.gateway_view)

    def _gateway(self, deployment, gateway_id):
        obj = deployment.gateways.get(gateway_id)
        if obj is None:
            raise not_found("Email gateway", gateway_id)
        return obj

    @staticmethod
    def _require_deployment_admin(principal):
        if not principal.is_deployment_admin:
            raise PortalError(403, "forbidden", "Only a deployment administrator may change email gateways.")

    def _create_gateway(self, request, deployment, principal, tenant, _):
        self._require_deployment_admin(principal)
        obj = deployment.create_gateway(self._body(request))
        return self._resource(201, deployment.gateway_view(obj), self._location(deployment, "/email-gateways/" + quote(obj["id"])))

    def _get_gateway(self, request, deployment, principal, tenant, gateway_id):
        return self._resource(200, deployment.gateway_view(self._gateway(deployment, gateway_id)))

    def _put_gateway(self, request, deployment, principal, tenant, gateway_id):
        self._require_deployment_admin(principal)
        obj = deployment.replace_gateway(gateway_id, self._body(request), request.header("If-Match"))
        return self._resource(200, deployment.gateway_view(obj))

    def _delete_gateway(self, request, deployment, principal, tenant, gateway_id):
        self._require_deployment_admin(principal)
        deployment.delete_gateway(gateway_id, request.header("If-Match"))
        return Response.empty(204)

    # ----- oauth settings -------------------------------------------------------------------------------------
    def _list_oauth(self, request, deployment, principal, tenant, _):
        def select(filters):
            return [o for o in tenant.oauth_settings.values() if "name" not in filters or o["name"] == filters["name"]]
        return self._page(request, deployment, "oauth-settings:" + tenant.name, ("name",), select, deployment.oauth_view)

    @staticmethod
    def _oauth(tenant, settings_id):
        obj = tenant.oauth_settings.get(settings_id)
        if obj is None:
            raise not_found("OAuth settings", settings_id)
        return obj

    def _create_oauth(self, request, deployment, principal, tenant, _):
        obj = deployment.create_oauth_settings(tenant, self._body(request))
        location = self._location(deployment, "/tenants/%s/oauth-settings/%s" % (tenant.name, quote(obj["id"])))
        return self._resource(201, deployment.oauth_view(obj), location)

    def _get_oauth(self, request, deployment, principal, tenant, settings_id):
        return self._resource(200, deployment.oauth_view(self._oauth(tenant, settings_id)))

    def _put_oauth(self, request, deployment, principal, tenant, settings_id):
        obj = deployment.replace_oauth_settings(tenant, settings_id, self._body(request), request.header("If-Match"))
        return self._resource(200, deployment.oauth_view(obj))

    def _delete_oauth(self, request, deployment, principal, tenant, settings_id):
        deployment.delete_oauth_settings(tenant, settings_id, request.header("If-Match"))
        return Response.empty(204)

    # ----- email connections ------------------------------------------------------------------------------------
    def _list_connections(self, request, deployment, principal, tenant, _):
        def select(filters):
            return [c for c in tenant.connections.values()
                    if ("name" not in filters or c["name"] == filters["name"])
                    and ("gateway_id" not in filters or c["gateway_id"] == filters["gateway_id"])]
        return self._page(request, deployment, "email-connections:" + tenant.name, ("name", "gateway_id"), select, deployment.connection_view)

    @staticmethod
    def _connection(tenant, connection_id):
        obj = tenant.connections.get(connection_id)
        if obj is None:
            raise not_found("Email connection", connection_id)
        return obj

    def _create_connection(self, request, deployment, principal, tenant, _):
        obj = deployment.create_connection(tenant, self._body(request))
        location = self._location(deployment, "/tenants/%s/email-connections/%s" % (tenant.name, quote(obj["id"])))
        return self._resource(201, deployment.connection_view(obj), location)

    def _get_connection(self, request, deployment, principal, tenant, connection_id):
        return self._resource(200, deployment.connection_view(self._connection(tenant, connection_id)))

    def _put_connection(self, request, deployment, principal, tenant, connection_id):
        obj = deployment.replace_connection(tenant, connection_id, self._body(request), request.header("If-Match"))
        return self._resource(200, deployment.connection_view(obj))

    def _delete_connection(self, request, deployment, principal, tenant, connection_id):
        deployment.delete_connection(tenant, connection_id, request.header("If-Match"))
        return Response.empty(204)

    def _list_mailboxes(self, request, deployment, principal, tenant, connection_id):
        # Mailboxes belong to the tenant: every connection of the tenant lists all of them.
        self._connection(tenant, connection_id)

        def select(filters):
            return [dict(m, _seq=index) for index, m in enumerate(tenant.mailboxes)]
        return self._page(request, deployment, "mailboxes:%s:%s" % (tenant.name, connection_id), (), select,
                          lambda m: {"address": m["address"], "username": m["username"]})

    # ----- server updates -------------------------------------------------------------------------------------------
    def _list_updates(self, request, deployment, principal, tenant, _):
        return self._page(request, deployment, "server-updates", (), lambda filters: list(deployment.updates), deployment.update_view,
                          newest_first=True)

    def _start_update(self, request, deployment, principal, tenant, _):
        update = deployment.start_update()
        location = self._location(deployment, "/server-updates/" + quote(update["id"]))
        return Response.json(202, deployment.update_view(update), {"Location": location})

    def _get_pending(self, request, deployment, principal, tenant, _):
        return Response.json(200, deployment.pending(None if principal.is_deployment_admin else principal.tenant))

    def _get_update(self, request, deployment, principal, tenant, update_id):
        update = next((u for u in deployment.updates if u["id"] == update_id), None)
        if update is None:
            raise not_found("Server update", update_id)
        return Response.json(200, deployment.update_view(update))

    # ----- lab admin API: /services/ce/... -------------------------------------------------------------------------
    def admin(self, method, path, body):
        """Lab-only routes under the admin API's /services/ce; returns (status, JSON).

        GET  /deployments                    settings of every deployment
        GET  /deployments/<d>                state of one deployment (as in /state/ce)
        GET  /deployments/<d>/settings       its settings
        POST /deployments/<d>/settings       merge settings: update_seconds, fail_next_update, update_failure_rate,
                                             page_size, version (capabilities follow it), capabilities
        GET  /counters                       request counters per deployment and tenant
        """
        path = path.rstrip("/") or "/"
        with self.lock:
            if method == "GET" and path == "/deployments":
                return 200, {"deployments": {name: d.settings_view() for name, d in self.deployments.items()}}
            if method == "GET" and path == "/counters":
                return 200, self.counter_view()
            match = re.match(r"^/deployments/([^/]+)(/settings)?$", path)
            if not match:
                return 404, {"error": "no CE admin endpoint %s %s (deployments, deployments/<d>, deployments/<d>/settings, counters)" % (method, path)}
            deployment = self.deployments.get(match.group(1))
            if deployment is None:
                return 404, {"error": "no CE deployment %r (%s)" % (match.group(1), ", ".join(self.deployments))}
            deployment.advance()
            if match.group(2) is None and method == "GET":
                return 200, deployment.state_view(self.deployment_url(deployment.name))
            if match.group(2) and method == "GET":
                return 200, deployment.settings_view()
            if match.group(2) and method == "POST":
                error = self._apply_settings(deployment, body or {})
                if error:
                    return 400, {"error": error}
                return 200, deployment.settings_view()
            return 405, {"error": "GET or POST /deployments/<d>/settings, GET /deployments/<d>"}

    @staticmethod
    def _apply_settings(deployment, body):
        known = set(SETTING_DEFAULTS) | {"version", "capabilities"}
        unknown = sorted(set(body) - known)
        if unknown:
            return "unknown CE setting(s): %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(known)))
        changes = {}
        for name, value in body.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if name == "update_seconds" and not (number and 0 <= value <= 3600):
                return "update_seconds must be a number of seconds between 0 and 3600"
            if name == "update_failure_rate" and not (number and 0 <= value <= 1):
                return "update_failure_rate must be a probability between 0 and 1"
            if name == "page_size" and value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                return "page_size must be an integer >= 1, or null"
            if name == "fail_next_update" and value is not None and not (isinstance(value, str) and value):
                return "fail_next_update must be an error message, or null"
            if name == "version":
                try:
                    parse_version(value)
                except ValueError as exc:
                    return str(exc)
            if name == "capabilities" and not (isinstance(value, list) and set(value) <= set(KNOWN_CAPABILITIES)):
                return "capabilities must be a list of %s" % ", ".join(KNOWN_CAPABILITIES)
            changes[name] = value
        if "version" in changes:
            deployment.version = changes.pop("version")
            deployment.capabilities = capabilities_for(deployment.version)
        if "capabilities" in changes:
            deployment.capabilities = list(changes.pop("capabilities"))
        deployment.settings.update(changes)
        return None

    def counter_view(self):
        """Requests per deployment (all endpoints) and per tenant (tenant paths), from the lab's counters."""
        snapshot = self.lab.counters.snapshot()
        bucket = snapshot["services"].get(self.name, {})
        result = {}
        for name in self.deployments:
            prefix = "/%s/api/v1/" % name
            view = {"reads": {}, "writes": {}, "faults": {}}
            for kind in view:
                view[kind] = {e: n for e, n in bucket.get(kind, {}).items() if e.split(" ", 1)[1].startswith(prefix)}
            totals = {kind: sum(v.values()) for kind, v in view.items()}
            totals["requests"] = totals["reads"] + totals["writes"]
            totals["batch_updates"] = view["writes"].get("POST %sserver-updates" % prefix, 0)
            tenants = {}
            for key, per_service in snapshot["directories"].items():
                if key.startswith(name + "/") and self.name in per_service:
                    tenants[key.split("/", 1)[1]] = per_service[self.name]
            result[name] = dict(totals, endpoints=view, tenants=tenants)
        return {"deployments": result}
