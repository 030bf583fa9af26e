# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""App-only tokens for Microsoft services, shared by every module invocation of a run.

Each module invocation is a fresh Python process, so msal's in-memory cache would fetch a
token per task. Tokens are therefore kept in a file cache (one file per directory, client,
credential and resource; 0600, in a 0700 directory, flock-ed while fetching) so that parallel
forks make one token request between them. A client secret's token is one POST to the token
endpoint; msal is imported only for a certificate or a managed identity, and only when a token
must really be fetched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import re
import stat
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows controllers are not supported by Ansible
    fcntl = None

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, Transport, url_problem
from ansible_collections.ceops.exchange_oauth.plugins.module_utils._scrub import hold

CLOUDS = {
    "public": {
        "authority_host": "https://login.microsoftonline.com",
        "graph": "https://graph.microsoft.com",
        "exchange": "https://outlook.office365.com",
    },
    "usgov": {
        "authority_host": "https://login.microsoftonline.us",
        "graph": "https://graph.microsoft.us",
        "exchange": "https://outlook.office365.us",
    },
    # Unconfirmed on a live tenant (reference/microsoft-facts.md); endpoint overrides exist for that reason.
    "usgov_dod": {
        "authority_host": "https://login.microsoftonline.us",
        "graph": "https://dod-graph.microsoft.us",
        "exchange": "https://outlook-dod.office365.us",
    },
    "china": {
        "authority_host": "https://login.chinacloudapi.cn",
        "graph": "https://microsoftgraph.chinacloudapi.cn",
        "exchange": "https://partner.outlook.cn",
    },
}

# Used with fullmatch: "$" would also match before a trailing newline, which is no part of a GUID or a domain.
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DOMAIN_RE = re.compile(r"(?=.{4,253}\Z)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}")

# msal serves a cached token only while it has more than 5 minutes left; so do we, so a token
# never expires in the middle of a long mailbox list.
MIN_TOKEN_LIFETIME = 300

# What to do about the AADSTS errors an operator actually meets.
AADSTS_HINTS = {
    90002: "the tenant_id is not a directory Entra knows: use the Directory (tenant) ID or its onmicrosoft.com domain",
    700016: "no application with this client_id exists in that directory: check client_id and tenant_id belong together",
    7000215: "the client secret is wrong: use the secret's Value (not its ID) from Certificates & secrets",
    7000222: "the client secret has expired: create a new one and update client_secret",
    7000229: "the application has no service principal in this directory: create it (Enterprise applications) first",
    500011: "the resource is not available in this directory (wrong cloud, or the service is not provisioned)",
    700027: "the certificate is not registered on the application: upload its public part under Certificates & secrets",
    700024: "the client assertion is outside its validity window: check this host's clock",
}


# Where msal asks for a managed identity token, read from the variables msal itself reads (same
# order as msal.managed_identity), and what to check when that source refuses.
MANAGED_IDENTITY_HINTS = {
    "App Service": "check IDENTITY_ENDPOINT and IDENTITY_HEADER: App Service, Functions and Automation set both for the "
                   "process, and they must reach the Python that runs the modules unchanged (IDENTITY_HEADER changes "
                   "when the app restarts); and that the app has a managed identity",
    "Service Fabric": "check IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT, which Service Fabric sets for "
                      "the application, and that the cluster assigns it a managed identity",
    "Azure Machine Learning": "check MSI_ENDPOINT and MSI_SECRET, which Azure Machine Learning sets for the compute",
    "Azure Arc": "check IDENTITY_ENDPOINT and IMDS_ENDPOINT and that the Azure Arc agent (himds) runs on this host",
    "IMDS": "none of IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service) or MSI_ENDPOINT + MSI_SECRET is set, so the "
            "instance metadata service was asked: check that this host is an Azure VM with a managed identity assigned, "
            "or pass those variables to the Python that runs the modules",
}


def managed_identity_source(environ=None):
    """(source, endpoint) that msal uses for managed_identity=true in this environment."""
    env = os.environ if environ is None else environ
    if "IDENTITY_ENDPOINT" in env and "IDENTITY_HEADER" in env:
        return ("Service Fabric" if "IDENTITY_SERVER_THUMBPRINT" in env else "App Service"), env["IDENTITY_ENDPOINT"]
    if "MSI_ENDPOINT" in env and "MSI_SECRET" in env:
        return "Azure Machine Learning", env["MSI_ENDPOINT"]
    if "IDENTITY_ENDPOINT" in env and "IMDS_ENDPOINT" in env:
        return "Azure Arc", env["IDENTITY_ENDPOINT"]
    return "IMDS", env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://169.254.169.254").strip("/") + "/metadata/identity/oauth2/token"


def is_guid(value):
    return bool(value) and bool(GUID_RE.fullmatch(value))


def validate_tenant(value):
    """A directory is named by its GUID or a verified domain; anything else cannot be right."""
    if is_guid(value) or (value and DOMAIN_RE.fullmatch(value)):
        return None
    return ("tenant_id %r is neither a GUID (Directory (tenant) ID) nor a domain such as contoso.onmicrosoft.com" % (value,))


def cloud_endpoints(cloud, authority_host=None, graph_endpoint=None, exchange_endpoint=None):
    """Resource identifiers come from the cloud; URLs may be overridden (private or emulated endpoints)."""
    if cloud not in CLOUDS:
        raise ValueError("unknown cloud %r; choose one of %s" % (cloud, ", ".join(sorted(CLOUDS))))
    base = CLOUDS[cloud]
    return {
        "authority_host": (authority_host or base["authority_host"]).rstrip("/"),
        "graph_resource": base["graph"],
        "graph_endpoint": (graph_endpoint or base["graph"]).rstrip("/"),
        "exchange_resource": base["exchange"],
        "exchange_endpoint": (exchange_endpoint or base["exchange"]).rstrip("/"),
    }


def default_cache_dir():
    explicit = os.environ.get("CEOPS_TOKEN_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ceops.exchange_oauth", "tokens")


class TokenCacheError(ServiceError):
    """The cache directory or a file in it is not safe to use: the message says which and how to fix it."""

    def __init__(self, message, hint):
        super(TokenCacheError, self).__init__("token cache", message, hint=hint)

    def describe(self):
        return "token cache: %s; %s" % (self.message, self.hint)


def _owner_name(uid):
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except (ImportError, KeyError):
        return "uid %d" % uid


# Open a file of the cache without following a symbolic link put in its place.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class TokenCache:
    """Access tokens on disk, never credentials. ``directory=None`` disables the cache.

    A token is as good as the automation identity's credential for an hour, so the cache trusts nothing it did not
    make: the directory must be a real directory (not a symbolic link) owned by this user that group and others can
    neither read nor write, or it is refused with the fix; every file is opened relative to that directory's descriptor (a directory
    swapped in after the check is not used), created exclusively (O_EXCL, O_NOFOLLOW, 0600) under a random name and
    renamed into place, and a token is read only from a regular file of this user that group and others cannot open.
    """

    def __init__(self, directory):
        self.directory = directory

    @staticmethod
    def _names(key):
        return key + ".json", key + ".lock"

    def _refuse(self, found, fix_command):
        env = "or set CEOPS_TOKEN_CACHE_DIR (token_cache_dir) to a directory of your own that only you can open"
        raise TokenCacheError("refusing cache directory %s: %s" % (self.directory, found),
                              hint="%s, %s" % (fix_command, env) if fix_command else "remove it, " + env)

    def _open_dir(self):
        """A descriptor of the checked cache directory, made (0700) when it is absent."""
        uid = os.geteuid()
        try:
            os.makedirs(self.directory, mode=0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise TokenCacheError("cannot create cache directory %s: %s" % (self.directory, exc.strerror),
                                      hint="set CEOPS_TOKEN_CACHE_DIR (token_cache_dir) to a directory you can write")
        try:
            fd = os.open(self.directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(self.directory):
                self._refuse("it is a symbolic link (to %s), which someone else could point elsewhere"
                             % os.readlink(self.directory), "replace the link by a directory (mkdir -m 700 %s)" % self.directory)
            if exc.errno == errno.ENOTDIR:
                self._refuse("it is not a directory", None)
            raise TokenCacheError("cannot open cache directory %s: %s" % (self.directory, exc.strerror),
                                  hint="set CEOPS_TOKEN_CACHE_DIR (token_cache_dir) to a directory you can write")
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != uid:
            os.close(fd)
            self._refuse("it is owned by %s, not by %s who runs this task, so its owner could read or replace the tokens"
                         % (_owner_name(info.st_uid), _owner_name(uid)),
                         "make it yours (chown %d %s && chmod 700 %s)" % (uid, self.directory, self.directory))
        if mode & 0o066:
            os.close(fd)
            self._refuse("its mode is %04o: group or others may %s it" % (mode, "write to" if mode & 0o022 else "read"),
                         "close it (chmod 700 %s)" % self.directory)
        return fd

    def forget(self, key):
        if self.directory:
            try:
                fd = self._open_dir()
            except TokenCacheError:
                return
            try:
                os.unlink(self._names(key)[0], dir_fd=fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def get_or_fetch(self, key, fetch, now=time.time):
        """Return a cached token with enough life left, or call ``fetch()`` -> (token, expires_in) under a lock."""
        if not self.directory or fcntl is None:
            return fetch()[0]
        dir_fd = self._open_dir()
        try:
            data_name, lock_name = self._names(key)
            cached = self._read(dir_fd, data_name, now())
            if cached:
                return cached
            lock_fd = os.open(lock_name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dir_fd)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                # Another fork may have fetched while we waited for the lock.
                cached = self._read(dir_fd, data_name, now())
                if cached:
                    return cached
                token, expires_in = fetch()
                self._write(dir_fd, data_name, {"access_token": token, "expires_on": now() + int(expires_in)})
                return token
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _read(dir_fd, name, now):
        """The token in ``name`` if it is a regular file of ours that nobody else can open, and has life left."""
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        with os.fdopen(fd) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                return None
            try:
                entry = json.load(handle)
            except ValueError:
                return None
        if isinstance(entry, dict) and entry.get("expires_on", 0) - now > MIN_TOKEN_LIFETIME:
            return entry.get("access_token")
        return None

    @staticmethod
    def _write(dir_fd, name, entry):
        # A fresh random name, created exclusively: nothing anyone placed in the directory (a link, a file of theirs)
        # is opened, and the rename swaps the whole file in at once.
        for attempt in range(100):
            tmp = "%s.%s.tmp" % (name, os.urandom(8).hex())
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dir_fd)
                break
            except OSError as exc:
                if exc.errno != errno.EEXIST or attempt == 99:
                    raise
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(entry, handle)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise


class MsalHttpClient:
    """The http_client msal expects (get/post returning requests responses), on our Transport.

    msal would otherwise use its own Session, where REQUESTS_CA_BUNDLE overrides the CA we
    were given and throttling is not retried.
    """

    def __init__(self, transport):
        self.transport = transport

    def get(self, url, params=None, headers=None, **kwargs):
        return self.transport.send("GET", url, params=params, headers=headers, timeout=kwargs.get("timeout", self.transport.timeout))

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        return self.transport.send("POST", url, params=params, data=data, headers=headers,
                                   timeout=kwargs.get("timeout", self.transport.timeout))

    def close(self):
        self.transport.close()


class MicrosoftAuth:
    """Tokens for one automation identity in one directory, for any resource of its cloud."""

    def __init__(self, tenant_id, client_id=None, client_secret=None, client_certificate_path=None,
                 client_certificate_password=None, managed_identity=False, cloud="public", authority_host=None,
                 graph_endpoint=None, exchange_endpoint=None, ca_path=None, validate_certs=True, timeout=30,
                 token_cache_dir=None, transport=None):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_certificate_path = client_certificate_path
        self.client_certificate_password = client_certificate_password
        self.managed_identity = managed_identity
        self.endpoints = cloud_endpoints(cloud, authority_host, graph_endpoint, exchange_endpoint)
        self.ca_path = ca_path
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.cache = TokenCache(token_cache_dir)
        self._transport = transport
        self.token_requests = 0

    def validate(self):
        """Problems with the configuration itself, found before any request; [] when fine."""
        problems = []
        tenant_problem = validate_tenant(self.tenant_id)
        if tenant_problem:
            problems.append(tenant_problem)
        # No plain http here, and no opt-in: the token endpoint receives the credential, the others a bearer token that is
        # as good as the credential for its lifetime, and Microsoft serves all of them only over TLS.
        plain_http = {
            "authority_host": "Entra token endpoints are only served over TLS, and a token endpoint over plain http would "
                              "expose the credential",
            "graph_endpoint": "Microsoft serves it only over TLS, and a bearer token sent over plain http could be read and "
                              "replayed; use the https URL",
        }
        plain_http["exchange_endpoint"] = plain_http["graph_endpoint"]
        for option, hint in plain_http.items():
            problem = url_problem(option, self.endpoints[option], plain_http_hint=hint)
            if problem:
                problems.append(problem)
        if self.managed_identity:
            if self.client_id and not is_guid(self.client_id):
                problems.append("client_id %r (the user-assigned managed identity) is not a GUID" % (self.client_id,))
            return problems
        if not self.client_id:
            problems.append("client_id is required (or set AZURE_CLIENT_ID): the Application (client) ID of the automation identity")
        elif not is_guid(self.client_id):
            problems.append("client_id %r is not a GUID: use the Application (client) ID, not the display name" % (self.client_id,))
        if not self.client_secret and not self.client_certificate_path:
            problems.append("give client_secret or client_certificate_path (or AZURE_CLIENT_SECRET / AZURE_SECRET / AZURE_CLIENT_CERTIFICATE_PATH), "
                            "or set managed_identity")
        return problems

    @property
    def transport(self):
        if self._transport is None:
            self._transport = Transport("Entra ID", ca_path=self.ca_path, validate_certs=self.validate_certs, timeout=self.timeout)
        return self._transport

    def authority(self):
        return "%s/%s" % (self.endpoints["authority_host"], self.tenant_id)

    def _credential_fingerprint(self):
        # A token fetched with another credential must not be served (a wrong secret has to fail
        # as it would without a cache), yet the cache must not hold the credential: a digest does both.
        if self.managed_identity:
            # The endpoint names the identity and its header is the credential (as a secret is).
            source, endpoint = managed_identity_source()
            secret = os.environ.get("IDENTITY_HEADER") or os.environ.get("MSI_SECRET") or ""
            material = "managed:%s:%s:%s:%s" % (self.client_id or "system", source, endpoint, secret)
        elif self.client_certificate_path:
            try:
                with open(self.client_certificate_path, "rb") as handle:
                    material = "cert:" + hashlib.sha256(handle.read()).hexdigest()
            except (IOError, OSError):
                material = "cert-unreadable:" + self.client_certificate_path
        else:
            material = "secret:" + (self.client_secret or "")
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def cache_key(self, resource):
        parts = [self.endpoints["authority_host"], (self.tenant_id or "").lower(), (self.client_id or "").lower(),
                 resource, self._credential_fingerprint()]
        return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()

    def token(self, resource):
        """A bearer token for ``resource`` (e.g. https://graph.microsoft.com)."""
        problems = self.validate()
        if problems:
            raise ServiceError("Entra ID", "; ".join(problems))
        token = self.cache.get_or_fetch(self.cache_key(resource), lambda: self._fetch(resource))
        hold(token)  # a service that echoes the request must not make it a line of output
        return token

    def forget_token(self, resource):
        """Drop a cached token, e.g. after a permission was granted: roles are fixed when a token is issued."""
        self.cache.forget(self.cache_key(resource))

    def graph_token(self):
        return self.token(self.endpoints["graph_resource"])

    def exchange_token(self):
        return self.token(self.endpoints["exchange_resource"])

    def _fetch(self, resource):
        if not self.managed_identity and not self.client_certificate_path:
            return self._fetch_with_secret(resource)
        try:
            import msal
        except ImportError as exc:
            raise ServiceError("Entra ID", "the Python library 'msal' is required to get tokens: %s" % exc,
                               hint="install the collection's requirements.txt into the Python that runs the modules")
        self.token_requests += 1
        http_client = MsalHttpClient(self.transport)
        scope = resource.rstrip("/") + "/.default"
        if self.managed_identity:
            return self._fetch_managed_identity(msal, http_client, resource)
        try:
            app = msal.ConfidentialClientApplication(
                self.client_id, client_credential=self._msal_credential(), authority=self.authority(),
                # The authority is explicit (cloud or override), so msal's instance discovery call to
                # login.microsoftonline.com is one request too many, and impossible for private endpoints.
                instance_discovery=False, http_client=http_client)
            result = app.acquire_token_for_client(scopes=[scope])
        except ServiceError:
            raise
        except ValueError as exc:
            # msal raises ValueError when tenant discovery fails and drops Entra's own words (e.g.
            # AADSTS90002 for an unknown tenant): ask the discovery document once more to quote them.
            raise self._discovery_error(exc)
        if "access_token" not in result:
            raise self._token_error(result, scope)
        return result["access_token"], result.get("expires_in", 3599)

    def _fetch_with_secret(self, resource):
        """A client secret needs no library: one POST to the directory's v2.0 token endpoint, the client credentials
        request exactly as CE itself sends it (reference/microsoft-facts.md). msal would read the tenant's
        openid-configuration first, one more request to Entra per token, and its import costs each module process
        that fetches a token ~0.1 s of CPU (docs/benchmark.md). msal stays for certificates and managed identities."""
        self.token_requests += 1
        scope = resource.rstrip("/") + "/.default"
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret, "scope": scope}
        response = self.transport.send("POST", "%s/oauth2/v2.0/token" % self.authority(), data=form, headers={"Accept": "application/json"})
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code == 200 and body.get("access_token"):
            return body["access_token"], body.get("expires_in", 3599)
        if body.get("error"):
            raise self._token_error(body, scope)
        error = self.transport.error_from(response)
        if response.status_code == 200:
            error.message = "the token endpoint answered without an access_token"
        error.hint = error.hint or "check tenant_id, cloud and authority_host: the answer is not Entra's token endpoint's"
        raise error

    def _fetch_managed_identity(self, msal, http_client, resource):
        # No authority is involved: the host's identity endpoint answers, so failures name that
        # endpoint and the variables that select it, never tenant discovery.
        source, endpoint = managed_identity_source()
        hint = MANAGED_IDENTITY_HINTS[source]
        if self.client_id:
            hint += "; client_id %s must be the client ID of a user-assigned identity assigned to this host" % self.client_id
        service = "managed identity (%s)" % source
        doing = "token request for resource %s at %s" % (resource, endpoint.split("?", 1)[0])
        try:
            identity = (msal.UserAssignedManagedIdentity(client_id=self.client_id) if self.client_id
                        else msal.SystemAssignedManagedIdentity())
            result = msal.ManagedIdentityClient(identity, http_client=http_client).acquire_token_for_client(resource=resource)
        except ServiceError as exc:  # no answer, TLS: keep what the transport said, add where the endpoint comes from
            exc.service = service
            exc.hint = "; ".join(h for h in (exc.hint, hint) if h)
            raise
        except ValueError as exc:  # msal's ManagedIdentityError, or an answer that is not JSON
            reason = "the answer is not JSON" if isinstance(exc, json.JSONDecodeError) else (str(exc) or type(exc).__name__)
            raise ServiceError(service, "%s failed: %s" % (doing, reason.splitlines()[0]), hint=hint)
        if "access_token" not in result:
            description = (result.get("error_description") or result.get("error") or "no token").strip().splitlines()[0]
            code, status = result.get("error"), None
            # msal words every App Service refusal "invalid_scope" and "<statusCode>, <message>": keep the status only.
            match = re.match(r"^(\d{3}), (.*)$", description) if source == "App Service" else None
            if match:
                code, status, description = None, int(match.group(1)), match.group(2)
            raise ServiceError(service, "%s was refused: %s" % (doing, description), status=status, code=code, hint=hint)
        return result["access_token"], result.get("expires_in", 3599)

    def _discovery_error(self, exc):
        url = "%s/v2.0/.well-known/openid-configuration" % self.authority()
        try:
            response = self.transport.send("GET", url)
            body = response.json()
        except (ServiceError, ValueError):
            body = {}
        if isinstance(body, dict) and body.get("error"):
            return self._token_error(body, None)
        return ServiceError("Entra ID", "cannot use authority %s: %s" % (self.authority(), exc),
                            hint="check tenant_id, cloud and authority_host")

    def _msal_credential(self):
        if not self.client_certificate_path:
            return self.client_secret
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        try:
            with open(self.client_certificate_path, "rb") as handle:
                pem = handle.read()
            cert = x509.load_pem_x509_certificate(pem)
            password = self.client_certificate_password.encode("utf-8") if self.client_certificate_password else None
            key = serialization.load_pem_private_key(pem, password=password)
        except (IOError, OSError, ValueError, TypeError) as exc:
            raise ServiceError("Entra ID", "cannot read a private key and certificate from client_certificate_path %s: %s"
                               % (self.client_certificate_path, exc),
                               hint="give a PEM file holding both the private key and the certificate")
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return {
            "private_key": key_pem.decode("ascii"),
            "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # nosec - x5t is SHA-1 by definition
            "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        }

    def _token_error(self, result, scope):
        description = (result.get("error_description") or result.get("error") or "no token").strip()
        first_line = description.splitlines()[0]
        codes = result.get("error_codes") or []
        hint = next((AADSTS_HINTS[c] for c in codes if c in AADSTS_HINTS), None)
        scope_text = " (scope %s)" % scope if scope else ""
        return ServiceError("Entra ID", "token request for client %s in directory %s%s was refused: %s"
                            % (self.client_id or "managed identity", self.tenant_id, scope_text, first_line),
                            code=result.get("error"), request_id=result.get("correlation_id") or result.get("trace_id"),
                            hint=hint)


def normalise_authority_host(value):
    # The Azure SDK's AZURE_AUTHORITY_HOST is often a bare host name.
    if value and "://" not in value:
        return "https://" + value
    return value


def auth_from_params(params, **overrides):
    """The MicrosoftAuth of a module's options (microsoft_argument_spec); ``overrides`` replace single values (the login
    proof asks for a token in the directory and at the authority CE's settings name)."""
    values = dict(
        tenant_id=params["tenant_id"], client_id=params.get("client_id"), client_secret=params.get("client_secret"),
        client_certificate_path=params.get("client_certificate_path"), client_certificate_password=params.get("client_certificate_password"),
        managed_identity=params.get("managed_identity", False), cloud=params.get("cloud") or "public",
        authority_host=normalise_authority_host(params.get("authority_host")), graph_endpoint=params.get("graph_endpoint"),
        exchange_endpoint=params.get("exchange_endpoint"), ca_path=params.get("ca_path"),
        validate_certs=params.get("validate_certs", True), timeout=params.get("timeout") or 30,
        token_cache_dir=params.get("token_cache_dir") or default_cache_dir())
    values.update(overrides)
    return MicrosoftAuth(**values)
