"""Microsoft Graph v1.0, the application-management subset: applications (with addPassword /
removePassword and the uniqueName upsert), service principals, and app role assignments.

Authorization is by the bearer token's `roles` claim, as Graph does it: a grant only takes effect
in tokens issued after it. The directory is the token's `tid`. Reads of objects created within the
consistency window 404 (lists do not), and creating a service principal for a just-created
application fails with NoBackingApplicationObject, as on a real tenant for the first seconds.
"""

import base64
import binascii
import datetime
import json
import re
import uuid
from urllib.parse import quote

from . import journal, provenance, tokens
from .jwt import JwtError, decode_unverified
from .graph_query import ODataError, apply_select, parse_filter
from .provenance import tag_of
from .service import Response, Service
from .state import DEFAULT_ACCESS_ROLE_ID, add_key_credential, application_template, parse_iso, public, utcnow

# Roles that let an app read every application / service principal.
READ_ALL = {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
OWNED_BY = "Application.ReadWrite.OwnedBy"
ASSIGN = "AppRoleAssignment.ReadWrite.All"
POLICY_READ = {"Policy.Read.ApplicationConfiguration", "Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
_SKIPTOKEN_PREFIX = "RFNwdAIAAQAAA"  # real skiptokens are opaque base64; clients must only echo them

APP_READ_ONLY = {"id", "appId", "createdDateTime", "deletedDateTime", "publisherDomain", "disabledByMicrosoftStatus", "applicationTemplateId"}
SP_WRITABLE = {"accountEnabled", "alternativeNames", "appRoleAssignmentRequired", "description", "displayName", "homepage", "loginUrl",
               "logoutUrl", "notes", "notificationEmailAddresses", "preferredSingleSignOnMode", "replyUrls", "servicePrincipalNames",
               "tags", "samlSingleSignOnSettings", "info"}
_APPLICATION_PROPERTIES = frozenset(public(application_template("", "", "", utcnow())))
_PATH = re.compile(r"^/(applications|servicePrincipals)(?:\((\w+)=('(?:[^']|'')*')\)|/([^/()]+))?(?:/([^/]+)(?:/([^/]+))?)?/?$")
_KEYS = {"applications": ("appId", "uniqueName"), "servicePrincipals": ("appId",)}


class GraphError(Exception):
    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def not_found(identifier):
    return GraphError(404, "Request_ResourceNotFound",
                      "Resource '%s' does not exist or one of its queried reference-property objects are not present." % identifier)


def denied():
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def bad_request(message, code="Request_BadRequest", details=None):
    return GraphError(400, code, message, details)


def invalid_value(prop, resource):
    return bad_request("Invalid value specified for property '%s' of resource '%s'." % (prop, resource))


class Caller:
    """The app behind a request's token."""

    def __init__(self, claims, directory):
        self.claims = claims
        self.directory = directory
        self.service_principal_id = claims.get("oid")
        self.roles = set(claims.get("roles") or [])

    @property
    def reads_all(self):
        return bool(self.roles & READ_ALL)

    @property
    def owned_only(self):
        return not self.reads_all and OWNED_BY in self.roles

    def owns(self, obj):
        return self.service_principal_id in obj.get("_owners", [])

    def can_see(self, obj):
        return self.reads_all or (self.owned_only and self.owns(obj))

    def require_read(self, obj=None):
        if not (self.reads_all or self.owned_only):
            raise denied()
        if obj is not None and not self.can_see(obj):
            raise denied()

    def require_app_write(self, obj=None):
        """Application.ReadWrite.All writes anything; .OwnedBy creates, and writes what it owns."""
        if "Application.ReadWrite.All" in self.roles:
            return
        if OWNED_BY in self.roles and (obj is None or self.owns(obj)):
            return
        raise denied()

    def require_assignment_write(self):
        # Graph documents "AppRoleAssignment.ReadWrite.All and Application.Read.All" as least privilege.
        if ASSIGN not in self.roles or not self.reads_all:
            raise denied()

    def require_assignment_read(self, sp):
        if self.reads_all or ASSIGN in self.roles:
            return
        if self.owned_only and self.owns(sp):
            return
        raise denied()


class GraphService(Service):
    name = "graph"
    journaled = True
    id_segments = ("applications", "servicePrincipals", "appRoleAssignments", "appRoleAssignedTo")

    def ansible_vars(self):
        return {"lab_graph_endpoint": self.url}

    def env_vars(self):
        return {"CEOPS_LAB_GRAPH_ENDPOINT": self.url}

    def snapshot(self):
        """Directories with their applications, service principals and assignments (no secrets)."""
        return self.lab.world.snapshot()

    def directory_of(self, request):
        if request.directory:
            return request.directory
        # Faulted or refused requests still count for the tenant named in their token.
        token = _bearer(request)
        if token:
            try:
                return decode_unverified(token)[1].get("tid")
            except JwtError:
                return None
        return None

    # ----- error shapes --------------------------------------------------------------------------
    def _error_body(self, request, code, message, details=None, inner=None):
        error = {"code": code, "message": self.lab.faults.echo(self.name, request, message)}
        if details:
            error["details"] = details
        inner_error = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                       "request-id": request.request_id, "client-request-id": request.client_request_id or request.request_id}
        inner_error.update(inner or {})
        error["innerError"] = inner_error
        return {"error": error}

    def _error(self, request, exc):
        headers = dict(exc.headers)
        return Response.json(exc.status, self._error_body(request, exc.code, exc.message, exc.details), headers)

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        codes = {429: ("TooManyRequests", "Please retry again later."), 503: ("serviceNotAvailable", "Service unavailable."),
                 504: ("gatewayTimeout", "The gateway did not receive a timely response."), 500: ("InternalServerError", "Internal server error."),
                 502: ("BadGateway", "Bad gateway."), 404: ("Request_ResourceNotFound", "Resource does not exist."),
                 400: ("BadRequest", "Bad request."), 401: ("InvalidAuthenticationToken", "Access token validation failure."),
                 403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")}
        code, message = codes.get(status, ("UnknownError", "Injected fault."))
        inner = {"code": str(status), "status": str(status), "message": "Please retry after"} if status == 429 else None
        return Response.json(status, self._error_body(request, code, message, inner=inner), headers)

    def error_response(self, request, exc):
        return self.fault_response(request, 500, None)

    # ----- entry ---------------------------------------------------------------------------------
    def handle(self, request):
        try:
            if not request.path.startswith("/v1.0/"):
                version = request.path.strip("/").split("/")[0]
                raise bad_request("Invalid version: %s" % version, code="BadRequest")
            caller = self._authenticate(request)
            path = request.path[len("/v1.0"):]
            with self.lab.world.lock:
                return self._route(request, caller, path)
        except GraphError as exc:
            return self._error(request, exc)
        except ODataError as exc:
            return self._error(request, GraphError(400, exc.code, str(exc)))

    def _authenticate(self, request):
        challenge = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="%s/common/oauth2/authorize", '
                                         'client_id="00000003-0000-0000-c000-000000000000"' % self.lab.url("login")}
        try:
            claims = tokens.validate(self.lab, _bearer(request), tokens.GRAPH_AUDIENCES)
        except tokens.TokenInvalid as exc:
            raise GraphError(401, "InvalidAuthenticationToken", str(exc), headers=challenge) from None
        with self.lab.world.lock:
            directory = self.lab.world.directory(claims.get("tid"))
        if directory is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer.", headers=challenge)
        request.directory = directory.tenant_id
        return Caller(claims, directory)

    def _route(self, request, caller, path):
        if path.rstrip("/") == "/policies/defaultAppManagementPolicy":
            return self._default_app_management_policy(request, caller)
        match = _PATH.match(path)
        if not match:
            segment = path.strip("/").split("/")[0].split("(")[0]
            raise bad_request("Resource not found for the segment '%s'." % segment, code="BadRequest")
        collection, key_name, key_value, object_id, nav, sub_id = match.groups()
        method = request.method
        if key_name is not None:
            if key_name not in _KEYS[collection]:
                raise bad_request("The property '%s' is not an alternate key of '%s'." % (key_name, collection), code="BadRequest")
            key_value = key_value[1:-1].replace("''", "'")
        addressed = key_name is not None or object_id is not None
        if not addressed:
            if method == "GET":
                return self._list(request, caller, collection)
            if method == "POST":
                return self._create_application(request, caller) if collection == "applications" else self._create_sp(request, caller)
            raise _method_not_allowed()
        identifier = object_id if object_id is not None else key_value
        if collection == "applications":
            return self._application_route(request, caller, key_name, identifier, nav, sub_id)
        return self._sp_route(request, caller, key_name, identifier, nav, sub_id)

    # ----- the tenant's default app management policy ---------------------------------------------------
    def _default_app_management_policy(self, request, caller):
        """GET /policies/defaultAppManagementPolicy (tenantAppManagementPolicy): readable with Policy.Read.ApplicationConfiguration,
        Policy.Read.All or Policy.ReadWrite.ApplicationConfiguration; the lab's only restriction is the password lifetime."""
        if request.method != "GET":
            raise _method_not_allowed()
        if not caller.roles & POLICY_READ:
            raise denied()
        limit = caller.directory.policy.get("max_password_lifetime_days")
        restrictions = [] if limit is None else [{
            "restrictionType": "passwordLifetime", "state": "enabled", "maxLifetime": "P%dD" % int(limit),
            "restrictForAppsCreatedAfterDateTime": "2015-01-01T00:00:00Z"}]
        policy = {"id": _policy_id(caller.directory), "displayName": "Default app management tenant policy",
                  "description": "Default tenant policy that enforces app management restrictions on applications and service principals. "
                                 "To apply policy to targeted resources, create a new policy under appManagementPolicies collection.",
                  "isEnabled": limit is not None,
                  "applicationRestrictions": {"passwordCredentials": restrictions, "keyCredentials": []},
                  "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []}}
        return self._entity(request, 200, policy, "policies/defaultAppManagementPolicy/$entity")

    # ----- helpers ---------------------------------------------------------------------------------
    def _fresh(self, obj, caller):
        return self.lab.is_fresh(obj, caller.directory, self.name)

    def _body(self, request):
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
                              "JSON format.", code="BadRequest") from None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise bad_request("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
                              "JSON format.", code="BadRequest")
        return body

    def _context(self, request, fragment):
        return "%s/v1.0/$metadata#%s" % (self.url, fragment)

    def _entity(self, request, status, obj, fragment, headers=None):
        body = {"@odata.context": self._context(request, fragment)}
        body.update(obj)
        return Response.json(status, body, headers, content_type=_ODATA_JSON)

    def _find_app(self, caller, key_name, identifier):
        directory = caller.directory
        if key_name == "appId":
            return directory.app_by_app_id(identifier)
        if key_name == "uniqueName":
            return directory.app_by_unique_name(identifier)
        return directory.applications.get(identifier)

    def _find_sp(self, caller, key_name, identifier):
        if key_name == "appId":
            return caller.directory.sp_by_app_id(identifier)
        return caller.directory.service_principals.get(identifier)

    def _readable(self, obj, caller, identifier):
        """An object addressed by id or key for reading: 404 while inside the consistency window."""
        if obj is None or self._fresh(obj, caller):
            raise not_found(identifier)
        caller.require_read(obj)
        return obj

    # ----- lists -------------------------------------------------------------------------------------
    def _list(self, request, caller, collection):
        caller.require_read()
        directory = caller.directory
        if collection == "applications":
            objects, type_name = list(directory.applications.values()), "application"
        else:
            objects, type_name = list(directory.service_principals.values()), "servicePrincipal"
        objects = [o for o in objects if caller.can_see(o)]
        return self._page(request, objects, collection, type_name, collection)

    def _page(self, request, objects, context_fragment, type_name, resource_label):
        predicate = parse_filter(request.arg("$filter"), type_name)
        if predicate is not None:
            objects = [o for o in objects if predicate(o)]
        top = request.arg("$top")
        if top is not None:
            try:
                top = int(top)
            except ValueError:
                raise bad_request("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive." % top) from None
            if not 1 <= top <= MAX_PAGE_SIZE:
                raise bad_request("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive." % top)
        size = top or DEFAULT_PAGE_SIZE
        cap = self.lab.faults.option(self.name, "page_size")
        if cap:
            size = min(size, int(cap))
        offset = _decode_skiptoken(request.arg("$skiptoken"))
        page = objects[offset:offset + size]
        select = request.arg("$select")
        body = {"@odata.context": self._context(request, context_fragment)}
        if offset + size < len(objects):
            params = [(k, v) for k, values in request.query.items() for v in values if k != "$skiptoken"]
            params.append(("$skiptoken", _encode_skiptoken(offset + size)))
            query = "&".join("%s=%s" % (k, quote(v, safe="'(),")) for k, v in params)
            body["@odata.nextLink"] = "%s%s?%s" % (self.url, request.raw_path, query)
        body["value"] = [apply_select(public(o), select, type_name) for o in page]
        return Response.json(200, body, content_type=_ODATA_JSON)

    # ----- applications -------------------------------------------------------------------------------
    def _application_route(self, request, caller, key_name, identifier, nav, sub_id):
        method = request.method
        if nav is None:
            if method == "GET":
                app = self._readable(self._find_app(caller, key_name, identifier), caller, identifier)
                select = request.arg("$select")
                return self._entity(request, 200, apply_select(public(app), select, "application"), "applications/$entity")
            if method == "PATCH":
                return self._patch_application(request, caller, key_name, identifier)
            if method == "DELETE":
                app = self._find_app(caller, key_name, identifier)
                if app is None:
                    raise not_found(identifier)
                journal.note("application", app["id"], tag_of(app), "addressed")
                caller.require_app_write(app)
                _note_application_deleted(caller.directory, app)
                caller.directory.delete_application(app)
                return Response.empty(204)
            raise _method_not_allowed()
        if sub_id is not None:
            raise bad_request("Resource not found for the segment '%s'." % sub_id, code="BadRequest")
        app = self._find_app(caller, key_name, identifier)
        if nav == "addPassword" and method == "POST":
            return self._add_password(request, caller, app, identifier)
        if nav == "removePassword" and method == "POST":
            return self._remove_password(request, caller, app, identifier)
        if nav == "owners" and method == "GET":
            app = self._readable(app, caller, identifier)
            owners = [dict({"@odata.type": "#microsoft.graph.servicePrincipal"}, **public(sp))
                      for sp in (caller.directory.service_principals.get(o) for o in app["_owners"]) if sp]
            return Response.json(200, {"@odata.context": self._context(request, "directoryObjects"), "value": owners},
                                 content_type=_ODATA_JSON)
        if nav in ("addPassword", "removePassword", "owners"):
            raise _method_not_allowed()
        raise bad_request("Resource not found for the segment '%s'." % nav, code="BadRequest")

    def _create_application(self, request, caller):
        caller.require_app_write()
        body = self._body(request)
        fields = self._application_fields(caller, body, creating=True)
        if not fields.get("displayName"):
            raise invalid_value("displayName", "Application")
        app = caller.directory.create_application(fields["plain"], owner_id=caller.service_principal_id)
        self._apply_key_credentials(app, fields.get("keyCredentials"))
        journal.note("application", app["id"], None, "created")
        location = "%s/v2/%s/directoryObjects/%s/Microsoft.DirectoryServices.Application" % (self.url, caller.directory.tenant_id, app["id"])
        return self._entity(request, 201, public(app), "applications/$entity", headers={"Location": location})

    def _patch_application(self, request, caller, key_name, identifier):
        body = self._body(request)
        app = self._find_app(caller, key_name, identifier)
        if app is None:
            # Upsert: only by uniqueName, only with Prefer: create-if-missing; otherwise a plain 404.
            if key_name == "uniqueName" and _prefers(request, "create-if-missing"):
                caller.require_app_write()
                if "uniqueName" in body and body["uniqueName"] != identifier:
                    raise bad_request("The value of property 'uniqueName' does not match the key in the request URL.")
                fields = self._application_fields(caller, dict(body, uniqueName=identifier), creating=True)
                if not fields.get("displayName"):
                    raise invalid_value("displayName", "Application")
                app = caller.directory.create_application(fields["plain"], owner_id=caller.service_principal_id)
                self._apply_key_credentials(app, fields.get("keyCredentials"))
                journal.note("application", app["id"], None, "created")
                return self._entity(request, 201, public(app), "applications/$entity")
            raise not_found(identifier)
        journal.note("application", app["id"], tag_of(app), "addressed")
        caller.require_app_write(app)
        fields = self._application_fields(caller, body, creating=False, current=app)
        requested_before = provenance.rra_entries(app)
        app.update(fields["plain"])
        _note_application_changed(app, requested_before, set(fields["plain"]) | ({"keyCredentials"} if "keyCredentials" in fields else set()))
        if "keyCredentials" in fields:
            self._replace_key_credentials(app, fields["keyCredentials"])
        if "displayName" in fields["plain"]:
            sp = caller.directory.sp_by_app_id(app["appId"])
            if sp is not None:
                sp["appDisplayName"] = app["displayName"]
        return Response.empty(204)

    def _application_fields(self, caller, body, creating, current=None):
        """Validate a request body against the application's writable properties."""
        known = _APPLICATION_PROPERTIES
        plain = {}
        result = {"plain": plain}
        for prop, value in body.items():
            if prop.startswith("@odata."):
                continue
            if prop not in known:
                raise bad_request("Property '%s' does not exist as a declared property or extension property." % prop)
            if prop in APP_READ_ONLY:
                raise bad_request("Property '%s' is read-only and cannot be set." % prop)
            if prop == "passwordCredentials":
                # Graph: secrets are added with addPassword only; an empty list is tolerated as "no change".
                if value:
                    raise bad_request("Updating passwordCredentials with PATCH is not supported. Use the addPassword and removePassword "
                                      "methods.")
                continue
            if prop == "keyCredentials":
                if not isinstance(value, list):
                    raise invalid_value("keyCredentials", "Application")
                result["keyCredentials"] = value
                continue
            if prop == "displayName" and (not isinstance(value, str) or not value.strip()):
                raise invalid_value("displayName", "Application")
            if prop == "uniqueName":
                if value is None and (current is None or current.get("uniqueName") is None):
                    continue  # null while null: nothing to set
                self._check_unique_name(caller, value, current)
                if current is not None and current.get("uniqueName") == value:
                    continue
            plain[prop] = value
        result["displayName"] = plain.get("displayName") if creating else None
        return result

    def _check_unique_name(self, caller, value, current):
        if value is None or not isinstance(value, str) or not value:
            raise invalid_value("uniqueName", "Application")
        if current is not None and current.get("uniqueName") not in (None, value):
            # uniqueName can be set once, while it is null; after that it is immutable.
            raise bad_request("Property 'uniqueName' is immutable once set and cannot be updated.")
        other = caller.directory.app_by_unique_name(value)
        if other is not None and other is not current:
            raise GraphError(409, "Request_MultipleObjectsWithSameKeyValue",
                             "Another object with the same value for property uniqueName already exists.",
                             [{"code": "ObjectConflict", "message": "Another object with the same value for property uniqueName already exists.",
                               "target": "uniqueName"}])

    def _decode_key(self, entry):
        try:
            return base64.b64decode(entry["key"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise invalid_value("keyCredentials", "Application") from None

    def _apply_key_credentials(self, app, entries):
        for entry in entries or []:
            if not isinstance(entry, dict) or not entry.get("key"):
                raise invalid_value("keyCredentials", "Application")
            self._add_key(app, entry)

    def _add_key(self, app, entry):
        try:
            add_key_credential(app, self._decode_key(entry), key_id=entry.get("keyId"), display_name=entry.get("displayName"),
                               usage=entry.get("usage") or "Verify")
        except ValueError:
            raise bad_request("Key credential key is invalid: it must be a base64-encoded X.509 certificate.") from None

    def _replace_key_credentials(self, app, entries):
        """keyCredentials is replaced as a whole; entries naming an existing keyId may omit the key."""
        existing = {c["keyId"]: c for c in app["keyCredentials"]}
        kept, certs = [], {}
        new_entries = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise invalid_value("keyCredentials", "Application")
            if not entry.get("key") and entry.get("keyId") in existing:
                kept.append(existing[entry["keyId"]])
                certs[entry["keyId"]] = app["_certs"][entry["keyId"]]
            elif entry.get("key"):
                new_entries.append(entry)
            else:
                raise invalid_value("keyCredentials", "Application")
        app["keyCredentials"], app["_certs"] = kept, certs
        for entry in new_entries:
            self._add_key(app, entry)

    def _add_password(self, request, caller, app, identifier):
        if app is None:
            raise not_found(identifier)
        journal.note("application", app["id"], tag_of(app), "addressed")
        caller.require_app_write(app)
        body = self._body(request)
        spec = body.get("passwordCredential") or {}
        if not isinstance(spec, dict):
            raise invalid_value("passwordCredential", "Application")
        now = utcnow()
        try:
            start = parse_iso(spec["startDateTime"]) if spec.get("startDateTime") else now
        except ValueError:
            raise invalid_value("startDateTime", "PasswordCredential") from None
        try:
            end = parse_iso(spec["endDateTime"]) if spec.get("endDateTime") else start + datetime.timedelta(days=730)
        except ValueError:
            raise invalid_value("endDateTime", "PasswordCredential") from None
        if end <= start:
            raise invalid_value("endDateTime", "PasswordCredential")
        limit = caller.directory.policy.get("max_password_lifetime_days")
        if limit is not None and end - start > datetime.timedelta(days=float(limit)):
            message = "Credential lifetime exceeds the max value allowed as per assigned policy '%s'." % _policy_id(caller.directory)
            raise GraphError(400, "CredentialInvalidLifetimeAsPerAppPolicy", message,
                             [{"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}])
        credential, secret_text = caller.directory.add_password(app, spec.get("displayName"), start, end)
        journal.note("application", app["id"], tag_of(app), "changed", fields=["passwordCredentials"])
        journal.note("password_credential", credential["keyId"], None, "created", application=app["id"])
        result = dict(credential, secretText=secret_text)
        return self._entity(request, 200, result, "microsoft.graph.passwordCredential")

    def _remove_password(self, request, caller, app, identifier):
        if app is None:
            raise not_found(identifier)
        journal.note("application", app["id"], tag_of(app), "addressed")
        caller.require_app_write(app)
        key_id = self._body(request).get("keyId")
        if not key_id:
            raise invalid_value("keyId", "Application")
        key_tag = provenance.credential_tag(app, key_id)
        if not caller.directory.remove_password(app, key_id):
            raise not_found(key_id)
        journal.note("application", app["id"], tag_of(app), "changed", fields=["passwordCredentials"])
        journal.note("password_credential", str(key_id).lower(), key_tag, "deleted", application=app["id"])
        return Response.empty(204)

    # ----- service principals --------------------------------------------------------------------------
    def _sp_route(self, request, caller, key_name, identifier, nav, sub_id):
        method = request.method
        if nav is None:
            if method == "GET":
                sp = self._readable(self._find_sp(caller, key_name, identifier), caller, identifier)
                return self._entity(request, 200, apply_select(public(sp), request.arg("$select"), "servicePrincipal"),
                                    "servicePrincipals/$entity")
            if method == "PATCH":
                return self._patch_sp(request, caller, key_name, identifier)
            if method == "DELETE":
                sp = self._find_sp(caller, key_name, identifier)
                if sp is None:
                    raise not_found(identifier)
                journal.note("service_principal", sp["id"], tag_of(sp), "addressed")
                self._require_sp_write(caller, sp)
                _note_service_principal_deleted(caller.directory, sp)
                caller.directory.delete_service_principal(sp)
                return Response.empty(204)
            raise _method_not_allowed()
        if nav not in ("appRoleAssignments", "appRoleAssignedTo"):
            raise bad_request("Resource not found for the segment '%s'." % nav, code="BadRequest")
        sp = self._find_sp(caller, key_name, identifier)
        # The service principal in the URL: a brand new one is not there yet for any operation.
        if sp is None or self._fresh(sp, caller):
            raise not_found(identifier)
        as_principal = nav == "appRoleAssignments"
        if sub_id is None and method == "GET":
            caller.require_assignment_read(sp)
            found = caller.directory.assignments_of(principal_id=sp["id"]) if as_principal else caller.directory.assignments_of(resource_id=sp["id"])
            fragment = "servicePrincipals('%s')/%s" % (sp["id"], nav)
            return self._page(request, found, fragment, "appRoleAssignment", nav)
        if sub_id is None and method == "POST":
            return self._create_assignment(request, caller, sp, as_principal)
        if sub_id is not None and method == "DELETE":
            caller.require_assignment_write()
            assignment = caller.directory.assignments.get(sub_id)
            owner_field = "principalId" if as_principal else "resourceId"
            if assignment is None or assignment[owner_field] != sp["id"]:
                raise not_found(sub_id)
            journal.note("app_role_assignment", sub_id, tag_of(assignment), "deleted", principal=assignment["principalId"])
            del caller.directory.assignments[sub_id]
            return Response.empty(204)
        raise _method_not_allowed()

    def _require_sp_write(self, caller, sp):
        if "Application.ReadWrite.All" in caller.roles:
            return
        app = caller.directory.app_by_app_id(sp["appId"])
        if OWNED_BY in caller.roles and (caller.owns(sp) or (app is not None and caller.owns(app))):
            return
        raise denied()

    def _sp_fields(self, body, creating):
        fields = {}
        for prop, value in body.items():
            if prop.startswith("@odata.") or (creating and prop == "appId"):
                continue
            if prop not in SP_WRITABLE:
                if prop in ("id", "appId", "appOwnerOrganizationId", "servicePrincipalType", "appRoles", "appDisplayName",
                            "signInAudience", "oauth2PermissionScopes"):
                    raise bad_request("Property '%s' is read-only and cannot be set." % prop)
                raise bad_request("Property '%s' does not exist as a declared property or extension property." % prop)
            fields[prop] = value
        return fields

    def _new_sp(self, caller, app_id, body):
        directory = caller.directory
        existing = directory.sp_by_app_id(app_id)
        if existing is not None:
            message = ("The service principal cannot be created, updated, or restored because the service principal name %s is already "
                       "in use." % app_id)
            raise GraphError(409, "Request_MultipleObjectsWithSameKeyValue", message,
                             [{"code": "ObjectConflict", "message": message, "target": "servicePrincipalNames"}])
        app = directory.app_by_app_id(app_id)
        if app is None or self._fresh(app, caller):
            message = "The appId '%s' of the service principal does not reference a valid application object." % app_id
            raise bad_request(message, details=[{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}])
        if "Application.ReadWrite.All" not in caller.roles and not (OWNED_BY in caller.roles and caller.owns(app)):
            raise denied()
        sp = directory.create_service_principal(app, self._sp_fields(body, creating=True), owner_id=caller.service_principal_id)
        journal.note("service_principal", sp["id"], None, "created")
        return sp

    def _create_sp(self, request, caller):
        if not ({"Application.ReadWrite.All", OWNED_BY} & caller.roles):
            raise denied()
        body = self._body(request)
        app_id = body.get("appId")
        if not app_id or not isinstance(app_id, str):
            raise invalid_value("appId", "ServicePrincipal")
        sp = self._new_sp(caller, app_id, body)
        return self._entity(request, 201, public(sp), "servicePrincipals/$entity")

    def _patch_sp(self, request, caller, key_name, identifier):
        body = self._body(request)
        sp = self._find_sp(caller, key_name, identifier)
        if sp is None:
            if key_name == "appId" and _prefers(request, "create-if-missing"):
                if not ({"Application.ReadWrite.All", OWNED_BY} & caller.roles):
                    raise denied()
                sp = self._new_sp(caller, identifier, body)
                return self._entity(request, 201, public(sp), "servicePrincipals/$entity")
            raise not_found(identifier)
        journal.note("service_principal", sp["id"], tag_of(sp), "addressed")
        self._require_sp_write(caller, sp)
        fields = self._sp_fields(body, creating=False)
        sp.update(fields)
        journal.note("service_principal", sp["id"], tag_of(sp), "changed", fields=list(fields))
        return Response.empty(204)

    # ----- app role assignments ---------------------------------------------------------------------------
    def _create_assignment(self, request, caller, url_sp, as_principal):
        caller.require_assignment_write()
        body = self._body(request)
        for prop in ("principalId", "resourceId", "appRoleId"):
            if not isinstance(body.get(prop), str) or not body.get(prop):
                raise invalid_value(prop, "AppRoleAssignment")
        url_field = "principalId" if as_principal else "resourceId"
        if body[url_field].lower() != url_sp["id"].lower():
            raise bad_request("The value of '%s' in the request body must be the id of the service principal in the request URL."
                              % url_field)
        directory = caller.directory
        principal = directory.service_principals.get(body["principalId"].lower()) or directory.service_principals.get(body["principalId"])
        resource = directory.service_principals.get(body["resourceId"].lower()) or directory.service_principals.get(body["resourceId"])
        if principal is not None:
            # The client gains a permission: consent changes the principal, not the resource it is granted on.
            journal.note("service_principal", principal["id"], tag_of(principal), "addressed")
        for obj, identifier in ((principal, body["principalId"]), (resource, body["resourceId"])):
            if obj is None or self._fresh(obj, caller):
                raise bad_request("Resource '%s' does not exist or one of its queried reference-property objects are not present." % identifier)
        role_id = body["appRoleId"].lower()
        roles = {r["id"].lower(): r for r in resource.get("appRoles") or []}
        role = roles.get(role_id)
        if role_id != DEFAULT_ACCESS_ROLE_ID and (role is None or "Application" not in (role.get("allowedMemberTypes") or [])):
            raise bad_request("Permission being assigned was not found on application '%s'." % resource["appId"])
        if directory.find_assignment(principal["id"], resource["id"], role_id):
            raise bad_request("Permission being assigned already exists on the object")
        assignment = directory.create_assignment(principal, resource, role["id"] if role else DEFAULT_ACCESS_ROLE_ID)
        journal.note("service_principal", principal["id"], tag_of(principal), "changed", fields=["appRoleAssignments"])
        journal.note("app_role_assignment", assignment["id"], None, "created", principal=principal["id"])
        fragment = "servicePrincipals('%s')/%s/$entity" % (url_sp["id"], "appRoleAssignments" if as_principal else "appRoleAssignedTo")
        return self._entity(request, 201, public(assignment), fragment)


_ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


# ----- the write journal (journal.py): what a write did to which object ----------------------------------------
def _note_application_changed(app, requested_before, fields):
    """A PATCH of an application: the fields it set, and each requiredResourceAccess entry it added or dropped (an
    entry's provenance tag stays with the application, keyed by resource, id and type, so re-sending it is no change)."""
    journal.note("application", app["id"], tag_of(app), "changed", fields=sorted(fields))
    if "requiredResourceAccess" not in fields:
        return
    requested_after = provenance.rra_entries(app)
    for key in sorted(set(requested_before) - set(requested_after)):
        journal.note("required_resource_access", "%s|%s" % (app["id"], key), provenance.rra_tag(app, key), "deleted", application=app["id"])
    for key in sorted(set(requested_after) - set(requested_before)):
        journal.note("required_resource_access", "%s|%s" % (app["id"], key), provenance.rra_tag(app, key), "created", application=app["id"])


def _note_service_principal_deleted(directory, sp):
    journal.note("service_principal", sp["id"], tag_of(sp), "deleted")
    for assignment in directory.assignments_of(principal_id=sp["id"]) + directory.assignments_of(resource_id=sp["id"]):
        journal.note("app_role_assignment", assignment["id"], tag_of(assignment), "deleted", principal=assignment["principalId"])


def _note_application_deleted(directory, app):
    """Deleting an application deletes its secrets, the permissions it requests and its service principal with it."""
    journal.note("application", app["id"], tag_of(app), "deleted")
    for credential in app["passwordCredentials"]:
        journal.note("password_credential", credential["keyId"].lower(), provenance.credential_tag(app, credential["keyId"]), "deleted",
                     application=app["id"])
    for key in provenance.rra_entries(app):
        journal.note("required_resource_access", "%s|%s" % (app["id"], key), provenance.rra_tag(app, key), "deleted", application=app["id"])
    sp = directory.sp_by_app_id(app["appId"])
    if sp is not None and sp["appOwnerOrganizationId"] == directory.tenant_id:
        _note_service_principal_deleted(directory, sp)


def _method_not_allowed():
    return GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")


def _bearer(request):
    value = request.header("Authorization") or ""
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _prefers(request, preference):
    values = ",".join(request.headers.get_all("Prefer") or [])
    return preference in [v.strip().lower() for v in values.split(",")]


def _policy_id(directory):
    # A stable per-directory id, like the id of the tenant's default app management policy.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ceops-lab/app-management-policy/" + directory.tenant_id))


def _encode_skiptoken(offset):
    return _SKIPTOKEN_PREFIX + base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_skiptoken(token):
    if not token:
        return 0
    try:
        if not token.startswith(_SKIPTOKEN_PREFIX):
            raise ValueError(token)
        raw = token[len(_SKIPTOKEN_PREFIX):]
        offset = int(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["o"])
        if offset < 0:
            raise ValueError(token)
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("Invalid skip token '%s'." % token, code="Request_BadRequest") from None
