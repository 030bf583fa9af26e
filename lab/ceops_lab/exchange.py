"""Exchange Online's REST cmdlet endpoint ("exchange"), as the ExchangeOnlineManagement v3 module
uses it: POST /adminapi/beta/<tenant id or domain>/InvokeCommand.

Request
  POST {lab_exchange_endpoint}/adminapi/beta/<tenant id | domain>/InvokeCommand
  Authorization: Bearer <app-only token from the lab's Entra, scope https://outlook.office365.com/.default>
  Content-Type: application/json
  X-AnchorMailbox: APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@<tenant>   (accepted, not required)
  Prefer: odata.maxpagesize=N      (1..1000; default and cap 1000; Preference-Applied is echoed)
  X-ResponseFormat: json           (accepted; the answer is always JSON)
  client-request-id: <guid>        (optional; echoed; every answer has a request-id header)
  body {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "x"}}}

Success: 200
  {"@odata.context": ".../$metadata#Collection(Exchange.GenericHashTable)",
   "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": ["..."],
   "value": [ {...}, ... ], "@odata.nextLink": "<url>"}            (nextLink only when more)
  Write cmdlets answer the same shape (value [] for Set-/Remove-*). Warnings (e.g. the no-op
  Remove-MailboxPermission, -ResultSize truncation, -ServiceId deprecation) are NOT errors.

Paging: a Get-* cmdlet with more rows than the page size answers "@odata.nextLink", a full URL
  (same path, plus ?$skiptoken=<opaque>). Follow it by POSTing THE SAME BODY and headers to it,
  as the v3 module does. A skiptoken replayed with another cmdlet or other parameters is refused
  (400). Pages are computed on the live state (an object removed between pages is skipped).

Errors (OData error shape; error.message is NOT the reason):
  cmdlet errors, 404 for ManagementObjectNotFoundException (unknown mailbox, unknown service
  principal, unknown -User), 400 for the others:
    {"error": {"code": "NotFound" | "BadRequest",
               "message": "Error executing cmdlet" (404) | "Invalid Operation" (400),
               "details": [{"code": "Client", "target": "",
                            "message": "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The
                                        operation couldn't be performed because object 'x' couldn't be found on '<DC>'."}],
                                        (one line)
               "innererror": {"message": ..., "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException", "stacktrace": ...,
                              "internalexception": {"message": "Exception of type '...DirectInvokeCmdletExecutionException' was thrown.", ...}}},
     "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": []}
    details[0].message is "<code>|<exception type>|<text>"; <code> may be empty ("|<type>|<text>").
  parameter binding / unknown cmdlet, 400: no details; the text is in
    error.innererror.internalexception.message (e.g. "A parameter cannot be found that matches
    parameter name 'X'.").
  So: reason = details[0].message with everything up to the second "|" stripped, else
  innererror.internalexception.message, else error.message.
  authorization, 401: {"error": {"code": "Unauthorized", "message": <text>, "innererror": {...}}}
    token missing/invalid/expired/wrong audience, or tenant mismatch: WWW-Authenticate Bearer
    challenge + x-ms-diagnostics header with the reason; no Exchange.ManageAsApp in the token's
    roles: "UnAuthorized"; no supported directory role on the service principal (Exchange
    Administrator or Global Administrator; Global Reader = Get-* only): "The role assigned to
    application <appid> isn't supported in this scenario. ..."; a write cmdlet with a read-only
    role: "User is not allowed to call <cmdlet>".

What each cmdlet accepts and returns (mailboxes, Exchange service principals, permission entries
with their default inherited/deny entries, identities, replication lag): see exchange_state.py.

Counters: one endpoint per cmdlet, "POST InvokeCommand <CmdletName>"; Get-* cmdlets count as
reads, every other cmdlet as a write (requests with no readable cmdlet count as writes under
"POST /adminapi/beta/{tenant}/InvokeCommand").
"""

import base64
import binascii
import hashlib
import json
import re
from urllib.parse import quote

from . import exchange_state as exo
from . import tokens
from .service import Response, Service

ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
ODATA_EXCEPTION = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
DIRECT_INVOKE_EXCEPTION = "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException"
MAX_PAGE_SIZE = 1000
_ROUTE = re.compile(r"^/adminapi/beta/([^/]+)/InvokeCommand/?$", re.IGNORECASE)
_SKIPTOKEN_PREFIX = "RVhPUGFnZQ"  # opaque to clients; they only echo nextLink
_STACK = ("   at Microsoft.Exchange.AdminApi.CommandInvocation.CommandInvocation.InvokeCommand(QueryContext queryContext, "
          "CmdletInvokeInputType cmdletInvokeInputType)\r\n   at Microsoft.Exchange.Admin.OData.Core.PathSegmentToExpressionTranslator."
          "Translate(OperationImportSegment segment)\r\n   at Microsoft.Exchange.Admin.OData.Core.QueryContext.ResolveQuery(ODataContext "
          "context, Int32 level)")


class RestError(Exception):
    """A request-level failure (not a cmdlet's): status, code, message, extra headers."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(exc, warnings=()):
    """Exchange's error JSON for a CmdletError."""
    if exc.kind == "auth":
        error = {"code": "Unauthorized", "message": exc.message, "innererror": {"message": exc.message, "type": ODATA_EXCEPTION}}
    elif exc.kind == "cmdlet":
        outer = "Error executing cmdlet" if exc.status == 404 else "Invalid Operation"
        error = {"code": "NotFound" if exc.status == 404 else "BadRequest", "message": outer,
                 "details": [{"code": "Client", "target": "", "message": exc.prefixed}],
                 "innererror": {"message": outer, "type": ODATA_EXCEPTION, "stacktrace": _STACK,
                                "internalexception": {"message": "Exception of type '%s' was thrown." % DIRECT_INVOKE_EXCEPTION,
                                                      "type": DIRECT_INVOKE_EXCEPTION, "stacktrace": ""}}}
    else:
        error = {"code": "BadRequest", "message": "Invalid Operation",
                 "innererror": {"message": "Invalid Operation", "type": ODATA_EXCEPTION, "stacktrace": _STACK,
                                "internalexception": {"message": exc.message, "type": exc.type_name, "stacktrace": ""}}}
    return {"error": error, "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": list(warnings)}


class ExchangeService(Service):
    name = "exchange"
    journaled = True

    def ansible_vars(self):
        return {"lab_exchange_endpoint": self.url}

    def env_vars(self):
        return {"CEOPS_LAB_EXCHANGE_ENDPOINT": self.url}

    # ----- counters ---------------------------------------------------------------------------------
    def _cmdlet_name(self, request):
        if not hasattr(request, "_exo_cmdlet"):
            name = None
            try:
                body = request.json()
                name = body["CmdletInput"]["CmdletName"] if isinstance(body, dict) else None
            except (ValueError, UnicodeDecodeError, KeyError, TypeError):
                name = None
            if isinstance(name, str) and name.strip():
                known = next((n for n in exo.CMDLETS if n.lower() == name.strip().lower()), None)
                name = known or re.sub(r"[^\w-]", "_", name.strip())[:64]
            else:
                name = None
            request._exo_cmdlet = name
        return request._exo_cmdlet

    def endpoint(self, request):
        name = self._cmdlet_name(request)
        if name and _ROUTE.match(request.path):
            return "POST InvokeCommand %s" % name
        match = _ROUTE.match(request.path)
        if match:
            return "%s /adminapi/beta/{tenant}/InvokeCommand" % request.method
        return super().endpoint(request)

    def counted_method(self, request):
        name = self._cmdlet_name(request)
        return "GET" if name and exo.is_read_cmdlet(name) and request.method == "POST" else request.method

    def directory_of(self, request):
        if request.directory:
            return request.directory
        match = _ROUTE.match(request.path)
        if match:
            with self.lab.world.lock:
                directory = self.lab.world.directory(match.group(1))
            return directory.tenant_id if directory else None
        return None

    # ----- error shapes ------------------------------------------------------------------------------
    def _rest_error(self, exc):
        body = {"error": {"code": exc.code, "message": exc.message,
                          "innererror": {"message": exc.message, "type": ODATA_EXCEPTION}}}
        return Response.json(exc.status, body, exc.headers)

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        messages = {429: ("TooManyRequests", "You have reached the maximum number of concurrent requests per tenant. Please wait and try "
                                             "again."),
                    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
                    504: ("GatewayTimeout", "The operation has timed out."),
                    500: ("InternalServerError", "An internal server error occurred. The operation failed.")}
        code, message = messages.get(status, ("InjectedFault", "Injected fault."))
        return self._rest_error(RestError(status, code, message, headers))

    def error_response(self, request, exc):
        return self.fault_response(request, 500, None)

    def _challenge(self, reason):
        authorize = "%s/common/oauth2/authorize" % self.lab.url("login")
        return {"WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                                    'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
                                    'token_types="app_asserted_user_v1 service_asserted_app_v1", '
                                    'authorization_uri="%s", error="invalid_token"' % authorize,
                "x-ms-diagnostics": '2000001;reason="%s";error_category="invalid_token"' % reason.replace('"', "'").split("\n")[0]}

    # ----- entry --------------------------------------------------------------------------------------
    def handle(self, request):
        match = _ROUTE.match(request.path)
        try:
            if not match:
                segment = request.path.strip("/").split("/")[-1] or "/"
                raise RestError(404, "NotFound", "Resource not found for the segment '%s'." % segment)
            if request.method != "POST":
                raise RestError(405, "MethodNotAllowed", "The HTTP method '%s' is not allowed for InvokeCommand." % request.method,
                                {"Allow": "POST"})
            claims = self._authenticate(request, match.group(1))
            return self._invoke(request, claims, match.group(1))
        except RestError as exc:
            return self._rest_error(exc)

    def _authenticate(self, request, tenant):
        header = request.header("Authorization") or ""
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        try:
            claims = tokens.validate(self.lab, token, tokens.EXCHANGE_AUDIENCES)
        except tokens.TokenInvalid as exc:
            raise RestError(401, "Unauthorized", str(exc), self._challenge(str(exc))) from None
        with self.lab.world.lock:
            directory = self.lab.world.directory(tenant)
        # The URL names the organization by tenant id or domain (the lab's short names are not Exchange's).
        if (directory is None or tenant.lower() not in (directory.tenant_id.lower(), directory.domain.lower())
                or directory.tenant_id.lower() != str(claims.get("tid", "")).lower()):
            reason = "The token's tenant '%s' does not match the organization '%s' in the request URL." % (claims.get("tid"), tenant)
            raise RestError(401, "Unauthorized", reason, self._challenge(reason))
        request.directory = directory.tenant_id
        return claims

    def _body(self, request):
        try:
            body = request.json()
            cmdlet_input = body["CmdletInput"]
            name = cmdlet_input["CmdletName"]
            parameters = cmdlet_input.get("Parameters")
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise exo.binding_error("The request body must be JSON of the form {\"CmdletInput\": {\"CmdletName\": \"...\", "
                                    "\"Parameters\": {...}}}.") from None
        if not isinstance(name, str) or not name.strip():
            raise exo.binding_error("CmdletInput.CmdletName must be a non-empty string.")
        if parameters is not None and not isinstance(parameters, dict):
            raise exo.binding_error("CmdletInput.Parameters must be a JSON object.")
        return name.strip(), parameters or {}

    def _invoke(self, request, claims, tenant):
        world = self.lab.world
        try:
            name, parameters = self._body(request)
            with world.lock:
                directory = world.directory(request.directory)
                caller = directory.service_principals.get(str(claims.get("oid", "")).lower())
                if caller is None or caller["appId"].lower() != str(claims.get("appid", "")).lower():
                    raise exo.auth_error("UnAuthorized")
                exo.check_app_access(self.lab, directory, caller, claims.get("roles"), cmdlet=None)
                cmdlet = exo.lookup_cmdlet(name)
                exo.check_app_access(self.lab, directory, caller, claims.get("roles"), cmdlet=cmdlet.name)
                size = self._page_size(request)
                offset = self._offset(request, cmdlet.name, parameters)
                result = exo.run_cmdlet(self.lab, directory, cmdlet, parameters)
        except exo.CmdletError as exc:
            return Response.json(exc.status, error_body(exc), content_type=ODATA_JSON)
        rows = result.value
        body = {"@odata.context": "%s/adminapi/beta/%s/$metadata#Collection(Exchange.GenericHashTable)" % (self.url, quote(tenant)),
                "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": []}
        headers = {}
        if size is not None:
            headers["Preference-Applied"] = "odata.maxpagesize=%d" % size
        page_size = min(size or MAX_PAGE_SIZE, int(self.lab.faults.option(self.name, "page_size") or MAX_PAGE_SIZE))
        page = rows[offset:offset + page_size]
        more = offset + page_size < len(rows)
        if not more:
            body["@adminapi.warnings"] = result.warnings
        body["value"] = page
        if more:
            token = _encode_skiptoken(offset + page_size, _fingerprint(cmdlet.name, parameters))
            body["@odata.nextLink"] = "%s%s?$skiptoken=%s" % (self.url, request.raw_path, token)
        return Response.json(200, body, headers, content_type=ODATA_JSON)

    def _page_size(self, request):
        values = ",".join(request.headers.get_all("Prefer") or [])
        for item in values.split(","):
            name, _, value = item.strip().partition("=")
            if name.strip().lower() == "odata.maxpagesize":
                try:
                    return max(1, min(int(value.strip()), MAX_PAGE_SIZE))
                except ValueError:
                    return None
        return None

    def _offset(self, request, cmdlet_name, parameters):
        token = request.arg("$skiptoken")
        if token is None:
            return 0
        decoded = _decode_skiptoken(token)
        if decoded is None or decoded[1] != _fingerprint(cmdlet_name, parameters):
            raise exo.binding_error("The skip token '%s' is not valid for this request: follow @odata.nextLink with the same request body."
                                    % token)
        return decoded[0]

    # ----- lab views and admin hooks -------------------------------------------------------------------
    def snapshot(self):
        world = self.lab.world
        with world.lock:
            return {"directories": {d.name: exo.organization(d).snapshot() for d in world.directories.values()}}

    def admin(self, method, path, body):
        """Lab-only routes under the admin API's /services/exchange; returns (status, JSON).

        GET  /state                                   every directory's Exchange organization (as /state/exchange)
        GET  /directories/<d>                         one organization: mailboxes with all ACEs, service principals
        POST /directories/<d>/mailbox-permissions     add an ACE bypassing the cmdlet rules:
             {"mailbox": "...", "user": "<sp/mailbox identity or DOMAIN\\name>", "access_rights": ["FullAccess"],
              "deny": false, "inherited": false, "inheritance_type": "All"}
        POST /directories/<d>/service-principals      register an Exchange service principal without the Entra check
             {"app_id": "...", "object_id": "...", "display_name": "..."}
        POST /directories/<d>/settings                {"validate_service_principals": true|false}
        POST /directories/<d>/mailboxes               {"addresses": [...]} create user mailboxes (scale tests)
        """
        path = path.rstrip("/") or "/"
        world = self.lab.world
        if method == "GET" and path == "/state":
            return 200, self.snapshot()
        match = re.match(r"^/directories/([^/]+)(?:/([\w-]+))?$", path)
        if not match:
            return 404, {"error": "no exchange admin endpoint %s %s (state, directories/<d>, directories/<d>/mailbox-permissions, "
                                  "directories/<d>/service-principals, directories/<d>/settings)" % (method, path)}
        action = match.group(2)
        with world.lock:
            directory = world.directory(match.group(1))
            if directory is None:
                return 404, {"error": "no directory %r" % match.group(1)}
            org = exo.organization(directory)
            if action is None and method == "GET":
                return 200, org.snapshot()
            if method != "POST":
                return 405, {"error": "POST /services/exchange/directories/<d>/%s" % action}
            body = body or {}
            try:
                if action == "mailbox-permissions":
                    entry = exo.inject_permission(self.lab, directory, body["mailbox"], body["user"], body.get("access_rights", ["FullAccess"]),
                                                  deny=bool(body.get("deny")), inherited=bool(body.get("inherited")),
                                                  inheritance=body.get("inheritance_type", "All"))
                    return 200, entry
                if action == "service-principals":
                    return 200, exo.register_service_principal(self.lab, directory, body["app_id"], body["object_id"],
                                                               body.get("display_name"))
                if action == "mailboxes":
                    known = set(m["PrimarySmtpAddress"].lower() for m in org.mailboxes)
                    added = []
                    for address in body["addresses"]:
                        if address.lower() not in known:
                            org.mailboxes.append(org._new_mailbox(address, len(org.mailboxes)))  # pylint: disable=protected-access
                            directory.mailboxes.append(address)
                            known.add(address.lower())
                            added.append(address)
                    return 200, {"added": added, "mailboxes": len(org.mailboxes)}
                if action == "settings":
                    unknown = set(body) - {"validate_service_principals"}
                    if unknown:
                        return 400, {"error": "unknown setting(s): %s" % ", ".join(sorted(unknown))}
                    if "validate_service_principals" in body:
                        org.validate_service_principals = bool(body["validate_service_principals"])
                    return 200, {"validate_service_principals": org.validate_service_principals}
            except KeyError as exc:
                return 400, {"error": "missing field %s" % exc}
            except exo.CmdletError as exc:
                return exc.status, {"error": exc.message}
        return 404, {"error": "no exchange admin action %r (mailbox-permissions, service-principals, settings, mailboxes)" % action}


def _fingerprint(cmdlet_name, parameters):
    canonical = json.dumps({"c": cmdlet_name.lower(), "p": {str(k).lower(): v for k, v in (parameters or {}).items()}}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _encode_skiptoken(offset, fingerprint):
    raw = json.dumps({"o": offset, "h": fingerprint}).encode("utf-8")
    return _SKIPTOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_skiptoken(token):
    if not token.startswith(_SKIPTOKEN_PREFIX):
        return None
    raw = token[len(_SKIPTOKEN_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        offset = int(data["o"])
        if offset < 0:
            return None
        return offset, str(data["h"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
