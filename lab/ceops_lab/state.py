"""The emulated world: directories (Entra tenants) with their applications, service principals
and app role assignments, built from seed.json.

Objects are plain dicts shaped like Graph's JSON; keys starting with "_" are lab bookkeeping
(creation time on the monotonic clock, owners, secret hashes) and never leave the lab.
All access goes through World.lock: the HTTP servers are threaded.
"""

import base64
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import threading
import time
import uuid

SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed.json")
# Any client SP may hold the "default access" role of a resource (Graph documents it as all zeros).
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"


# A generated fleet's seed (ceops_lab.fleet) instead of seed.json, for the lab process that reads it.
SEED_ENV = "CEOPS_LAB_SEED"


def load_seed(path=None):
    path = path or os.environ.get(SEED_ENV) or SEED_FILE
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment, fraction=False):
    """Graph's date format: UTC with a Z; credentials carry fractional seconds, objects do not."""
    moment = moment.astimezone(datetime.timezone.utc)
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    """Parse an ISO 8601 date as Graph accepts it; raises ValueError."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a date")
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    # Python 3.11 accepts at most 6 fractional digits; .NET writes 7.
    if "." in value:
        head, _, rest = value.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits):]
        value = head + "." + (digits[:6] or "0") + tail
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


_RELATIVE = re.compile(r"^now([+-]\d+)d$")


def parse_seed_time(text, now=None):
    """A date in a seed: ISO 8601, or "now-365d" / "now+30d" (days from now, resolved when the world is built, so a
    seeded secret stays current or expired whatever the date the lab runs on)."""
    match = _RELATIVE.match(str(text).strip()) if isinstance(text, str) else None
    if match:
        return (now or utcnow()) + datetime.timedelta(days=int(match.group(1)))
    return parse_iso(text)


def public(obj):
    """A deep copy of an object without the lab's private keys."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return copy.deepcopy(obj)


def secret_hash(secret_text):
    return hashlib.sha256(secret_text.encode("utf-8")).hexdigest()


def new_secret_text():
    """A secret in Entra's current shape: 3 characters, "8Q~", then 34 characters (40 in all)."""
    alphabet = string.ascii_letters + string.digits
    tail_alphabet = alphabet + "~._-"
    head = "".join(secrets.choice(alphabet) for _ in range(3))
    return head + "8Q~" + "".join(secrets.choice(tail_alphabet) for _ in range(34))


def assignment_id(principal_id, salt=None):
    """Graph's appRoleAssignment ids are not GUIDs: 43 base64url characters that start with the
    principal's object id bytes. Tests and clients must not assume a GUID here."""
    principal_bytes = uuid.UUID(principal_id).bytes_le
    tail = uuid.uuid5(uuid.NAMESPACE_URL, salt).bytes if salt else os.urandom(16)
    return base64.urlsafe_b64encode(principal_bytes + tail).rstrip(b"=").decode("ascii")


def application_template(object_id, app_id, domain, created):
    return {
        "id": object_id,
        "deletedDateTime": None,
        "appId": app_id,
        "applicationTemplateId": None,
        "disabledByMicrosoftStatus": None,
        "createdDateTime": iso(created),
        "displayName": None,
        "description": None,
        "groupMembershipClaims": None,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": None,
        "isFallbackPublicClient": None,
        "nativeAuthenticationApisEnabled": None,
        "notes": None,
        "publisherDomain": domain,
        "serviceManagementReference": None,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": None,
        "uniqueName": None,
        "samlMetadataUrl": None,
        "defaultRedirectUri": None,
        "certification": None,
        "optionalClaims": None,
        "requestSignatureVerification": None,
        "addIns": [],
        "api": {"acceptMappedClaims": None, "knownClientApplications": [], "requestedAccessTokenVersion": None,
                "oauth2PermissionScopes": [], "preAuthorizedApplications": []},
        "appRoles": [],
        "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None, "supportUrl": None, "termsOfServiceUrl": None},
        "keyCredentials": [],
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "passwordCredentials": [],
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
        "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [],
                "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
                "redirectUriSettings": []},
        "spa": {"redirectUris": []},
        "_created": time.monotonic(),
        "_owners": [],
        "_secrets": {},
        "_certs": {},
    }


def service_principal_template(object_id, app, owner_tenant_id):
    return {
        "id": object_id,
        "deletedDateTime": None,
        "accountEnabled": True,
        "alternativeNames": [],
        "appDisplayName": app.get("displayName"),
        "appDescription": app.get("description"),
        "appId": app["appId"],
        "applicationTemplateId": None,
        "appOwnerOrganizationId": owner_tenant_id,
        "appRoleAssignmentRequired": False,
        "description": None,
        "disabledByMicrosoftStatus": None,
        "displayName": app.get("displayName"),
        "homepage": None,
        "loginUrl": None,
        "logoutUrl": None,
        "notes": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "servicePrincipalNames": [app["appId"]] + list(app.get("identifierUris") or []),
        "servicePrincipalType": "Application",
        "signInAudience": app.get("signInAudience", "AzureADMyOrg"),
        "tags": [],
        "tokenEncryptionKeyId": None,
        "samlSingleSignOnSettings": None,
        "addIns": [],
        "appRoles": copy.deepcopy(app.get("appRoles") or []),
        "info": copy.deepcopy(app.get("info") or {}),
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
        "_created": time.monotonic(),
        "_owners": [],
        "_directory_roles": [],
    }


class Directory:
    """One Entra tenant. Methods assume the caller holds World.lock."""

    def __init__(self, seed_entry, resources, microsoft_tenant_id):
        self.name = seed_entry["name"]
        self.display_name = seed_entry.get("displayName", self.name)
        self.tenant_id = seed_entry["tenant_id"]
        self.domain = seed_entry["domain"]
        self.policy = dict(seed_entry.get("policy") or {})
        self.policy.setdefault("max_password_lifetime_days", None)
        self.consistency_window = seed_entry.get("consistency_window")
        self.mailboxes = list(seed_entry.get("mailboxes") or [])
        self.applications = {}
        self.service_principals = {}
        self.assignments = {}
        # Resource SPs (Graph, Exchange) belong to Microsoft's tenant: no application object here.
        self.resource_keys = {}
        for key, sp_id in seed_entry["resource_service_principals"].items():
            resource = resources[key]
            pseudo_app = {"appId": resource["appId"], "displayName": resource["displayName"], "appRoles": resource["appRoles"]}
            sp = service_principal_template(sp_id, pseudo_app, microsoft_tenant_id)
            sp["servicePrincipalNames"] = list(resource["servicePrincipalNames"])
            sp["oauth2PermissionScopes"] = copy.deepcopy(resource.get("oauth2PermissionScopes") or [])
            sp["signInAudience"] = "AzureADMultipleOrgs"
            sp["_created"] = 0.0  # seeded objects are visible from the start
            self.service_principals[sp_id] = sp
            self.resource_keys[key] = sp_id

    # ----- lookups -------------------------------------------------------------------------
    def app_by_app_id(self, app_id):
        for app in self.applications.values():
            if app["appId"].lower() == str(app_id).lower():
                return app
        return None

    def app_by_unique_name(self, unique_name):
        for app in self.applications.values():
            if app.get("uniqueName") is not None and app["uniqueName"] == unique_name:
                return app
        return None

    def sp_by_app_id(self, app_id):
        for sp in self.service_principals.values():
            if sp["appId"].lower() == str(app_id).lower():
                return sp
        return None

    def resource_sp(self, key):
        return self.service_principals[self.resource_keys[key]]

    def sp_by_name_or_key(self, value):
        """'graph'/'exchange', a service principal id or an appId."""
        if value in self.resource_keys:
            return self.resource_sp(value)
        if value in self.service_principals:
            return self.service_principals[value]
        return self.sp_by_app_id(value)

    def resource_by_identifier(self, identifier):
        """The service principal a token's resource names: by appId or any servicePrincipalName,
        ignoring a trailing slash (Entra treats https://x and https://x/ alike)."""
        wanted = identifier.rstrip("/").lower()
        for sp in self.service_principals.values():
            names = [sp["appId"]] + list(sp.get("servicePrincipalNames") or [])
            if any(n.rstrip("/").lower() == wanted for n in names):
                return sp
        return None

    # ----- applications --------------------------------------------------------------------
    def create_application(self, fields, owner_id=None, object_id=None, app_id=None):
        created = utcnow()
        app = application_template(object_id or str(uuid.uuid4()), app_id or str(uuid.uuid4()), self.domain, created)
        app.update(copy.deepcopy(fields))
        if owner_id:
            app["_owners"].append(owner_id)
        self.applications[app["id"]] = app
        return app

    def delete_application(self, app):
        """Deleting an application also deletes its service principal (and so its grants)."""
        self.applications.pop(app["id"], None)
        sp = self.sp_by_app_id(app["appId"])
        if sp is not None and sp["appOwnerOrganizationId"] == self.tenant_id:
            self.delete_service_principal(sp)

    def add_password(self, app, display_name, start, end, secret_text=None, key_id=None):
        secret_text = secret_text or new_secret_text()
        key_id = key_id or str(uuid.uuid4())
        credential = {
            "customKeyIdentifier": None,
            "displayName": display_name,
            "endDateTime": iso(end, fraction=True),
            "hint": secret_text[:3],
            "keyId": key_id,
            "secretText": None,
            "startDateTime": iso(start, fraction=True),
        }
        app["passwordCredentials"].append(credential)
        app["_secrets"][key_id] = {"hash": secret_hash(secret_text), "created": time.monotonic()}
        return credential, secret_text

    def remove_password(self, app, key_id):
        before = len(app["passwordCredentials"])
        app["passwordCredentials"] = [c for c in app["passwordCredentials"] if c["keyId"].lower() != str(key_id).lower()]
        app["_secrets"] = {k: v for k, v in app["_secrets"].items() if k.lower() != str(key_id).lower()}
        return len(app["passwordCredentials"]) != before

    def match_secret(self, app, secret_text):
        """The password credential whose secret this is, or None. Constant-time per credential."""
        candidate = secret_hash(secret_text)
        for credential in app["passwordCredentials"]:
            stored = app["_secrets"].get(credential["keyId"])
            if stored and hmac.compare_digest(stored["hash"], candidate):
                return credential, stored
        return None, None

    # ----- service principals ----------------------------------------------------------------
    def create_service_principal(self, app, fields=None, owner_id=None, object_id=None):
        sp = service_principal_template(object_id or str(uuid.uuid4()), app, self.tenant_id)
        for key, value in (fields or {}).items():
            sp[key] = copy.deepcopy(value)
        if owner_id:
            sp["_owners"].append(owner_id)
        self.service_principals[sp["id"]] = sp
        return sp

    def delete_service_principal(self, sp):
        self.service_principals.pop(sp["id"], None)
        for assignment_key in [k for k, a in self.assignments.items() if sp["id"] in (a["principalId"], a["resourceId"])]:
            del self.assignments[assignment_key]

    # ----- app role assignments --------------------------------------------------------------
    def find_assignment(self, principal_id, resource_id, app_role_id):
        for assignment in self.assignments.values():
            if (assignment["principalId"] == principal_id and assignment["resourceId"] == resource_id
                    and assignment["appRoleId"].lower() == app_role_id.lower()):
                return assignment
        return None

    def create_assignment(self, principal, resource, app_role_id, assignment_key=None, seeded=False):
        created = utcnow()
        assignment = {
            "id": assignment_key or assignment_id(principal["id"]),
            "deletedDateTime": None,
            "appRoleId": app_role_id,
            "createdDateTime": iso(created, fraction=True),
            "principalDisplayName": principal.get("displayName"),
            "principalId": principal["id"],
            "principalType": "ServicePrincipal",
            "resourceDisplayName": resource.get("displayName"),
            "resourceId": resource["id"],
            "_created": 0.0 if seeded else time.monotonic(),
        }
        self.assignments[assignment["id"]] = assignment
        return assignment

    def assignments_of(self, principal_id=None, resource_id=None):
        return [a for a in self.assignments.values()
                if (principal_id is None or a["principalId"] == principal_id) and (resource_id is None or a["resourceId"] == resource_id)]

    def role_values(self, principal_id, resource, visible=lambda obj: True):
        """The `roles` claim of a token for `principal_id` on `resource`: assigned, enabled app roles."""
        roles_by_id = {r["id"].lower(): r for r in resource.get("appRoles") or []}
        values = []
        for assignment in self.assignments_of(principal_id, resource["id"]):
            role = roles_by_id.get(assignment["appRoleId"].lower())
            if role and role.get("isEnabled", True) and visible(assignment) and role["value"] not in values:
                values.append(role["value"])
        return values

    def grant_roles(self, principal, resource, values):
        """Admin shortcut: assign app roles by value, immediately visible (no consistency window)."""
        by_value = {r["value"]: r for r in resource.get("appRoles") or []}
        unknown = [v for v in values if v not in by_value]
        if unknown:
            raise KeyError("unknown app role(s) on %s: %s" % (resource["displayName"], ", ".join(unknown)))
        for value in values:
            role_id = by_value[value]["id"]
            if not self.find_assignment(principal["id"], resource["id"], role_id):
                self.create_assignment(principal, resource, role_id, seeded=True)

    def revoke_roles(self, principal, resource, values):
        by_value = {r["value"]: r for r in resource.get("appRoles") or []}
        for value in values:
            role = by_value.get(value)
            existing = role and self.find_assignment(principal["id"], resource["id"], role["id"])
            if existing:
                del self.assignments[existing["id"]]

    # ----- views -----------------------------------------------------------------------------
    def summary(self):
        return {"name": self.name, "displayName": self.display_name, "tenant_id": self.tenant_id, "domain": self.domain,
                "policy": dict(self.policy), "consistency_window": self.consistency_window, "mailboxes": list(self.mailboxes)}

    def snapshot(self):
        """Everything but secrets: password credentials show keyId, hint and dates only."""
        apps = []
        for app in self.applications.values():
            view = public(app)
            view["passwordCredentials"] = [{k: c[k] for k in ("keyId", "displayName", "hint", "startDateTime", "endDateTime")}
                                           for c in app["passwordCredentials"]]
            view["owners"] = list(app["_owners"])
            apps.append(view)
        sps = []
        for sp in self.service_principals.values():
            view = public(sp)
            view["owners"] = list(sp["_owners"])
            view["directory_roles"] = list(sp["_directory_roles"])
            sps.append(view)
        return dict(self.summary(), applications=apps, servicePrincipals=sps,
                    appRoleAssignments=[public(a) for a in self.assignments.values()])


class World:
    """All directories of the lab, rebuilt from the seed on reset()."""

    def __init__(self, seed, automation_certificates, seeders=()):
        self.lock = threading.RLock()
        self.seed = seed
        # {directory name: SelfSignedIdentity}; generated once per lab process so the PEM files
        # handed to inventories stay valid across resets.
        self.automation_certificates = automation_certificates
        # Callables (directory, seed entry, seed) that seed more than the automation identity (seeding.seed_directory).
        self.seeders = list(seeders)
        self.directories = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.directories = {}
            for entry in self.seed["directories"]:
                directory = Directory(entry, self.seed["resources"], self.seed["microsoft_tenant_id"])
                self._seed_automation(directory, entry["automation"])
                for seeder in self.seeders:
                    seeder(directory, entry, self.seed)
                self.directories[directory.tenant_id] = directory

    def _seed_automation(self, directory, spec):
        secret = spec["client_secret"]
        app = directory.create_application({"displayName": spec["displayName"]}, object_id=spec["application_object_id"], app_id=spec["app_id"])
        app["createdDateTime"] = secret["startDateTime"]
        app["_created"] = 0.0
        directory.add_password(app, secret["displayName"], parse_iso(secret["startDateTime"]), parse_iso(secret["endDateTime"]),
                               secret_text=secret["secretText"], key_id=secret["keyId"])
        app["_secrets"][secret["keyId"]]["created"] = 0.0
        identity = self.automation_certificates.get(directory.name)
        if identity is not None:
            add_key_credential(app, identity.der, key_id=spec["certificate_key_id"], display_name="CN=" + identity_common_name(identity))
        resources_access = []
        for key, values in spec["app_roles"].items():
            resource = directory.resource_sp(key)
            ids = {r["value"]: r["id"] for r in resource["appRoles"]}
            resources_access.append({"resourceAppId": resource["appId"], "resourceAccess": [{"id": ids[v], "type": "Role"} for v in values]})
        app["requiredResourceAccess"] = resources_access
        sp = directory.create_service_principal(app, object_id=spec["service_principal_id"])
        sp["_created"] = 0.0
        sp["_directory_roles"] = list(spec.get("directory_roles") or [])
        for key, values in spec["app_roles"].items():
            resource = directory.resource_sp(key)
            ids = {r["value"]: r["id"] for r in resource["appRoles"]}
            for value in values:
                directory.create_assignment(sp, resource, ids[value], assignment_key=assignment_id(sp["id"], salt=key + ":" + value), seeded=True)

    def directory(self, key):
        """A directory by tenant id, domain or lab name (case-insensitive); None if unknown."""
        if not key:
            return None
        wanted = str(key).lower()
        for directory in self.directories.values():
            if wanted in (directory.tenant_id.lower(), directory.domain.lower(), directory.name.lower()):
                return directory
        return None

    def snapshot(self):
        with self.lock:
            return {"directories": {d.name: d.snapshot() for d in self.directories.values()}}


def identity_common_name(identity):
    from cryptography.x509.oid import NameOID
    attributes = identity.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attributes[0].value if attributes else "certificate"


def add_key_credential(app, der, key_id=None, display_name=None, usage="Verify"):
    """Register a certificate on an application, the way Graph stores keyCredentials."""
    from cryptography import x509

    from .ca import thumbprints
    cert = x509.load_der_x509_certificate(der)
    prints = thumbprints(cert)
    key_id = key_id or str(uuid.uuid4())
    credential = {
        "customKeyIdentifier": base64.b64encode(prints["sha1_raw"]).decode("ascii"),
        "displayName": display_name or cert.subject.rfc4514_string(),
        "endDateTime": iso(cert.not_valid_after_utc),
        "key": None,
        "keyId": key_id,
        "startDateTime": iso(cert.not_valid_before_utc),
        "type": "AsymmetricX509Cert",
        "usage": usage,
    }
    app["keyCredentials"].append(credential)
    app["_certs"][key_id] = {"x5t": prints["x5t"], "x5t#S256": prints["x5t#S256"], "public_key": cert.public_key(),
                             "der": der, "not_after": cert.not_valid_after_utc, "not_before": cert.not_valid_before_utc}
    return credential
