"""Admin views of provenance (provenance.py): every tagged object, and the foreign state.

tagged_objects(lab)  [{service, scope, kind, id, provenance}] of every object and sub-object that carries a tag.
foreign_state(lab)   {service: {scope: {kind: {id: view}}}} of everything tagged "foreign", as it is now: a canonical
                     dict (ids as keys, views without secrets, bookkeeping or timestamps the lab keeps for itself), so a
                     test takes it before a run and compares it after; any difference is a foreign object or
                     sub-object that was changed, added to or removed. Scopes: the directory's name (graph, exchange),
                     the deployment (CE gateways) or "<deployment>/<tenant>" (CE OAuth settings and connections).
                     CE objects are shown as configured (what the Portal API changes), secrets as a SHA-256 prefix.
"""

from . import provenance
from .provenance import tag_of
from .state import public

_CREDENTIAL_FIELDS = ("keyId", "displayName", "hint", "startDateTime", "endDateTime")


def _application_view(app):
    view = public(app)
    view["passwordCredentials"] = [{k: c.get(k) for k in _CREDENTIAL_FIELDS} for c in app["passwordCredentials"]]
    return view


def _graph(directory):
    """(kind, id, tag, view) of a directory's tagged Graph objects and sub-objects."""
    for app in directory.applications.values():
        yield "application", app["id"], tag_of(app), _application_view(app)
        for credential in app["passwordCredentials"]:
            view = dict({k: credential.get(k) for k in _CREDENTIAL_FIELDS}, application=app["id"])
            yield "password_credential", credential["keyId"].lower(), provenance.credential_tag(app, credential["keyId"]), view
        for key, (resource_app_id, access) in provenance.rra_entries(app).items():
            view = {"application": app["id"], "resourceAppId": resource_app_id, "id": access.get("id"), "type": access.get("type")}
            yield "required_resource_access", "%s|%s" % (app["id"], key), provenance.rra_tag(app, key), view
    for sp in directory.service_principals.values():
        yield "service_principal", sp["id"], tag_of(sp), public(sp)
    for assignment in directory.assignments.values():
        yield "app_role_assignment", assignment["id"], tag_of(assignment), public(assignment)


def _exchange(directory):
    org = directory.__dict__.get("exchange")  # an organization nobody used yet holds only its defaults, untagged
    if org is None:
        return
    for sp in org.service_principals:
        yield "exchange_service_principal", sp["Identity"], tag_of(sp), dict(org.render_sp(sp), Sid=sp["_sid"])
    for mailbox in org.mailboxes:
        for entry in mailbox["_acl"]:
            key = "%s|%s|%s|%s|%s" % (mailbox["PrimarySmtpAddress"].lower(), entry["sid"], "Deny" if entry["deny"] else "Allow",
                                      "Inherited" if entry["inherited"] else "Explicit", entry["inheritance"])
            view = {"mailbox": mailbox["PrimarySmtpAddress"], "user": org.principal_label(entry["sid"]) or entry["sid"], "sid": entry["sid"],
                    "access_rights": list(entry["rights"]), "deny": entry["deny"], "inherited": entry["inherited"],
                    "inheritance": entry["inheritance"]}
            yield "mailbox_permission", key, tag_of(entry), view


def _ce(deployment):
    for gateway in deployment.gateways.values():
        yield deployment.name, "ce_email_gateway", gateway["id"], tag_of(gateway), deployment.gateway_view(gateway)
    for tenant in deployment.tenants.values():
        scope = "%s/%s" % (deployment.name, tenant.name)
        for settings in tenant.oauth_settings.values():
            yield scope, "ce_oauth_settings", settings["id"], tag_of(settings), deployment.oauth_view(settings, with_fingerprint=True)
        for connection in tenant.connections.values():
            yield scope, "ce_email_connection", connection["id"], tag_of(connection), deployment.connection_view(connection)


def _walk(lab):
    """(service, scope, kind, id, tag, view) of every object and sub-object of the lab's world."""
    with lab.world.lock:
        for directory in lab.world.directories.values():
            for kind, object_id, tag, view in _graph(directory):
                yield "graph", directory.name, kind, object_id, tag, view
            for kind, object_id, tag, view in _exchange(directory):
                yield "exchange", directory.name, kind, object_id, tag, view
    ce = lab.services.get("ce")
    if ce is None:
        return
    with ce.lock:
        for deployment in ce.deployments.values():
            for scope, kind, object_id, tag, view in _ce(deployment):
                yield "ce", scope, kind, object_id, tag, view


def tagged_objects(lab):
    return [{"service": service, "scope": scope, "kind": kind, "id": object_id, "provenance": tag}
            for service, scope, kind, object_id, tag, _ in _walk(lab) if tag is not None]


def foreign_state(lab):
    state = {}
    for service, scope, kind, object_id, tag, view in _walk(lab):
        if tag == provenance.FOREIGN:
            state.setdefault(service, {}).setdefault(scope, {}).setdefault(kind, {})[object_id] = view
    return state

