"""Seeded objects beyond the automation identity, and their provenance tags (provenance.py), for a world whose seed
has them (worlds/brownfield): applications as an administrator made them in the Entra admin center, with their
service principal, requested permissions, admin consent and client secrets; Exchange Online service principals; and
mailbox permissions. World.reset calls seed_directory() for every directory after building it.

The seed format (every key optional; "provenance" on any item overrides the seed's "default_provenance"):

Dates may be relative to the moment the world is built: "now-365d", "now+30d" (state.parse_seed_time).

  directories[].applications[]:
    {"displayName", "application_object_id", "app_id", "createdDateTime", "provenance",
     "fields": {<any other application property, e.g. "signInAudience", "notes">},
     "required_resource_access": [{"resource": "graph"|"exchange", "type": "Role"|"Scope", "values": [...], "provenance"}],
     "password_credentials": [{"keyId", "displayName", "startDateTime", "endDateTime", "secretText", "provenance"}],
     "service_principal": {"id", "fields": {...}, "provenance"}            (null: the app has none),
     "app_role_assignments": [{"resource", "values": [...], "createdDateTime", "provenance"}]}
  directories[].exchange:
    {"service_principals": [{"app_id", "object_id", "display_name", "provenance"}],
     "mailbox_permissions": [{"mailbox", "user" (an Exchange service principal's identity), "access_rights", "provenance"}]}

Exchange service principals are registered without the check New-ServicePrincipal makes today (the ObjectId must be
the enterprise application's, i.e. the service principal's, id for that AppId): the brownfield world holds one
registered with the application object's id, as the runbook's -ServiceId made it in directories where Exchange did
not check the pair yet. The same pair sent to New-ServicePrincipal now is refused.
"""

import uuid

from . import exchange_state as exo
from . import provenance
from .state import assignment_id, iso, parse_seed_time


def seed_directory(directory, entry, seed):
    """Seed what `entry` adds to `directory` (World.lock held), then tag every seeded object of the directory that
    carries no tag yet with the seed's default_provenance."""
    default = provenance.check(seed.get("default_provenance"), "default_provenance")
    for spec in entry.get("applications") or []:
        _seed_application(directory, spec, default)
    if entry.get("exchange") or default is not None:
        _seed_exchange(directory, entry.get("exchange") or {}, default)
    if default is not None:
        _tag_directory(directory, default)


def _tag_of(spec, default, where):
    return provenance.check(spec.get("provenance", default), where)


def _resolve(directory, resource_key, access_type, values, where):
    """[(id, value)] of app roles (Role) or delegated permissions (Scope) of a resource service principal."""
    resource = directory.resource_sp(resource_key)
    table = resource.get("appRoles") if access_type == "Role" else resource.get("oauth2PermissionScopes")
    ids = {item["value"]: item["id"] for item in table or []}
    unknown = [v for v in values if v not in ids]
    if unknown:
        raise ValueError("%s: %s has no %s %s" % (where, resource["displayName"], access_type, ", ".join(unknown)))
    return resource, [(ids[v], v) for v in values]


def _seed_application(directory, spec, default):
    where = "%s: application %s" % (directory.name, spec.get("displayName"))
    tag = _tag_of(spec, default, where)
    fields = dict(spec.get("fields") or {}, displayName=spec["displayName"])
    app = directory.create_application(fields, object_id=spec["application_object_id"], app_id=spec["app_id"])
    if spec.get("createdDateTime"):
        app["createdDateTime"] = iso(parse_seed_time(spec["createdDateTime"]))
    app["_created"] = 0.0  # seeded objects are visible from the start
    provenance.set_tag(app, tag)
    by_resource = {}
    app["_rra_provenance"] = {}
    for item in spec.get("required_resource_access") or []:
        access_type = item.get("type", "Role")
        resource, resolved = _resolve(directory, item["resource"], access_type, item["values"], where)
        entry = by_resource.setdefault(resource["appId"], {"resourceAppId": resource["appId"], "resourceAccess": []})
        item_tag = _tag_of(item, tag, where)
        for role_id, _ in resolved:
            entry["resourceAccess"].append({"id": role_id, "type": access_type})
            if item_tag is not None:
                app["_rra_provenance"][provenance.rra_key(resource["appId"], role_id, access_type)] = item_tag
    app["requiredResourceAccess"] = list(by_resource.values())
    for secret in spec.get("password_credentials") or []:
        directory.add_password(app, secret.get("displayName"), parse_seed_time(secret["startDateTime"]), parse_seed_time(secret["endDateTime"]),
                               secret_text=secret["secretText"], key_id=secret["keyId"])
        stored = app["_secrets"][secret["keyId"]]
        stored["created"] = 0.0
        stored["provenance"] = _tag_of(secret, default, where + " secret " + secret["keyId"])
    sp_spec = spec.get("service_principal")
    if sp_spec is None:
        return
    sp = directory.create_service_principal(app, sp_spec.get("fields"), object_id=sp_spec["id"])
    sp["_created"] = 0.0
    provenance.set_tag(sp, _tag_of(sp_spec, tag, where + " service principal"))
    for grant in spec.get("app_role_assignments") or []:
        resource, resolved = _resolve(directory, grant["resource"], "Role", grant["values"], where)
        grant_tag = _tag_of(grant, tag, where + " consent")
        for role_id, value in resolved:
            assignment = directory.create_assignment(sp, resource, role_id, assignment_key=assignment_id(sp["id"], salt=grant["resource"] + ":" + value),
                                                     seeded=True)
            if grant.get("createdDateTime"):
                assignment["createdDateTime"] = iso(parse_seed_time(grant["createdDateTime"]), fraction=True)
            provenance.set_tag(assignment, grant_tag)


def _seed_exchange(directory, spec, default):
    org = exo.organization(directory)
    for item in spec.get("service_principals") or []:
        view = exo.register_service_principal(None, directory, item["app_id"], item["object_id"], item.get("display_name"))
        sp = next(s for s in org.service_principals if s["Identity"] == view["Identity"])
        # Stable across resets, so views of the seeded world compare equal.
        sp["ExchangeObjectId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "ceops-lab/exchange-sp/%s/%s" % (directory.tenant_id, sp["ObjectId"])))
        provenance.set_tag(sp, _tag_of(item, default, "%s: Exchange service principal %s" % (directory.name, item["object_id"])))
    for item in spec.get("mailbox_permissions") or []:
        where = "%s: mailbox permission of %s on %s" % (directory.name, item["user"], item["mailbox"])
        mailbox = next((m for m in org.mailboxes if m["PrimarySmtpAddress"].lower() == item["mailbox"].lower()), None)
        principal = next((s for s in org.service_principals if str(item["user"]).lower() in (s["Identity"].lower(), s["AppId"].lower())), None)
        if mailbox is None or principal is None:
            raise ValueError("%s: no such mailbox or Exchange service principal in the seed" % where)
        entry = exo.new_entry(principal["_sid"], item.get("access_rights") or ["FullAccess"])
        provenance.set_tag(entry, _tag_of(item, default, where))
        mailbox["_acl"].append(entry)


def _tag_directory(directory, tag):
    """The default tag on everything seeded that has none: resource and automation objects, mailbox permissions."""
    for app in directory.applications.values():
        provenance.set_tag(app, tag)
        for stored in app["_secrets"].values():
            if stored.get("provenance") is None:
                stored["provenance"] = tag
        requested = app.setdefault("_rra_provenance", {})
        for key in provenance.rra_entries(app):
            requested.setdefault(key, tag)
    for sp in directory.service_principals.values():
        provenance.set_tag(sp, tag)
    for assignment in directory.assignments.values():
        provenance.set_tag(assignment, tag)
    org = exo.organization(directory)
    for sp in org.service_principals:
        provenance.set_tag(sp, tag)
    for mailbox in org.mailboxes:
        for entry in mailbox["_acl"]:
            provenance.set_tag(entry, tag)
