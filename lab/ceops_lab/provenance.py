"""Provenance tags: lab bookkeeping that says where a seeded object came from. Never served through a service's API
(objects keep the tag under a "_" key, which public views drop); the admin API shows them (/provenance,
/foreign-state) and the write journal quotes them.

  "hand-made"  what an administrator made by hand following the runbook: the "CE Email" app, its service principal,
               the IMAP/POP permissions it requests and their admin consent, the Exchange service principal made for
               it, its FullAccess grants on CE's mailboxes, the CE email gateway, OAuth settings and email connections
               made for it. The collection may adopt (and so modify) these.
  "foreign"    everything else that was there before: other applications and all their objects, and the parts of a
               hand-made app that are not the runbook's (the client secrets the administrator made, permissions and
               consents beyond IMAP/POP, other principals' mailbox permissions). The collection must leave these as
               they are.
  None         an object created while the lab ran (or an untagged world, such as the default one).

Where tags live: whole objects carry "_provenance"; a password credential's tag is in its application's "_secrets"
bookkeeping (the credential dict itself is also served by addPassword); a requiredResourceAccess entry's tag is in
its application's "_rra_provenance", keyed by resourceAppId|id|type, so it survives a PATCH that re-sends the list.
"""

HAND_MADE = "hand-made"
FOREIGN = "foreign"
TAGS = (HAND_MADE, FOREIGN)


def check(tag, where):
    if tag not in TAGS + (None,):
        raise ValueError("%s: provenance must be one of %s or null, not %r" % (where, ", ".join(TAGS), tag))
    return tag


def tag_of(obj):
    return obj.get("_provenance") if obj else None


def set_tag(obj, tag):
    """Tag an object unless it already has a tag (a seed's explicit tag wins over its world's default)."""
    if tag is not None and obj.get("_provenance") is None:
        obj["_provenance"] = tag


def credential_tag(app, key_id):
    for stored_id, stored in app.get("_secrets", {}).items():
        if stored_id.lower() == str(key_id).lower():
            return stored.get("provenance")
    return None


def rra_key(resource_app_id, access_id, access_type):
    return "%s|%s|%s" % (str(resource_app_id).lower(), str(access_id).lower(), str(access_type))


def rra_entries(app):
    """{rra_key: (resourceAppId, resourceAccess item)} of an application's requiredResourceAccess."""
    entries = {}
    for resource in app.get("requiredResourceAccess") or []:
        if not isinstance(resource, dict):
            continue
        for access in resource.get("resourceAccess") or []:
            if isinstance(access, dict):
                entries[rra_key(resource.get("resourceAppId"), access.get("id"), access.get("type"))] = (resource.get("resourceAppId"),
                                                                                                       dict(access))
    return entries


def rra_tag(app, key):
    return app.get("_rra_provenance", {}).get(key)
