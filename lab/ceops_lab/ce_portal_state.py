"""The CE Portal emulator's world (served over HTTP by ce_portal.py): deployments with their tenants,
email gateways, OAuth settings, email connections, pending configuration and batch updates, built
from ce_seed.json and the contract in reference/ce-portal-api.yaml.

Objects are plain dicts in the contract's JSON shape; keys starting with "_" are lab bookkeeping
(creation order, the stored client secret) and never leave the lab, neither through the Portal API
nor through the admin state. Everything here assumes the caller holds CePortalService.lock.

Two configurations exist per deployment: the *configured* one (what the Portal API reads and
writes) and the *applied* one (what the mail servers run: the configuration as of the last
successful batch update). Seeded objects count as applied.
"""

import base64
import binascii
import copy
import datetime
import hashlib
import json
import os
import random
import re
import secrets
import time
import uuid
from urllib.parse import urlsplit

from . import journal, provenance
from .provenance import tag_of
from .state import parse_seed_time

SEED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ce_seed.json")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A batch update is "queued" for this share of its duration, then "running".
QUEUED_FRACTION = 0.2
# The release that introduced each capability (contract, GET /info).
CAPABILITY_SINCE = (("oauth_receive_imap", (7, 4, 4)), ("oauth_send_smtp", (7, 6, 0)))
KNOWN_CAPABILITIES = tuple(name for name, _ in CAPABILITY_SINCE)
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SECURITY = ("ssl", "starttls", "none")
PROTOCOLS = ("imap", "pop3")
SETTING_DEFAULTS = {"update_seconds": 1.0, "fail_next_update": None, "update_failure_rate": 0.0, "page_size": None}
RANDOM_FAILURE = "Mail server mail01.%s.ce.lab did not confirm the new configuration within the time limit."


# A generated fleet (ceops_lab.fleet) or a named world (ceops_lab.worlds) points this at its own CE seed.
CE_SEED_ENV = "CEOPS_LAB_CE_SEED"


def load_ce_seed(path=None):
    path = path or os.environ.get(CE_SEED_ENV) or SEED_FILE
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def resolve_secret_refs(ce_seed, ms_seed):
    """A copy of the CE seed whose OAuth settings carry `client_secret_ref` {"directory", "key_id"} resolved to that
    password credential's secret text in the Microsoft seed (seed.json): a CE tenant seeded with the secret an
    administrator copied from the Entra admin center, without writing the secret twice."""
    texts = {}
    for entry in ms_seed.get("directories") or []:
        secrets_of = [a.get("password_credentials") or [] for a in entry.get("applications") or []]
        secrets_of.append([entry["automation"]["client_secret"]] if entry.get("automation") else [])
        for credential in (c for group in secrets_of for c in group):
            texts[(entry["name"], credential["keyId"].lower())] = credential["secretText"]
    resolved = copy.deepcopy(ce_seed)
    for deployment in resolved["deployments"]:
        for tenant in deployment["tenants"]:
            for settings in tenant.get("oauth_settings") or []:
                ref = settings.pop("client_secret_ref", None)
                if ref is None:
                    continue
                key = (ref["directory"], str(ref["key_id"]).lower())
                if key not in texts:
                    raise ValueError("CE seed: OAuth settings %s of %s/%s name a secret that is not in the Microsoft seed: %s"
                                     % (settings.get("id"), deployment["name"], tenant["name"], ref))
                settings["client_secret"] = texts[key]
    return resolved


# ----- errors ---------------------------------------------------------------------------------------
class PortalError(Exception):
    """An error the Portal answers with {"error": {"code", "message", "details"}}."""

    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = [{"field": f, "message": m} for f, m in (details or [])]
        self.headers = dict(headers or {})

    def body(self):
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def validation_failed(details):
    """details: [(field, message)]; the message names every field."""
    text = "; ".join("%s: %s" % (f, m) for f, m in details)
    return PortalError(400, "validation_failed", "The request is invalid. %s" % text, details)


def not_found(what, identifier):
    return PortalError(404, "not_found", "%s %r does not exist." % (what, identifier))


def oauth_not_supported(field, message):
    return PortalError(400, "oauth_not_supported", message, [(field, message)])


# ----- small helpers ----------------------------------------------------------------------------------
def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_version(text):
    """"7.4.4" -> (7, 4, 4); ValueError for anything else."""
    parts = str(text).split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
        raise ValueError("version must look like 7.4.4")
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def capabilities_for(version):
    release = parse_version(version)
    return [name for name, since in CAPABILITY_SINCE if release >= since]


def fingerprint(secret):
    """First 8 hex digits of the secret's SHA-256: lets tests tell secrets apart, reveals nothing usable."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8] if secret is not None else None


def new_id(prefix):
    return "%s_%s" % (prefix, secrets.token_hex(6))


def public(obj):
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def if_match_ok(header, revision):
    """RFC 9110 If-Match with strong comparison: "*" or a list of entity tags, one of which must be
    exactly "<revision>". Weak tags (W/"...") and unquoted values never match."""
    if header is None:
        return True
    header = header.strip()
    if header == "*":
        return True
    wanted = '"%d"' % revision
    return any(tag.strip() == wanted for tag in header.split(","))


# ----- paging ----------------------------------------------------------------------------------------
def _encode_cursor(data):
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_cursor(text):
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("a"), int) or not isinstance(data.get("f"), dict):
            raise ValueError("bad cursor")
        return data
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise validation_failed([("cursor", "is not a cursor this list returned")]) from None


def parse_limit(text):
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise validation_failed([("limit", "must be an integer between 1 and %d" % MAX_LIMIT)]) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise validation_failed([("limit", "must be an integer between 1 and %d" % MAX_LIMIT)])
    return limit


def paginate(arg, list_key, filter_names, select, page_cap=None, newest_first=False):
    """One page of a list: {"items": [internal objects], "next_cursor": str|None}.

    `arg(name)` reads a query parameter; `select(filters)` returns the matching internal objects
    (with "_seq"). The cursor is opaque (base64url JSON of list, filters and the last item's
    creation sequence): keyset paging, so deleting or adding items between pages neither repeats
    nor skips the others. Filters may be repeated alongside a cursor but must then be equal.
    `page_cap` (lab setting) makes pages smaller than `limit`, as a loaded Portal may.
    """
    limit = parse_limit(arg("limit"))
    if page_cap:
        limit = min(limit, int(page_cap))
    filters = {name: arg(name) for name in filter_names if arg(name) is not None}
    after = None
    cursor_text = arg("cursor")
    if cursor_text:
        cursor = _decode_cursor(cursor_text)
        if cursor.get("l") != list_key:
            raise validation_failed([("cursor", "belongs to another list")])
        for name, value in filters.items():
            if cursor["f"].get(name) != value:
                raise validation_failed([(name, "differs from the query the cursor was issued for")])
        filters = {k: v for k, v in cursor["f"].items() if k in filter_names}
        after = cursor["a"]
    items = sorted(select(filters), key=lambda o: o["_seq"], reverse=newest_first)
    if after is not None:
        items = [o for o in items if (o["_seq"] < after if newest_first else o["_seq"] > after)]
    page, rest = items[:limit], items[limit:]
    next_cursor = _encode_cursor({"l": list_key, "f": filters, "a": page[-1]["_seq"]}) if rest else None
    return {"items": page, "next_cursor": next_cursor}


# ----- validation of write bodies ---------------------------------------------------------------------
def _string(body, field, errors, required=True, max_length=None, min_length=1, label=None):
    label = label or field
    if field not in body:
        if required:
            errors.append((label, "is required"))
        return None
    value = body[field]
    if not isinstance(value, str):
        errors.append((label, "must be a string"))
        return None
    if len(value) < min_length:
        errors.append((label, "must not be empty" if min_length == 1 else "must have at least %d characters" % min_length))
        return None
    if max_length is not None and len(value) > max_length:
        errors.append((label, "must have at most %d characters" % max_length))
        return None
    return value


def _boolean(body, field, errors):
    value = body.get(field, False)
    if not isinstance(value, bool):
        errors.append((field, "must be true or false"))
        return False
    return value


def _endpoint(body, field, errors, with_protocol):
    value = body.get(field)
    if field not in body:
        errors.append((field, "is required"))
        return None
    if not isinstance(value, dict):
        errors.append((field, "must be an object"))
        return None
    result = {"host": _string(value, "host", errors, label=field + ".host")}
    port = value.get("port")
    if "port" not in value:
        errors.append((field + ".port", "is required"))
    elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append((field + ".port", "must be an integer between 1 and 65535"))
    result["port"] = port
    security = value.get("security")
    if "security" not in value:
        errors.append((field + ".security", "is required"))
    elif security not in SECURITY:
        errors.append((field + ".security", "must be one of %s" % ", ".join(SECURITY)))
    result["security"] = security
    if with_protocol:
        protocol = value.get("protocol")
        if "protocol" not in value:
            errors.append((field + ".protocol", "is required"))
        elif protocol not in PROTOCOLS:
            errors.append((field + ".protocol", "must be one of %s" % ", ".join(PROTOCOLS)))
        result["protocol"] = protocol
    return result


def check_body(body):
    if not isinstance(body, dict):
        raise validation_failed([("body", "must be a JSON object")])
    return body


def validate_gateway(body):
    """GatewayWrite -> the stored fields (PUT replaces them all, so description may go away)."""
    check_body(body)
    errors = []
    fields = {"name": _string(body, "name", errors, max_length=128)}
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        errors.append(("description", "must be a string"))
    fields["description"] = description
    fields["inbound"] = _endpoint(body, "inbound", errors, True)
    fields["outbound"] = _endpoint(body, "outbound", errors, False)
    if errors:
        raise validation_failed(errors)
    return fields


def _is_uuid(text):
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def validate_oauth_settings(body, creating):
    """OAuthSettingsWrite -> (fields, secret or None when omitted on PUT)."""
    check_body(body)
    errors = []
    fields = {"name": _string(body, "name", errors, max_length=128)}
    client_id = _string(body, "client_id", errors)
    if client_id is not None and not _is_uuid(client_id):
        errors.append(("client_id", "must be a UUID"))
    fields["client_id"] = client_id
    scopes = body.get("scopes")
    if "scopes" not in body:
        errors.append(("scopes", "is required"))
    elif not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        errors.append(("scopes", "must be a list of strings"))
    elif not scopes:
        errors.append(("scopes", "must contain at least one scope"))
    fields["scopes"] = list(scopes) if isinstance(scopes, list) else None
    url = _string(body, "token_endpoint_url", errors)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" or not parts.netloc:
            errors.append(("token_endpoint_url", "must be an https URL"))
    fields["token_endpoint_url"] = url
    secret = _string(body, "client_secret", errors, required=creating)
    if errors:
        raise validation_failed(errors)
    return fields, secret


def validate_connection(body):
    check_body(body)
    errors = []
    fields = {"name": _string(body, "name", errors, max_length=128),
              "gateway_id": _string(body, "gateway_id", errors)}
    settings_id = body.get("oauth_settings_id")
    if settings_id is not None and not isinstance(settings_id, str):
        errors.append(("oauth_settings_id", "must be a string or null"))
    fields["oauth_settings_id"] = settings_id
    fields["use_oauth_receive"] = _boolean(body, "use_oauth_receive", errors)
    fields["use_oauth_send"] = _boolean(body, "use_oauth_send", errors)
    if errors:
        raise validation_failed(errors)
    return fields


# ----- the model ----------------------------------------------------------------------------------------
JOURNAL_KINDS = {"Email gateway": "ce_email_gateway", "OAuth settings": "ce_oauth_settings", "Email connection": "ce_email_connection"}


def make_credentials(seed):
    """API tokens and passwords, generated once per lab process (they survive POST /reset, so the
    lab-vars file written at start stays valid)."""
    def one(username):
        return {"username": username, "password": "Lab-" + secrets.token_urlsafe(12), "token": "cep_" + secrets.token_urlsafe(24)}
    result = {}
    for entry in seed["deployments"]:
        result[entry["name"]] = {"admin": one(entry["admin_username"]),
                                 "tenants": {t["name"]: one(t["admin_username"]) for t in entry["tenants"]}}
    return result


class Tenant:
    def __init__(self, entry, credentials):
        self.name = entry["name"]
        self.display_name = entry.get("display_name", self.name)
        self.directory = entry.get("directory")
        self.admin = credentials
        self.mailboxes = [{"address": a, "username": a} for a in entry.get("mailboxes") or []]
        self.oauth_settings = {}
        self.connections = {}


class Deployment:
    """One CE deployment. `clock` (monotonic seconds) moves batch updates along and `id_factory(prefix)` names new
    objects; unit tests that run this state machine in-process pass a virtual clock and predictable ids."""

    def __init__(self, entry, credentials, default_provenance=None, clock=time.monotonic, id_factory=new_id):
        self.name = entry["name"]
        self.version = entry["version"]
        self.capabilities = list(entry.get("capabilities", capabilities_for(self.version)))
        self.settings = dict(SETTING_DEFAULTS)
        self.admin = credentials["admin"]
        self.random = random.Random()
        self.clock = clock
        self.new_id = id_factory
        self._seq = 0
        self.gateways = {}
        self.tenants = {}
        self.changes = []
        self.updates = []
        self._last_secret_time = None
        for spec in entry.get("email_gateways") or []:
            self._seeded(spec, default_provenance, self._insert(self.gateways, spec["id"], validate_gateway(spec)))
        for spec in entry["tenants"]:
            tenant = Tenant(spec, credentials["tenants"][spec["name"]])
            self.tenants[tenant.name] = tenant
            for item in spec.get("oauth_settings") or []:
                fields, secret = validate_oauth_settings(item, True)
                obj = self._seeded(item, default_provenance, self._insert(tenant.oauth_settings, item["id"], fields))
                self._store_secret(obj, secret)
                if item.get("client_secret_updated_at"):  # settings made by hand long ago
                    obj["_secret_updated_at"] = rfc3339(parse_seed_time(item["client_secret_updated_at"]))
            for item in spec.get("email_connections") or []:
                self._seeded(item, default_provenance, self._insert(tenant.connections, item["id"], validate_connection(item)))
        self.applied = self._config()
        self.applied_at = None
        self.applied_update_id = None

    # ----- bookkeeping -------------------------------------------------------------------------
    def next_seq(self):
        self._seq += 1
        return self._seq

    def add_existing(self, table, object_id, fields, secret=None):
        """Put an object in place as if it had been there before (like a seeded one: no pending change, no journal entry):
        table is self.gateways, a tenant's oauth_settings or connections. For tests that arrange a Portal's state."""
        obj = self._insert(table, object_id, dict(fields))
        if secret is not None:
            self._store_secret(obj, secret)
        return obj

    @staticmethod
    def _seeded(spec, default_provenance, obj):
        """A seeded object's revision (edited by hand a few times) and provenance tag (provenance.py)."""
        obj["revision"] = int(spec.get("revision", 1))
        provenance.set_tag(obj, provenance.check(spec.get("provenance", default_provenance), "CE object %s" % obj["id"]))
        return obj

    def _insert(self, table, object_id, fields):
        obj = {"id": object_id, "revision": 1}
        obj.update(fields)
        obj["_seq"] = self.next_seq()
        table[object_id] = obj
        return obj

    def _store_secret(self, obj, secret):
        moment = now_utc()
        # Strictly increasing, so a replaced secret always shows a new client_secret_updated_at.
        if self._last_secret_time is not None and moment <= self._last_secret_time:
            moment = self._last_secret_time + datetime.timedelta(milliseconds=1)
        self._last_secret_time = moment
        obj["_secret"] = secret
        obj["_secret_updated_at"] = rfc3339(moment)

    def record_change(self, tenant, kind, object_id):
        """One pending entry per object: a newer write replaces the older entry (with a newer seq)."""
        self.changes = [c for c in self.changes if not (c["kind"] == kind and c["id"] == object_id and c["tenant"] == tenant)]
        self.changes.append({"tenant": tenant, "kind": kind, "id": object_id, "changed_at": rfc3339(now_utc()), "_seq": self.next_seq()})

    def _existing(self, table, object_id, what, if_match):
        """The object a PUT or DELETE addresses (journaled as addressed even when the write is refused), at the revision
        If-Match names."""
        obj = table.get(object_id)
        if obj is None:
            raise not_found(what, object_id)
        journal.note(JOURNAL_KINDS[what], object_id, tag_of(obj), "addressed")
        self.check_revision(obj, if_match)
        return obj

    @staticmethod
    def _replace(obj, fields, what, also=()):
        """PUT replaces the writable representation: a new revision, journaled with the fields whose value changed."""
        changed = [name for name, value in fields.items() if obj.get(name) != value] + list(also)
        obj.update(fields)
        obj["revision"] += 1
        journal.note(JOURNAL_KINDS[what], obj["id"], tag_of(obj), "changed", fields=changed)

    @staticmethod
    def check_revision(obj, if_match):
        if not if_match_ok(if_match, obj["revision"]):
            raise PortalError(412, "revision_mismatch", "The resource was changed since it was read (current revision %d)." % obj["revision"],
                              [("If-Match", 'current revision is "%d"' % obj["revision"])], {"ETag": '"%d"' % obj["revision"]})

    @staticmethod
    def check_name(table, name, own_id, what):
        for other in table.values():
            if other["name"] == name and other["id"] != own_id:
                raise PortalError(409, "name_conflict", "%s named %r already exists (id %s)." % (what, name, other["id"]),
                                  [("name", "already used by %s" % other["id"])])

    def tenant(self, name):
        return self.tenants.get(name)

    def has(self, capability):
        return capability in self.capabilities

    # ----- views -----------------------------------------------------------------------------
    @staticmethod
    def gateway_view(obj):
        view = {"id": obj["id"], "revision": obj["revision"], "name": obj["name"]}
        if obj.get("description") is not None:
            view["description"] = obj["description"]
        view["inbound"] = dict(obj["inbound"])
        view["outbound"] = dict(obj["outbound"])
        return view

    @staticmethod
    def oauth_view(obj, with_fingerprint=False):
        view = {k: copy.deepcopy(obj[k]) for k in ("id", "revision", "name", "client_id", "scopes", "token_endpoint_url")}
        view["client_secret_set"] = bool(obj.get("_secret"))
        view["client_secret_updated_at"] = obj.get("_secret_updated_at")
        if with_fingerprint:
            view["client_secret_sha256_8"] = fingerprint(obj.get("_secret"))
        return view

    @staticmethod
    def connection_view(obj):
        return {k: obj[k] for k in ("id", "revision", "name", "gateway_id", "oauth_settings_id", "use_oauth_receive", "use_oauth_send")}

    @staticmethod
    def change_view(change):
        # The contract types `tenant` as a string: deployment-wide changes (gateways) leave it out.
        view = {"tenant": change["tenant"], "kind": change["kind"], "id": change["id"], "changed_at": change["changed_at"]}
        if view["tenant"] is None:
            del view["tenant"]
        return view

    # ----- gateways -----------------------------------------------------------------------------
    def connections_using(self, key, value):
        return [(t.name, c) for t in self.tenants.values() for c in t.connections.values() if c.get(key) == value]

    def create_gateway(self, body):
        fields = validate_gateway(body)
        self.check_name(self.gateways, fields["name"], None, "An email gateway")
        obj = self._insert(self.gateways, self.new_id("egw"), fields)
        self.record_change(None, "email_gateway", obj["id"])
        journal.note("ce_email_gateway", obj["id"], None, "created")
        return obj

    def replace_gateway(self, gateway_id, body, if_match):
        obj = self._existing(self.gateways, gateway_id, "Email gateway", if_match)
        fields = validate_gateway(body)
        self.check_name(self.gateways, fields["name"], gateway_id, "An email gateway")
        if fields["inbound"]["protocol"] == "pop3":
            users = [c for _, c in self.connections_using("gateway_id", gateway_id) if c["use_oauth_receive"]]
            if users:
                raise oauth_not_supported("inbound.protocol", "POP3 does not support OAuth, and email connection %s uses this gateway "
                                                              "to receive with OAuth." % users[0]["id"])
        self._replace(obj, fields, "Email gateway")
        self.record_change(None, "email_gateway", gateway_id)
        return obj

    def delete_gateway(self, gateway_id, if_match):
        obj = self._existing(self.gateways, gateway_id, "Email gateway", if_match)
        users = self.connections_using("gateway_id", gateway_id)
        if users:
            raise PortalError(409, "in_use", "Email gateway %r is used by %d email connection(s)." % (obj["name"], len(users)),
                              [("email_connections", "%s (tenant %s)" % (c["id"], t)) for t, c in users])
        del self.gateways[gateway_id]
        self.record_change(None, "email_gateway", gateway_id)
        journal.note("ce_email_gateway", gateway_id, tag_of(obj), "deleted")

    # ----- oauth settings ----------------------------------------------------------------------------
    def create_oauth_settings(self, tenant, body):
        fields, secret = validate_oauth_settings(body, True)
        self.check_name(tenant.oauth_settings, fields["name"], None, "OAuth settings")
        obj = self._insert(tenant.oauth_settings, self.new_id("oas"), fields)
        self._store_secret(obj, secret)
        self.record_change(tenant.name, "oauth_settings", obj["id"])
        journal.note("ce_oauth_settings", obj["id"], None, "created")
        return obj

    def replace_oauth_settings(self, tenant, settings_id, body, if_match):
        obj = self._existing(tenant.oauth_settings, settings_id, "OAuth settings", if_match)
        fields, secret = validate_oauth_settings(body, False)
        self.check_name(tenant.oauth_settings, fields["name"], settings_id, "OAuth settings")
        if secret is not None:
            self._store_secret(obj, secret)
        self._replace(obj, fields, "OAuth settings", also=["client_secret"] if secret is not None else [])
        self.record_change(tenant.name, "oauth_settings", settings_id)
        return obj

    def delete_oauth_settings(self, tenant, settings_id, if_match):
        obj = self._existing(tenant.oauth_settings, settings_id, "OAuth settings", if_match)
        users = [c for c in tenant.connections.values() if c.get("oauth_settings_id") == settings_id]
        if users:
            raise PortalError(409, "in_use", "OAuth settings %r are used by %d email connection(s)." % (obj["name"], len(users)),
                              [("email_connections", c["id"]) for c in users])
        del tenant.oauth_settings[settings_id]
        self.record_change(tenant.name, "oauth_settings", settings_id)
        journal.note("ce_oauth_settings", settings_id, tag_of(obj), "deleted")

    # ----- email connections --------------------------------------------------------------------------
    def _check_connection(self, tenant, fields):
        gateway = self.gateways.get(fields["gateway_id"])
        errors = []
        if gateway is None:
            errors.append(("gateway_id", "no email gateway %r in this deployment" % fields["gateway_id"]))
        settings_id = fields["oauth_settings_id"]
        if settings_id is not None and settings_id not in tenant.oauth_settings:
            errors.append(("oauth_settings_id", "no OAuth settings %r in tenant %s" % (settings_id, tenant.name)))
        if errors:
            raise validation_failed(errors)
        receive, send = fields["use_oauth_receive"], fields["use_oauth_send"]
        if receive and not self.has("oauth_receive_imap"):
            raise oauth_not_supported("use_oauth_receive", "CE %s does not support OAuth to receive email (capability oauth_receive_imap, "
                                                           "CE 7.4.4 or later)." % self.version)
        if receive and gateway["inbound"]["protocol"] == "pop3":
            raise oauth_not_supported("use_oauth_receive", "Email gateway %r receives with POP3; CE does not support OAuth for POP3." % gateway["name"])
        if send and not self.has("oauth_send_smtp"):
            raise oauth_not_supported("use_oauth_send", "CE %s does not support OAuth to send email (capability oauth_send_smtp, "
                                                        "CE 7.6.0 or later)." % self.version)
        if (receive or send) and settings_id is None:
            flag = "use_oauth_receive" if receive else "use_oauth_send"
            raise oauth_not_supported("oauth_settings_id", "%s is true but no oauth_settings_id is set." % flag)

    def create_connection(self, tenant, body):
        fields = validate_connection(body)
        self._check_connection(tenant, fields)
        self.check_name(tenant.connections, fields["name"], None, "An email connection")
        obj = self._insert(tenant.connections, self.new_id("ecn"), fields)
        self.record_change(tenant.name, "email_connection", obj["id"])
        journal.note("ce_email_connection", obj["id"], None, "created")
        return obj

    def replace_connection(self, tenant, connection_id, body, if_match):
        obj = self._existing(tenant.connections, connection_id, "Email connection", if_match)
        fields = validate_connection(body)
        self._check_connection(tenant, fields)
        self.check_name(tenant.connections, fields["name"], connection_id, "An email connection")
        self._replace(obj, fields, "Email connection")
        self.record_change(tenant.name, "email_connection", connection_id)
        return obj

    def delete_connection(self, tenant, connection_id, if_match):
        obj = self._existing(tenant.connections, connection_id, "Email connection", if_match)
        del tenant.connections[connection_id]
        self.record_change(tenant.name, "email_connection", connection_id)
        journal.note("ce_email_connection", connection_id, tag_of(obj), "deleted")

    # ----- pending configuration and batch updates ------------------------------------------------------
    def pending(self, tenant=None):
        """Pending changes; for a tenant administrator only its own and the deployment-wide (gateway) ones."""
        changes = [self.change_view(c) for c in self.changes if tenant is None or c["tenant"] in (None, tenant)]
        return {"pending": bool(changes), "changes": changes}

    def _config(self):
        return {"email_gateways": copy.deepcopy(self.gateways),
                "tenants": {name: {"oauth_settings": copy.deepcopy(t.oauth_settings), "email_connections": copy.deepcopy(t.connections)}
                            for name, t in self.tenants.items()}}

    def running_update(self):
        return next((u for u in self.updates if u["status"] in ("queued", "running")), None)

    def start_update(self):
        running = self.running_update()
        if running is not None:
            raise PortalError(409, "update_in_progress", "Batch update %s is %s; start another one when it has finished." % (running["id"], running["status"]),
                              [("id", running["id"])])
        failure = self.settings.get("fail_next_update")
        if failure:
            self.settings["fail_next_update"] = None
        elif self.settings.get("update_failure_rate") and self.random.random() < float(self.settings["update_failure_rate"]):
            failure = RANDOM_FAILURE % self.name
        moment = now_utc()
        update = {"id": self.new_id("upd"), "status": "queued", "requested_at": rfc3339(moment), "started_at": None, "finished_at": None,
                  "errors": [], "_seq": self.next_seq(), "_t0": self.clock(), "_w0": moment,
                  "_duration": float(self.settings.get("update_seconds") or 0), "_failure": failure,
                  # What this update applies: the configuration (and the pending changes) as of now.
                  "_config": self._config(), "_change_seq": self._seq}
        self.updates.append(update)
        journal.note("ce_batch_update", update["id"], None, "created")
        return update

    def advance(self, now=None):
        """Move batch updates along their timeline (lazily, on every access)."""
        now = self.clock() if now is None else now
        for update in self.updates:
            if update["status"] not in ("queued", "running"):
                continue
            elapsed, duration = now - update["_t0"], update["_duration"]
            start = duration * QUEUED_FRACTION
            if elapsed >= start and update["started_at"] is None:
                update["status"] = "running"
                update["started_at"] = rfc3339(update["_w0"] + datetime.timedelta(seconds=start))
            if elapsed >= duration:
                self._finish(update)

    def _finish(self, update):
        update["finished_at"] = rfc3339(update["_w0"] + datetime.timedelta(seconds=update["_duration"]))
        config = update.pop("_config")
        if update["_failure"]:
            update["status"] = "failed"
            update["errors"] = [update["_failure"]]
            return
        update["status"] = "succeeded"
        self.applied = config
        self.applied_at = update["finished_at"]
        self.applied_update_id = update["id"]
        self.changes = [c for c in self.changes if c["_seq"] > update["_change_seq"]]

    @staticmethod
    def update_view(update):
        return public(update)

    # ----- lab views (no secrets) ---------------------------------------------------------------------
    def settings_view(self):
        return dict(self.settings, version=self.version, capabilities=list(self.capabilities))

    def _config_view(self, config):
        return {"email_gateways": [self.gateway_view(g) for g in sorted(config["email_gateways"].values(), key=lambda o: o["_seq"])],
                "tenants": {name: {"oauth_settings": [self.oauth_view(o, True) for o in sorted(t["oauth_settings"].values(), key=lambda o: o["_seq"])],
                                   "email_connections": [self.connection_view(c) for c in sorted(t["email_connections"].values(), key=lambda o: o["_seq"])]}
                            for name, t in config["tenants"].items()}}

    def state_view(self, url):
        configured = self._config_view(self._config())
        for name, tenant in self.tenants.items():
            configured["tenants"][name].update(display_name=tenant.display_name, directory=tenant.directory,
                                               mailboxes=[dict(m) for m in tenant.mailboxes])
        applied = self._config_view(self.applied)
        applied.update(applied_at=self.applied_at, update_id=self.applied_update_id)
        return {"name": self.name, "url": url, "settings": self.settings_view(), "configured": configured, "applied": applied,
                "pending": self.pending(), "updates": [self.update_view(u) for u in reversed(self.updates)]}
