"""The lab's own admin API ("admin"): state, counters, faults, reset and directory settings.

Loopback only and unauthenticated by design; it is never subject to injected faults, so a test
can always inspect and repair the lab it is breaking.
"""

import datetime
import re

from . import foreign, oracle, tokens
from .faults import FaultError
from .service import Response, Service
from .state import iso, parse_iso


class AdminError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class AdminService(Service):
    name = "admin"
    faultable = False

    def ansible_vars(self):
        return {"lab_admin_url": self.url}

    def env_vars(self):
        return {"CEOPS_LAB_ADMIN_URL": self.url}

    def handle(self, request):
        try:
            return self._route(request)
        except AdminError as exc:
            return Response.json(exc.status, {"error": str(exc)})
        except FaultError as exc:
            return Response.json(400, {"error": str(exc)})

    def error_response(self, request, exc):
        return Response.json(500, {"error": "%s: %s" % (type(exc).__name__, exc)})

    def _body(self, request):
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise AdminError(400, "request body must be JSON") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise AdminError(400, "request body must be a JSON object")
        return body

    def _route(self, request):
        lab = self.lab
        method, path = request.method, request.path.rstrip("/") or "/"
        if method == "GET" and path == "/health":
            import os
            return Response.json(200, {"status": "ok", "pid": os.getpid()})
        if method == "GET" and path == "/info":
            return Response.json(200, lab.info())
        if method == "GET" and path == "/vars":
            return Response.json(200, lab.ansible_vars())
        if method == "GET" and path == "/state":
            state = lab.world.snapshot()
            state["faults"] = lab.faults.snapshot()
            return Response.json(200, state)
        match = re.match(r"^/state/([\w-]+)$", path)
        if method == "GET" and match:
            service = lab.services.get(match.group(1))
            if service is None:
                raise AdminError(404, "no service %r (services: %s)" % (match.group(1), ", ".join(lab.services)))
            return Response.json(200, service.snapshot())
        if method == "POST" and path == "/reset":
            lab.reset()
            return Response.json(200, {"status": "reset"})
        if method == "GET" and path == "/counters":
            return Response.json(200, lab.counters.snapshot())
        if method == "POST" and path == "/counters/reset":
            lab.counters.reset()
            lab.journal.reset()  # counters and journal describe the same requests
            return Response.json(200, {"status": "reset"})
        if method == "GET" and path == "/journal":
            try:
                since = int(request.arg("since", "0"))
            except ValueError:
                raise AdminError(400, "since must be a journal sequence number") from None
            return Response.json(200, lab.journal.snapshot(since=since, service=request.arg("service")))
        if method == "POST" and path == "/journal/reset":
            lab.journal.reset()
            return Response.json(200, {"status": "reset"})
        if method == "GET" and path == "/provenance":
            return Response.json(200, {"value": foreign.tagged_objects(lab)})
        if method == "GET" and path == "/foreign-state":
            return Response.json(200, foreign.foreign_state(lab))
        match = re.match(r"^/oracle/ce-login/([^/]+)/([^/]+)$", path)
        if method == "GET" and match:
            try:
                return Response.json(200, oracle.ce_login_oracle(lab, match.group(1), match.group(2)))
            except oracle.OracleError as exc:
                raise AdminError(exc.status, str(exc)) from None
        if path == "/faults":
            return self._faults(request)
        if method == "POST" and path == "/tokens":
            return self._mint(request)
        if path == "/directories" and method == "GET":
            with lab.world.lock:
                return Response.json(200, {"value": [d.summary() for d in lab.world.directories.values()]})
        match = re.match(r"^/directories/([^/]+)(?:/([\w-]+))?$", path)
        if match:
            return self._directory(request, match.group(1), match.group(2))
        match = re.match(r"^/services/([\w-]+)(/.*)?$", path)
        if match:
            return self._service_admin(request, match.group(1), match.group(2) or "/")
        raise AdminError(404, "no admin endpoint %s %s" % (method, path))

    def _service_admin(self, request, name, subpath):
        """/services/<name>/...: lab-only routes a service offers through admin(method, path, body) -> (status, JSON)."""
        service = self.lab.services.get(name)
        if service is None or not hasattr(service, "admin"):
            raise AdminError(404, "no service with admin routes named %r" % name)
        body = self._body(request) if request.method in ("POST", "PUT", "PATCH") else {}
        status, payload = service.admin(request.method, subpath, body)
        return Response.json(status, payload)

    # ----- faults ----------------------------------------------------------------------------------
    def _faults(self, request):
        lab = self.lab
        if request.method == "GET":
            return Response.json(200, lab.faults.snapshot())
        if request.method == "DELETE":
            service = request.arg("service")
            self._check_service(service, allow_none=True)
            lab.faults.clear(service)
            return Response.json(200, lab.faults.snapshot())
        if request.method == "POST":
            body = self._body(request)
            service = body.pop("service", "*")
            self._check_service(service)
            return Response.json(200, {"service": service, "settings": lab.faults.set(service, **body), "all": lab.faults.snapshot()})
        raise AdminError(405, "GET, POST or DELETE /faults")

    def _check_service(self, service, allow_none=False):
        if service is None and allow_none:
            return
        faultable = [name for name, s in self.lab.services.items() if s.faultable]
        if service != "*" and service not in faultable:
            raise AdminError(400, "faults apply to one of: *, %s (not %r)" % (", ".join(faultable), service))

    # ----- directories -----------------------------------------------------------------------------
    def _directory(self, request, key, action):
        world = self.lab.world
        with world.lock:
            directory = world.directory(key)
            if directory is None:
                raise AdminError(404, "no directory %r" % key)
            if action is None and request.method == "GET":
                return Response.json(200, self._describe(directory))
            if action == "state" and request.method == "GET":
                return Response.json(200, directory.snapshot())
            if request.method != "POST":
                raise AdminError(405, "POST /directories/<tenant>/%s" % action)
            body = self._body(request)
            if action == "policy":
                unknown = set(body) - {"max_password_lifetime_days"}
                if unknown:
                    raise AdminError(400, "unknown policy setting(s): %s" % ", ".join(sorted(unknown)))
                days = body.get("max_password_lifetime_days")
                if days is not None and (not isinstance(days, (int, float)) or days <= 0):
                    raise AdminError(400, "max_password_lifetime_days must be a positive number or null")
                directory.policy.update(body)
                return Response.json(200, self._describe(directory))
            if action == "settings":
                unknown = set(body) - {"consistency_window"}
                if unknown:
                    raise AdminError(400, "unknown setting(s): %s" % ", ".join(sorted(unknown)))
                window = body.get("consistency_window")
                if window is not None and (not isinstance(window, (int, float)) or window < 0):
                    raise AdminError(400, "consistency_window must be a number of seconds >= 0, or null")
                directory.consistency_window = window
                return Response.json(200, self._describe(directory))
            if action == "secrets-age":
                return Response.json(200, self._age_secrets(directory, body))
            if action == "app-roles":
                return Response.json(200, self._app_roles(directory, body))
            if action == "directory-roles":
                return Response.json(200, self._directory_roles(directory, body))
        raise AdminError(404, "no directory action %r (policy, settings, secrets-age, app-roles, directory-roles, state)" % action)

    def _age_secrets(self, directory, body):
        """Time passes for one app's client secrets: each one's start and end move `days` into the past, as if the clock had
        moved on that far since they were made (a secret made for 365 days is 10 days from its expiry after days=355). The
        rest of the world keeps its time: an emulation of the passing of time where only the secrets' dates matter."""
        unknown = set(body) - {"app_id", "days"}
        if unknown:
            raise AdminError(400, "unknown field(s): %s (app_id, days)" % ", ".join(sorted(unknown)))
        days = body.get("days")
        if not isinstance(days, (int, float)) or isinstance(days, bool) or not 0 < days <= 3650:
            raise AdminError(400, "days must be a number of days in (0, 3650]")
        app = directory.app_by_app_id(str(body.get("app_id") or ""))
        if app is None:
            raise AdminError(404, "no application with appId %r in directory %s" % (body.get("app_id"), directory.name))
        shift = datetime.timedelta(days=days)
        for credential in app["passwordCredentials"]:
            for field in ("startDateTime", "endDateTime"):
                credential[field] = iso(parse_iso(credential[field]) - shift, fraction=True)
        return {"app_id": app["appId"], "password_credentials": [
            dict((k, c[k]) for k in ("keyId", "displayName", "startDateTime", "endDateTime")) for c in app["passwordCredentials"]]}

    def _principal(self, directory, value):
        if value in (None, "automation"):
            seed = next(e for e in self.lab.seed["directories"] if e["tenant_id"] == directory.tenant_id)
            value = seed["automation"]["service_principal_id"]
        sp = directory.sp_by_name_or_key(value)
        if sp is None:
            raise AdminError(404, "no service principal %r in %s" % (value, directory.name))
        return sp

    def _app_roles(self, directory, body):
        """Grant / revoke app roles by value, effective at once (tokens issued afterwards carry them)."""
        principal = self._principal(directory, body.get("principal"))
        resource = directory.sp_by_name_or_key(body.get("resource") or "graph")
        if resource is None:
            raise AdminError(404, "no resource service principal %r" % body.get("resource"))
        try:
            directory.grant_roles(principal, resource, list(body.get("grant") or []))
            directory.revoke_roles(principal, resource, list(body.get("revoke") or []))
        except KeyError as exc:
            raise AdminError(400, str(exc.args[0])) from None
        return {"principal": principal["id"], "resource": resource["appId"], "roles": directory.role_values(principal["id"], resource)}

    def _directory_roles(self, directory, body):
        principal = self._principal(directory, body.get("principal"))
        roles = principal["_directory_roles"]
        for role in body.get("grant") or []:
            if role not in roles:
                roles.append(role)
        principal["_directory_roles"] = [r for r in roles if r not in (body.get("revoke") or [])]
        return {"principal": principal["id"], "directory_roles": list(principal["_directory_roles"])}

    def _describe(self, directory):
        seed = next(e for e in self.lab.seed["directories"] if e["tenant_id"] == directory.tenant_id)
        automation = seed["automation"]
        result = directory.summary()
        result.update({
            "automation_client_id": automation["app_id"],
            "automation_application_id": automation["application_object_id"],
            "automation_service_principal_id": automation["service_principal_id"],
            "automation_certificate_path": self.lab.automation_certificate_paths[directory.name],
            "resource_service_principals": {key: {"id": sp_id, "appId": directory.service_principals[sp_id]["appId"]}
                                            for key, sp_id in directory.resource_keys.items()},
            "consistency_window_effective": self.lab.consistency_window(directory, "graph"),
        })
        return result

    # ----- minted tokens ---------------------------------------------------------------------------
    def _mint(self, request):
        """A token signed by the lab's Entra key without a token request: for tests that need a
        token with given roles, an expired token, or one for an app that has no credential."""
        body = self._body(request)
        world = self.lab.world
        with world.lock:
            directory = world.directory(body.get("tenant"))
            if directory is None:
                raise AdminError(404, "no directory %r" % body.get("tenant"))
            seed = next(e for e in self.lab.seed["directories"] if e["tenant_id"] == directory.tenant_id)
            client_id = body.get("client_id") or seed["automation"]["app_id"]
            app = directory.app_by_app_id(client_id)
            sp = directory.sp_by_app_id(client_id)
            if app is None or sp is None:
                raise AdminError(404, "no application with a service principal for client_id %r" % client_id)
            audience = body.get("resource") or "https://graph.microsoft.com"
            resource = directory.resource_by_identifier(audience)
            roles = body.get("roles")
            if roles is None:
                roles = directory.role_values(sp["id"], resource) if resource else []
            token, claims = tokens.issue(self.lab, directory, app, sp, audience, body.get("appidacr", "1"), roles,
                                         lifetime=body.get("lifetime", tokens.LIFETIME), extra_claims=body.get("claims"))
        return Response.json(200, {"access_token": token, "claims": claims})
