"""The OData query options the lab's Graph honours: $filter (eq, startswith, any(), joined with
`and`) on the properties Graph supports filtering on, and $select."""

import re

# Properties Graph lets you filter on, per type (a subset: what the collection and tests use).
FILTERABLE = {
    "application": {"appId", "displayName", "uniqueName", "id", "publisherDomain", "signInAudience"},
    "servicePrincipal": {"appId", "displayName", "id", "servicePrincipalType", "accountEnabled", "appOwnerOrganizationId"},
    "appRoleAssignment": {"resourceId", "principalId", "appRoleId", "id", "resourceDisplayName", "principalDisplayName"},
}
COLLECTIONS = {
    "application": {"identifierUris", "tags"},
    "servicePrincipal": {"servicePrincipalNames", "tags", "alternativeNames"},
    "appRoleAssignment": set(),
}
_LITERAL = r"(?:'(?P<s>(?:[^']|'')*)'|(?P<g>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})|(?P<b>true|false))"
_EQ = re.compile(r"^(?P<p>\w+)\s+eq\s+" + _LITERAL + r"$")
_STARTSWITH = re.compile(r"^startswith\(\s*(?P<p>\w+)\s*,\s*'(?P<s>(?:[^']|'')*)'\s*\)$")
_ANY = re.compile(r"^(?P<p>\w+)/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)\s+eq\s+'(?P<s>(?:[^']|'')*)'\s*\)$")


class ODataError(ValueError):
    def __init__(self, message, code="Request_UnsupportedQuery"):
        super().__init__(message)
        self.code = code


def _split_and(text):
    """Split on ' and ' outside quoted literals."""
    parts, current, quoted, index = [], "", False, 0
    while index < len(text):
        char = text[index]
        if char == "'":
            quoted = not quoted
        if not quoted and text[index:index + 5].lower() == " and ":
            parts.append(current)
            current = ""
            index += 5
            continue
        current += char
        index += 1
    parts.append(current)
    return [p.strip() for p in parts]


def _literal(match):
    if match.group("s") is not None:
        return match.group("s").replace("''", "'")
    if match.group("g") is not None:
        return match.group("g")
    return match.group("b") == "true"


def _equal(value, wanted):
    # Directory string comparisons are case-insensitive.
    if isinstance(wanted, bool):
        return value is wanted
    return isinstance(value, str) and value.lower() == str(wanted).lower()


def _clause(text, type_name):
    resource = type_name[0].upper() + type_name[1:]
    match = _EQ.match(text)
    if match:
        prop, wanted = match.group("p"), _literal(match)
        if prop not in FILTERABLE[type_name]:
            raise ODataError("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'." % (prop, resource))
        return lambda obj: _equal(obj.get(prop), wanted)
    match = _STARTSWITH.match(text)
    if match:
        prop, prefix = match.group("p"), match.group("s").replace("''", "'").lower()
        if prop not in FILTERABLE[type_name]:
            raise ODataError("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'." % (prop, resource))
        return lambda obj: isinstance(obj.get(prop), str) and obj[prop].lower().startswith(prefix)
    match = _ANY.match(text)
    if match:
        prop, wanted = match.group("p"), match.group("s").replace("''", "'")
        if prop not in COLLECTIONS[type_name]:
            raise ODataError("Unsupported or invalid query filter clause specified for property '%s' of resource '%s'." % (prop, resource))
        return lambda obj: any(_equal(v, wanted) for v in obj.get(prop) or [])
    raise ODataError("Invalid filter clause: %s" % text, code="BadRequest")


def parse_filter(text, type_name):
    """A predicate for a $filter expression, or None when there is none."""
    if text is None or not text.strip():
        return None
    clauses = [_clause(part, type_name) for part in _split_and(text.strip())]
    return lambda obj: all(clause(obj) for clause in clauses)


def apply_select(obj, select, type_name):
    """Only the $select-ed properties of an object (Graph rejects unknown names)."""
    if not select:
        return obj
    names = [n.strip() for n in select.split(",") if n.strip()]
    for name in names:
        if name not in obj:
            raise ODataError("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.%s'."
                             % (name, type_name), code="BadRequest")
    return {k: v for k, v in obj.items() if k in names}
