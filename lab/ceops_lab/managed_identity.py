"""A managed identity endpoint as App Service (and Functions, Automation) offers it to its code:
`GET /{tenant id}/msi/token?api-version=2019-08-01&resource=...[&client_id=|object_id=|principal_id=|mi_res_id=]`
with the header `X-IDENTITY-HEADER: <IDENTITY_HEADER>`, one endpoint per directory.

The directory's managed identity is its automation identity: the token has the same appid, oid
and roles as a client-credentials token of that service principal, with `appidacr` "2" and the
`xms_mirid` claim of a managed identity. Answers in App Service's shape: `access_token`,
`expires_on` (epoch seconds, a string), `resource`, `token_type`, `client_id`; errors as
`{"statusCode", "message", "correlationId"}`. A wrong or missing header is a 401; an unknown
resource or identity, or another api-version, a 400.

Point a client at it with IDENTITY_ENDPOINT=<lab_directories.<d>.managed_identity_endpoint> and
IDENTITY_HEADER=<lab_managed_identity_header> (msal then selects App Service, never IMDS).
"""

import hmac
import re
import secrets
import uuid

from . import tokens
from .service import Response, Service

API_VERSION = "2019-08-01"
HEADER = "X-IDENTITY-HEADER"
LIFETIME = 86399  # managed identity tokens live about a day
_ROUTE = re.compile(r"^/([^/]+)/msi/token/?$")
LAB_SUBSCRIPTION = "00000000-ceb5-4ab0-8000-00000000c0de"


def resource_id(directory_name):
    """The ARM id of the (emulated) App Service site whose system-assigned identity this is."""
    return ("/subscriptions/%s/resourcegroups/ceops-lab/providers/Microsoft.Web/sites/ceops-automation-%s"
            % (LAB_SUBSCRIPTION, directory_name))


class ManagedIdentityError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class ManagedIdentityService(Service):
    name = "managed_identity"

    def __init__(self, lab):
        super().__init__(lab)
        # A new secret per lab process, like App Service's per-instance IDENTITY_HEADER.
        self.identity_header = secrets.token_urlsafe(24)

    # ----- plumbing ------------------------------------------------------------------------------
    def endpoint_url(self, tenant_id):
        return "%s/%s/msi/token" % (self.url, tenant_id)

    def ansible_vars(self):
        return {"lab_managed_identity_header": self.identity_header}

    def env_vars(self):
        return {"CEOPS_LAB_MANAGED_IDENTITY_HEADER": self.identity_header}

    def directory_vars(self, entry):
        return {"managed_identity_endpoint": self.endpoint_url(entry["tenant_id"])}

    def endpoint(self, request):
        if _ROUTE.match(request.raw_path):
            return "%s /{tenant}/msi/token" % request.method
        return super().endpoint(request)

    def directory_of(self, request):
        match = _ROUTE.match(request.path)
        if not match:
            return None
        with self.lab.world.lock:
            directory = self.lab.world.directory(match.group(1))
        return directory.tenant_id if directory else None

    def _error(self, request, status, message, headers=None):
        body = {"statusCode": status, "message": message, "correlationId": request.client_request_id or str(uuid.uuid4())}
        return Response.json(status, body, headers)

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        return self._error(request, status, "An unexpected error occured while fetching the AAD Token.", headers)

    def error_response(self, request, exc):
        return self._error(request, 500, "An unexpected error occured while fetching the AAD Token.")

    # ----- the token endpoint --------------------------------------------------------------------
    def handle(self, request):
        match = _ROUTE.match(request.path)
        if not match:
            return self._error(request, 404, "No such endpoint on this lab managed identity service.")
        try:
            if request.method != "GET":
                raise ManagedIdentityError(405, "The endpoint only accepts GET requests.")
            given = request.header(HEADER) or ""
            if not given or not hmac.compare_digest(given.encode("utf-8"), self.identity_header.encode("utf-8")):
                raise ManagedIdentityError(401, "Unauthorized: the %s header is missing or does not match this "
                                                "instance's IDENTITY_HEADER." % HEADER)
            return self._token(request, match.group(1))
        except ManagedIdentityError as exc:
            return self._error(request, exc.status, exc.message)

    def _token(self, request, tenant):
        if request.arg("api-version") != API_VERSION:
            raise ManagedIdentityError(400, "api-version %r is not supported; use %s." % (request.arg("api-version"), API_VERSION))
        audience = request.arg("resource")
        if not audience:
            raise ManagedIdentityError(400, "The request must contain the 'resource' parameter.")
        world = self.lab.world
        with world.lock:
            directory = world.directory(tenant)
            if directory is None:
                raise ManagedIdentityError(404, "No managed identity is assigned at this endpoint (directory %s)." % tenant)
            request.directory = directory.tenant_id
            entry = next(e for e in world.seed["directories"] if e["tenant_id"] == directory.tenant_id)
            app_id = entry["automation"]["app_id"]
            app = directory.app_by_app_id(app_id)
            service_principal = directory.sp_by_app_id(app_id)
            mirid = resource_id(entry["name"])
            wanted = [(request.arg("client_id"), app_id), (request.arg("object_id"), service_principal and service_principal["id"]),
                      (request.arg("principal_id"), service_principal and service_principal["id"]), (request.arg("mi_res_id"), mirid)]
            if app is None or service_principal is None or any(
                    given and str(given).lower() != str(actual).lower() for given, actual in wanted):
                raise ManagedIdentityError(400, "Unable to load the proper Managed Identity.")
            if not service_principal.get("accountEnabled", True):
                raise ManagedIdentityError(400, "AADSTS7000112: Application '%s'(%s) is disabled." % (app_id, app.get("displayName")))
            resource = directory.resource_by_identifier(audience)
            if resource is None:
                raise ManagedIdentityError(400, "AADSTS500011: The resource principal named %s was not found in the tenant named %s."
                                                % (audience, directory.display_name))
            roles = directory.role_values(service_principal["id"], resource,
                                          visible=lambda a: not self.lab.is_fresh(a, directory, "login"))
            token, claims = tokens.issue(self.lab, directory, app, service_principal, audience, "2", roles,
                                         lifetime=LIFETIME, extra_claims={"xms_mirid": mirid})
        self.lab.counters.record_token(directory.tenant_id, app_id, audience)
        return Response.json(200, {"access_token": token, "expires_on": str(claims["exp"]), "resource": audience,
                                   "token_type": "Bearer", "client_id": app_id},
                             headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
