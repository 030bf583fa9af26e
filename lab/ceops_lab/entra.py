"""Entra ID's token endpoint ("login"): OpenID discovery, JWKS, and client-credentials tokens
with a client secret or a certificate assertion, answering errors the way Entra does
(AADSTS codes, trace and correlation ids in the description).

Any application of a directory that has a service principal and a valid credential gets a token,
with `roles` = the app roles assigned to its service principal on the requested resource.
"""

import base64
import binascii
import collections
import datetime
import hashlib
import re
import time
import uuid
from urllib.parse import unquote_plus

from . import jwt, tokens
from .service import Response, Service
from .state import iso, parse_iso

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CERT_HELP = ("Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. "
              "Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding "
              "service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to "
              "build a query request URL, such as 'https://graph.microsoft.com/beta/applications/%s'")
_ASSERTION_DOC = "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials ."
_ROUTE = re.compile(r"^/([^/]+)/(v2\.0/\.well-known/openid-configuration|discovery/v2\.0/keys|discovery/keys|oauth2/v2\.0/token)/?$")


class AadstsError(Exception):
    def __init__(self, status, error, code, text):
        super().__init__(text)
        self.status = status
        self.error = error
        self.code = code
        self.text = text


ISSUED_LOG_SIZE = 5000  # the last access tokens issued, as digests


class EntraService(Service):
    name = "login"

    def __init__(self, lab):
        super().__init__(lab)
        # Digests of the tokens issued (never the tokens): a test finding a JWT in some output can tell whether this lab
        # issued it, i.e. whether a live credential leaked.
        self._issued = collections.deque(maxlen=ISSUED_LOG_SIZE)

    def reset(self):
        self._issued.clear()

    # ----- plumbing ------------------------------------------------------------------------------
    def ansible_vars(self):
        return {"lab_authority_host": self.url}

    def env_vars(self):
        return {"CEOPS_LAB_AUTHORITY_HOST": self.url}

    def endpoint(self, request):
        match = _ROUTE.match(request.raw_path)
        if match:
            return "%s /{tenant}/%s" % (request.method, match.group(2))
        return super().endpoint(request)

    def directory_of(self, request):
        match = _ROUTE.match(request.path)
        if match:
            with self.lab.world.lock:
                directory = self.lab.world.directory(match.group(1))
            return directory.tenant_id if directory else None
        return None

    def _error(self, request, exc, headers=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        correlation = request.client_request_id or str(uuid.uuid4())
        description = "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (
            exc.code, self.lab.faults.echo(self.name, request, exc.text), request.request_id, correlation, stamp)
        body = {"error": exc.error, "error_description": description, "error_codes": [exc.code], "timestamp": stamp,
                "trace_id": request.request_id, "correlation_id": correlation, "error_uri": "%s/error?code=%d" % (self.url, exc.code)}
        headers = dict(headers or {})
        headers.update({"x-ms-request-id": request.request_id, "Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
        return Response.json(exc.status, body, headers)

    def fault_response(self, request, status, retry_after, body=None):
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if body is not None:
            return Response.json(status, body, headers)
        if status == 429:
            exc = AadstsError(429, "temporarily_unavailable", 90055,
                              "TenantThrottlingError - There are too many incoming requests. Please try again later.")
        else:
            exc = AadstsError(status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
        return self._error(request, exc, headers)

    def error_response(self, request, exc):
        return self._error(request, AadstsError(500, "server_error", 90033, "A transient error has occurred. Please try again."))

    # ----- routes ----------------------------------------------------------------------------------
    def handle(self, request):
        match = _ROUTE.match(request.path)
        if not match:
            return Response.json(404, {"error": "not_found", "error_description": "No such endpoint on this lab login service."})
        tenant, what = match.group(1), match.group(2)
        try:
            if what.startswith("discovery/"):
                return self._keys(request)
            if what.startswith("v2.0/"):
                return self._openid_configuration(request, tenant)
            if request.method != "POST":
                raise AadstsError(400, "invalid_request", 900561,
                                  "The endpoint only accepts POST requests. Received a %s request." % request.method)
            return self._token(request, tenant)
        except AadstsError as exc:
            return self._error(request, exc)

    def _tenant_not_found(self, tenant, error="invalid_request"):
        return AadstsError(400, error, 90002,
                           "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct "
                           "cloud. Check with your subscription administrator, this may happen if there are no active subscriptions "
                           "for the tenant." % tenant)

    def _openid_configuration(self, request, tenant):
        with self.lab.world.lock:
            directory = self.lab.world.directory(tenant)
        if directory is None:
            raise self._tenant_not_found(tenant, error="invalid_tenant")
        request.directory = directory.tenant_id
        tid = directory.tenant_id
        base = "%s/%s" % (self.url, tid)  # endpoints always name the GUID, even when asked by domain
        return Response.json(200, {
            "token_endpoint": base + "/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": base + "/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            # The public cloud's issuer string, as Entra publishes it; the lab's URLs are the endpoints.
            "issuer": "https://login.microsoftonline.com/%s/v2.0" % tid,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                                 "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name",
                                 "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": base + "/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })

    def _keys(self, request):
        signing = self.lab.signing
        public = signing.key.public_key().public_numbers()

        def _int(value):
            return jwt.b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {"kty": "RSA", "use": "sig", "kid": signing.thumbprints["x5t"], "x5t": signing.thumbprints["x5t"],
               "n": _int(public.n), "e": _int(public.e), "x5c": [base64.b64encode(signing.der).decode("ascii")],
               "cloud_instance_name": "microsoftonline.com"}
        return Response.json(200, {"keys": [key]})

    # ----- the token endpoint ----------------------------------------------------------------------
    def _token(self, request, tenant):
        form = request.form()
        basic = _basic_credentials(request)
        if basic:  # client_secret_basic: Entra accepts the id and secret in an Authorization header too
            form.setdefault("client_id", basic[0])
            form.setdefault("client_secret", basic[1])
        token, claims, directory, app = self.client_credentials(tenant, form)
        self.lab.counters.record_token(directory.tenant_id, app["appId"], claims["aud"])
        self._issued.append({"sha256": hashlib.sha256(token.encode("ascii")).hexdigest(), "tid": directory.tenant_id,
                             "appid": app["appId"], "aud": claims["aud"], "exp": claims["exp"]})
        return Response.json(200, {"token_type": "Bearer", "expires_in": tokens.LIFETIME, "ext_expires_in": tokens.LIFETIME,
                                   "access_token": token},
                             headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "x-ms-request-id": request.request_id})

    def client_credentials(self, tenant, form):
        """Entra's answer to a client-credentials request (the form's client_id, client_secret or client_assertion,
        scope) at /<tenant>/oauth2/v2.0/token: (token, claims, directory, application), or AadstsError. Counts nothing:
        the token endpoint counts what it hands out, the lab's login oracle (oracle.py) asks without a request."""
        world = self.lab.world
        with world.lock:
            directory = world.directory(tenant)
            if directory is None:
                raise self._tenant_not_found(tenant)
            for name in ("grant_type", "client_id", "scope"):
                if not form.get(name):
                    raise AadstsError(400, "invalid_request", 900144, "The request body must contain the following parameter: '%s'." % name)
            if form["grant_type"] != "client_credentials":
                raise AadstsError(400, "unsupported_grant_type", 70003,
                                  "The app requested an unsupported grant type '%s'." % form["grant_type"])
            client_id = form["client_id"]
            app = directory.app_by_app_id(client_id)
            if app is None:
                raise AadstsError(400, "unauthorized_client", 700016,
                                  "Application with identifier '%s' was not found in the directory '%s'. This can happen if the "
                                  "application has not been installed by the administrator of the tenant or consented to by any user "
                                  "in the tenant. You may have sent your authentication request to the wrong tenant."
                                  % (client_id, directory.display_name))
            service_principal = directory.sp_by_app_id(client_id)
            if service_principal is None or self.lab.is_fresh(service_principal, directory, self.name):
                raise AadstsError(401, "invalid_client", 7000229,
                                  "The client application %s is missing service principal in the tenant %s. See instructions here: "
                                  "https://go.microsoft.com/fwlink/?linkid=2225119" % (client_id, directory.tenant_id))
            appidacr = self._authenticate_client(form, directory, app, tenant)
            if not service_principal.get("accountEnabled", True):
                raise AadstsError(400, "unauthorized_client", 7000112,
                                  "Application '%s'(%s) is disabled." % (client_id, app.get("displayName")))
            scope = form["scope"].split()
            defaults = [s for s in scope if s.endswith("/.default")]
            if len(defaults) != 1:
                raise AadstsError(400, "invalid_scope", 1002012,
                                  "The provided value for scope %s is not valid. Client credential flows must have a scope value with "
                                  "/.default suffixed to the resource identifier (application ID URI)." % form["scope"])
            audience = defaults[0][:-len("/.default")]
            resource = directory.resource_by_identifier(audience) if audience else None
            if resource is None:
                raise AadstsError(400, "invalid_resource", 500011,
                                  "The resource principal named %s was not found in the tenant named %s. This can happen if the "
                                  "application has not been installed by the administrator of the tenant or consented to by any user "
                                  "in the tenant. You might have sent your authentication request to the wrong tenant."
                                  % (audience, directory.display_name))
            # Grants made within the consistency window have not reached the token service yet.
            roles = directory.role_values(service_principal["id"], resource,
                                          visible=lambda a: not self.lab.is_fresh(a, directory, self.name))
            token, claims = tokens.issue(self.lab, directory, app, service_principal, audience, appidacr, roles)
        return token, claims, directory, app

    def _authenticate_client(self, form, directory, app, tenant):
        """Check the client secret or assertion; returns appidacr ("1" secret, "2" certificate)."""
        client_id = app["appId"]
        if form.get("client_secret"):
            credential, stored = directory.match_secret(app, form["client_secret"])
            # A secret added within the consistency window has not replicated to the token service.
            if credential is None or (self.lab.consistency_window(directory, self.name) > 0
                                      and time.monotonic() - stored["created"] < self.lab.consistency_window(directory, self.name)):
                raise AadstsError(401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                                  "value, not the client secret ID, for a secret added to app '%s'." % client_id)
            now = datetime.datetime.now(datetime.timezone.utc)
            if parse_iso(credential["endDateTime"]) <= now:
                raise AadstsError(401, "invalid_client", 7000222,
                                  "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys "
                                  "for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added "
                                  "security: https://aka.ms/certCreds." % client_id)
            return "1"
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise AadstsError(400, "invalid_request", 900144,
                                  "The request body must contain the following parameter: 'client_assertion_type'.")
            self._verify_assertion(form["client_assertion"], directory, app, tenant)
            return "2"
        raise AadstsError(401, "invalid_client", 7000216,
                          "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")

    def _verify_assertion(self, assertion, directory, app, tenant):
        client_id = app["appId"]
        try:
            header, claims, signing_input, signature = jwt.decode_unverified(assertion)
        except jwt.JwtError:
            raise AadstsError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise AadstsError(401, "invalid_client", 5002738,
                              "Invalid JWT token. '%s' is not a supported signature algorithm. Supported signing algorithms are: "
                              "'RS256,RS384,RS512,PS256'" % alg)
        wanted = {"x5t#S256": _normal_b64url(header.get("x5t#S256")), "x5t": _normal_b64url(header.get("x5t"))}
        key = None
        for name in ("x5t#S256", "x5t"):
            if wanted[name]:
                key = next((c for c in app["_certs"].values() if c[name] == wanted[name]), None)
                if key:
                    break
        thumbprint = _thumbprint_hex(header)
        if key is None:
            raise AadstsError(401, "invalid_client", 700027,
                              "The certificate with identifier used to sign the client assertion is not registered on application. "
                              "[Reason - The key was not found., Thumbprint of key used by client: '%s', %s]"
                              % (thumbprint, _CERT_HELP % (client_id, client_id)))
        now = datetime.datetime.now(datetime.timezone.utc)
        if key["not_after"] <= now:
            raise AadstsError(401, "invalid_client", 700027,
                              "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key "
                              "used by client: '%s', Found key 'Start=%s, End=%s', %s]"
                              % (thumbprint, iso(key["not_before"]), iso(key["not_after"]), _CERT_HELP % (client_id, client_id)))
        try:
            jwt.verify_signature(header, signing_input, signature, key["public_key"])
        except jwt.JwtError:
            raise AadstsError(401, "invalid_client", 700027,
                              "Client assertion failed signature validation. [Reason - The provided signature value did not match the "
                              "expected signature value., Thumbprint of key used by client: '%s', %s]"
                              % (thumbprint, _CERT_HELP % (client_id, client_id))) from None
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise AadstsError(401, "invalid_client", 700021,
                              "Client assertion application identifier doesn't match 'client_id' parameter. " + _ASSERTION_DOC)
        audiences = set()
        for name in {directory.tenant_id, directory.domain, tenant}:
            for path in ("/oauth2/v2.0/token", "/oauth2/token"):
                audiences.add(("%s/%s%s" % (self.url, name, path)).lower())
        if str(claims.get("aud", "")).lower() not in audiences:
            raise AadstsError(401, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer. " + _ASSERTION_DOC)
        moment = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, (int, float)) or exp + tokens.CLOCK_SKEW < moment or (isinstance(nbf, (int, float)) and nbf - tokens.CLOCK_SKEW > moment):
            raise AadstsError(401, "invalid_client", 700024,
                              "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry "
                              "time of assertion %s. %s" % (_stamp(moment), _stamp(nbf), _stamp(exp), _ASSERTION_DOC))

    def snapshot(self):
        """Who can get tokens: per directory, each application with its credential metadata; and the SHA-256 digests
        of the access tokens issued since the last reset ("issued_tokens": [{sha256, tid, appid, aud, exp}])."""
        world = self.lab.world
        with world.lock:
            result = {"signing_key": {"kid": self.lab.signing.thumbprints["x5t"]}, "directories": {},
                      "issued_tokens": list(self._issued)}
            for directory in world.directories.values():
                clients = []
                for app in directory.applications.values():
                    sp = directory.sp_by_app_id(app["appId"])
                    clients.append({
                        "appId": app["appId"], "displayName": app.get("displayName"),
                        "servicePrincipalId": sp["id"] if sp else None,
                        "passwordCredentials": [{k: c[k] for k in ("keyId", "displayName", "hint", "startDateTime", "endDateTime")}
                                                for c in app["passwordCredentials"]],
                        "keyCredentials": [{"keyId": k, "x5t": v["x5t"], "x5t#S256": v["x5t#S256"], "endDateTime": iso(v["not_after"])}
                                           for k, v in app["_certs"].items()],
                    })
                result["directories"][directory.name] = {"tenant_id": directory.tenant_id, "domain": directory.domain, "clients": clients}
            return result


def _basic_credentials(request):
    value = request.header("Authorization") or ""
    if value[:6].lower() != "basic ":
        return None
    try:
        user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(user), unquote_plus(password)


def _normal_b64url(value):
    """x5t values compared without padding and in the URL-safe alphabet (msal pads with '=')."""
    if not value or not isinstance(value, str):
        return None
    return value.strip().rstrip("=").replace("+", "-").replace("/", "_")


def _thumbprint_hex(header):
    for name in ("x5t", "x5t#S256"):
        value = _normal_b64url(header.get(name))
        if value:
            try:
                return jwt.b64url_decode(value).hex().upper()
            except ValueError:
                return value
    return ""


def _stamp(value):
    if not isinstance(value, (int, float)):
        return "unknown"
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
